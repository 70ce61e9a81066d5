//! A policy's windows meeting a horizon: `[start, start + length)` for
//! each window start.
//!
//! Separate from [`window_starts`] so that the DST rule stays in one
//! place and the look-back (a window opened before the horizon may still
//! be open) in another. Pure: no clock, no I/O; depends on `policy` only.

use chrono::{DateTime, Utc};

use super::{window_starts, Interval};
use crate::policy::{Policy, PolicyId};

/// One opening of a policy: `[start, end)`, `end = start + window length`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Window {
    pub policy: PolicyId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    pub fn interval(&self) -> Interval {
        Interval::new(self.start, self.end)
    }
}

/// Every window of `policy` that meets `[from, until)`, i.e. with
/// `start < until && end > from`, in start order. It looks back by the
/// window length, so a window opened before `from` and still open is
/// included. Ignores `enabled` (the caller decides; [`coverage`] skips
/// disabled policies).
///
/// [`coverage`]: super::coverage
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsched::planner::windows;
/// use recsched::policy::{Policy, PolicyRow};
///
/// let policy = Policy::from_row(&PolicyRow {
///     id: 1,
///     name: "hourly".into(),
///     enabled: true,
///     cron: "0 * * * *".into(),
///     timezone: "UTC".into(),
///     window_seconds: 1800,
///     end_mode: "expire".into(),
///     users: vec!["u1".into()],
///     teams: vec![],
/// })
/// .unwrap();
/// let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
/// let found = windows(&policy, at(10, 15), at(12, 0));
/// let starts: Vec<_> = found.iter().map(|w| w.start).collect();
/// assert_eq!(starts, [at(10, 0), at(11, 0)]); // 10:00 is still open at 10:15
/// assert_eq!(found[0].end, at(10, 30));
/// ```
pub fn windows(policy: &Policy, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Window> {
    let length = policy.window.as_duration();
    let Some(look_back) = from.checked_sub_signed(length) else {
        return Vec::new();
    };
    window_starts(&policy.cron, look_back)
        .take_while(|start| *start < until)
        .filter_map(|start| {
            let end = start.checked_add_signed(length)?;
            (end > from).then_some(Window {
                policy: policy.id,
                start,
                end,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::PolicyRow;
    use chrono::TimeZone;

    pub(crate) fn policy(id: i64, cron: &str, tz: &str, secs: i64) -> Policy {
        Policy::from_row(&PolicyRow {
            id,
            name: format!("p{id}"),
            enabled: true,
            cron: cron.into(),
            timezone: tz.into(),
            window_seconds: secs,
            end_mode: "expire".into(),
            users: vec!["u".into()],
            teams: Vec::new(),
        })
        .unwrap()
    }

    fn at(d: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, d, h, m, 0).unwrap()
    }

    #[test]
    fn window_that_ends_exactly_at_from_is_left_out() {
        let p = policy(1, "0 * * * *", "UTC", 3600);
        let found = windows(&p, at(1, 10, 0), at(1, 11, 0));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, at(1, 10, 0));
    }

    #[test]
    fn window_starting_at_until_is_left_out() {
        let p = policy(1, "0 * * * *", "UTC", 60);
        let found = windows(&p, at(1, 9, 30), at(1, 11, 0));
        let starts: Vec<_> = found.iter().map(|w| w.start).collect();
        assert_eq!(starts, [at(1, 10, 0)]);
    }

    #[test]
    fn long_windows_from_days_ago_are_found() {
        // Daily at 09:00 for 7 days: at noon every one of the last 7 is open.
        let p = policy(3, "0 9 * * *", "UTC", 604_800);
        let found = windows(&p, at(10, 12, 0), at(10, 12, 1));
        assert_eq!(found.len(), 7);
        assert_eq!(found[0].start, at(4, 9, 0));
        assert_eq!(found[6].start, at(10, 9, 0));
        assert!(found.iter().all(|w| w.policy == PolicyId::new(3)));
    }

    #[test]
    fn window_opened_at_first_instant_after_gap_lasts_its_length() {
        let p = policy(1, "30 2 * * *", "Europe/Amsterdam", 3600);
        let found = windows(&p, at(29, 0, 0), at(29, 6, 0));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].start, at(29, 1, 0));
        assert_eq!(found[0].end, at(29, 2, 0));
    }
}
