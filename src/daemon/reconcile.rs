//! Becoming responsible for open rows this process did not just claim
//! itself: at start (the rows of an earlier process), when another
//! instance's lease ran out (takeover, PostgreSQL), and when one of this
//! process's own claims committed but its answer was lost.
//!
//! Each adopted row is read back into its segment once ([`OpenRow`]). A
//! pending start is sent again if its window still has time (the vendor
//! never makes a second recording for a user: it answers with the running
//! one's contact id), else marked `failed` with the reason; a live
//! recording is tracked, to be ended by the loop. A resumed start knows
//! the contact id of the user's recording before it, so an answer naming
//! that recording (still ending at the vendor) is never taken for its own.

use super::jobs::{self, StartJob};
use super::open_rows::OpenRow;
use super::reload::Found;
use super::{DaemonError, Shared, LAST_SEEN_KEY};
use crate::clock::{format_utc, parse_utc};
use crate::recording::{ContactId, RecordingDuration, RecordingState, UserId};
use crate::store::{
    OwnedOutcome, RecordingFilter, RecordingId, RecordingRow, RowWrite, StoreError,
};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Where a planning pass plans from, and why windows that ended between
/// then and now were not started (the reason recorded on their `missed`
/// rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Since {
    pub at: DateTime<Utc>,
    pub reason: &'static str,
}

impl Since {
    /// Plan from now: nothing was skipped.
    pub fn now(now: DateTime<Utc>) -> Self {
        Self {
            at: now,
            reason: NOT_RUNNING,
        }
    }
}

pub(super) const NOT_RUNNING: &str = "the window passed while recsched was not running";

/// Adopts the open rows of earlier processes (on PostgreSQL: those whose
/// lease ran out) and resumes their pending starts. Returns where the first
/// pass should plan from: when the loop was last seen, so windows that
/// passed while it was down are recorded.
pub(super) async fn reconcile(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    now: DateTime<Utc>,
) -> Result<Since, DaemonError> {
    // An open row that does not read back is named and left alone.
    let sent = shared.clock.instant();
    let read = shared.store.adopt_open_rows().await?;
    shared.bad_rows.found(Found::Open, &read.bad);
    let rows = read.rows.into_iter().map(|a| a.row).collect();
    let (adopted, resumed) = adopt(shared, tracker, rows, now, sent).await?;
    let oldest = now
        .checked_sub_signed(shared.schedule.missed_lookback())
        .unwrap_or(now);
    // A heartbeat that does not read back (bytes stored with sqlite3) is
    // named and ignored: the daemon starts as if it had none, and its
    // next heartbeat replaces it.
    let last_seen = match shared.store.get_state(LAST_SEEN_KEY).await {
        Err(StoreError::BadRow(bad)) => {
            tracing::error!(
                table = bad.table,
                id = bad.id,
                column = bad.column,
                "bad row: {bad}"
            );
            None
        }
        read => read?,
    };
    let last_seen = last_seen.and_then(|v| parse_utc(&v).ok());
    let from = last_seen.map_or(now, |t| t.max(oldest)).min(now);
    tracing::info!(adopted, resumed, since = %format_utc(from), "reconciled");
    Ok(Since {
        at: from,
        reason: NOT_RUNNING,
    })
}

