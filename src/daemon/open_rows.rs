//! The open recording rows this process looks after, and which of them a
//! job is working on: one owner, named operations.
//!
//! The `recordings` table is the durable record; this is its in-memory
//! mirror for the rows this process is responsible for (pending,
//! recording, stopping). A row enters when this process claims it
//! ([`OpenRows::insert_claimed`]) or becomes responsible for it
//! ([`OpenRows::adopt`]: at start, on a takeover, after a lost claim
//! reply), is held by at most one job at a time (busy), and leaves when it
//! reaches a final state ([`OpenRows::finish`]) or stops being this
//! instance's ([`OpenRows::lost`]). The loop reads it through
//! [`OpenRows::snapshot`] and hands rows to end jobs with
//! [`OpenRows::take_for_end`], which skips rows a job already holds: no
//! row is ever worked on by two jobs at once.
//!
//! Each row keeps the [`Segment`] it records, parsed once when the row
//! enters, so a job never rebuilds one from loose columns.

use crate::planner::Segment;
use crate::policy::PolicyId;
use crate::recording::{ContactId, RecordingDuration, RecordingState, UserId};
use crate::store::BadRow;
use crate::store::{RecordingId, RecordingRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;

/// An open recording row this process is responsible for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenRow {
    pub id: RecordingId,
    /// What the row records.
    pub segment: Segment,
    pub state: RecordingState,
    /// The vendor's recording, once the start was answered.
    pub contact: Option<ContactId>,
}

impl OpenRow {
    /// A row this process has just claimed for `segment`.
    pub fn claimed(id: RecordingId, segment: Segment) -> Self {
        Self {
            id,
            segment,
            state: RecordingState::Pending,
            contact: None,
        }
    }

    /// Reads a stored row back into its segment. Fails, naming the row and
    /// the column to fix, for a row edited by hand into something no
    /// segment can be (no policy, a span outside 5 ..= 13200 s).
    pub fn from_row(row: &RecordingRow) -> Result<Self, BadRow> {
        let bad = |column: &'static str, problem: String| {
            BadRow::new("recordings", row.id.get(), column, problem).occupying(row.user_id.clone())
        };
        let policy = row.policy_id.map(PolicyId::new).ok_or_else(|| {
            bad(
                "policy_id",
                "is empty; an open row needs the policy that made it: set it again".into(),
            )
        })?;
        let span = (row.segment_end - row.segment_start).num_seconds();
        let duration = RecordingDuration::from_secs(span).map_err(|e| {
            bad(
                "segment_end",
                format!("the segment lasts {span} s ({e}); fix segment_start or segment_end"),
            )
        })?;
        Ok(Self {
            id: row.id,
            segment: Segment {
                user: row.user_id.clone(),
                start: row.segment_start,
                end: row.segment_end,
                duration,
                policy,
                end_mode: row.end_mode,
            },
            state: row.state,
            contact: row.contact_id,
        })
    }

    pub fn user(&self) -> &UserId {
        &self.segment.user
    }

    /// Recording at the vendor (or being stopped): something to end.
    pub fn is_live(&self) -> bool {
        matches!(
            self.state,
            RecordingState::Recording | RecordingState::Stopping
        )
    }
}

/// An open row as the loop sees it: the row, and whether a job holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub row: OpenRow,
    /// A job of this process is working on it; leave it alone.
    pub busy: bool,
}

/// The open rows of this process. Every change goes through a method
/// named for it.
#[derive(Debug, Default)]
pub(crate) struct OpenRows {
    rows: Mutex<HashMap<RecordingId, Tracked>>,
}

impl OpenRows {
    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<RecordingId, Tracked>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A row this process just claimed; its start job holds it.
    pub fn insert_claimed(&self, row: OpenRow) {
        self.rows().insert(row.id, Tracked { row, busy: true });
    }

