//! The work one user needs at one instant: end what must end, then start
//! what must start, in that order, under the user's lock (requests for
//! one user are serialized, and a chained segment never overlaps its
//! predecessor).
//!
//! Each exchange is written to `attempts` as it happens; the row's state
//! follows the answer at once. A write that fails for a busy database is
//! retried by the writer, because a contact id the vendor returned must
//! not be lost.
//!
//! A start that follows another recording of the same user knows that
//! recording's contact id (and those of any other recording of the user
//! still tracked). While the vendor still answers with it (the
//! earlier recording is still ending), the start is asked again every
//! [`REASK`] until the last moment a start can be sent; an answer naming
//! the earlier recording is never stored as the new segment's own.
//!
//! # A row this instance has lost (PostgreSQL)
//! Every request for a row passes its [`RowGate`] right before it leaves:
//! the row must still be this instance's, with at least
//! `database.lease_margin_seconds` of its lease left by the daemon's
//! monotonic clock; if less is left, the gate renews the lease first, and
//! if the renewal finds the row another instance's (or cannot be made),
//! the row is given up and the request is not sent. A write the store
//! refuses as [`StoreError::Lost`] (the fence), or a housekeeping renewal
//! that finds the row gone, gives it up too. Giving a row up drops it from
//! memory and cancels its stop token, which cuts any wait between retries:
//! the job sends nothing more for it, logs that, and writes nothing.

use super::decide::EndReason;
use super::open_rows::{LeaseLeft, OpenRow};
use super::{DaemonError, Shared};
use crate::cxone::retrying::{GiveUp, Observer, Retrying};
use crate::cxone::{CxoneError, Exchange, Gate, Operation, Started, Stopped};
use crate::metrics::{OperationLabel, StatusLabel};
use crate::planner::Segment;
use crate::policy::EndMode;
use crate::recording::{ContactId, RecordingDuration, RecordingState, UserId};
use crate::retry::Decision;
use crate::store::{NewAttempt, OwnedOutcome, RecordingId, RowWrite, StoreError};
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

/// How soon a start answered with the previous segment's recording is
/// asked again (as if the vendor had said `Retry-After` this long).
pub const REASK: Duration = Duration::from_millis(500);

/// A start to send: claimed by this pass, or resumed.
pub struct StartJob {
    pub id: RecordingId,
    pub segment: Segment,
    pub late: chrono::Duration,
    /// The contact ids of the user's earlier recordings this process
    /// knows (the one before this segment, any other still tracked): an
    /// answer naming one of them is not this segment's recording.
    pub previous: Vec<ContactId>,
}

/// Runs one user's ends, then the user's start.
pub async fn run_user(
    shared: Arc<Shared>,
    user: UserId,
    ends: Vec<(OpenRow, EndReason)>,
    start: Option<StartJob>,
) {
    let lock = shared.user_lock(&user);
    let _guard = shared.activity.waiting(lock.lock()).await;
    for (row, reason) in ends {
        end_recording(&shared, row, reason, start.is_some()).await;
    }
    if let Some(job) = start {
        start_recording(&shared, job).await;
    }
}

/// Re-sends the start of a `pending` row this process has just adopted:
/// the API never makes a second recording for a user, so this is safe and
/// answers with the running recording's contact id.
pub async fn resume(shared: Arc<Shared>, job: StartJob) {
    let lock = shared.user_lock(&job.segment.user);
    let _guard = shared.activity.waiting(lock.lock()).await;
    start_recording(&shared, job).await;
}

async fn start_recording(shared: &Shared, job: StartJob) {
    let span = tracing::info_span!(
        "start",
        policy = job.segment.policy.get(),
        user = %job.segment.user,
        segment_start = %crate::clock::format_utc(job.segment.start),
        recording = job.id.get(),
    );
    start_in_span(shared, job).instrument(span).await;
}

/// How a start ended.
enum Outcome {
    Started(Started),
    GaveUp(GiveUp),
    /// Every answer named the previous segment's recording.
    OnlyPrevious {
        contact: ContactId,
        attempts: u32,
    },
}

