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
//!
//! # Leases (PostgreSQL)
//! Each row also keeps how long this instance's lease on it lasts, by the
//! daemon's monotonic clock: from the instant the claim, renewal or
//! takeover that set the lease was sent, plus the lease (the database's
//! own `lease_until` is later, since the statement ran after it was sent),
//! so a stall of the whole process (SIGSTOP, a frozen VM) shows as a lease
//! run out. Before each request for a row a job asks [`OpenRows::lease`]
//! whether enough of it is left. And each row has a stop token, a child of
//! shutdown's: [`OpenRows::lost`] drops a row this instance no longer owns
//! even while a job holds it, and cancels the token, so that job sends
//! nothing more for it, at once.

use crate::planner::Segment;
use crate::policy::PolicyId;
use crate::recording::{ContactId, RecordingDuration, RecordingState, UserId};
use crate::store::BadRow;
use crate::store::{RecordingId, RecordingRow};
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

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

/// How much of a row's lease is left, as [`OpenRows::lease`] sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseLeft {
    /// At least the margin: a request may go.
    Enough,
    /// Less than the margin (or none): renew before any request.
    Short,
    /// Rows carry no lease here (SQLite).
    Unleased,
}

/// One tracked row and what only this module sees of it.
#[derive(Debug)]
struct Entry {
    tracked: Tracked,
    /// Until when this instance's lease on the row surely lasts (monotonic
    /// clock); `None` where rows carry no lease.
    lease_until: Option<Instant>,
    /// Cancelled when the row is lost (or at shutdown, its parent).
    stop: CancellationToken,
    /// Claimed ahead of its instant and not yet handed to its request:
    /// it may still be withdrawn ([`OpenRows::withdraw`]).
    waiting: bool,
}

/// The open rows of this process. Every change goes through a method
/// named for it.
#[derive(Debug, Default)]
pub(crate) struct OpenRows {
    rows: Mutex<HashMap<RecordingId, Entry>>,
    /// Shutdown's token: each row's stop token is a child of it.
    shutdown: CancellationToken,
}

impl OpenRows {
    /// Open rows whose jobs also stop when `shutdown` is cancelled.
    pub fn new(shutdown: CancellationToken) -> Self {
        Self {
            rows: Mutex::default(),
            shutdown,
        }
    }

