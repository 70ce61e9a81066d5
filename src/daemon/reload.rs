//! Live configuration: notices edits to `policies` and `policy_users` made
//! by any writer (sqlite3, the CLI, another program) and hands the loop a
//! freshly parsed policy set.
//!
//! Edits are noticed by polling `policy_revision`, a counter the schema's
//! triggers bump on every change to those tables: one integer read per
//! poll, and the daemon's own recording writes never trip it (as they
//! would `PRAGMA data_version`). SIGHUP forces a reload through a
//! [`Trigger`]. A row that does not parse is logged once, by name, and
//! skipped; every other policy goes on.
//!
//! On PostgreSQL the same triggers also `NOTIFY recsched_policies`, and
//! the watcher `LISTEN`s on a connection of its own: an edit is seen at
//! its commit, not at the next poll. Polling goes on as the fallback (a
//! notification sent while the listening connection was down is lost);
//! a broken listener is dropped and opened again a little later.

use super::{DaemonError, Notifier};
use crate::clock::Clock;
use crate::metrics::Metrics;
use crate::policy::{self, Policy};
use crate::store::PolicyListener;
use crate::store::Store;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{watch, Notify};
use tokio_util::sync::CancellationToken;

/// Forces a reload (SIGHUP).
#[derive(Clone, Default)]
pub struct Trigger(Arc<Notify>);

impl Trigger {
    pub fn fire(&self) {
        self.0.notify_one();
    }
}

/// How long after a listener broke the watcher tries to listen again.
const RELISTEN_AFTER: Duration = Duration::from_secs(10);

/// Waits for the next notification, or forever without a listener.
async fn notified(listener: &mut Option<PolicyListener>) -> Result<(), crate::store::StoreError> {
    match listener {
        Some(l) => l.changed().await,
        None => std::future::pending().await,
    }
}

/// Polls for edits and publishes the parsed, enabled policies.
pub struct Watcher {
    store: Store,
    poll: Duration,
    trigger: Trigger,
    metrics: Arc<Metrics>,
    notifier: Notifier,
    clock: Arc<dyn Clock>,
    tx: watch::Sender<Arc<Vec<Policy>>>,
    revision: Option<i64>,
    /// Problems already logged, so an unchanged bad row is not logged on
    /// every reload.
    reported: HashSet<String>,
}

impl Watcher {
    pub fn new(
        store: Store,
        poll: Duration,
        trigger: Trigger,
        metrics: Arc<Metrics>,
        notifier: Notifier,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            store,
            poll,
            trigger,
            metrics,
            notifier,
            clock,
            tx: watch::Sender::new(Arc::new(Vec::new())),
            revision: None,
            reported: HashSet::new(),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Arc<Vec<Policy>>> {
        self.tx.subscribe()
    }

    /// Loads and publishes the policies now; returns them.
    pub async fn load_now(&mut self) -> Result<Arc<Vec<Policy>>, DaemonError> {
        // The revision first: an edit landing between the two reads shows
        // as a new revision on the next poll and is loaded then.
        let revision = self.store.policy_revision().await?;
        let rows = self.store.policy_rows().await?;
        let (parsed, errors) = policy::load(rows);
        let mut now_reported = HashSet::new();
        for e in &errors {
            let text = e.to_string();
            if !self.reported.contains(&text) {
                tracing::error!(error = %text, "invalid policy row skipped");
            }
            now_reported.insert(text);
        }
        self.reported = now_reported;
        self.metrics.invalid_policies.set(errors.len() as i64);
        let enabled: Vec<Policy> = parsed.into_iter().filter(|p| p.enabled).collect();
        self.metrics.policies.set(enabled.len() as i64);
        self.metrics
            .last_reload_timestamp_seconds
            .set(self.clock.now().timestamp_millis() as f64 / 1000.0);
        self.metrics.reloaded();
        if self.revision.is_some() {
            tracing::info!(
                revision,
                policies = enabled.len(),
                invalid = errors.len(),
                "policies reloaded"
            );
        }
        self.revision = Some(revision);
        let enabled = Arc::new(enabled);
        self.tx.send_replace(enabled.clone());
        Ok(enabled)
    }

    /// Opens the listener where the database pushes changes; logs and
    /// goes on polling where it cannot.
    async fn listen(&self) -> Option<PolicyListener> {
        match self.store.listen_policies().await {
            Ok(listener) => listener,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for policy changes; polling only");
                None
            }
        }
    }

    /// Polls (and listens, where it can) until `cancel`.
    pub async fn run(mut self, cancel: CancellationToken) {
        let mut listener = self.listen().await;
        let shared = self.store.is_shared();
        let mut broke_at = (shared && listener.is_none()).then(Instant::now);
        loop {
            if shared
                && listener.is_none()
                && broke_at.is_some_and(|t| t.elapsed() >= RELISTEN_AFTER)
            {
                listener = self.listen().await;
                broke_at = listener.is_none().then(Instant::now);
            }
            let forced = tokio::select! {
                () = tokio::time::sleep(self.poll) => false,
                () = self.trigger.0.notified() => true,
                heard = notified(&mut listener) => {
                    if let Err(e) = heard {
                        tracing::warn!(error = %e, "lost the policy change listener; polling until it is back");
                        listener = None;
                        broke_at = Some(Instant::now());
                    }
                    false
                }
                () = cancel.cancelled() => return,
            };
            if forced {
                tracing::info!("reload requested");
                self.notifier.reloading();
            } else {
                match self.store.policy_revision().await {
                    Ok(r) if Some(r) == self.revision => continue,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read the policy revision");
                        continue;
                    }
                }
            }
            if let Err(e) = self.load_now().await {
                self.metrics.reload_failed();
                tracing::warn!(error = %e, "could not reload policies; keeping the previous set");
            }
            if forced {
                self.notifier.ready();
            }
        }
    }
}