    /// A row this process has become responsible for (at start, on a
    /// takeover, after a lost claim reply), held by a job when `busy`.
    /// Returns `false`, changing nothing, if the row is already tracked.
    pub fn adopt(&self, row: OpenRow, busy: bool) -> bool {
        let mut rows = self.rows();
        if rows.contains_key(&row.id) {
            return false;
        }
        rows.insert(row.id, Tracked { row, busy });
        true
    }

    /// Hands the rows among `ids` that no job holds to an end job (they
    /// become busy) and returns them; busy or unknown ids are skipped.
    pub fn take_for_end(&self, ids: &[RecordingId]) -> Vec<OpenRow> {
        let mut rows = self.rows();
        ids.iter()
            .filter_map(|id| {
                let t = rows.get_mut(id)?;
                if t.busy {
                    return None;
                }
                t.busy = true;
                Some(t.row.clone())
            })
            .collect()
    }

    /// The job is done with the row, which stays open as it was.
    pub fn release(&self, id: RecordingId) {
        if let Some(t) = self.rows().get_mut(&id) {
            t.busy = false;
        }
    }

    /// The start was answered: the row records `contact`; the job is done
    /// with it.
    pub fn recording(&self, id: RecordingId, contact: ContactId) {
        if let Some(t) = self.rows().get_mut(&id) {
            t.row.state = RecordingState::Recording;
            t.row.contact = Some(contact);
            t.busy = false;
        }
    }

    /// A stop failed and will be tried again: the row is recording; the
    /// job is done with it.
    pub fn stop_failed(&self, id: RecordingId) {
        if let Some(t) = self.rows().get_mut(&id) {
            t.row.state = RecordingState::Recording;
            t.busy = false;
        }
    }

    /// The row reached a final state.
    pub fn finish(&self, id: RecordingId) {
        self.rows().remove(&id);
    }

    /// Rows no longer this instance's (final elsewhere, or taken over):
    /// forgets those among `ids` that no job holds (a job still busy on
    /// one writes its answer, guarded by state in SQL). Returns how many.
    pub fn lost(&self, ids: &[RecordingId]) -> usize {
        let mut rows = self.rows();
        ids.iter()
            .filter(|id| {
                if rows.get(id).is_some_and(|t| !t.busy) {
                    rows.remove(id);
                    true
                } else {
                    false
                }
            })
            .count()
    }

