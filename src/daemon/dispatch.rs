//! One planning pass: read what the database holds, let `decide` say what
//! is due, then act on it. Missed segments get their rows; ends go to
//! jobs; due starts are handed to a starter task, which claims them (the
//! write-ahead rows, committed before any request) and hands them to jobs
//! a chunk at a time, so the first requests leave while later rows are
//! still being claimed.
//!
//! The pass does not wait for the claims: a burst of 100,000 starts takes
//! as long to claim as its requests take to answer (their results share
//! the one writer), and the loop must be free meanwhile to start another
//! policy's window on time. Until a start is claimed (or given back) it is
//! [`InFlight`]: the next pass counts its segment as occupied, so it is
//! neither planned again nor recorded missed.
//!
//! A user whose next segment starts now gets its ends and its start in one
//! job, ends first, so a chain never overlaps; the start knows the contact
//! id of the recording before it.
//!
//! Segments opening within `schedule.claim_ahead_seconds` go to the
//! `ahead` starter instead, which claims them now and sends them at their
//! instant; each pass also withdraws the rows claimed ahead that the
//! policies no longer give (`decide::withdrawn`), deleting them before it
//! claims anything new, so an edited window can take their key.

use super::ahead::AheadStarter;
use super::decide::{self, EndReason, Start};
use super::jobs::{self, StartJob};
use super::open_rows::OpenRow;
use super::reconcile::{self, Since};
use super::reload::Found;
use super::{DaemonError, Shared};
use crate::clock::format_utc;
use crate::planner::{self, Segment};
use crate::policy::{Policy, PolicyId};
use crate::recording::{RecordingState, UserId};
use crate::store::{NewRecording, RecordingId};
use chrono::{DateTime, Utc};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::task::TaskTracker;

/// Starts claimed per transaction before their jobs are spawned: enough to
/// keep the request slots busy while the next chunk is claimed.
pub(super) const START_CHUNK: usize = 256;

/// After a failed claim, the starter asks for a new pass this much later.
pub(super) const AFTER_FAILED_CLAIM: std::time::Duration = std::time::Duration::from_secs(1);

/// Segments in flight, by user: `(start, end)`.
type Flying = HashMap<UserId, Vec<(DateTime<Utc>, DateTime<Utc>)>>;

/// Due starts handed to a starter and not yet claimed or given back, by
/// user; and where the next pass must plan
/// from after a starter's claim failed.
#[derive(Debug)]
pub(super) struct InFlight {
    starts: Mutex<Flying>,
    failed_from: Mutex<Option<DateTime<Utc>>>,
    /// Rows claimed ahead and withdrawn whose deletion has not landed yet
    /// (the database refused it): tried again by every pass.
    withdrawing: Mutex<Vec<RecordingId>>,
    /// Jobs spawned by passes and not yet done, at most its permits (see
    /// [`InFlight::new`]); waiters are served in turn.
    pacer: Arc<Semaphore>,
}

