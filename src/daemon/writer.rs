//! The one writer of recording rows while the daemon runs.
//!
//! Jobs hand their row updates (an audit row and the state it leads to)
//! to this task and wait for them to be durable. The task commits
//! whatever has queued up in ONE transaction: a burst of thousands of
//! starts costs a handful of fsyncs instead of one each, and jobs never
//! queue on SQLite's busy handler. A batch refused because another process
//! holds the write lock is retried (the contact id the vendor returned
//! must not be lost) for up to a minute, then reported to every waiter.

use crate::store::{RowWrite, Store};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Most writes per transaction.
const BATCH: usize = 2048;
/// How long a batch refused as busy is retried.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

type Reply = oneshot::Sender<Result<bool, String>>;

/// A handle to the writer task. Cheap to clone.
#[derive(Clone)]
pub struct Writer {
    tx: mpsc::UnboundedSender<(RowWrite, Reply)>,
}

impl Writer {
    /// Starts the writer task on `store`.
    pub fn spawn(store: Store) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self { tx }, tokio::spawn(run(store, rx)))
    }

    /// Writes `w` and waits until it is committed. `Ok(moved)`: whether the
    /// row's state moved; `Err`: why it could not be written.
    pub async fn write(&self, w: RowWrite) -> Result<bool, String> {
        let (reply, done) = oneshot::channel();
        self.tx
            .send((w, reply))
            .map_err(|_| "the writer has stopped".to_owned())?;
        done.await
            .unwrap_or_else(|_| Err("the writer has stopped".to_owned()))
    }
}

async fn run(store: Store, mut rx: mpsc::UnboundedReceiver<(RowWrite, Reply)>) {
    let mut batch: Vec<(RowWrite, Reply)> = Vec::with_capacity(BATCH);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let writes: Vec<RowWrite> = batch.iter().map(|(w, _)| w.clone()).collect();
        let give_up = tokio::time::Instant::now() + GIVE_UP_AFTER;
        let mut delay = Duration::from_millis(50);
        let outcome = loop {
            match store.write_batch(&writes).await {
                Err(e) if e.is_busy() && tokio::time::Instant::now() < give_up => {
                    tracing::warn!(error = %e, writes = writes.len(), "database busy; retrying the batch");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(2));
                }
                other => break other,
            }
        };
        match outcome {
            Ok(results) => {
                for ((_, reply), r) in batch.drain(..).zip(results) {
                    let _ = reply.send(r.map_err(|e| e.to_string()));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, writes = writes.len(), "could not write recording updates");
                let text = e.to_string();
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(text.clone()));
                }
            }
        }
    }
}
