//! The one writer of recording rows while the daemon runs.
//!
//! Every write to a `recordings` row goes through this task: the claims
//! (the write-ahead rows, pending or missed) and every update after them
//! (an audit row and the state it leads to). Updates that queue up are
//! committed in ONE transaction: a burst of thousands of starts costs a
//! handful of fsyncs instead of one each, and jobs never queue on
//! SQLite's busy handler. A claim is its own transaction (its answer, the
//! ids, decides who sends the start). A write refused because another
//! process holds the write lock is retried (a contact id the vendor
//! returned must not be lost) for up to a minute, with the pure backoff of
//! [`crate::retry`] on the daemon's clock, then reported to every waiter.
//! An update is retried the same way while the database is read-only or
//! its disk full (an operator can mend either); a claim refused so fails
//! at once, so no start leaves that could not be recorded.
//! A write the store's fence refuses (PostgreSQL: the row is no longer
//! this instance's) is not retried: it comes back to its job alone as
//! `StoreError::Lost`, and the rest of the batch lands.
//!
//! Some writes do not come here, on purpose: the heartbeat (a key in
//! `daemon_state`, not a recording row) and lease renewal and release
//! (PostgreSQL's `owner`/`lease_until` columns). Both must not wait
//! behind a burst of row writes: a renewal stuck in the queue would let
//! the lease run out under a live instance. A third deletes rows: a row
//! claimed ahead and withdrawn before its instant (`dispatch`,
//! `finish_withdrawals`) was taken out of the open rows before any job
//! could send or write for it, so no write of this queue concerns it; its
//! `DELETE` checks that it has no attempt and no contact id.
//!
//! Writes go to a [`RowSink`]: the store, or in tests a wrapper around it
//! (a claim whose commit succeeds and whose answer is lost).

use super::activity::{Activity, Busy};
use super::DaemonError;
use crate::clock::Clock;
use crate::retry::{Decision, RetryPolicy};
use crate::store::{NewRecording, RecordingId, RowWrite, Store, StoreError};
use futures::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most updates per transaction.
const BATCH: usize = 2048;
/// How long a write refused as busy is retried.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
/// Backoff while the database is busy: 50 ms doubling to 2 s, without
/// jitter (there is one writer: nobody to spread out from).
const BUSY: RetryPolicy = RetryPolicy {
    base_ms: 50,
    cap_ms: 2_000,
    max_server_errors: 0,
};

/// Where the writer's writes go. [`Store`] is the real one; a test may
/// wrap it (see `Hooks::wrap_rows`).
pub trait RowSink: Send + Sync + 'static {
    /// [`Store::claim_many`].
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>>;

    /// [`Store::write_batch`].
    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>>;
}

impl RowSink for Store {
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>> {
        Box::pin(Store::claim_many(self, rows))
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>> {
        Box::pin(Store::write_batch(self, writes))
    }
}

/// Wraps the daemon's own store (with this instance as owner) into the
/// sink its writes go to.
pub type WrapRows = Arc<dyn Fn(Store) -> Arc<dyn RowSink> + Send + Sync>;

type Claimed = Result<Vec<Option<RecordingId>>, DaemonError>;
type Written = Result<bool, DaemonError>;

/// One request to the writer, with the [`Busy`] that keeps the daemon
/// counted as working until the writer has answered.
enum Op {
    Claim(Vec<NewRecording>, oneshot::Sender<Claimed>, Busy),
    Update(RowWrite, oneshot::Sender<Written>, Busy),
}

/// A handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<Op>,
    activity: Arc<Activity>,
}

