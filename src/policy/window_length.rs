//! How long one window of a policy stays open.
//!
//! Holding one means it is valid; parsed once from the row, never
//! re-checked downstream. Depends on nothing outside `policy` and
//! `recording`.

use std::fmt;

/// The `window_seconds` column, checked: 5 s ..= 7 days.
///
/// Five seconds is the vendor's shortest recording; a week bounds how far
/// back the planner must look for a window that is still open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct WindowLength(u32);

/// Why a number of seconds is not a [`WindowLength`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "window length {0} s is outside {min}..={max} s",
    min = WindowLength::MIN_SECS,
    max = WindowLength::MAX_SECS
)]
pub struct WindowLengthError(pub i64);

impl WindowLength {
    /// The vendor's shortest recording.
    pub const MIN_SECS: u32 = 5;
    /// Seven days.
    pub const MAX_SECS: u32 = 7 * 24 * 60 * 60;

    /// Accepts 5 ..= 604800 seconds.
    ///
    /// ```
    /// use recsched::policy::WindowLength;
    /// assert_eq!(WindowLength::from_secs(3600).unwrap().as_secs(), 3600);
    /// assert!(WindowLength::from_secs(4).is_err());
    /// ```
    pub fn from_secs(secs: i64) -> Result<Self, WindowLengthError> {
        match u32::try_from(secs) {
            Ok(s) if (Self::MIN_SECS..=Self::MAX_SECS).contains(&s) => Ok(Self(s)),
            _ => Err(WindowLengthError(secs)),
        }
    }

    pub fn as_secs(self) -> u32 {
        self.0
    }

    /// The length as a signed chrono duration, for instant arithmetic.
    pub fn as_duration(self) -> chrono::Duration {
        chrono::Duration::seconds(i64::from(self.0))
    }
}

impl fmt::Display for WindowLength {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} s", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn window_length_bounds_are_inclusive() {
        assert_eq!(WindowLength::from_secs(5).map(WindowLength::as_secs), Ok(5));
        assert_eq!(
            WindowLength::from_secs(604_800).map(WindowLength::as_secs),
            Ok(604_800)
        );
    }

    #[test]
    fn window_length_rejects_short_long_and_negative() {
        for secs in [i64::MIN, -5, 0, 4, 604_801, i64::from(u32::MAX) + 5] {
            assert_eq!(WindowLength::from_secs(secs), Err(WindowLengthError(secs)));
        }
    }

    proptest! {
        #[test]
        fn every_length_in_range_is_accepted_and_kept(secs in 5i64..=604_800) {
            let len = WindowLength::from_secs(secs).unwrap();
            prop_assert_eq!(i64::from(len.as_secs()), secs);
            prop_assert_eq!(len.as_duration().num_seconds(), secs);
        }
    }
}