    /// Whether a live row no job holds should have ended by `now`: its job
    /// finished after the loop last looked.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.rows()
            .values()
            .any(|t| !t.busy && t.row.is_live() && t.row.segment.end <= now)
    }

    /// Rows recording now (or being stopped).
    pub fn live_count(&self) -> usize {
        self.rows().values().filter(|t| t.row.is_live()).count()
    }

    pub fn contains(&self, id: RecordingId) -> bool {
        self.rows().contains_key(&id)
    }

    /// Every tracked row's id.
    pub fn ids(&self) -> Vec<RecordingId> {
        self.rows().keys().copied().collect()
    }

    /// The rows as they stand, for one planning pass.
    pub fn snapshot(&self) -> Vec<Tracked> {
        self.rows().values().cloned().collect()
    }

    /// The contact ids of `user`'s tracked recordings: a start for the
    /// user answered with one of them was answered with an earlier
    /// recording (still ending at the vendor), not a new one.
    pub fn contacts_of(&self, user: &UserId) -> Vec<ContactId> {
        self.rows()
            .values()
            .filter(|t| t.row.user() == user)
            .filter_map(|t| t.row.contact)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::EndMode;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 9, 0, 0).unwrap()
    }

    fn segment(user: &str, from: i64, secs: i64) -> Segment {
        Segment {
            user: UserId::parse(user).unwrap(),
            start: t0() + chrono::Duration::seconds(from),
            end: t0() + chrono::Duration::seconds(from + secs),
            duration: RecordingDuration::from_secs(secs).unwrap(),
            policy: PolicyId::new(7),
            end_mode: EndMode::Stop,
        }
    }

    fn stored(id: i64, policy_id: Option<i64>, secs: i64) -> RecordingRow {
        RecordingRow {
            id: RecordingId::new(id),
            user_id: UserId::parse("ann").unwrap(),
            policy_id,
            segment_start: t0(),
            segment_end: t0() + chrono::Duration::seconds(secs),
            requested_seconds: 10,
            end_mode: EndMode::Expire,
            state: RecordingState::Recording,
            contact_id: Some(ContactId::new(42).unwrap()),
            interaction_id: None,
            attempts: 1,
            last_error: None,
            late_seconds: None,
            ended_at: None,
            created_at: t0(),
            updated_at: t0(),
        }
    }

    #[test]
    fn a_stored_row_gives_back_its_own_segment() {
        let row = OpenRow::from_row(&stored(3, Some(7), 600)).unwrap();
        assert_eq!(row.segment.policy, PolicyId::new(7));
        assert_eq!(row.segment.duration.as_secs(), 600);
        assert_eq!(row.segment.end_mode, EndMode::Expire);
        assert_eq!(row.contact, Some(ContactId::new(42).unwrap()));
    }

    #[test]
    fn a_row_no_segment_can_be_is_named_with_its_column() {
        let bad = OpenRow::from_row(&stored(3, None, 600)).unwrap_err();
        assert_eq!(
            (bad.table, bad.id, bad.column),
            ("recordings", 3, "policy_id")
        );
        assert!(bad.user.is_some(), "its user stays occupied: {bad:?}");
        let e = OpenRow::from_row(&stored(4, Some(7), 2))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("table recordings, id 4") && e.contains("segment_end"),
            "{e}"
        );
    }

    #[test]
    fn a_row_is_held_by_one_job_at_a_time() {
        let rows = OpenRows::default();
        let a = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        rows.insert_claimed(a.clone());
        assert!(
            rows.take_for_end(&[a.id]).is_empty(),
            "the start job holds it"
        );
        rows.recording(a.id, ContactId::new(9).unwrap());
        assert_eq!(rows.live_count(), 1);
        let taken = rows.take_for_end(&[a.id, RecordingId::new(99)]);
        assert_eq!(taken.len(), 1);
        assert_eq!(taken[0].contact, Some(ContactId::new(9).unwrap()));
        assert!(rows.take_for_end(&[a.id]).is_empty());
        assert!(
            !rows.adopt(a.clone(), false),
            "a tracked row is not adopted twice"
        );
        rows.stop_failed(a.id);
        assert!(rows.overdue(t0() + chrono::Duration::seconds(10)));
        assert!(!rows.overdue(t0() + chrono::Duration::seconds(9)));
        rows.finish(a.id);
        assert!(!rows.contains(a.id));
        assert_eq!(rows.live_count(), 0);
    }

    #[test]
    fn lost_rows_are_dropped_unless_a_job_holds_them() {
        let rows = OpenRows::default();
        let idle = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        let held = OpenRow::claimed(RecordingId::new(2), segment("bob", 0, 10));
        rows.adopt(idle.clone(), false);
        rows.insert_claimed(held.clone());
        assert_eq!(rows.lost(&[idle.id, held.id]), 1);
        assert_eq!(rows.ids(), vec![held.id]);
    }

    #[test]
    fn a_users_known_recordings_are_its_tracked_contacts() {
        let rows = OpenRows::default();
        let mut first = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        first.contact = Some(ContactId::new(1).unwrap());
        let second = OpenRow::claimed(RecordingId::new(2), segment("ann", 10, 10));
        let other = OpenRow {
            contact: Some(ContactId::new(3).unwrap()),
            ..OpenRow::claimed(RecordingId::new(3), segment("bob", 10, 10))
        };
        for r in [first, second, other] {
            rows.adopt(r, false);
        }
        let ann = UserId::parse("ann").unwrap();
        assert_eq!(rows.contacts_of(&ann), vec![ContactId::new(1).unwrap()]);
        rows.finish(RecordingId::new(1));
        assert!(rows.contacts_of(&ann).is_empty());
    }
}
