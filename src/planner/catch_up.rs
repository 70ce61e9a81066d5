//! Catch-up: what to do with a segment at a given instant (PRODUCT.md,
//! behaviour 3). A segment whose start has passed but whose end has not
//! starts at once for the time that remains, and says how late it is; a
//! segment wholly past, or with under 5 s left, is missed.
//!
//! `now` is a parameter: this module never reads the clock, so the daemon
//! decides which instant counts and tests pick any. Depends on
//! `recording` and the planner's [`Segment`] only.

use chrono::{DateTime, Utc};

use super::Segment;
use crate::recording::RecordingDuration;

/// Where a segment stands at `now`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    /// Starts in the future, at `at`.
    Upcoming { at: DateTime<Utc> },
    /// Start now for `remaining` (whole seconds, rounded down so the
    /// recording never outlasts the segment); `late` is `now - start`,
    /// zero when on time.
    Now {
        remaining: RecordingDuration,
        late: chrono::Duration,
    },
    /// Wholly past, or less than 5 s left: record it as `missed`.
    Missed,
}

/// Classifies `segment` at `now`. `now == start` is on time.
///
/// ```
/// use chrono::{Duration, TimeZone, Utc};
/// use recsched::planner::{due, Due, Segment};
/// use recsched::policy::{EndMode, PolicyId};
/// use recsched::recording::{RecordingDuration, UserId};
///
/// let start = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
/// let segment = Segment {
///     user: UserId::parse("ann").unwrap(),
///     start,
///     end: start + Duration::seconds(600),
///     duration: RecordingDuration::from_secs(600).unwrap(),
///     policy: PolicyId::new(1),
///     end_mode: EndMode::Expire,
/// };
/// let late = Duration::seconds(90);
/// assert_eq!(
///     due(&segment, start + late),
///     Due::Now { remaining: RecordingDuration::from_secs(510).unwrap(), late }
/// );
/// assert_eq!(due(&segment, start + Duration::seconds(596)), Due::Missed);
/// ```
pub fn due(segment: &Segment, now: DateTime<Utc>) -> Due {
    if now < segment.start {
        return Due::Upcoming { at: segment.start };
    }
    if now >= segment.end {
        return Due::Missed;
    }
    // Whole seconds left, rounded down, never more than the segment asks.
    let left = (segment.end - now)
        .num_seconds()
        .min(i64::from(segment.duration.as_secs()));
    match RecordingDuration::from_secs(left) {
        Ok(remaining) => Due::Now {
            remaining,
            late: now - segment.start,
        },
        Err(_) => Due::Missed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{EndMode, PolicyId};
    use crate::recording::UserId;
    use chrono::{Duration, TimeZone};

    fn start() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
    }

    fn segment(secs: i64) -> Segment {
        Segment {
            user: UserId::parse("ann").unwrap(),
            start: start(),
            end: start() + Duration::seconds(secs),
            duration: RecordingDuration::from_secs(secs).unwrap(),
            policy: PolicyId::new(1),
            end_mode: EndMode::Stop,
        }
    }

    fn secs(s: i64) -> RecordingDuration {
        RecordingDuration::from_secs(s).unwrap()
    }

    #[test]
    fn future_segment_is_upcoming_at_its_start() {
        let at = start() - Duration::milliseconds(1);
        assert_eq!(due(&segment(60), at), Due::Upcoming { at: start() });
    }

    #[test]
    fn segment_at_its_start_is_due_now_and_not_late() {
        assert_eq!(
            due(&segment(60), start()),
            Due::Now {
                remaining: secs(60),
                late: Duration::zero()
            }
        );
    }

    #[test]
    fn started_segment_is_due_for_the_time_that_remains() {
        let now = start() + Duration::milliseconds(30_500);
        assert_eq!(
            due(&segment(60), now),
            Due::Now {
                remaining: secs(29),
                late: Duration::milliseconds(30_500)
            }
        );
    }

    #[test]
    fn five_seconds_left_is_still_due() {
        let now = start() + Duration::seconds(55);
        assert!(
            matches!(due(&segment(60), now), Due::Now { remaining, .. } if remaining == secs(5))
        );
    }

    #[test]
    fn under_five_seconds_left_is_missed() {
        let now = start() + Duration::milliseconds(55_001);
        assert_eq!(due(&segment(60), now), Due::Missed);
    }

    #[test]
    fn wholly_past_segment_is_missed() {
        assert_eq!(
            due(&segment(60), start() + Duration::seconds(60)),
            Due::Missed
        );
        assert_eq!(due(&segment(60), start() + Duration::days(3)), Due::Missed);
    }
}
