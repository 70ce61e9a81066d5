//! The work one user needs at one instant: end what must end, then start
//! what must start, in that order, under the user's lock (requests for
//! one user are serialized, and a chained segment never overlaps its
//! predecessor).
//!
//! Each exchange is written to `attempts` as it happens; the row's state
//! follows the answer at once. A write that fails for a busy database is
//! retried, because a contact id the vendor returned must not be lost.

use super::pass::{EndReason, Tracked};
use super::Shared;
use crate::cxone::retrying::{GiveUp, Observer, Retrying};
use crate::cxone::{CxoneError, Exchange, Operation, Stopped};
use crate::metrics::{OperationLabel, StatusLabel};
use crate::planner::Segment;
use crate::policy::EndMode;
use crate::recording::{ContactId, RecordingState, UserId};
use crate::store::{NewAttempt, OwnedOutcome, RecordingId, RowWrite};
use chrono::{DateTime, Utc};
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument as _;

/// A start this pass claimed.
pub struct StartJob {
    pub id: RecordingId,
    pub segment: Segment,
    pub late: chrono::Duration,
}

/// Runs one user's ends, then the user's start.
pub async fn run_user(
    shared: Arc<Shared>,
    user: UserId,
    ends: Vec<(Tracked, EndReason)>,
    start: Option<StartJob>,
) {
    let lock = shared.user_lock(&user);
    let _guard = lock.lock().await;
    let mut previous = None;
    for (t, reason) in ends {
        previous = t.contact.or(previous);
        end_recording(&shared, t, reason, start.is_some()).await;
    }
    if let Some(job) = start {
        start_recording(&shared, job, previous).await;
    }
}

/// Re-sends the start of a `pending` row left by an earlier process: the
/// API never makes a second recording for a user, so this is safe and
/// answers with the running recording's contact id.
pub async fn resume(shared: Arc<Shared>, t: Tracked) {
    let lock = shared.user_lock(&t.user);
    let _guard = lock.lock().await;
    // The row is the segment; the start asks for what remains of it, so
    // the duration here only describes it.
    let duration = crate::recording::RecordingDuration::from_secs((t.end - t.start).num_seconds())
        .unwrap_or(crate::recording::RecordingDuration::MIN);
    let segment = Segment {
        user: t.user.clone(),
        start: t.start,
        end: t.end,
        duration,
        policy: crate::policy::PolicyId::new(t.policy_id.unwrap_or(0)),
        end_mode: t.end_mode,
    };
    let late = shared.clock.now() - t.start;
    let job = StartJob {
        id: RecordingId::new(t.id),
        segment,
        late,
    };
    start_recording(&shared, job, None).await;
}

async fn start_recording(shared: &Shared, job: StartJob, previous: Option<ContactId>) {
    let span = tracing::info_span!(
        "start",
        policy = job.segment.policy.get(),
        user = %job.segment.user,
        segment_start = %crate::clock::format_utc(job.segment.start),
        recording = job.id.get(),
    );
    start_in_span(shared, job, previous).instrument(span).await;
}