    fn rows(&self) -> std::sync::MutexGuard<'_, HashMap<RecordingId, Entry>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn entry(&self, row: OpenRow, busy: bool, lease_until: Option<Instant>) -> Entry {
        Entry {
            tracked: Tracked { row, busy },
            lease_until,
            stop: self.shutdown.child_token(),
            waiting: false,
        }
    }

    /// A row this process just claimed ahead of its segment's start,
    /// leased until `lease_until` where rows carry leases: held (busy)
    /// and waiting for its instant, when [`OpenRows::begin_send`] hands it
    /// to its request, unless [`OpenRows::withdraw`] took it back first.
    pub fn insert_waiting(&self, row: OpenRow, lease_until: Option<Instant>) {
        let mut entry = self.entry(row, true, lease_until);
        entry.waiting = true;
        self.rows().insert(entry.tracked.row.id, entry);
    }

    /// Row `id` (adopted, its start still ahead) waits for its instant as
    /// a row claimed ahead does.
    pub fn set_waiting(&self, id: RecordingId) {
        if let Some(e) = self.rows().get_mut(&id) {
            e.waiting = e.tracked.row.state == RecordingState::Pending;
        }
    }

    /// The instant of a waiting row has come: from now on it is sent, no
    /// longer withdrawn. `false` if the row is no longer tracked
    /// (withdrawn, lost): nothing may be sent for it.
    pub fn begin_send(&self, id: RecordingId) -> bool {
        match self.rows().get_mut(&id) {
            Some(e) => {
                e.waiting = false;
                true
            }
            None => false,
        }
    }

    /// Takes back a row still waiting for its instant (its policy changed
    /// before it opened): forgets it and cancels its stop token. `false`,
    /// changing nothing, if its request may already be on its way (or the
    /// row is not tracked): it goes on as any started row.
    pub fn withdraw(&self, id: RecordingId) -> bool {
        let mut rows = self.rows();
        if !rows.get(&id).is_some_and(|e| e.waiting) {
            return false;
        }
        if let Some(e) = rows.remove(&id) {
            e.stop.cancel();
        }
        true
    }

    /// The rows waiting for their instant.
    pub fn waiting(&self) -> Vec<OpenRow> {
        self.rows()
            .values()
            .filter(|e| e.waiting)
            .map(|e| e.tracked.row.clone())
            .collect()
    }

    /// A row this process just claimed, leased until `lease_until` where
    /// rows carry leases; its start job holds it.
    pub fn insert_claimed(&self, row: OpenRow, lease_until: Option<Instant>) {
        let entry = self.entry(row, true, lease_until);
        self.rows().insert(entry.tracked.row.id, entry);
    }

    /// A row this process has become responsible for (at start, on a
    /// takeover, after a lost claim reply), leased until `lease_until`
    /// where rows carry leases, held by a job when `busy`. Returns
    /// `false`, changing nothing, if the row is already tracked.
    pub fn adopt(&self, row: OpenRow, busy: bool, lease_until: Option<Instant>) -> bool {
        let mut rows = self.rows();
        if rows.contains_key(&row.id) {
            return false;
        }
        let entry = self.entry(row, busy, lease_until);
        rows.insert(entry.tracked.row.id, entry);
        true
    }

    /// The leases of `ids` were renewed: they last until `until`.
    pub fn leased(&self, ids: &[RecordingId], until: Instant) {
        let mut rows = self.rows();
        for id in ids {
            if let Some(e) = rows.get_mut(id) {
                e.lease_until = e.lease_until.map(|_| until);
            }
        }
    }

    /// Whether the lease on row `id` has at least `margin` left at `now`;
    /// `None` if the row is no longer tracked (final, or lost).
    pub fn lease(&self, id: RecordingId, now: Instant, margin: Duration) -> Option<LeaseLeft> {
        let rows = self.rows();
        let e = rows.get(&id)?;
        Some(match e.lease_until {
            None => LeaseLeft::Unleased,
            Some(until) if until.saturating_duration_since(now) >= margin => LeaseLeft::Enough,
            Some(_) => LeaseLeft::Short,
        })
    }

    /// The token that stops every request for row `id` (cancelled when the
    /// row is lost, or at shutdown); `None` if the row is not tracked.
    pub fn stop_token(&self, id: RecordingId) -> Option<CancellationToken> {
        self.rows().get(&id).map(|e| e.stop.clone())
    }

    /// Hands the rows among `ids` that no job holds to an end job (they
    /// become busy) and returns them; busy or unknown ids are skipped.
    pub fn take_for_end(&self, ids: &[RecordingId]) -> Vec<OpenRow> {
        let mut rows = self.rows();
        ids.iter()
            .filter_map(|id| {
                let t = &mut rows.get_mut(id)?.tracked;
                if t.busy {
                    return None;
                }
                t.busy = true;
                Some(t.row.clone())
            })
            .collect()
    }

    /// Changes row `id`'s tracked state with `change`, if it is tracked.
    fn update(&self, id: RecordingId, change: impl FnOnce(&mut Tracked)) {
        if let Some(e) = self.rows().get_mut(&id) {
            change(&mut e.tracked);
        }
    }

    /// The job is done with the row, which stays open as it was.
    pub fn release(&self, id: RecordingId) {
        self.update(id, |t| t.busy = false);
    }

    /// The start was answered: the row records `contact`; the job is done
    /// with it.
    pub fn recording(&self, id: RecordingId, contact: ContactId) {
        self.update(id, |t| {
            t.row.state = RecordingState::Recording;
            t.row.contact = Some(contact);
            t.busy = false;
        });
    }

    /// A stop failed and will be tried again: the row is recording; the
    /// job is done with it.
    pub fn stop_failed(&self, id: RecordingId) {
        self.update(id, |t| {
            t.row.state = RecordingState::Recording;
            t.busy = false;
        });
    }

    /// The row reached a final state.
    pub fn finish(&self, id: RecordingId) {
        self.rows().remove(&id);
    }

    /// Rows no longer this instance's (final elsewhere, or lost: its lease
    /// ran out, another instance has it or may take it): forgets those
    /// among `ids` it tracks, whether or not a job holds them, and stops
    /// every request for them at once (their stop tokens). Returns how
    /// many it forgot.
    pub fn lost(&self, ids: &[RecordingId]) -> usize {
        let mut rows = self.rows();
        ids.iter()
            .filter_map(|id| rows.remove(id))
            .map(|e| e.stop.cancel())
            .count()
    }

    /// Whether a live row no job holds should have ended by `now`: its job
    /// finished after the loop last looked.
    pub fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.rows().values().any(|e| {
            let t = &e.tracked;
            !t.busy && t.row.is_live() && t.row.segment.end <= now
        })
    }

    /// Rows recording now (or being stopped).
    pub fn live_count(&self) -> usize {
        self.rows()
            .values()
            .filter(|e| e.tracked.row.is_live())
            .count()
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
        self.rows().values().map(|e| e.tracked.clone()).collect()
    }

    /// The contact ids of `user`'s tracked recordings: a start for the
    /// user answered with one of them was answered with an earlier
    /// recording (still ending at the vendor), not a new one.
    pub fn contacts_of(&self, user: &UserId) -> Vec<ContactId> {
        self.rows()
            .values()
            .filter(|e| e.tracked.row.user() == user)
            .filter_map(|e| e.tracked.row.contact)
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
    fn a_row_waiting_for_its_instant_is_withdrawn_or_sent_never_both() {
        let rows = OpenRows::default();
        let a = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        let b = OpenRow::claimed(RecordingId::new(2), segment("bob", 0, 10));
        rows.insert_waiting(a.clone(), None);
        rows.insert_waiting(b.clone(), None);
        assert_eq!(rows.waiting().len(), 2);
        let stop = rows.stop_token(a.id).unwrap();
        assert!(rows.withdraw(a.id));
        assert!(stop.is_cancelled(), "its wait ends at once");
        assert!(!rows.begin_send(a.id), "a withdrawn row is never sent");
        assert!(rows.begin_send(b.id));
        assert!(!rows.withdraw(b.id), "a row on its way is not withdrawn");
        assert!(rows.contains(b.id));
        assert!(rows.waiting().is_empty());
    }

    #[test]
    fn a_row_is_held_by_one_job_at_a_time() {
        let rows = OpenRows::default();
        let a = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        rows.insert_claimed(a.clone(), None);
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
            !rows.adopt(a.clone(), false, None),
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
    fn a_lost_row_is_dropped_and_its_requests_stopped_even_while_a_job_holds_it() {
        let shutdown = CancellationToken::new();
        let rows = OpenRows::new(shutdown.clone());
        let idle = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        let held = OpenRow::claimed(RecordingId::new(2), segment("bob", 0, 10));
        let kept = OpenRow::claimed(RecordingId::new(3), segment("cid", 0, 10));
        rows.adopt(idle.clone(), false, None);
        rows.insert_claimed(held.clone(), None);
        rows.insert_claimed(kept.clone(), None);
        let stops: Vec<_> = [idle.id, held.id, kept.id]
            .iter()
            .map(|id| rows.stop_token(*id).unwrap())
            .collect();
        assert_eq!(rows.lost(&[idle.id, held.id, RecordingId::new(9)]), 2);
        assert_eq!(rows.ids(), vec![kept.id]);
        assert!(stops[0].is_cancelled() && stops[1].is_cancelled());
        assert!(!stops[2].is_cancelled());
        assert!(rows.stop_token(held.id).is_none(), "gone from memory");
        shutdown.cancel();
        assert!(stops[2].is_cancelled(), "shutdown stops every row's job");
    }

    #[test]
    fn a_lease_is_enough_until_less_than_the_margin_is_left() {
        let rows = OpenRows::default();
        let now = Instant::now();
        let margin = Duration::from_secs(2);
        let leased = OpenRow::claimed(RecordingId::new(1), segment("ann", 0, 10));
        let unleased = OpenRow::claimed(RecordingId::new(2), segment("bob", 0, 10));
        rows.insert_claimed(leased.clone(), Some(now + Duration::from_secs(30)));
        rows.insert_claimed(unleased.clone(), None);
        let at = |secs| now + Duration::from_secs(secs);
        assert_eq!(
            rows.lease(leased.id, at(28), margin),
            Some(LeaseLeft::Enough)
        );
        assert_eq!(
            rows.lease(leased.id, at(29), margin),
            Some(LeaseLeft::Short)
        );
        assert_eq!(
            rows.lease(leased.id, at(99), margin),
            Some(LeaseLeft::Short)
        );
        assert_eq!(
            rows.lease(unleased.id, at(99), margin),
            Some(LeaseLeft::Unleased)
        );
        rows.leased(&[leased.id, unleased.id], at(60));
        assert_eq!(
            rows.lease(leased.id, at(57), margin),
            Some(LeaseLeft::Enough)
        );
        assert_eq!(
            rows.lease(unleased.id, at(57), margin),
            Some(LeaseLeft::Unleased),
            "a renewal never gives a lease to a row without one"
        );
        rows.finish(leased.id);
        assert_eq!(rows.lease(leased.id, now, margin), None);
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
            rows.adopt(r, false, None);
        }
        let ann = UserId::parse("ann").unwrap();
        assert_eq!(rows.contacts_of(&ann), vec![ContactId::new(1).unwrap()]);
        rows.finish(RecordingId::new(1));
        assert!(rows.contacts_of(&ann).is_empty());
    }
}
