//! Periodic housekeeping on monotonic tickers ([`Ticker`]): a heartbeat
//! every few seconds (so a restart knows since when windows were missed,
//! and `recsched status` and `/healthz` know the database takes writes)
//! and, where rows carry leases (PostgreSQL), lease work every third of
//! the lease: renew this instance's leases, drop from its mirror the rows
//! it no longer owns (stopping every request for them at once: a renewal
//! that finds a row gone is the fence's other half), and take over the
//! rows whose lease ran out. Renewing three times per lease means two renewals in a row may
//! fail (a slow query, a short database outage) before a live instance
//! loses its rows.
//!
//! Both run on the monotonic clock, never on a schedule compared with the
//! wall clock: a wall-clock step back must not stall the heartbeat or let
//! a lease run out under a live instance.

use super::activity::Busy;
use super::{reconcile, Shared, LAST_SEEN_KEY};
use crate::clock::{format_utc, Ticker};
use crate::store::Adopted;
use std::collections::{BTreeMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How often the heartbeat is written.
pub(super) const HEARTBEAT_EVERY: Duration = Duration::from_secs(5);

/// Never renew more often than this, whatever the lease.
const MIN_RENEWAL: Duration = Duration::from_millis(500);

/// The running housekeeping tasks.
pub(super) struct Housekeeping {
    stop: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

/// Starts the heartbeat and, where leases exist, lease renewal.
pub(super) fn start(shared: &Arc<Shared>, tracker: &TaskTracker) -> Housekeeping {
    let stop = CancellationToken::new();
    let mut tasks = Vec::new();
    let heartbeat = {
        let shared = shared.clone();
        move || {
            let shared = shared.clone();
            async move { heartbeat(&shared).await }
        }
    };
    tasks.push(spawn_every(shared, HEARTBEAT_EVERY, &stop, heartbeat));
    if let Some(lease) = shared.store.lease() {
        let every = (lease / 3).max(MIN_RENEWAL);
        let renew = {
            let shared = shared.clone();
            let tracker = tracker.clone();
            move || {
                let shared = shared.clone();
                let tracker = tracker.clone();
                async move { renew_and_take_over(&shared, &tracker).await }
            }
        };
        tasks.push(spawn_every(shared, every, &stop, renew));
    }
    Housekeeping { stop, tasks }
}

impl Housekeeping {
    pub(super) async fn stop(self) {
        self.stop.cancel();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "a housekeeping task did not stop cleanly");
            }
        }
    }
}

/// Runs `work` on a [`Ticker`] of `period` until `stop`.
fn spawn_every<F, Fut>(
    shared: &Shared,
    period: Duration,
    stop: &CancellationToken,
    mut work: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let mut ticker = Ticker::new(shared.clock.clone(), period);
    let stop = stop.clone();
    let busy: Busy = shared.activity.busy();
    tokio::spawn(async move {
        let _busy = busy;
        loop {
            tokio::select! {
                () = ticker.tick() => work().await,
                () = stop.cancelled() => return,
            }
        }
    })
}

/// Writes the heartbeat and reports the outcome to `/healthz`.
async fn heartbeat(shared: &Shared) {
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
}

/// One round of lease work: renew ours, forget (and stop every request
/// for) what is no longer ours, adopt what lost instances left.
async fn renew_and_take_over(shared: &Arc<Shared>, tracker: &TaskTracker) {
    // Rows tracked before the renewal: each was committed as ours, so a
    // row among them that the renewal does not renew is no longer ours.
    // (A row claimed after this snapshot is left alone: its lease is new.)
    // Only tracked rows are renewed: a row this instance gave up runs out
    // and is taken over (by this instance too, below).
    let before = shared.open.ids();
    let sent = shared.clock.instant();
    match shared.store.renew_leases_of(&before).await {
        Ok(renewal) => {
            if let Some(until) = shared.lease_from(sent) {
                shared.open.leased(&renewal.renewed, until);
            }
            shared.lose(
                &renewal.lost,
                "their lease ran out and another instance took them over",
            );
            // Final by another hand (or deleted): nothing left to do.
            let renewed: HashSet<_> = renewal.renewed.iter().chain(&renewal.lost).collect();
            let done: Vec<_> = before
                .into_iter()
                .filter(|id| !renewed.contains(id))
                .collect();
            let dropped = shared.open.lost(&done);
            if dropped > 0 {
                tracing::debug!(rows = dropped, "no longer open: final, or deleted");
            }
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not renew leases; another instance takes our open rows over if this lasts past database.lease_seconds");
            return;
        }
    }
    // A row that does not read back is given back by the store, and named.
    let sent = shared.clock.instant();
    let rows = match shared.store.adopt_open_rows().await {
        Ok(read) => {
            shared.bad_rows.found(super::reload::Found::Open, &read.bad);
            read.rows
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not look for rows of lost instances");
            return;
        }
    };
    // The takeover renews this instance's own rows whose lease ran out
    // while they were tracked (renewals failed for a while): not news.
    let (mine, rows): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|a| shared.open.contains(a.row.id));
    if let Some(until) = shared.lease_from(sent) {
        let ids: Vec<_> = mine.iter().map(|a| a.row.id).collect();
        shared.open.leased(&ids, until);
    }
    if rows.is_empty() {
        return;
    }
    let mut from: BTreeMap<String, usize> = BTreeMap::new();
    for Adopted { previous_owner, .. } in &rows {
        *from
            .entry(previous_owner.clone().unwrap_or_else(|| "none".into()))
            .or_default() += 1;
    }
    let total = rows.len();
    shared.metrics.leases_taken_over(total);
    let rows = rows.into_iter().map(|a| a.row).collect();
    match reconcile::adopt(shared, tracker, rows, shared.clock.now(), sent).await {
        Ok((tracked, resumed)) => {
            tracing::warn!(
                rows = total,
                tracked,
                resumed,
                from = ?from,
                "took over open rows whose lease ran out"
            );
            // Their ends are the loop's to plan.
            shared.wake.notify_one();
        }
        Err(e) => tracing::error!(error = %e, rows = total, "could not adopt rows taken over"),
    }
}
