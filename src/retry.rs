//! Pure backoff arithmetic: given how many attempts were made, what the
//! server said (`Retry-After`), a jitter sample and the deadline, how long
//! to wait before the next attempt, or whether to give up.
//!
//! It is its own module so each case is a unit test that finishes in
//! microseconds: it never reads the clock, sleeps or draws randomness (the
//! caller passes `now` and a jitter sample in `[0, 1)`).

use crate::config::range::{Range, RangeCheck};
use chrono::{DateTime, Utc};
use std::time::Duration;

/// Exponential backoff with full jitter, bounded by a deadline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetryPolicy {
    /// First backoff ceiling, in milliseconds (default 500; 10 to 60,000).
    pub base_ms: u64,
    /// Largest backoff ceiling, in milliseconds (default 30,000; 10 to
    /// 600,000, and at least `base_ms`).
    pub cap_ms: u64,
    /// How many 500 answers in a row are retried before the call is final
    /// (default 3, at most 100): a 500 is retried "a few times", not until
    /// the deadline.
    pub max_server_errors: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            base_ms: 500,
            cap_ms: 30_000,
            max_server_errors: 3,
        }
    }
}

impl RetryPolicy {
    pub const BASE_MS: Range<u64> = Range::new("retry.base_ms", 10, 60_000);
    pub const CAP_MS: Range<u64> = Range::new("retry.cap_ms", 10, 600_000);
    pub const MAX_SERVER_ERRORS: Range<u32> = Range::new("retry.max_server_errors", 0, 100);

    /// Checks every key against its range, and that the cap is not below
    /// the base.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::BASE_MS, self.base_ms);
        check.check(Self::CAP_MS, self.cap_ms);
        check.check(Self::MAX_SERVER_ERRORS, self.max_server_errors);
        if self.cap_ms < self.base_ms {
            check.problem(format!(
                "retry.cap_ms = {}: must be at least retry.base_ms ({})",
                self.cap_ms, self.base_ms
            ));
        }
    }
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Wait this long, then try again.
    Wait(Duration),
    /// Waiting would pass the deadline: stop retrying.
    GiveUp,
}

impl RetryPolicy {
    /// The backoff ceiling before attempt `attempt + 1`, after `attempt`
    /// failed attempts (1-based): `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(32);
        let ms = self.base_ms.saturating_mul(1u64 << exp).min(self.cap_ms);
        Duration::from_millis(ms)
    }

    /// The longest wait between two attempts, `Retry-After` included.
    pub fn cap(&self) -> Duration {
        Duration::from_millis(self.cap_ms)
    }

    /// The delay before the next attempt after `attempt` failures.
    ///
    /// The normal delay is `jitter * ceiling` ("full jitter"). A
    /// `retry_after` the server sent can only lengthen it, and never past
    /// `cap_ms`: a vendor answering `Retry-After: 0` gets the normal
    /// backoff, not a tight loop, and one answering `Retry-After: 86400`
    /// is asked again after at most the cap. If waiting would pass
    /// `deadline`, the answer is [`Decision::GiveUp`].
    ///
    /// ```
    /// use recsched::retry::{Decision, RetryPolicy};
    /// use chrono::{TimeZone, Utc};
    /// use std::time::Duration;
    /// let p = RetryPolicy::default();
    /// let now = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
    /// let deadline = now + chrono::Duration::seconds(10);
    /// assert_eq!(p.next_delay(1, None, 0.5, now, deadline), Decision::Wait(Duration::from_millis(250)));
    /// assert_eq!(p.next_delay(1, Some(Duration::from_secs(11)), 0.5, now, deadline), Decision::GiveUp);
    /// // `Retry-After: 0` still waits the normal backoff.
    /// assert_eq!(p.next_delay(1, Some(Duration::ZERO), 0.5, now, deadline), Decision::Wait(Duration::from_millis(250)));
    /// ```
    pub fn next_delay(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
        now: DateTime<Utc>,
        deadline: DateTime<Utc>,
    ) -> Decision {
        let j = if jitter.is_finite() {
            jitter.clamp(0.0, 1.0)
        } else {
            0.0
        };
        let backoff = self.ceiling(attempt).mul_f64(j);
        // `backoff` never exceeds the cap (the ceiling does not), so the
        // server's word can only move the delay within [backoff, cap].
        let delay = match retry_after {
            Some(asked) => asked.max(backoff).min(self.cap()),
            None => backoff,
        };
        let Ok(step) = chrono::Duration::from_std(delay) else {
            return Decision::GiveUp;
        };
        match now.checked_add_signed(step) {
            Some(at) if at <= deadline => Decision::Wait(delay),
            _ => Decision::GiveUp,
        }
    }
}

