//! Periodic housekeeping on tokio-cron-scheduler (the card's choice, used
//! only where half a second of slack does not matter): every few seconds
//! write a heartbeat (so a restart knows since when windows were missed)
//! and, when a row is overdue (an end whose job finished after the loop
//! last looked), wake the loop for a sweep.
//!
//! Where rows carry leases (PostgreSQL), a second job runs every third of
//! the lease: renew this instance's leases, drop from its mirror the rows
//! it no longer owns, and take over the rows of instances whose lease ran
//! out. Renewing three times per lease means two renewals in a row may
//! fail (a slow query, a short database outage) before a live instance
//! loses its rows.

use super::{adopt, DaemonError, Shared, LAST_SEEN_KEY};
use crate::clock::format_utc;
use crate::store::Adopted;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};
use tokio_util::task::TaskTracker;

/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(5);

/// Never renew more often than this, whatever the lease.
const MIN_RENEWAL: Duration = Duration::from_millis(500);

pub struct Housekeeping {
    scheduler: JobScheduler,
    /// Notified on every sweep; the loop waits on it.
    pub wake: Arc<Notify>,
}

pub async fn start(shared: Arc<Shared>, tracker: TaskTracker) -> Result<Housekeeping, DaemonError> {
    let err = |e: tokio_cron_scheduler::JobSchedulerError| DaemonError::Housekeeping(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(err)?;
    let wake = Arc::new(Notify::new());
    let job_wake = wake.clone();
    let heartbeat_shared = shared.clone();
    let job = Job::new_repeated_async(EVERY, move |_id, _lock| {
        let shared = heartbeat_shared.clone();
        let wake = job_wake.clone();
        Box::pin(async move {
            let at = shared.clock.now();
            match shared
                .store
                .set_state_value(LAST_SEEN_KEY, &format_utc(at))
                .await
            {
                Ok(()) => shared.liveness.write_ok(at),
                Err(e) => {
                    tracing::warn!(error = %e, "could not write the heartbeat");
                    shared.liveness.write_failed(e.to_string());
                }
            }
            // The sweep: wake the loop only when a row is overdue (its job
            // finished after the loop last looked); an idle daemon stays
            // asleep.
            if shared.overdue(at) {
                wake.notify_one();
            }
        })
    })
    .map_err(err)?;
    scheduler.add(job).await.map_err(err)?;

    if let Some(lease) = shared.store.lease() {
        let every = (lease / 3).max(MIN_RENEWAL);
        let lease_wake = wake.clone();
        let job = Job::new_repeated_async(every, move |_id, _lock| {
            let shared = shared.clone();
            let tracker = tracker.clone();
            let wake = lease_wake.clone();
            Box::pin(async move {
                renew_and_take_over(&shared, &tracker).await;
                wake.notify_one();
            })
        })
        .map_err(err)?;
        scheduler.add(job).await.map_err(err)?;
    }
    scheduler.start().await.map_err(err)?;
    Ok(Housekeeping { scheduler, wake })
}

/// One round of lease work: renew ours, forget what is no longer ours,
/// adopt what lost instances left.
async fn renew_and_take_over(shared: &Arc<Shared>, tracker: &TaskTracker) {
    // Rows tracked before the renewal: each was committed as ours, so a
    // row among them that the renewal does not return is no longer ours.
    // (A row claimed after this snapshot is left alone.)
    let before: Vec<i64> = shared
        .tracked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .copied()
        .collect();
    match shared.store.renew_leases().await {
        Ok(ours) => {
            let ours: HashSet<i64> = ours.into_iter().map(|id| id.get()).collect();
            let lost: Vec<i64> = before.into_iter().filter(|id| !ours.contains(id)).collect();
            if !lost.is_empty() {
                let mut tracked = shared.tracked.lock().unwrap_or_else(|e| e.into_inner());
                let mut gone = 0;
                for id in &lost {
                    // A job still busy on it writes its answer (guarded by
                    // state in SQL); only idle mirrors are dropped.
                    if tracked.get(id).is_some_and(|t| !t.busy) {
                        tracked.remove(id);
                        gone += 1;
                    }
                }
                if gone > 0 {
                    shared.metrics.leases_lost(gone);
                    tracing::debug!(rows = gone, "no longer ours (final, or taken over)");
                }
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not renew leases; another instance takes our open rows over if this lasts past database.lease_seconds");
            return;
        }
    }
    let rows = match shared.store.adopt_open_rows().await {
        Ok(rows) if rows.is_empty() => return,
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "could not look for rows of lost instances");
            return;
        }
    };
    let mut from: BTreeMap<String, usize> = BTreeMap::new();
    for Adopted { previous_owner, .. } in &rows {
        *from
            .entry(previous_owner.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    let total = rows.len();
    shared.metrics.leases_taken_over(total);
    match adopt(shared, tracker, rows, shared.clock.now()).await {
        Ok((tracked, resumed)) => tracing::warn!(
            rows = total,
            tracked,
            resumed,
            from = ?from,
            "took over open rows whose lease ran out"
        ),
        Err(e) => tracing::error!(error = %e, rows = total, "could not adopt rows taken over"),
    }
}

impl Housekeeping {
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "housekeeping scheduler did not stop cleanly");
        }
    }
}