async fn start_in_span(shared: &Shared, job: StartJob, previous: Option<ContactId>) {
    let StartJob { id, segment, late } = job;
    if shared.cancel.is_cancelled() {
        // Shutting down before the first request: the row stays pending and
        // the next start resolves it.
        shared.release(id.get());
        return;
    }
    let mut writer = AttemptWriter::new(shared, id, Some(segment.start));
    let mut jitter = jitter_source();
    let outcome = loop {
        let mut retrying = shared.retrying(&mut jitter, &mut writer);
        // A recording our stop will end asks for a little more, so the
        // stop, not a race with the vendor's timer, ends it.
        let overrun = match segment.end_mode {
            EndMode::Stop => chrono::Duration::seconds(shared.schedule.stop_margin_seconds as i64),
            EndMode::Expire => chrono::Duration::zero(),
        };
        let result = retrying.start(&segment.user, segment.end, overrun).await;
        match &result {
            // The predecessor's recording is still ending at the vendor, who
            // answered with its contact id: ask again shortly.
            Ok((started, _)) if Some(started.contact_id) == previous => {
                tracing::warn!(contact_id = %started.contact_id, "start answered with the previous segment's recording; retrying");
                let wait = tokio::time::sleep(Duration::from_millis(500));
                tokio::select! {
                    () = wait => {}
                    () = shared.cancel.cancelled() => break result,
                }
                if crate::recording::RecordingDuration::remaining(segment.end, shared.clock.now())
                    .is_none()
                {
                    break result;
                }
            }
            _ => break result,
        }
    };
    match outcome {
        Ok((started, attempts)) => {
            let (exchange, attempt) = writer
                .last_ok
                .take()
                .unwrap_or_else(|| (placeholder_exchange(shared, Operation::Start), attempts));
            let new = new_attempt(id, &exchange, attempt, None);
            let outcome = OwnedOutcome::Started {
                contact_id: started.contact_id,
                interaction_id: started.interaction_id.clone(),
            };
            let saved = persist(
                shared,
                "store the start's contact id",
                id,
                Some(new),
                outcome,
            )
            .await;
            tracing::info!(
                contact_id = %started.contact_id,
                attempt,
                status = exchange.status,
                latency_ms = exchange.latency.as_millis() as u64,
                late_ms = late.num_milliseconds(),
                requested_seconds = exchange.requested.map(|d| d.as_secs()),
                accepted = started.accepted,
                saved,
                "recording"
            );
            shared.metrics.start("started");
            shared
                .metrics
                .recording_began(id.get(), exchange.at, exchange.latency);
            shared.update(id.get(), |t| {
                t.state = RecordingState::Recording;
                t.contact = Some(started.contact_id);
                t.busy = false;
            });
        }
        Err(GiveUp::Cancelled { attempts }) => {
            tracing::info!(
                attempts,
                "shutdown while retrying the start; the row stays pending for the next start"
            );
            shared.release(id.get());
        }
        Err(e) => {
            let reason = e.to_string();
            let saved = persist(
                shared,
                "mark the segment failed",
                id,
                None,
                moved(RecordingState::Failed, Some(&reason), None),
            )
            .await;
            tracing::warn!(attempts = e.attempts(), error = %reason, saved, "failed");
            shared.metrics.start("failed");
            shared.forget(id.get());
        }
    }
}

async fn end_recording(shared: &Shared, t: Tracked, reason: EndReason, successor: bool) {
    let span = tracing::info_span!(
        "end",
        policy = t.policy_id,
        user = %t.user,
        segment_start = %crate::clock::format_utc(t.start),
        recording = t.id,
        contact_id = t.contact.map(|c| c.get()),
    );
    end_in_span(shared, t, reason, successor)
        .instrument(span)
        .await;
}

async fn end_in_span(shared: &Shared, t: Tracked, reason: EndReason, successor: bool) {
    let id = RecordingId::new(t.id);
    let now = shared.clock.now();
    let early = reason == EndReason::Uncovered;
    let ended_at = early.then_some(now);
    let grace = chrono::Duration::seconds(shared.schedule.stop_grace_seconds as i64);
    let wants_stop = t.end_mode == EndMode::Stop || early || successor;
    let contact = match t.contact {
        Some(c) if wants_stop && now < t.end + grace => c,
        _ => {
            // The vendor's own timer ends it.
            let saved = persist(
                shared,
                "mark the recording expired",
                id,
                None,
                moved(RecordingState::Expired, None, None),
            )
            .await;
            tracing::info!(saved, "expired");
            shared.metrics.end("expired");
            shared.metrics.recording_ended(t.id, t.start, t.end);
            shared.forget(t.id);
            return;
        }
    };
    if t.state == RecordingState::Recording {
        let _ = persist(
            shared,
            "mark the recording stopping",
            id,
            None,
            moved(RecordingState::Stopping, None, None),
        )
        .await;
    }
    let deadline = if early { t.end } else { t.end.max(now) + grace };
    let mut writer = AttemptWriter::new(shared, id, None);
    let mut jitter = jitter_source();
    let mut retrying = shared.retrying(&mut jitter, &mut writer);
    let result = retrying.stop(&t.user, contact, deadline).await;
    let last = writer.last_ok.take();
    match result {
        Ok((stopped, attempts)) => {
            let (to, word) = match stopped {
                Stopped::Ended { .. } => (RecordingState::Stopped, "stopped"),
                Stopped::AlreadyEnded => (RecordingState::Expired, "expired"),
            };
            let (exchange, attempt) =
                last.unwrap_or_else(|| (placeholder_exchange(shared, Operation::Stop), attempts));
            let new = new_attempt(id, &exchange, attempt, None);
            let saved = persist(
                shared,
                "record the stop",
                id,
                Some(new),
                moved(to, None, ended_at),
            )
            .await;
            tracing::info!(
                attempt,
                status = exchange.status,
                latency_ms = exchange.latency.as_millis() as u64,
                early,
                saved,
                "{word}"
            );
            shared.metrics.end(word);
            shared
                .metrics
                .recording_ended(t.id, t.start, ended_at.unwrap_or(t.end));
            shared.forget(t.id);
        }
        Err(GiveUp::Cancelled { .. }) => {
            tracing::info!("shutdown while retrying a stop; the next start sends it again");
            shared.release(t.id);
        }
        Err(e) if !early => {
            let reason = format!("stop failed, left to the vendor's timer: {e}");
            let saved = persist(
                shared,
                "mark the recording expired",
                id,
                None,
                moved(RecordingState::Expired, Some(&reason), None),
            )
            .await;
            tracing::warn!(error = %reason, saved, "expired");
            shared.metrics.end("expired");
            shared.metrics.recording_ended(t.id, t.start, t.end);
            shared.forget(t.id);
        }
        Err(e) => {
            let reason = format!("stop failed: {e}");
            let _ = persist(
                shared,
                "note the failed stop",
                id,
                None,
                moved(RecordingState::Recording, Some(&reason), None),
            )
            .await;
            tracing::warn!(error = %reason, "stop failed; will try again");
            shared.update(t.id, |t| {
                t.state = RecordingState::Recording;
                t.busy = false;
            });
        }
    }
}

