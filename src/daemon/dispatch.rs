//! One planning pass: read what the database holds, let `decide` say what
//! is due, then act on it. Missed segments get their rows; ends go to
//! jobs; due starts are claimed (the write-ahead rows, committed before
//! any request) and handed to jobs a chunk at a time, so the first
//! requests leave while later rows are still being claimed.
//!
//! A user whose next segment starts now gets its ends and its start in one
//! job, ends first, so a chain never overlaps; the start knows the contact
//! id of the recording before it.

use super::decide::{self, EndReason, Start};
use super::jobs::{self, StartJob};
use super::open_rows::OpenRow;
use super::reconcile::{self, Since};
use super::reload::Found;
use super::{DaemonError, Shared};
use crate::clock::format_utc;
use crate::planner::Segment;
use crate::policy::{Policy, PolicyId};
use crate::recording::{RecordingState, UserId};
use crate::store::NewRecording;
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use tokio_util::task::TaskTracker;

/// Starts claimed per transaction before their jobs are spawned: enough to
/// keep the request slots busy while the next chunk is claimed.
const START_CHUNK: usize = 256;

/// When the loop must look again, and the next window start (for the
/// status line).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Next {
    pub at: Option<DateTime<Utc>>,
    pub start: Option<(DateTime<Utc>, PolicyId)>,
}

impl Next {
    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.at = Some(self.at.map_or(t, |n| n.min(t)));
        self
    }
}

/// One planning pass: plan, claim, spawn. Returns when to look again.
pub(super) async fn pass(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    policies: &[Policy],
    since: Since,
    now: DateTime<Utc>,
) -> Result<Next, DaemonError> {
    reconcile::adopt_unconfirmed(shared, tracker, now).await?;
    let limit = shared.schedule.segment_limit();
    let horizon = chrono::Duration::seconds(i64::from(limit.as_secs()));
    let coverage = decide::coverage(policies, since.at, now, horizon);
    let earliest = decide::earliest(&coverage).unwrap_or(now).min(since.at);
    // A recordings row that does not read back keeps its user occupied
    // until it is fixed; the store says so, the report names it.
    let occupied = shared.store.occupied_since(earliest).await?;
    shared.bad_rows.found(Found::Recordings, &occupied.bad);
    let occupied = decide::by_user(occupied.rows);
    let tracked = shared.open.snapshot();
    let plan = decide::decide(&coverage, &occupied, &tracked, now, limit);

    record_missed(shared, &plan.missed, since.reason).await?;

    // Ends, per user, for the rows no job holds.
    let reasons: HashMap<_, _> = plan.ends.iter().copied().collect();
    let ids: Vec<_> = plan.ends.iter().map(|(id, _)| *id).collect();
    let mut ends: HashMap<UserId, Vec<(OpenRow, EndReason)>> = HashMap::new();
    for row in shared.open.take_for_end(&ids) {
        let reason = reasons.get(&row.id).copied().unwrap_or(EndReason::Due);
        ends.entry(row.segment.user.clone())
            .or_default()
            .push((row, reason));
    }
    let starting: HashSet<&UserId> = plan.starts.iter().map(|s| &s.segment.user).collect();
    let (mut ends, end_only): (HashMap<_, _>, HashMap<_, _>) = ends
        .into_iter()
        .partition(|(user, _)| starting.contains(user));
    for (user, e) in end_only {
        shared.spawn_job(tracker, jobs::run_user(shared.clone(), user, e, None));
    }

    let mut next = Next {
        at: plan.next,
        start: plan.next_start,
    };
    for chunk in plan.starts.chunks(START_CHUNK) {
        let rows: Vec<NewRecording> = chunk.iter().map(write_ahead).collect();
        let sent = shared.clock.instant();
        let ids = match shared.writer.claim(rows).await {
            Ok(ids) => ids,
            Err(e) => {
                // The claim may have committed with its answer lost: the
                // next pass adopts what it finds of these segments.
                shared
                    .unconfirmed
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .extend(
                        chunk
                            .iter()
                            .map(|s| (s.segment.user.clone(), s.segment.start)),
                    );
                // The ends waiting for these starts go back to the next
                // pass, which tries again.
                for (_, waiting) in ends.drain() {
                    for (row, _) in waiting {
                        shared.open.release(row.id);
                    }
                }
                return Err(e);
            }
        };
        for (start, id) in chunk.iter().zip(ids) {
            // `None`: someone else (another process on this database)
            // already has this segment: exactly once.
            let Some(id) = id else { continue };
            shared
                .metrics
                .planned(start.segment.end - start.segment.start);
            let user = start.segment.user.clone();
            let user_ends = ends.remove(&user).unwrap_or_default();
            // The recordings this start follows (one this job ends first
            // is still tracked until it has ended).
            let previous = shared.open.contacts_of(&user);
            shared.open.insert_claimed(
                OpenRow::claimed(id, start.segment.clone()),
                shared.lease_from(sent),
            );
            // Wake at its end too: the plan was made before the row existed.
            next = next.at(start.segment.end);
            let job = StartJob {
                id,
                segment: start.segment.clone(),
                late: start.late,
                previous,
            };
            shared.spawn_job(
                tracker,
                jobs::run_user(shared.clone(), user, user_ends, Some(job)),
            );
        }
    }
    // Ends whose start someone else claimed still run.
    for (user, e) in ends {
        shared.spawn_job(tracker, jobs::run_user(shared.clone(), user, e, None));
    }
    shared
        .metrics
        .active_recordings
        .set(i64::try_from(shared.open.live_count()).unwrap_or(i64::MAX));
    shared.metrics.passes.inc();
    Ok(next)
}

/// The write-ahead row of a due start: it asks for what the planner said
/// is left of the segment.
fn write_ahead(start: &Start) -> NewRecording {
    NewRecording {
        user_id: start.segment.user.clone(),
        policy_id: start.segment.policy.get(),
        segment_start: start.segment.start,
        segment_end: start.segment.end,
        requested_seconds: start.remaining.as_secs(),
        end_mode: start.segment.end_mode,
        state: RecordingState::Pending,
        late_seconds: Some(seconds(start.late)),
        last_error: None,
    }
}

/// Segments wholly past and never started: rows, no requests.
async fn record_missed(
    shared: &Shared,
    missed: &[Segment],
    reason: &str,
) -> Result<(), DaemonError> {
    if missed.is_empty() {
        return Ok(());
    }
    let rows: Vec<NewRecording> = missed
        .iter()
        .map(|seg| {
            tracing::warn!(policy = seg.policy.get(), user = %seg.user, segment_start = %format_utc(seg.start), reason, "missed");
            shared.metrics.start("missed");
            shared.metrics.planned(seg.end - seg.start);
            NewRecording {
                user_id: seg.user.clone(),
                policy_id: seg.policy.get(),
                segment_start: seg.start,
                segment_end: seg.end,
                requested_seconds: seg.duration.as_secs(),
                end_mode: seg.end_mode,
                state: RecordingState::Missed,
                late_seconds: None,
                last_error: Some(reason.to_owned()),
            }
        })
        .collect();
    shared.writer.claim(rows).await.map(drop)
}

/// A span in seconds, to the millisecond.
fn seconds(d: chrono::Duration) -> f64 {
    // Exact for any lateness below 2^53 ms (285,000 years).
    d.num_milliseconds() as f64 / 1000.0
}