impl InFlight {
    /// With at most four times `max_concurrency` jobs of passes at a time
    /// (at least two chunks' worth, so that one chunk is claimed while the
    /// one before is sent): enough to keep every request slot busy, few
    /// enough that a burst of 100,000 holds a few MiB of jobs rather than
    /// all of them, and that another policy's start waits behind at most
    /// that many requests, not behind the whole burst.
    pub fn new(max_concurrency: usize) -> Self {
        let permits = max_concurrency
            .saturating_mul(4)
            .clamp(2 * START_CHUNK, Semaphore::MAX_PERMITS);
        Self {
            starts: Mutex::default(),
            failed_from: Mutex::default(),
            withdrawing: Mutex::default(),
            pacer: Arc::new(Semaphore::new(permits)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Flying> {
        self.starts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `now` of the earliest pass whose starts could not be claimed,
    /// once: the next pass plans from there, so windows that end while
    /// claims fail are still recorded.
    pub fn take_failed_from(&self) -> Option<DateTime<Utc>> {
        self.failed_from
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(super) fn failed(&self, from: DateTime<Utc>) {
        let mut slot = self.failed_from.lock().unwrap_or_else(|p| p.into_inner());
        *slot = Some(slot.map_or(from, |t| t.min(from)));
    }

    pub(super) fn add(&self, starts: &[Start]) {
        let mut flying = self.lock();
        for s in starts {
            flying
                .entry(s.segment.user.clone())
                .or_default()
                .push((s.segment.start, s.segment.end));
        }
    }

    pub(super) fn remove(&self, starts: &[Start]) {
        let mut flying = self.lock();
        for s in starts {
            if let Some(spans) = flying.get_mut(&s.segment.user) {
                spans.retain(|&(start, _)| start != s.segment.start);
                if spans.is_empty() {
                    flying.remove(&s.segment.user);
                }
            }
        }
    }

    /// Every segment in flight, as occupied time.
    fn occupied(&self) -> Vec<(UserId, DateTime<Utc>, DateTime<Utc>)> {
        self.lock()
            .iter()
            .flat_map(|(user, spans)| spans.iter().map(|&(a, b)| (user.clone(), a, b)))
            .collect()
    }
}

/// When the loop must look again, and the next window start (for the
/// status line).
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Next {
    pub at: Option<DateTime<Utc>>,
    pub start: Option<(DateTime<Utc>, PolicyId)>,
    /// Set when the walk of what was missed stopped at its limit: the next
    /// pass must plan from here, at once (see `planner::WALK_LIMIT`).
    pub resume: Option<Since>,
}

impl Next {
    pub fn at(mut self, t: DateTime<Utc>) -> Self {
        self.at = Some(self.at.map_or(t, |n| n.min(t)));
        self
    }
}

/// One planning pass: plan, record what was missed, hand ends to jobs and
/// due starts to a starter (which claims them and spawns their jobs).
/// Returns when to look again.
///
/// The planning itself (coverage, then the decision) is pure and, with
/// many users, the longest part of a pass: it runs on tokio's blocking
/// pool, never on the worker that runs the jobs, and the loop keeps
/// pinging the watchdog while it waits (`run_loop`).
pub(super) async fn pass(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    policies: &Arc<Vec<Policy>>,
    in_flight: &Arc<InFlight>,
    since: Since,
    now: DateTime<Utc>,
) -> Result<Next, DaemonError> {
    reconcile::adopt_unconfirmed(shared, tracker, now).await?;
    let mut retry_withdrawals = finish_withdrawals(shared, in_flight, Vec::new()).await;
    let limit = shared.schedule.segment_limit();
    let ahead = shared.schedule.claim_ahead();
    let horizon = chrono::Duration::seconds(i64::from(limit.as_secs()));
    let covered = off_loop({
        let policies = policies.clone();
        move || decide::cover(&policies, since.at, now, horizon)
    })
    .await;
    let earliest = decide::earliest(&covered.users)
        .unwrap_or(now)
        .min(since.at);
    // Read before the store: a start leaves it only once its row is
    // committed, so each is in one or the other.
    let flying = in_flight.occupied();
    // A recordings row that does not read back keeps its user occupied
    // until it is fixed; the store says so, the report names it.
    let occupied = shared.store.occupied_since(earliest).await?;
    shared.bad_rows.found(Found::Recordings, &occupied.bad);
    let tracked = shared.open.snapshot();
    // Rows claimed ahead whose instant has not come: still as planned?
    let waiting: Vec<OpenRow> = shared
        .open
        .waiting()
        .into_iter()
        .filter(|row| row.segment.start > now)
        .collect();
    // Instances sharing the database claim ahead each in its own order.
    let spread_seed = shared
        .store
        .is_shared()
        .then(|| shared.instance.as_str().to_owned());
    let (plan, walked, tracking, withdrawn) = off_loop(move || {
        let mut rows = occupied.rows;
        rows.extend(flying);
        let mut occupied = decide::by_user(rows);
        let withdrawn = decide::withdrawn(&covered.users, &occupied, &waiting, limit);
        let mut tracked = tracked;
        if !withdrawn.is_empty() {
            // Planned as if they were gone already (their rows are deleted
            // before anything new is claimed).
            let gone: HashSet<RecordingId> = withdrawn.iter().copied().collect();
            for row in waiting.iter().filter(|r| gone.contains(&r.id)) {
                if let Some(spans) = occupied.get_mut(row.user()) {
                    if let Some(i) = spans
                        .iter()
                        .position(|i| i.start == row.segment.start && i.end == row.segment.end)
                    {
                        spans.remove(i);
                    }
                }
            }
            tracked.retain(|t| !gone.contains(&t.row.id));
        }
        // The users with a tracked row (whose earlier contact ids a start
        // must know): usually few, and the only ones worth asking about.
        let tracking: HashSet<UserId> = tracked.iter().map(|t| t.row.user().clone()).collect();
        let mut plan = decide::decide_ahead(&covered.users, &occupied, &tracked, now, limit, ahead);
        decide::fair_order(&mut plan.starts);
        if let Some(seed) = spread_seed {
            decide::spread(&mut plan.ahead, &seed);
        }
        decide::fair_order(&mut plan.ahead);
        let walked = Walked {
            starts: covered.walked,
            behind_until: covered.behind_until,
            ahead_until: covered.ahead_until,
        };
        // The coverage (one entry per user) is dropped here too.
        (plan, walked, tracking, withdrawn)
    })
    .await;
    if !withdrawn.is_empty() {
        retry_withdrawals |= withdraw(shared, in_flight, withdrawn).await;
    }
    tracing::debug!(
        starts_walked = walked.starts,
        segments_cut = plan.cut,
        due = plan.starts.len(),
        missed = plan.missed.len(),
        "planned"
    );

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
    let (ends, end_only): (HashMap<_, _>, HashMap<_, _>) = ends
        .into_iter()
        .partition(|(user, _)| starting.contains(user));
    if !end_only.is_empty() {
        let pacer = Paced {
            shared: shared.clone(),
            tracker: tracker.clone(),
            pacer: in_flight.pacer.clone(),
        };
        shared.spawn_job(tracker, pacer.ends(end_only));
    }

    let mut next = Next {
        at: plan.next,
        start: plan.next_start,
        resume: None,
    };
    if retry_withdrawals {
        next = next.at(now + chrono::Duration::seconds(1));
    }
    if let Some(stop) = walked.ahead_until {
        // Nothing opening from there on was planned: come back by then.
        next = next.at(stop);
    }
    if let Some(at) = walked.behind_until {
        tracing::info!(
            planned_until = %format_utc(at),
            limit = planner::WALK_LIMIT,
            "windows missed since {} take more than one pass to walk; going on at once",
            format_utc(since.at)
        );
        next.resume = Some(Since {
            at,
            reason: since.reason,
        });
    }
    // Without starts, `ends` (the ends waiting for one) is empty.
    if !plan.starts.is_empty() {
        // Wake at their ends too: their rows do not exist yet.
        for start in &plan.starts {
            next = next.at(start.segment.end);
        }
        in_flight.add(&plan.starts);
        let starter = Starter {
            paced: Paced {
                shared: shared.clone(),
                tracker: tracker.clone(),
                pacer: in_flight.pacer.clone(),
            },
            in_flight: in_flight.clone(),
            tracking,
            now,
        };
        shared.spawn_job(tracker, starter.run(plan.starts, ends));
    }
    if !plan.ahead.is_empty() {
        for start in &plan.ahead {
            next = next.at(start.segment.end);
        }
        in_flight.add(&plan.ahead);
        let starter = AheadStarter {
            paced: Paced {
                shared: shared.clone(),
                tracker: tracker.clone(),
                pacer: in_flight.pacer.clone(),
            },
            in_flight: in_flight.clone(),
            now,
        };
        shared.spawn_job(tracker, starter.run(plan.ahead));
    }
    shared
        .metrics
        .active_recordings
        .set(i64::try_from(shared.open.live_count()).unwrap_or(i64::MAX));
    shared.metrics.passes.inc();
    Ok(next)
}

/// Withdraws rows claimed ahead that the policies no longer plan (see
/// `ahead`): those still waiting for their instant are dropped from memory
/// and their rows deleted. Returns whether a deletion must be tried again.
async fn withdraw(shared: &Shared, in_flight: &InFlight, ids: Vec<RecordingId>) -> bool {
    let taken: Vec<RecordingId> = ids
        .into_iter()
        .filter(|id| shared.open.withdraw(*id))
        .collect();
    if taken.is_empty() {
        return false;
    }
    tracing::info!(
        rows = taken.len(),
        recordings = ?taken.iter().map(|id| id.get()).collect::<Vec<_>>(),
        "withdrew rows claimed ahead: their policy changed before the window opened; nothing was sent for them"
    );
    finish_withdrawals(shared, in_flight, taken).await
}

/// Deletes the rows of `taken` and of earlier withdrawals the database
/// refused; keeps those it still refuses for the next pass. Returns
/// whether any is left.
async fn finish_withdrawals(
    shared: &Shared,
    in_flight: &InFlight,
    taken: Vec<RecordingId>,
) -> bool {
    let mut ids = std::mem::take(
        &mut *in_flight
            .withdrawing
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    ids.extend(taken);
    if ids.is_empty() {
        return false;
    }
    match shared.store.withdraw_pending(&ids).await {
        Ok(deleted) => {
            tracing::debug!(deleted, "deleted withdrawn rows");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, rows = ids.len(), "could not delete withdrawn rows claimed ahead; trying again in 1 s (nothing is sent for them)");
            shared.metrics.store_errors.inc();
            in_flight
                .withdrawing
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend(ids);
            true
        }
    }
}

/// Spawns a pass's jobs, each once it has a permit of the pacer.
#[derive(Clone)]
pub(super) struct Paced {
    pub shared: Arc<Shared>,
    pub tracker: TaskTracker,
    pub pacer: Arc<Semaphore>,
}

impl Paced {
    /// Waits for a permit (counted as waiting, as a job waits for the
    /// clock: it is the other jobs' progress it waits for); `None` once the
    /// daemon is stopping.
    pub(super) async fn permit(&self) -> Option<OwnedSemaphorePermit> {
        let acquire = self.pacer.clone().acquire_owned();
        let cancelled = self.shared.cancel.cancelled();
        self.shared
            .activity
            .waiting(async {
                tokio::select! {
                    permit = acquire => permit.ok(),
                    () = cancelled => None,
                }
            })
            .await
    }

    pub(super) fn spawn(
        &self,
        permit: OwnedSemaphorePermit,
        job: impl Future<Output = ()> + Send + 'static,
    ) {
        self.shared.spawn_job(&self.tracker, async move {
            let _permit = permit;
            job.await;
        });
    }

    /// Ends of users without a start in the pass, a job each.
    async fn ends(self, ends: HashMap<UserId, Vec<(OpenRow, EndReason)>>) {
        let mut ends = ends.into_iter();
        while let Some((user, e)) = ends.next() {
            let Some(permit) = self.permit().await else {
                // Stopping: the rows stay open for the next process.
                for (_, waiting) in std::iter::once((user, e)).chain(ends) {
                    for (row, _) in waiting {
                        self.shared.open.release(row.id);
                    }
                }
                return;
            };
            self.spawn(permit, jobs::run_user(self.shared.clone(), user, e, None));
        }
    }
}

/// Claims a pass's due starts a chunk at a time and hands each to a job.
struct Starter {
    paced: Paced,
    in_flight: Arc<InFlight>,
    /// Users with a tracked row when the pass looked.
    tracking: HashSet<UserId>,
    /// The pass's now.
    now: DateTime<Utc>,
}

impl Starter {
    async fn run(self, starts: Vec<Start>, mut ends: HashMap<UserId, Vec<(OpenRow, EndReason)>>) {
        let shared = &self.paced.shared;
        let mut chunks = starts.chunks(START_CHUNK);
        while let Some(chunk) = chunks.next() {
            // A permit per start of the chunk before claiming it: the
            // chunk's rows are committed when its requests can leave.
            let mut permits = Vec::with_capacity(chunk.len());
            for _ in chunk {
                match self.paced.permit().await {
                    Some(permit) => permits.push(permit),
                    None => {
                        // Stopping: what is not claimed is planned by the
                        // next process, from when this one was last seen.
                        self.give_back(chunk, chunks.flatten(), &mut ends);
                        return;
                    }
                }
            }
            let rows: Vec<NewRecording> = chunk.iter().map(write_ahead).collect();
            let sent = shared.clock.instant();
            let ids = match shared.writer.claim(rows).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::error!(error = %e, "claiming due starts failed; planning again in 1 s");
                    // The claim may have committed with its answer lost:
                    // the next pass adopts what it finds of these segments.
                    shared.remember_unconfirmed(
                        chunk
                            .iter()
                            .map(|s| (s.segment.user.clone(), s.segment.start)),
                    );
                    self.give_back(chunk, chunks.flatten(), &mut ends);
                    self.in_flight.failed(self.now);
                    // The next pass tries again, not at once.
                    shared.clock.sleep(AFTER_FAILED_CLAIM).await;
                    shared.wake.notify_one();
                    return;
                }
            };
            for ((start, id), permit) in chunk.iter().zip(ids).zip(permits) {
                // `None`: someone else (another process on this database)
                // already has this segment: exactly once.
                let Some(id) = id else { continue };
                shared
                    .metrics
                    .planned(start.segment.end - start.segment.start);
                let user = start.segment.user.clone();
                let user_ends = ends.remove(&user).unwrap_or_default();
                // The recordings this start follows (one this job ends
                // first is still tracked until it has ended).
                let previous = if self.tracking.contains(&user) {
                    shared.open.contacts_of(&user)
                } else {
                    Vec::new()
                };
                shared.open.insert_claimed(
                    OpenRow::claimed(id, start.segment.clone()),
                    shared.lease_from(sent),
                );
                let job = StartJob {
                    id,
                    segment: start.segment.clone(),
                    late: start.late,
                    previous,
                };
                self.paced.spawn(
                    permit,
                    jobs::run_user(shared.clone(), user, user_ends, Some(job)),
                );
            }
            self.in_flight.remove(chunk);
        }
        shared
            .metrics
            .active_recordings
            .set(i64::try_from(shared.open.live_count()).unwrap_or(i64::MAX));
        // Ends whose start someone else claimed still run.
        if !ends.is_empty() {
            self.paced.ends(ends).await;
        }
    }

    /// Starts not claimed go back to the next pass, with the ends that
    /// waited for them.
    fn give_back<'a>(
        &self,
        chunk: &'a [Start],
        rest: impl Iterator<Item = &'a Start>,
        ends: &mut HashMap<UserId, Vec<(OpenRow, EndReason)>>,
    ) {
        self.in_flight.remove(chunk);
        let rest: Vec<Start> = rest.cloned().collect();
        self.in_flight.remove(&rest);
        for (_, waiting) in ends.drain() {
            for (row, _) in waiting {
                self.paced.shared.open.release(row.id);
            }
        }
    }
}

/// What the coverage walk of a pass reported.
struct Walked {
    starts: u64,
    behind_until: Option<DateTime<Utc>>,
    ahead_until: Option<DateTime<Utc>>,
}

/// Runs pure planning work on tokio's blocking pool, so a pass over
/// 100,000 users neither stalls the worker the jobs run on nor, under
/// the current-thread runtime of the driven tests, the whole runtime.
async fn off_loop<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(out) => out,
        // A bug in the planner: fail as it would have on the loop.
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            // Cancelled: only when the runtime shuts down, which drops
            // this future too.
            Err(_) => std::future::pending().await,
        },
    }
}

/// The write-ahead row of a due start: it asks for what the planner said
/// is left of the segment.
pub(super) fn write_ahead(start: &Start) -> NewRecording {
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