/// Parses a `Retry-After` header value: delta-seconds or an HTTP date
/// (relative to `now`; a date in the past means "now"). `None` when the
/// value is neither.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at: DateTime<Utc> = httpdate::parse_http_date(value).ok()?.into();
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// Waits measured on the monotonic clock (the daemon's writer, which must
/// not let a wall-clock step stretch or cut its patience).
impl RetryPolicy {
    /// [`RetryPolicy::next_delay`] with the time `left` before the deadline
    /// in place of two wall-clock instants.
    ///
    /// ```
    /// use recsched::retry::{Decision, RetryPolicy};
    /// use std::time::Duration;
    /// let p = RetryPolicy { base_ms: 50, cap_ms: 2_000, max_server_errors: 0 };
    /// // Jitter 1.0: the whole ceiling, doubling from the base.
    /// assert_eq!(p.next_delay_within(3, None, 1.0, Duration::from_secs(60)), Decision::Wait(Duration::from_millis(200)));
    /// assert_eq!(p.next_delay_within(3, None, 1.0, Duration::from_millis(199)), Decision::GiveUp);
    /// ```
    pub fn next_delay_within(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        jitter: f64,
        left: Duration,
    ) -> Decision {
        let delay = retry_after.unwrap_or_else(|| {
            let j = if jitter.is_finite() {
                jitter.clamp(0.0, 1.0)
            } else {
                0.0
            };
            self.ceiling(attempt).mul_f64(j)
        });
        if delay <= left {
            Decision::Wait(delay)
        } else {
            Decision::GiveUp
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    #[test]
    fn ceiling_doubles_from_base_up_to_cap() {
        let p = RetryPolicy::default();
        let ms: Vec<u128> = (1..=8).map(|a| p.ceiling(a).as_millis()).collect();
        assert_eq!(ms, [500, 1000, 2000, 4000, 8000, 16000, 30000, 30000]);
        assert_eq!(p.ceiling(1000), Duration::from_secs(30));
    }

    #[test]
    fn full_jitter_scales_the_ceiling() {
        let p = RetryPolicy::default();
        let far = t0() + chrono::Duration::hours(1);
        assert_eq!(
            p.next_delay(3, None, 0.0, t0(), far),
            Decision::Wait(Duration::ZERO)
        );
        assert_eq!(
            p.next_delay(3, None, 0.25, t0(), far),
            Decision::Wait(Duration::from_millis(500))
        );
        // A bad sample never produces a delay above the ceiling.
        assert_eq!(
            p.next_delay(3, None, 7.0, t0(), far),
            Decision::Wait(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(3, None, f64::NAN, t0(), far),
            Decision::Wait(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_is_honoured_over_backoff() {
        let p = RetryPolicy::default();
        let far = t0() + chrono::Duration::hours(1);
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(7)), 0.1, t0(), far),
            Decision::Wait(Duration::from_secs(7))
        );
    }

    #[test]
    fn retry_after_zero_still_waits_the_normal_backoff() {
        let p = RetryPolicy::default();
        let far = t0() + chrono::Duration::hours(1);
        for attempt in 1..=10 {
            let normal = p.next_delay(attempt, None, 0.6, t0(), far);
            assert_eq!(
                p.next_delay(attempt, Some(Duration::ZERO), 0.6, t0(), far),
                normal,
                "attempt {attempt}"
            );
        }
        // A Retry-After shorter than the backoff does not shorten it.
        assert_eq!(
            p.next_delay(4, Some(Duration::from_millis(100)), 0.5, t0(), far),
            Decision::Wait(Duration::from_secs(2))
        );
    }

    #[test]
    fn retry_after_is_capped() {
        let p = RetryPolicy {
            cap_ms: 5_000,
            ..RetryPolicy::default()
        };
        let far = t0() + chrono::Duration::hours(1);
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(86_400)), 0.1, t0(), far),
            Decision::Wait(Duration::from_secs(5))
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::MAX), 0.1, t0(), far),
            Decision::Wait(Duration::from_secs(5))
        );
        // Within [backoff, cap] the server's word stands.
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(3)), 0.1, t0(), far),
            Decision::Wait(Duration::from_secs(3))
        );
    }

    #[test]
    fn never_waits_past_the_deadline() {
        let p = RetryPolicy::default();
        let deadline = t0() + chrono::Duration::seconds(2);
        assert_eq!(
            p.next_delay(1, Some(Duration::from_secs(2)), 0.0, t0(), deadline),
            Decision::Wait(Duration::from_secs(2))
        );
        assert_eq!(
            p.next_delay(1, Some(Duration::from_millis(2001)), 0.0, t0(), deadline),
            Decision::GiveUp
        );
        assert_eq!(
            p.next_delay(5, None, 0.99, t0(), deadline),
            Decision::GiveUp
        );
        assert_eq!(
            p.next_delay(
                1,
                None,
                0.0,
                deadline + chrono::Duration::seconds(1),
                deadline
            ),
            Decision::GiveUp
        );
    }

    #[test]
    fn retry_after_parses_seconds_and_http_dates() {
        assert_eq!(parse_retry_after(" 3 ", t0()), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 09:00:12 GMT", t0()),
            Some(Duration::from_secs(12))
        );
        assert_eq!(
            parse_retry_after("Wed, 25 Nov 2026 08:00:00 GMT", t0()),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", t0()), None);
        assert_eq!(parse_retry_after("-1", t0()), None);
        assert_eq!(parse_retry_after("99999999999999999999999", t0()), None);
        assert_eq!(
            parse_retry_after("18446744073709551615", t0()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn waits_within_time_left_double_to_the_cap_and_stop_at_the_deadline() {
        let p = RetryPolicy {
            base_ms: 50,
            cap_ms: 2_000,
            max_server_errors: 0,
        };
        let minute = Duration::from_secs(60);
        let ms: Vec<u128> = (1..=8)
            .map(|a| match p.next_delay_within(a, None, 1.0, minute) {
                Decision::Wait(d) => d.as_millis(),
                Decision::GiveUp => 0,
            })
            .collect();
        assert_eq!(ms, [50, 100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(
            p.next_delay_within(1, Some(Duration::from_millis(500)), 0.0, minute),
            Decision::Wait(Duration::from_millis(500))
        );
        assert_eq!(
            p.next_delay_within(
                1,
                Some(Duration::from_millis(500)),
                0.0,
                Duration::from_millis(499)
            ),
            Decision::GiveUp
        );
        assert_eq!(
            p.next_delay_within(1, None, f64::NAN, Duration::ZERO),
            Decision::Wait(Duration::ZERO)
        );
    }
}