async fn start_in_span(shared: &Shared, job: StartJob) {
    let StartJob {
        id,
        segment,
        late,
        previous,
    } = job;
    if shared.cancel.is_cancelled() {
        // Shutting down before the first request: the row stays pending and
        // the next start resolves it.
        shared.open.release(id);
        return;
    }
    let Some(gate) = RowGate::new(shared, id) else {
        // Lost before its first request.
        return;
    };
    let mut writer = AttemptWriter::new(shared, id, Some(segment.start));
    let mut jitter = jitter_source();
    // A recording our stop will end asks for a little more, so the stop,
    // not a race with the vendor's timer, ends it.
    let overrun = match segment.end_mode {
        EndMode::Stop => shared.schedule.stop_margin(),
        EndMode::Expire => chrono::Duration::zero(),
    };
    // The last moment a start may leave: 5 s before the segment's end.
    let last_start =
        segment.end - chrono::Duration::seconds(i64::from(RecordingDuration::MIN_SECS));
    let mut reasks = 0;
    let outcome = loop {
        let result = shared
            .retrying(&mut jitter, &mut writer, &gate)
            .start(&segment.user, segment.end, overrun)
            .await;
        let (started, attempts) = match result {
            Ok(ok) => ok,
            Err(e) => break Outcome::GaveUp(e),
        };
        writer.base += attempts;
        if !previous.contains(&started.contact_id) {
            break Outcome::Started(started);
        }
        // The previous recording is still ending at the vendor, who
        // answered with its contact id: ask again shortly.
        reasks += 1;
        writer.answered_with_previous(started.contact_id).await;
        let now = shared.clock.now();
        match shared
            .retry
            .next_delay(reasks, Some(REASK), 0.0, now, last_start)
        {
            Decision::Wait(d) => {
                tokio::select! {
                    () = shared.clock.sleep(d) => {}
                    () = gate.stop.cancelled() => {
                        break Outcome::GaveUp(GiveUp::Cancelled { attempts: writer.base });
                    }
                }
            }
            Decision::GiveUp => {
                break Outcome::OnlyPrevious {
                    contact: started.contact_id,
                    attempts: writer.base,
                }
            }
        }
    };
    match outcome {
        Outcome::Started(started) => {
            let (exchange, attempt) = writer
                .last_ok
                .take()
                .unwrap_or_else(|| (placeholder_exchange(shared, Operation::Start), writer.base));
            let (at, status, latency, requested) = (
                exchange.at,
                exchange.status,
                exchange.latency,
                exchange.requested,
            );
            let new = new_attempt(id, exchange, attempt, None);
            let outcome = OwnedOutcome::Started {
                contact_id: started.contact_id,
                interaction_id: started.interaction_id,
            };
            let Some(saved) = persist(
                shared,
                "store the start's contact id",
                id,
                Some(new),
                outcome,
            )
            .await
            else {
                // The new owner resends the start and stores the answer
                // (the vendor's running recording's contact id).
                tracing::warn!(contact_id = %started.contact_id, "the start was answered, but the row is another instance's now: its owner keeps the contact id");
                return;
            };
            tracing::info!(
                contact_id = %started.contact_id,
                attempt,
                status,
                latency_ms = millis(latency),
                late_ms = late.num_milliseconds(),
                requested_seconds = requested.map(|d| d.as_secs()),
                accepted = started.accepted,
                saved,
                "recording"
            );
            shared.metrics.start("started");
            shared.metrics.recording_began(id.get(), at, latency);
            shared.open.recording(id, started.contact_id);
        }
        Outcome::GaveUp(GiveUp::Cancelled { attempts } | GiveUp::Withdrawn { attempts })
            if !shared.open.contains(id) =>
        {
            tracing::warn!(
                attempts,
                "the row is another instance's now; no further start is sent for it"
            );
        }
        Outcome::GaveUp(GiveUp::Cancelled { attempts } | GiveUp::Withdrawn { attempts }) => {
            tracing::info!(
                attempts,
                "shutdown while retrying the start; the row stays pending for the next start"
            );
            shared.open.release(id);
        }
        Outcome::GaveUp(e) => {
            let attempts = writer.base + e.attempts();
            fail(shared, id, &e.to_string(), attempts).await;
        }
        Outcome::OnlyPrevious { contact, attempts } => {
            let reason = format!(
                "the vendor answered every start with the previous segment's recording \
                 (contact id {contact}) until less than 5 s of the window was left"
            );
            fail(shared, id, &reason, attempts).await;
        }
    }
}