impl Shared {
    /// A retry driver for one job, writing its exchanges with `observer`.
    fn retrying<'a, O: Observer>(
        &'a self,
        jitter: &'a mut (dyn FnMut() -> f64 + Send),
        observer: &'a mut O,
    ) -> Retrying<'a, O> {
        Retrying {
            client: &self.client,
            policy: &self.retry,
            clock: self.clock.as_ref(),
            jitter,
            observer,
            cancel: &self.cancel,
        }
    }
}

/// Hands a row update to the writer and waits until it is committed
/// (the writer retries a busy database). Returns whether it landed.
async fn persist(
    shared: &Shared,
    what: &str,
    id: RecordingId,
    attempt: Option<NewAttempt>,
    outcome: OwnedOutcome,
) -> bool {
    let write = RowWrite {
        recording_id: id,
        attempt,
        outcome,
    };
    match shared.writer.write(write).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!(error = %e, "could not {what}");
            shared.metrics.store_errors.inc();
            false
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

fn jitter_source() -> impl FnMut() -> f64 + Send {
    let mut rng = rand::rngs::SmallRng::from_os_rng();
    move || rng.random::<f64>()
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

fn new_attempt(
    id: RecordingId,
    ex: &Exchange,
    attempt: u32,
    error: Option<&CxoneError>,
) -> NewAttempt {
    NewAttempt {
        recording_id: id,
        at: ex.at,
        operation: match ex.operation {
            Operation::Start => crate::store::Operation::Start,
            Operation::Stop => crate::store::Operation::Stop,
        },
        attempt,
        requested_seconds: ex.requested.map(|d| d.as_secs()),
        http_status: ex.status,
        error: error.map(ToString::to_string),
        latency_ms: Some(ex.latency.as_millis() as u64),
        response_body: (!ex.body.is_empty()).then(|| ex.body.clone()),
    }
}

/// Writes failed exchanges as they happen; keeps the successful one for
/// the caller, who writes it together with the row's new state.
struct AttemptWriter<'a> {
    shared: &'a Shared,
    id: RecordingId,
    /// For a start: the planned instant, to measure fire-to-request lag.
    planned: Option<DateTime<Utc>>,
    last_ok: Option<(Exchange, u32)>,
}

impl<'a> AttemptWriter<'a> {
    fn new(shared: &'a Shared, id: RecordingId, planned: Option<DateTime<Utc>>) -> Self {
        Self {
            shared,
            id,
            planned,
            last_ok: None,
        }
    }
}

impl Observer for AttemptWriter<'_> {
    async fn exchange(&mut self, ex: &Exchange, attempt: u32, error: Option<&CxoneError>) {
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
            latency_ms = ex.latency.as_millis() as u64,
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
        let new = new_attempt(self.id, ex, attempt, Some(error));
        let text = error.to_string();
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