/// Starts tracking open rows this instance has just become responsible
/// for, leased by a statement sent at `leased_at` (where rows carry
/// leases). Rows already tracked are skipped. Returns (tracked without a
/// job, resumed starts).
pub(super) async fn adopt(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    rows: Vec<RecordingRow>,
    now: DateTime<Utc>,
    leased_at: tokio::time::Instant,
) -> Result<(usize, usize), DaemonError> {
    let mut open = Vec::with_capacity(rows.len());
    for row in &rows {
        match OpenRow::from_row(row) {
            Ok(o) if !shared.open.contains(o.id) => open.push(o),
            Ok(_) => {}
            // Edited into something no segment can be: named once (the
            // report keeps what it has logged), and its user left alone.
            Err(bad) => {
                shared.bad_rows.found(Found::Open, &[bad]);
            }
        }
    }
    let resuming: Vec<&OpenRow> = open
        .iter()
        .filter(|o| o.state == RecordingState::Pending)
        .collect();
    let before = predecessors(shared, &resuming).await?;
    let (mut adopted, mut resumed) = (0, 0);
    for row in open {
        let pending = row.state == RecordingState::Pending;
        let remaining = RecordingDuration::remaining(row.segment.end, now);
        if pending && remaining.is_none() {
            let reason = "recsched stopped before the start was answered, and the window has ended";
            let write = RowWrite {
                recording_id: row.id,
                attempt: None,
                outcome: OwnedOutcome::Moved {
                    to: RecordingState::Failed,
                    last_error: Some(reason.to_owned()),
                    ended_at: None,
                },
            };
            match shared.writer.write(write).await {
                // Already another instance's again: its business.
                Err(DaemonError::Store(StoreError::Lost { .. })) => continue,
                r => r?,
            };
            tracing::warn!(user = %row.segment.user, segment_start = %format_utc(row.segment.start), "failed: {reason}");
            continue;
        }
        if !shared
            .open
            .adopt(row.clone(), pending, shared.lease_from(leased_at))
        {
            continue;
        }
        if !pending {
            adopted += 1;
            continue;
        }
        resumed += 1;
        let mut previous = shared.open.contacts_of(&row.segment.user);
        previous.extend(before.get(&row.id).copied());
        let ahead = row.segment.start > now;
        let job = StartJob {
            id: row.id,
            late: now - row.segment.start,
            segment: row.segment,
            previous,
        };
        if ahead {
            // Claimed ahead of its window: sent at its instant, not now.
            shared.open.set_waiting(job.id);
            shared.spawn_job(tracker, super::ahead::resume_at(shared.clone(), job));
        } else {
            shared.spawn_job(tracker, jobs::resume(shared.clone(), job));
        }
    }
    Ok((adopted, resumed))
}

/// For each pending row, the contact id of its user's latest recording
/// that began before it, from the database (one query for all).
async fn predecessors(
    shared: &Shared,
    pending: &[&OpenRow],
) -> Result<HashMap<RecordingId, ContactId>, DaemonError> {
    let Some(earliest) = pending.iter().map(|r| r.segment.start).min() else {
        return Ok(HashMap::new());
    };
    // A recording that ended well before its successor began cannot still
    // be running at the vendor.
    let since = earliest
        .checked_sub_signed(shared.schedule.stop_grace())
        .unwrap_or(earliest);
    let rows = shared
        .store
        .recordings(&RecordingFilter {
            since: Some(since),
            ..RecordingFilter::default()
        })
        .await?;
    let mut by_user: HashMap<&UserId, Vec<(DateTime<Utc>, ContactId)>> = HashMap::new();
    for r in &rows {
        if let Some(c) = r.contact_id {
            by_user
                .entry(&r.user_id)
                .or_default()
                .push((r.segment_start, c));
        }
    }
    Ok(pending
        .iter()
        .filter_map(|p| {
            let (_, c) = by_user
                .get(&p.segment.user)?
                .iter()
                .filter(|(at, _)| *at < p.segment.start)
                .max_by_key(|(at, _)| *at)?;
            Some((p.id, *c))
        })
        .collect())
}

/// After a claim failed: its commit may have landed and only the answer
/// been lost. Adopts the rows of those segments that are open and this
/// instance's (on PostgreSQL another instance may have won them), so their
/// starts are sent; segments that were not committed are planned again.
pub(super) async fn adopt_unconfirmed(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    now: DateTime<Utc>,
) -> Result<(), DaemonError> {
    let keys: HashSet<(UserId, DateTime<Utc>)> = {
        let mut unconfirmed = shared.unconfirmed.lock().unwrap_or_else(|e| e.into_inner());
        if unconfirmed.is_empty() {
            return Ok(());
        }
        std::mem::take(&mut *unconfirmed).into_iter().collect()
    };
    let sent = shared.clock.instant();
    let found = async {
        let mine: Option<HashSet<RecordingId>> = if shared.store.is_shared() {
            Some(shared.store.renew_leases().await?.into_iter().collect())
        } else {
            None
        };
        let read = shared.store.open_rows().await?;
        shared.bad_rows.found(Found::Open, &read.bad);
        let rows: Vec<RecordingRow> = read
            .rows
            .into_iter()
            .filter(|r| keys.contains(&(r.user_id.clone(), r.segment_start)))
            .filter(|r| mine.as_ref().is_none_or(|m| m.contains(&r.id)))
            .collect();
        Ok::<_, DaemonError>(rows)
    }
    .await;
    let rows = match found {
        Ok(rows) => rows,
        Err(e) => {
            // Look again on the next pass.
            shared.remember_unconfirmed(keys);
            return Err(e);
        }
    };
    if rows.is_empty() {
        return Ok(());
    }
    let found = rows.len();
    let (adopted, resumed) = adopt(shared, tracker, rows, now, sent).await?;
    tracing::warn!(
        rows = found,
        adopted,
        resumed,
        "adopted claims whose answer was lost"
    );
    Ok(())
}
