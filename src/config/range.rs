//! The allowed range of a numeric key, stated once: checked when the
//! configuration is loaded (by `recsched check` and by every command at
//! start) and shown in the error, so that no value an operator can type
//! (`inf`, `1e-30`, `0`) reaches the code that turns it into a duration
//! or a rate.

use std::fmt;

/// `key` must be between `min` and `max` (both included); with
/// `zero_is_off`, 0 is allowed too and turns the feature off.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Range<T> {
    /// `section.key`, as in the file.
    pub key: &'static str,
    pub min: T,
    pub max: T,
    /// 0 means "no limit" and is allowed below `min`.
    pub zero_is_off: bool,
}

/// A number as an error or the shipped file should show it: plain decimals
/// for ordinary values, exponent notation for the extreme ones
/// (`1e-30`, not thirty zeros), and `inf`/`NaN` as Rust prints them.
pub trait Shown: Copy + PartialOrd {
    fn shown(self) -> String;
    fn is_zero(self) -> bool;
}

macro_rules! shown_int {
    ($($t:ty),*) => {$(
        impl Shown for $t {
            fn shown(self) -> String {
                self.to_string()
            }
            fn is_zero(self) -> bool {
                self == 0
            }
        }
    )*};
}
shown_int!(u32, u64, usize);

impl Shown for f64 {
    fn shown(self) -> String {
        let magnitude = self.abs();
        if self != 0.0 && self.is_finite() && !(1e-3..1e9).contains(&magnitude) {
            format!("{self:e}")
        } else {
            self.to_string()
        }
    }
    fn is_zero(self) -> bool {
        self == 0.0
    }
}

impl<T: Shown> Range<T> {
    pub const fn new(key: &'static str, min: T, max: T) -> Self {
        Self {
            key,
            min,
            max,
            zero_is_off: false,
        }
    }

    /// As [`Range::new`], and 0 is allowed (it turns the feature off).
    pub const fn or_zero(key: &'static str, min: T, max: T) -> Self {
        Self {
            key,
            min,
            max,
            zero_is_off: true,
        }
    }

    /// `Err` naming the key, the value and the range when `value` is
    /// outside it (NaN is outside every range).
    pub fn check(&self, value: T) -> Result<(), String> {
        let inside = value >= self.min && value <= self.max;
        if inside || (self.zero_is_off && value.is_zero()) {
            Ok(())
        } else {
            Err(format!("{} = {}: must be {self}", self.key, value.shown()))
        }
    }
}

/// Every range checked, and every value found outside its range: one pass
/// over the whole configuration reports all its problems at once.
#[derive(Debug, Default)]
pub struct RangeCheck {
    /// One line per problem, naming the key (`cxone.request_timeout_seconds
    /// = inf: must be between 0.1 and 300`).
    pub problems: Vec<String>,
    /// Each key checked and its range as errors state it, for the test that
    /// keeps `config/recsched.toml` in step.
    pub ranges: Vec<(&'static str, String)>,
}

impl RangeCheck {
    pub fn check<T: Shown>(&mut self, range: Range<T>, value: T) {
        self.ranges.push((range.key, range.to_string()));
        if let Err(problem) = range.check(value) {
            self.problems.push(problem);
        }
    }

    /// A problem no single range states (e.g. one key below another).
    pub fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }
}

/// `between 0.1 and 300`, or `0 (no limit) or between 0.1 and 10000`.
impl<T: Shown> fmt::Display for Range<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.zero_is_off {
            f.write_str("0 (no limit) or ")?;
        }
        write!(f, "between {} and {}", self.min.shown(), self.max.shown())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Range<f64> = Range::new("cxone.request_timeout_seconds", 0.1, 300.0);
    const RATE: Range<f64> = Range::or_zero("schedule.max_requests_per_second", 0.1, 10_000.0);

    #[test]
    fn values_outside_are_named_with_the_key_and_the_range() {
        assert_eq!(
            TIMEOUT.check(f64::INFINITY).unwrap_err(),
            "cxone.request_timeout_seconds = inf: must be between 0.1 and 300"
        );
        assert_eq!(
            TIMEOUT.check(f64::NAN).unwrap_err(),
            "cxone.request_timeout_seconds = NaN: must be between 0.1 and 300"
        );
        assert_eq!(
            RATE.check(1e-30).unwrap_err(),
            "schedule.max_requests_per_second = 1e-30: must be 0 (no limit) or between 0.1 and 10000"
        );
        assert!(TIMEOUT.check(0.0).is_err());
        assert!(TIMEOUT.check(-1.0).is_err());
        assert!(TIMEOUT.check(300.000_1).is_err());
    }

    #[test]
    fn the_ends_and_zero_when_it_means_off_are_inside() {
        for v in [0.1, 10.0, 300.0] {
            assert_eq!(TIMEOUT.check(v), Ok(()));
        }
        for v in [0.0, 0.1, 10_000.0] {
            assert_eq!(RATE.check(v), Ok(()));
        }
        let n = Range::new("schedule.max_concurrency", 1usize, 10_000);
        assert_eq!(n.check(1), Ok(()));
        assert_eq!(
            n.check(0).unwrap_err(),
            "schedule.max_concurrency = 0: must be between 1 and 10000"
        );
    }
}
