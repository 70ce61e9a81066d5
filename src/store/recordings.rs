//! The vocabulary of recording rows, the same for every backend: a
//! segment to claim, a row read back, a filter to list rows by.
//!
//! This is the store's half of "exactly once": [`Store::claim_many`] inserts
//! the write-ahead row under the `UNIQUE (user_id, segment_start)` key, and
//! only the caller that gets an id back may send the start. State moves
//! follow `RecordingState::can_move_to` and are guarded in SQL, so two
//! writers (tasks, processes, instances) can race without a row going
//! backwards.

use std::fmt;

use chrono::{DateTime, Utc};

use crate::recording::{ContactId, InteractionId, RecordingState, UserId};

use super::{until_fixed, BadRow, Rows};

#[cfg(doc)]
use super::Store;

/// The id of a `recordings` row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct RecordingId(i64);

impl RecordingId {
    /// Wraps a row id read elsewhere (a CLI argument, an `attempts` row).
    pub fn new(raw: i64) -> Self {
        Self(raw)
    }

    pub fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for RecordingId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a segment ends, copied from its policy so a stop can be sent even
/// after the policy is gone. Stored as `expire` / `stop`.
pub use crate::policy::EndMode;

/// A segment to claim: the write-ahead row, written before the request.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRecording {
    pub user_id: UserId,
    /// The policy whose window caused the segment.
    pub policy_id: i64,
    /// Together with `user_id`, the exactly-once key. Stored at millisecond
    /// precision, so callers should pass whole-second (or whole-ms) instants.
    pub segment_start: DateTime<Utc>,
    pub segment_end: DateTime<Utc>,
    /// The duration the start asks for (may be less than the segment when
    /// catching up late).
    pub requested_seconds: u32,
    pub end_mode: EndMode,
    /// Usually `Pending` (about to be started) or `Missed` (wholly past).
    pub state: RecordingState,
    /// How late the start is, when catching up.
    pub late_seconds: Option<f64>,
    pub last_error: Option<String>,
}

/// One `recordings` row, read back into types.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RecordingRow {
    pub id: RecordingId,
    pub user_id: UserId,
    /// `None` only if an operator cleared it; history outlives its policy.
    pub policy_id: Option<i64>,
    pub segment_start: DateTime<Utc>,
    pub segment_end: DateTime<Utc>,
    pub requested_seconds: u32,
    pub end_mode: EndMode,
    pub state: RecordingState,
    pub contact_id: Option<ContactId>,
    pub interaction_id: Option<InteractionId>,
    /// Start requests sent so far.
    pub attempts: u32,
    pub last_error: Option<String>,
    pub late_seconds: Option<f64>,
    /// When it actually ended, if before `segment_end`.
    pub ended_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl RecordingRow {
    /// When the segment stopped (or will stop) occupying its user.
    pub fn effective_end(&self) -> DateTime<Utc> {
        self.ended_at.unwrap_or(self.segment_end)
    }
}

/// Which rows [`Store::recordings`] lists; every field narrows the list.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RecordingFilter {
    pub user: Option<UserId>,
    pub state: Option<RecordingState>,
    /// Rows still occupying their user after this instant (effective end
    /// later than it): the recent and the running ones.
    pub since: Option<DateTime<Utc>>,
    /// At most this many rows, newest segment first.
    pub limit: Option<u32>,
}

/// An open row this instance has just become responsible for, at start
/// (reconcile) or when another instance's lease ran out (takeover).
#[derive(Debug, Clone, PartialEq)]
pub struct Adopted {
    pub row: RecordingRow,
    /// The instance that owned it before; `None` on SQLite (single owner)
    /// and for rows claimed outside a daemon.
    pub previous_owner: Option<String>,
}

/// What a renewal of some open rows' leases found
/// ([`Store::renew_leases_of`]); an id in neither list is final, or gone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Renewal {
    /// Still this instance's: their leases run again from now.
    pub renewed: Vec<RecordingId>,
    /// Open, and no longer this instance's: another instance took them
    /// over after their lease ran out (or an operator gave them away).
    pub lost: Vec<RecordingId>,
}

/// A segment's end, which must come after its start (a hand edit can make
/// it otherwise, and the planner would read an empty or inverted span).
pub(crate) fn ends_after(
    end: DateTime<Utc>,
    start: DateTime<Utc>,
) -> Result<DateTime<Utc>, String> {
    if end > start {
        Ok(end)
    } else {
        Err(format!(
            "{} is not after segment_start {}",
            crate::clock::format_utc(end),
            crate::clock::format_utc(start)
        ))
    }
}

/// Rows as the planner's occupied time: `(user, segment_start,
/// effective_end)` for each row that reads back, and for each that does
/// not but names its user, that user [`until_fixed`].
pub(crate) fn occupancy(
    rows: impl IntoIterator<Item = Result<(UserId, DateTime<Utc>, DateTime<Utc>), BadRow>>,
) -> Rows<(UserId, DateTime<Utc>, DateTime<Utc>)> {
    let mut out = Rows::default();
    for row in rows {
        match row {
            Ok(slot) => out.rows.push(slot),
            Err(bad) => {
                if let Some(user) = &bad.user {
                    let (start, end) = until_fixed();
                    out.rows.push((user.clone(), start, end));
                }
                out.bad.push(bad);
            }
        }
    }
    out
}