/// The start will not be sent again: the row is `failed` with `reason`.
async fn fail(shared: &Shared, id: RecordingId, reason: &str, attempts: u32) {
    let Some(saved) = persist(
        shared,
        "mark the segment failed",
        id,
        None,
        moved(RecordingState::Failed, Some(reason), None),
    )
    .await
    else {
        return;
    };
    tracing::warn!(attempts, error = %reason, saved, "failed");
    shared.metrics.start("failed");
    shared.open.finish(id);
}

async fn end_recording(shared: &Shared, row: OpenRow, reason: EndReason, successor: bool) {
    let span = tracing::info_span!(
        "end",
        policy = row.segment.policy.get(),
        user = %row.segment.user,
        segment_start = %crate::clock::format_utc(row.segment.start),
        recording = row.id.get(),
        contact_id = row.contact.map(|c| c.get()),
    );
    end_in_span(shared, row, reason, successor)
        .instrument(span)
        .await;
}

async fn end_in_span(shared: &Shared, row: OpenRow, reason: EndReason, successor: bool) {
    let id = row.id;
    let seg = &row.segment;
    let now = shared.clock.now();
    let early = reason == EndReason::Uncovered;
    let ended_at = early.then_some(now);
    let grace = shared.schedule.stop_grace();
    let wants_stop = seg.end_mode == EndMode::Stop || early || successor;
    let contact = match row.contact {
        Some(c) if wants_stop && now < seg.end + grace => c,
        _ => {
            // The vendor's own timer ends it.
            let Some(saved) = persist(
                shared,
                "mark the recording expired",
                id,
                None,
                moved(RecordingState::Expired, None, None),
            )
            .await
            else {
                return;
            };
            tracing::info!(saved, "expired");
            shared.metrics.end("expired");
            shared.metrics.recording_ended(id.get(), seg.start, seg.end);
            shared.open.finish(id);
            return;
        }
    };
    if row.state == RecordingState::Recording {
        let written = persist(
            shared,
            "mark the recording stopping",
            id,
            None,
            moved(RecordingState::Stopping, None, None),
        )
        .await;
        if written.is_none() {
            // Another instance's now: its stop to send, not ours.
            return;
        }
    }
    let Some(gate) = RowGate::new(shared, id) else {
        return;
    };
    let deadline = if early {
        seg.end
    } else {
        seg.end.max(now) + grace
    };
    let mut writer = AttemptWriter::new(shared, id, None);
    let mut jitter = jitter_source();
    let mut retrying = shared.retrying(&mut jitter, &mut writer, &gate);
    let result = retrying.stop(&seg.user, contact, deadline).await;
    let last = writer.last_ok.take();
    match result {
        Ok((stopped, attempts)) => {
            let (to, word) = match stopped {
                Stopped::Ended { .. } => (RecordingState::Stopped, "stopped"),
                Stopped::AlreadyEnded => (RecordingState::Expired, "expired"),
            };
            let (exchange, attempt) =
                last.unwrap_or_else(|| (placeholder_exchange(shared, Operation::Stop), attempts));
            let (status, latency) = (exchange.status, exchange.latency);
            let new = new_attempt(id, exchange, attempt, None);
            let Some(saved) = persist(
                shared,
                "record the stop",
                id,
                Some(new),
                moved(to, None, ended_at),
            )
            .await
            else {
                return;
            };
            tracing::info!(
                attempt,
                status,
                latency_ms = millis(latency),
                early,
                saved,
                "{word}"
            );
            shared.metrics.end(word);
            shared
                .metrics
                .recording_ended(id.get(), seg.start, ended_at.unwrap_or(seg.end));
            shared.open.finish(id);
        }
        Err(GiveUp::Cancelled { .. } | GiveUp::Withdrawn { .. }) if !shared.open.contains(id) => {
            tracing::warn!("the row is another instance's now; no further stop is sent for it");
        }
        Err(GiveUp::Cancelled { .. } | GiveUp::Withdrawn { .. }) => {
            tracing::info!("shutdown while retrying a stop; the next start sends it again");
            shared.open.release(id);
        }
        Err(e) if !early => {
            let reason = format!("stop failed, left to the vendor's timer: {e}");
            let Some(saved) = persist(
                shared,
                "mark the recording expired",
                id,
                None,
                moved(RecordingState::Expired, Some(&reason), None),
            )
            .await
            else {
                return;
            };
            tracing::warn!(error = %reason, saved, "expired");
            shared.metrics.end("expired");
            shared.metrics.recording_ended(id.get(), seg.start, seg.end);
            shared.open.finish(id);
        }
        Err(e) => {
            let reason = format!("stop failed: {e}");
            let written = persist(
                shared,
                "note the failed stop",
                id,
                None,
                moved(RecordingState::Recording, Some(&reason), None),
            )
            .await;
            if written.is_none() {
                return;
            }
            tracing::warn!(error = %reason, "stop failed; will try again");
            shared.open.stop_failed(id);
        }
    }
}

