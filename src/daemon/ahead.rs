//! Claim ahead (`schedule.claim_ahead_seconds`): a burst's write-ahead
//! rows are committed a few seconds before its window opens, and the
//! client is made ready (the API host, a token that lasts past the
//! instant), so that at the instant only the start requests remain.
//!
//! # The rules of a row claimed ahead
//! - It is an ordinary `pending` row under the same exactly-once key
//!   (user, segment start), committed before anything is sent. Its start
//!   request never leaves before the window's instant.
//! - Until its instant it is *waiting* ([`OpenRows`]): every planning pass
//!   checks that the policies still give the same segment (start, end,
//!   policy, end mode; `decide::withdrawn`). One they no longer give (its
//!   policy was edited, disabled or deleted, its user removed, an
//!   exclusion added) is withdrawn: dropped from memory and its row
//!   deleted. Nothing was sent for it, so it is not history; deleting it
//!   (rather than marking it) frees its key, so an edited window that
//!   still opens at the same instant is claimed again as it now is. A row
//!   whose instant has come is sent: an edit after that is one during an
//!   open window (its recording is ended unless still covered).
//! - Only users without a tracked row are claimed ahead: a segment that
//!   follows its user's running recording waits for that one's end, which
//!   the pass at the instant sends first.
//! - It holds a lease from its claim on (PostgreSQL), renewed with every
//!   other tracked row. A restart (or a takeover) between the claim and
//!   the instant adopts the pending row and sends it at its instant
//!   ([`resume_at`]), not earlier, and not lost.
//!
//! # Several instances (PostgreSQL)
//! Every instance plans the same burst. Each walks it in an order of its
//! own (`decide::spread`, seeded with its instance id; each policy's
//! turns kept) and claims the first half of it; one that got all of its
//! half pauses (300 ms, at most half the time left) before the rest, one
//! that found some of it taken claims the rest at once. Two instances
//! planning the same instant end up with about half each, instead of the
//! first taking it whole; availability is unchanged: every instance tries
//! every start, so a burst is claimed whole as long as one is alive.
//!
//! # Waiting for the instant
//! [`until`] sleeps on the monotonic clock in slices of at most a second
//! and reads the wall clock after each: a forward step brings the instant
//! closer; a step back never postpones it past the monotonic estimate
//! made before it (the window opened by the time that had really passed).

use super::decide::Start;
use super::dispatch::{write_ahead, InFlight, Paced, AFTER_FAILED_CLAIM, START_CHUNK};
use super::jobs::{self, StartJob};
use super::open_rows::OpenRow;
use super::Shared;
use crate::clock::{after, format_utc, Reading};
use crate::planner::Segment;
use crate::store::{NewRecording, RecordingId};
use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The longest slice of a wait before the wall clock is read again.
const SLICE: Duration = Duration::from_secs(1);

/// Waits until the window's instant `at` has come (see the module docs);
/// `false` if `stop` was cancelled first.
pub(super) async fn until(shared: &Shared, at: DateTime<Utc>, stop: &CancellationToken) -> bool {
    let mut target: Option<tokio::time::Instant> = None;
    loop {
        if stop.is_cancelled() {
            return false;
        }
        let reading = Reading::take(shared.clock.as_ref());
        let Ok(left) = (at - reading.wall).to_std() else {
            return true;
        };
        if left.is_zero() {
            return true;
        }
        let estimate = after(reading.instant, left);
        let goal = target.map_or(estimate, |t| t.min(estimate));
        target = Some(goal);
        if goal <= reading.instant {
            return true;
        }
        let wake = goal.min(after(reading.instant, SLICE));
        tokio::select! {
            () = shared.clock.sleep_until(wake) => {}
            () = stop.cancelled() => return false,
        }
    }
}

/// A pending row adopted (at start, on a takeover, after a lost claim
/// reply) whose instant has not come: sent at its instant, unless it is
/// withdrawn, lost or the daemon stops first (it stays pending then).
pub(super) async fn resume_at(shared: Arc<Shared>, mut job: StartJob) {
    let Some(stop) = shared.open.stop_token(job.id) else {
        return;
    };
    if !until(&shared, job.segment.start, &stop).await {
        // Stopping: the row stays pending for the next process. Withdrawn
        // or lost: no longer tracked, and nothing is sent.
        shared.open.release(job.id);
        return;
    }
    if !shared.open.begin_send(job.id) {
        return;
    }
    job.late = (shared.clock.now() - job.segment.start).max(chrono::Duration::zero());
    jobs::resume(shared, job).await;
}

/// Claims the starts a pass found opening within the claim-ahead span,
/// makes the client ready, and sends each at its instant.
pub(super) struct AheadStarter {
    pub paced: Paced,
    pub in_flight: Arc<InFlight>,
    /// The pass's now.
    pub now: DateTime<Utc>,
}

