//! Periodic housekeeping on tokio-cron-scheduler (the card's choice, used
//! only where half a second of slack does not matter): every few seconds
//! write a heartbeat (so a restart knows since when windows were missed)
//! and wake the loop for a sweep (ends whose job finished after the loop
//! last looked, rows a failed write left behind).

use super::{DaemonError, Shared, LAST_SEEN_KEY};
use crate::clock::format_utc;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;
use tokio_cron_scheduler::{Job, JobScheduler};

/// How often housekeeping runs.
const EVERY: Duration = Duration::from_secs(5);

pub struct Housekeeping {
    scheduler: JobScheduler,
    /// Notified on every sweep; the loop waits on it.
    pub wake: Arc<Notify>,
}

pub async fn start(shared: Arc<Shared>) -> Result<Housekeeping, DaemonError> {
    let err = |e: tokio_cron_scheduler::JobSchedulerError| DaemonError::Housekeeping(e.to_string());
    let scheduler = JobScheduler::new().await.map_err(err)?;
    let wake = Arc::new(Notify::new());
    let job_wake = wake.clone();
    let job = Job::new_repeated_async(EVERY, move |_id, _lock| {
        let shared = shared.clone();
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
            wake.notify_one();
        })
    })
    .map_err(err)?;
    scheduler.add(job).await.map_err(err)?;
    scheduler.start().await.map_err(err)?;
    Ok(Housekeeping { scheduler, wake })
}

impl Housekeeping {
    pub async fn stop(mut self) {
        if let Err(e) = self.scheduler.shutdown().await {
            tracing::warn!(error = %e, "housekeeping scheduler did not stop cleanly");
        }
    }
}