impl Shared {
    /// A retry driver for one job on one row, writing its exchanges with
    /// `observer`; `gate` has the last word before each request, and its
    /// stop token cuts every wait.
    fn retrying<'a, O: Observer>(
        &'a self,
        jitter: &'a mut (dyn FnMut() -> f64 + Send),
        observer: &'a mut O,
        gate: &'a RowGate<'a>,
    ) -> Retrying<'a, O> {
        Retrying {
            client: &self.client,
            policy: &self.retry,
            clock: self.clock.as_ref(),
            jitter,
            observer,
            cancel: &gate.stop,
            gate,
        }
    }
}

/// The last word before each request for one row: it goes only while the
/// row is this instance's with at least the lease margin left (see the
/// module docs).
struct RowGate<'a> {
    shared: &'a Shared,
    id: RecordingId,
    /// Cancelled when the row is lost (or at shutdown).
    stop: CancellationToken,
}

impl<'a> RowGate<'a> {
    /// `None` when the row is no longer tracked (lost already).
    fn new(shared: &'a Shared, id: RecordingId) -> Option<Self> {
        let stop = shared.open.stop_token(id)?;
        Some(Self { shared, id, stop })
    }

    async fn check(&self) -> bool {
        if self.stop.is_cancelled() {
            return false;
        }
        let Some(margin) = self.shared.store.lease_margin() else {
            return true;
        };
        let now = self.shared.clock.instant();
        match self.shared.open.lease(self.id, now, margin) {
            None => false,
            Some(LeaseLeft::Enough | LeaseLeft::Unleased) => true,
            Some(LeaseLeft::Short) => self.renew().await,
        }
    }

    /// Renews the row's lease before a request; gives the row up when the
    /// renewal finds it another instance's, or cannot be made.
    async fn renew(&self) -> bool {
        let shared = self.shared;
        let sent = shared.clock.instant();
        match shared.store.renew_leases_of(&[self.id]).await {
            Ok(renewal) if renewal.renewed.contains(&self.id) => {
                if let Some(until) = shared.lease_from(sent) {
                    shared.open.leased(&[self.id], until);
                }
                tracing::info!("renewed the row's lease before the request: less than database.lease_margin_seconds was left");
                true
            }
            Ok(renewal) if renewal.lost.contains(&self.id) => {
                shared.lose(
                    &[self.id],
                    "its lease ran out before a request, and another instance took it over",
                );
                false
            }
            Ok(_) => {
                // Final by another hand meanwhile: nothing left to send.
                shared.open.lost(&[self.id]);
                false
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not renew the row's lease before a request; giving the row up (it is taken over once its lease runs out)");
                shared.lose(
                    &[self.id],
                    "its lease could not be renewed before a request",
                );
                false
            }
        }
    }
}

impl Gate for RowGate<'_> {
    fn ready(&self) -> BoxFuture<'_, bool> {
        Box::pin(self.check())
    }
}

/// Hands a row update to the writer and waits until it is committed
/// (the writer retries a busy database). Returns whether it landed, or
/// `None` when the store refused it because the row is no longer this
/// instance's: the row is then given up (see the module docs).
async fn persist(
    shared: &Shared,
    what: &str,
    id: RecordingId,
    attempt: Option<NewAttempt>,
    outcome: OwnedOutcome,
) -> Option<bool> {
    let write = RowWrite {
        recording_id: id,
        attempt,
        outcome,
    };
    match shared.writer.write(write).await {
        Ok(_) => Some(true),
        Err(DaemonError::Store(StoreError::Lost { .. })) => {
            tracing::warn!("could not {what}: the row is no longer this instance's");
            shared.lose(&[id], "a write found its lease run out");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "could not {what}");
            shared.metrics.store_errors.inc();
            Some(false)
        }
    }
}

fn moved(
    to: RecordingState,
    last_error: Option<&str>,
    ended_at: Option<DateTime<Utc>>,
) -> OwnedOutcome {
    OwnedOutcome::Moved {
        to,
        last_error: last_error.map(str::to_owned),
        ended_at,
    }
}

