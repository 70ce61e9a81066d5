//! How long history is kept (`[history]`), and the vocabulary of deleting
//! the rest: which rows are old enough, and what one batch of deletes did.
//!
//! # Why
//! `recordings` and `attempts` name employees and when their screens were
//! recorded: personal data, which operators must keep only for a set
//! time. Both tables otherwise grow forever.
//!
//! # What may go
//! - A `recordings` row whose state is final (never `pending`,
//!   `recording` or `stopping`) and whose segment ended, by plan and in
//!   fact (`segment_end` and `COALESCE(ended_at, segment_end)`), more than
//!   `keep_days` ago. Its `attempts` rows go with it, whatever their age:
//!   an audit row never outlives the recording it explains.
//! - An `attempts` row sent more than `keep_attempts_days` ago whose
//!   recording is final. The audit trail of an open row is never cut.
//!
//! 0 keeps everything (the default). Deleting is done in short batches
//! (`Store::prune_batch`); the pacing lives with the daemon's sweep
//! (`daemon::retention`), which `recsched prune` shares.

use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::config::{Range, RangeCheck};

/// `[history]`: how many days of history are kept; 0 keeps everything.
///
/// In TOML: `keep_days = 365`, `keep_attempts_days = 90`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct History {
    /// Days a final `recordings` row is kept after its segment ended
    /// (with its audit rows); 0 keeps them forever.
    pub keep_days: u32,
    /// Days an `attempts` row is kept after its request was sent, unless
    /// its recording is still open; 0 keeps them as long as their
    /// recording.
    pub keep_attempts_days: u32,
}

impl History {
    /// Up to about 100 years; 0 keeps forever.
    pub const KEEP_DAYS: Range<u32> = Range::or_zero("history.keep_days", 1, 36_500);
    pub const KEEP_ATTEMPTS_DAYS: Range<u32> =
        Range::or_zero("history.keep_attempts_days", 1, 36_500);

    /// Checks both keys against their ranges.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::KEEP_DAYS, self.keep_days);
        check.check(Self::KEEP_ATTEMPTS_DAYS, self.keep_attempts_days);
    }

    /// Whether nothing is ever deleted.
    pub fn keeps_everything(&self) -> bool {
        self.keep_days == 0 && self.keep_attempts_days == 0
    }

    /// The instants before which rows go, seen from `now`.
    pub fn cutoffs(&self, now: DateTime<Utc>) -> Cutoffs {
        let before = |days: u32| (days > 0).then(|| now - chrono::Duration::days(i64::from(days)));
        Cutoffs {
            recordings: before(self.keep_days),
            attempts: before(self.keep_attempts_days),
        }
    }
}

/// The instants before which history goes; `None` keeps that table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cutoffs {
    /// A final recording whose segment ended before this goes, with its
    /// audit rows.
    pub recordings: Option<DateTime<Utc>>,
    /// An audit row sent before this goes, unless its recording is open.
    pub attempts: Option<DateTime<Utc>>,
}

/// Which rule a batch deletes by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prune {
    /// Old final recordings, with their audit rows.
    Recordings,
    /// Old audit rows of final recordings.
    Attempts,
}

/// What one batch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PruneBatch {
    /// Rows of the table the batch is about that matched, up to its limit:
    /// 0 means there is nothing more to delete after the cursor.
    pub found: u64,
    /// The last id it looked at: the next batch starts after it.
    pub last_id: i64,
    /// `recordings` rows deleted.
    pub recordings: u64,
    /// `attempts` rows deleted.
    pub attempts: u64,
    /// How long its transaction held the write lock (SQLite) or its rows'
    /// locks (PostgreSQL): from its start to its commit.
    pub held: Duration,
}

/// What would go now (`recsched prune --dry-run`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneCounts {
    /// Old final `recordings` rows.
    pub recordings: u64,
    /// Their `attempts` rows, which go with them.
    pub attempts_of_recordings: u64,
    /// Old `attempts` rows of final recordings that stay.
    pub attempts: u64,
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn zero_keeps_a_table_and_days_count_back_from_now() {
        let now = Utc.with_ymd_and_hms(2026, 3, 29, 12, 0, 0).unwrap();
        assert_eq!(
            History::default().cutoffs(now),
            Cutoffs {
                recordings: None,
                attempts: None
            }
        );
        assert!(History::default().keeps_everything());
        let h = History {
            keep_days: 30,
            keep_attempts_days: 0,
        };
        assert!(!h.keeps_everything());
        assert_eq!(
            h.cutoffs(now),
            Cutoffs {
                recordings: Some(Utc.with_ymd_and_hms(2026, 2, 27, 12, 0, 0).unwrap()),
                attempts: None
            }
        );
    }

    #[test]
    fn ranges_allow_zero_and_refuse_more_than_a_century() {
        let problems = |h: History| {
            let mut check = RangeCheck::default();
            h.check_ranges(&mut check);
            check.problems
        };
        assert!(problems(History::default()).is_empty());
        let p = problems(History {
            keep_days: 36_501,
            keep_attempts_days: 7,
        });
        assert_eq!(
            p,
            ["history.keep_days = 36501: must be 0 (no limit) or between 1 and 36500"]
        );
        let h: History = toml::from_str("keep_days = 365\nkeep_attempts_days = 90").unwrap();
        assert_eq!((h.keep_days, h.keep_attempts_days), (365, 90));
        assert!(toml::from_str::<History>("keep_day = 1").is_err());
        assert!(toml::from_str::<History>("keep_days = -1").is_err());
    }
}