impl Writer {
    /// Starts the writer task on `sink`, waiting on `clock` while the
    /// database is busy.
    pub fn spawn(
        sink: Arc<dyn RowSink>,
        clock: Arc<dyn Clock>,
        activity: Arc<Activity>,
    ) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(sink, clock, activity.clone(), rx));
        (Self { tx, activity }, task)
    }

    /// Claims `rows` in one transaction: `Some(id)` for each row this
    /// process now owns, in input order.
    pub async fn claim(&self, rows: Vec<NewRecording>) -> Claimed {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Op::Claim(rows, reply, self.activity.busy()))
            .map_err(|_| DaemonError::WriterStopped)?;
        self.activity
            .waiting(done)
            .await
            .unwrap_or(Err(DaemonError::WriterStopped))
    }

    /// Writes `w` and waits until it is committed. `Ok(moved)`: whether the
    /// row's state moved.
    pub async fn write(&self, w: RowWrite) -> Written {
        let (reply, done) = oneshot::channel();
        self.tx
            .send(Op::Update(w, reply, self.activity.busy()))
            .map_err(|_| DaemonError::WriterStopped)?;
        self.activity
            .waiting(done)
            .await
            .unwrap_or(Err(DaemonError::WriterStopped))
    }
}

async fn run(
    sink: Arc<dyn RowSink>,
    clock: Arc<dyn Clock>,
    activity: Arc<Activity>,
    mut rx: mpsc::UnboundedReceiver<Op>,
) {
    let mut held: Option<Op> = None;
    loop {
        let first = match held.take() {
            Some(op) => op,
            None => match rx.recv().await {
                Some(op) => op,
                None => return,
            },
        };
        // One guard for the work at hand; the requests' own guards go.
        let _busy = activity.busy();
        match first {
            Op::Claim(rows, reply, queued) => {
                drop(queued);
                // A claim refused for any other reason fails at once: no
                // start is sent, and the next pass claims again.
                let outcome = patiently(clock.as_ref(), "claim", StoreError::is_busy, || {
                    sink.claim_many(&rows)
                })
                .await;
                if let Err(e) = &outcome {
                    tracing::error!(error = %e, rows = rows.len(), "could not claim segments");
                }
                let _ = reply.send(outcome.map_err(DaemonError::Store));
            }
            Op::Update(w, reply, queued) => {
                drop(queued);
                let mut batch = vec![(w, reply)];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(Op::Update(w, reply, queued)) => {
                            drop(queued);
                            batch.push((w, reply));
                        }
                        Ok(claim) => {
                            // Claims keep their place in the queue.
                            held = Some(claim);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                update(sink.as_ref(), clock.as_ref(), batch).await;
            }
        }
    }
}

async fn update(
    sink: &dyn RowSink,
    clock: &dyn Clock,
    batch: Vec<(RowWrite, oneshot::Sender<Written>)>,
) {
    let (writes, replies): (Vec<RowWrite>, Vec<_>) = batch.into_iter().unzip();
    // An update may carry a contact id the vendor returned: it waits for
    // a read-only or full database to be mended too (up to the minute),
    // not only for the write lock.
    let retry = |e: &StoreError| e.is_busy() || e.is_unwritable();
    match patiently(clock, "update", retry, || sink.write_batch(&writes)).await {
        Ok(results) => {
            for (reply, r) in replies.into_iter().zip(results) {
                let _ = reply.send(r.map_err(DaemonError::Store));
            }
        }
        Err(e) => {
            tracing::error!(error = %e, writes = writes.len(), "could not write recording updates");
            let e = Arc::new(e);
            for reply in replies {
                let _ = reply.send(Err(DaemonError::Batch(e.clone())));
            }
        }
    }
}

/// Runs `write` until it is not refused with an error `retry` accepts,
/// or a minute has passed.
async fn patiently<'a, T, F>(
    clock: &dyn Clock,
    what: &'static str,
    retry: impl Fn(&StoreError) -> bool,
    mut write: F,
) -> Result<T, StoreError>
where
    F: FnMut() -> BoxFuture<'a, Result<T, StoreError>>,
{
    let began = clock.instant();
    let mut attempt = 0;
    loop {
        match write().await {
            Err(e) if retry(&e) => {
                attempt += 1;
                let left = GIVE_UP_AFTER.saturating_sub(clock.instant() - began);
                match BUSY.next_delay_within(attempt, None, 1.0, left) {
                    Decision::Wait(d) => {
                        tracing::warn!(error = %e, attempt, what, "database not writable now; retrying");
                        clock.sleep(d).await;
                    }
                    Decision::GiveUp => return Err(e),
                }
            }
            other => return other,
        }
    }
}