/// A jitter sample per backoff. The generator is seeded on the first
/// backoff only: most jobs never retry, and seeding from the OS is a
/// system call per job.
fn jitter_source() -> impl FnMut() -> f64 + Send {
    let mut rng: Option<rand::rngs::SmallRng> = None;
    move || {
        rng.get_or_insert_with(rand::rngs::SmallRng::from_os_rng)
            .random::<f64>()
    }
}

use rand::SeedableRng as _;

fn placeholder_exchange(shared: &Shared, operation: Operation) -> Exchange {
    Exchange {
        operation,
        at: shared.clock.now(),
        status: None,
        latency: Duration::ZERO,
        body: String::new(),
        requested: None,
    }
}

/// The audit row of `ex`, which it consumes (its body moves into the row).
fn new_attempt(id: RecordingId, ex: Exchange, attempt: u32, error: Option<String>) -> NewAttempt {
    NewAttempt {
        recording_id: id,
        at: ex.at,
        operation: ex.operation,
        attempt,
        requested_seconds: ex.requested.map(|d| d.as_secs()),
        http_status: ex.status,
        error,
        latency_ms: Some(millis(ex.latency)),
        response_body: (!ex.body.is_empty()).then_some(ex.body),
    }
}

/// Whole milliseconds of `d`, saturating.
fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// Writes failed exchanges as they happen; keeps the successful one for
/// the caller, who writes it together with the row's new state.
struct AttemptWriter<'a> {
    shared: &'a Shared,
    id: RecordingId,
    /// For a start: the planned instant, to measure fire-to-request lag.
    planned: Option<DateTime<Utc>>,
    last_ok: Option<(Exchange, u32)>,
    /// Exchanges of earlier rounds (a start asked again): numbering goes on
    /// from here.
    base: u32,
}

impl<'a> AttemptWriter<'a> {
    fn new(shared: &'a Shared, id: RecordingId, planned: Option<DateTime<Utc>>) -> Self {
        Self {
            shared,
            id,
            planned,
            last_ok: None,
            base: 0,
        }
    }

    /// The successful exchange named the previous segment's recording: it
    /// goes to the audit trail as such, not as this segment's start.
    async fn answered_with_previous(&mut self, contact: ContactId) {
        let note = format!(
            "answered with the previous segment's recording (contact id {contact}); asking again"
        );
        tracing::warn!(contact_id = %contact, "start answered with the previous segment's recording; asking again");
        if let Some((ex, attempt)) = self.last_ok.take() {
            let new = new_attempt(self.id, ex, attempt, Some(note.clone()));
            let _ = persist(
                self.shared,
                "record an attempt",
                self.id,
                Some(new),
                OwnedOutcome::Retrying { last_error: note },
            )
            .await;
        }
    }
}

impl Observer for AttemptWriter<'_> {
    async fn exchange(&mut self, ex: &Exchange, attempt: u32, error: Option<&CxoneError>) {
        let attempt = self.base + attempt;
        let m = &self.shared.metrics;
        let operation = ex.operation.as_str();
        m.request_seconds
            .get_or_create(&OperationLabel { operation })
            .observe(ex.latency.as_secs_f64());
        if let (1, Some(planned)) = (attempt, self.planned) {
            let lag = (ex.at - planned).num_microseconds().unwrap_or(i64::MAX);
            m.fire_lag_seconds.observe(lag.max(0) as f64 / 1e6);
        }
        let Some(error) = error else {
            self.last_ok = Some((ex.clone(), attempt));
            return;
        };
        tracing::info!(
            attempt,
            status = ex.status,
            latency_ms = millis(ex.latency),
            operation = ex.operation.as_str(),
            error = %error,
            "attempt failed"
        );
        if matches!(error.action(), crate::cxone::Action::Retry { .. }) {
            let status = ex
                .status
                .map_or_else(|| "transport".to_owned(), |s| s.to_string());
            m.retries
                .get_or_create(&StatusLabel { operation, status })
                .inc();
        }
        let text = error.to_string();
        let new = new_attempt(self.id, ex.clone(), attempt, Some(text.clone()));
        let _ = persist(
            self.shared,
            "record an attempt",
            self.id,
            Some(new),
            OwnedOutcome::Retrying { last_error: text },
        )
        .await;
    }
}