impl AheadStarter {
    pub async fn run(self, starts: Vec<Start>) {
        let shared = self.paced.shared.clone();
        let mut claimed: Claimed = BTreeMap::new();
        // Sharing the database: this instance's share first (the first
        // half of its own order, see `decide::spread`), then the rest. An
        // instance that got its whole share is the first (or alone): it
        // pauses before the rest, so that the others, planning the same
        // instant at about the same moment, get theirs. One that found
        // some of its share taken claims the rest at once. If the others
        // are gone, the pause only delays the claim: every start is still
        // claimed ahead, by someone.
        let share = if shared.store.is_shared() {
            starts.len().div_ceil(2)
        } else {
            starts.len()
        };
        let (first, rest) = starts.split_at(share);
        let Some(taken) = self.claim(first, rest, &mut claimed).await else {
            return self.send(claimed).await;
        };
        if !rest.is_empty() && taken == 0 {
            let room = rest
                .iter()
                .map(|s| s.segment.start)
                .min()
                .and_then(|at| ((at - shared.clock.now()) / 2).to_std().ok())
                .unwrap_or_default();
            let pause = SHARE_PAUSE.min(room);
            if !pause.is_zero() {
                shared.clock.sleep(pause).await;
            }
        }
        if !rest.is_empty() {
            self.claim(rest, &[], &mut claimed).await;
        }
        self.send(claimed).await;
    }

    /// Makes the client ready and hands each instant's rows to a task
    /// that sends them once it has come.
    async fn send(&self, claimed: Claimed) {
        let shared = &self.paced.shared;
        let Some(last) = claimed.keys().next_back().copied() else {
            return;
        };
        let rows: usize = claimed.values().map(Vec::len).sum();
        tracing::debug!(
            rows,
            first = %claimed.keys().next().map(|t| format_utc(*t)).unwrap_or_default(),
            "claimed ahead"
        );
        // A token that lasts past the last instant, the API host known:
        // the burst's requests do not wait for them at the instant.
        if let Err(e) = shared.client.warm(last).await {
            tracing::warn!(error = %e, "could not make the client ready ahead of the window; its requests try again at the instant");
        }
        for (at, rows) in claimed {
            let paced = self.paced.clone();
            shared.spawn_job(&self.paced.tracker, send_at(paced, at, rows));
        }
    }

    /// Claims `part` a chunk at a time into `claimed`; returns how many of
    /// it another process had claimed already. On a failed claim, gives
    /// back what is left of `part` and `later` (the next pass plans them
    /// again) and returns `None`.
    async fn claim(&self, part: &[Start], later: &[Start], claimed: &mut Claimed) -> Option<usize> {
        let mut taken = 0;
        let shared = &self.paced.shared;
        let mut chunks = part.chunks(START_CHUNK);
        while let Some(chunk) = chunks.next() {
            let rows: Vec<NewRecording> = chunk.iter().map(write_ahead).collect();
            let sent = shared.clock.instant();
            let ids = match shared.writer.claim(rows).await {
                Ok(ids) => ids,
                Err(e) => {
                    tracing::error!(error = %e, "claiming starts ahead failed; planning again in 1 s");
                    // The claim may have committed with its answer lost:
                    // the next pass adopts what it finds of these segments
                    // (and sends them at their instant).
                    shared.remember_unconfirmed(
                        chunk
                            .iter()
                            .map(|s| (s.segment.user.clone(), s.segment.start)),
                    );
                    self.in_flight.remove(chunk);
                    let rest: Vec<Start> = chunks.flatten().chain(later).cloned().collect();
                    self.in_flight.remove(&rest);
                    self.in_flight.failed(self.now);
                    shared.clock.sleep(AFTER_FAILED_CLAIM).await;
                    shared.wake.notify_one();
                    // What was claimed before still goes at its instant.
                    return None;
                }
            };
            for (start, id) in chunk.iter().zip(ids) {
                // `None`: another process on this database has it.
                let Some(id) = id else {
                    taken += 1;
                    continue;
                };
                let segment = start.segment.clone();
                shared.metrics.planned(segment.end - segment.start);
                shared.open.insert_waiting(
                    OpenRow::claimed(id, segment.clone()),
                    shared.lease_from(sent),
                );
                claimed
                    .entry(segment.start)
                    .or_default()
                    .push((id, segment));
            }
            self.in_flight.remove(chunk);
        }
        Some(taken)
    }
}

/// Rows claimed ahead, by instant.
type Claimed = BTreeMap<DateTime<Utc>, Vec<(RecordingId, Segment)>>;

/// Sharing the database, how long an instance waits after claiming its
/// share of a burst before it claims the rest (at most half the time left
/// until the instant): long enough for the other instances, planning the
/// same instant at about the same moment, to claim theirs.
const SHARE_PAUSE: Duration = Duration::from_millis(300);

/// Hands the rows claimed ahead for instant `at` to their jobs once it has
/// come, paced; a row withdrawn or lost meanwhile is skipped.
async fn send_at(paced: Paced, at: DateTime<Utc>, rows: Vec<(RecordingId, Segment)>) {
    let shared = paced.shared.clone();
    if !until(&shared, at, &shared.cancel).await {
        // Stopping: the rows stay pending; the next process (or another
        // instance) adopts them and sends each at its instant.
        for (id, _) in rows {
            shared.open.release(id);
        }
        return;
    }
    let mut rows = rows.into_iter();
    while let Some((id, segment)) = rows.next() {
        let Some(permit) = paced.permit().await else {
            shared.open.release(id);
            for (id, _) in rows {
                shared.open.release(id);
            }
            return;
        };
        if !shared.open.begin_send(id) {
            continue;
        }
        let late = (shared.clock.now() - segment.start).max(chrono::Duration::zero());
        let user = segment.user.clone();
        let job = StartJob {
            id,
            segment,
            late,
            previous: Vec::new(),
        };
        paced.spawn(
            permit,
            jobs::run_user(shared.clone(), user, Vec::new(), Some(job)),
        );
    }
}
