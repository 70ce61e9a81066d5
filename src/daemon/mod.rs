//! The long-running service: the only home of timers and tasks.
//!
//! # Shape
//! - `run_loop`: the scheduling loop owns "when". Each turn is a planning
//!   pass, then a wait until the next instant the pass computed, a policy
//!   edit, or shutdown.
//! - `dispatch`: one pass: read the durable rows, ask `decide` (pure) what
//!   to do now, and hand the due segments to a starter task that claims
//!   them (the write-ahead rows, committed before any request) and hands
//!   each user's work to a job, paced, while the loop goes on.
//! - `ahead`: claim ahead: rows of a window claimed seconds before it
//!   opens, the client made ready, the starts sent at the instant; rows
//!   whose policy changed meanwhile withdrawn.
//! - `decide`: the pass's decision as a pure function, with its own tests.
//! - `jobs`: one user's ends, then the user's start, each retried up to
//!   its deadline; every exchange goes to the audit trail.
//! - `open_rows`: the one owner of the open rows this process looks after
//!   and of which job holds each.
//! - `reconcile`: becoming responsible for open rows: at start, when
//!   another instance's lease ran out, and when a claim's answer was lost.
//! - `writer`: the one writer of recording rows (batched commits).
//! - `housekeeping`: the heartbeat and, on PostgreSQL, lease renewal.
//! - [`retention`]: the daily history sweep (`[history]`), also run by
//!   `recsched prune`.
//! - `activity`: which tasks are at work, so tests can drive the clock.
//! - [`liveness`]: is the daemon alive: what `/healthz` answers, and the
//!   one staleness rule `recsched status` applies to the stored heartbeat.
//!
//! # Time
//! Every wait goes through the [`Clock`]: the loop's, the jobs' retries,
//! the writer's backoff and the housekeeping tickers. Windows are planned
//! in wall-clock time, but no wait trusts the wall clock to stand still:
//! the loop sleeps on the monotonic clock in slices of at most 5 s and
//! reads the wall clock after each one. When the wall clock moved more
//! than a second more (or less) than the monotonic clock, it stepped: the
//! loop logs the step and plans again at once, so a window a forward step
//! brought closer starts on time by the new clock, and windows a step
//! jumped over are started late if they still have time, or recorded
//! `missed`. After a step back, a window already claimed is never sent
//! again (its row holds the segment) and a live recording whose window
//! now lies ahead is not ended early. The heartbeat and lease renewal run
//! on monotonic tickers, so a step changes neither their period nor their
//! liveness. tokio-cron-scheduler, which compares its schedule with the
//! wall clock (a step back would stall it for the length of the step), is
//! kept for jobs where that does no harm, such as a daily sweep; nothing
//! time-critical runs on it.
//!
//! The durable record is the `recordings` table: after a crash, a new
//! process reads it back, resumes pending starts, tracks live recordings
//! and records what was missed. In-memory state only mirrors it.
//!
//! # Several instances (PostgreSQL)
//! Every instance plans every segment and races to claim it; the unique
//! key gives each to one. Claiming ahead, each walks a burst in its own
//! order and claims its share (half) first, the rest after a short pause
//! if it met nobody (`ahead`), so instances split a burst rather than the
//! first to plan taking it whole; every instance still tries every start,
//! so none is left unclaimed when one dies. The winner is the row's `owner` (`instance`)
//! and holds a lease on it while it is open, renewed by housekeeping every
//! third of `database.lease_seconds`. An instance whose lease on a row ran
//! out (it died, or lost the database for longer than the lease) loses the
//! row: housekeeping in another instance takes it over and adopts it
//! exactly as reconcile adopts the rows of a crashed predecessor: a
//! pending start is sent again (the vendor never makes a second recording
//! for a user, it answers with the running one's contact id), a live
//! recording is tracked and ended or stopped on time. A clean shutdown
//! releases its leases so the others take over at once. An instance that
//! stalled past its lease and woke to find a row taken over sends nothing
//! more for it: its writes to the row are fenced by the store, each
//! request first checks the lease it has left (`jobs`), and housekeeping's
//! renewal drops what it lost (`open_rows`). On SQLite there is one
//! instance per file and no lease.

mod activity;
mod ahead;
mod decide;
pub mod directory;
mod dispatch;
pub mod endpoints;
mod housekeeping;
mod instance;
mod jobs;
pub mod liveness;
mod notify;
mod open_rows;
mod reconcile;
pub mod reload;
pub mod retention;
mod run_loop;
mod settings;
mod writer;

pub use activity::Activity;
pub use instance::InstanceId;
pub use liveness::Liveness;
pub use notify::Notifier;
pub use settings::Settings;
pub use writer::{RowSink, WrapRows};

pub use decide::{first_pass, EndReason, Plan, Start};

use crate::clock::{format_utc, Clock};
use crate::cxone::Client;
use crate::metrics::Metrics;
use crate::recording::UserId;
use crate::retry::RetryPolicy;
use crate::store::{RecordingId, Store, StoreError};
use activity::CountingClock;
use chrono::{DateTime, Utc};
use open_rows::OpenRows;
use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The `daemon_state` key of the instant the loop was last seen alive
/// (written every few seconds; `recsched status` reads it).
pub const LAST_SEEN_KEY: &str = "last_seen";

/// Why the daemon, or one of its writes, failed.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A batch of row writes failed as a whole; every write in it gets the
    /// same error.
    #[error(transparent)]
    Batch(Arc<StoreError>),
    /// The writer task is gone (the daemon is stopping).
    #[error("the recording-row writer has stopped")]
    WriterStopped,
}

/// What the daemon runs with.
pub struct Context {
    pub store: Store,
    pub client: Arc<Client>,
    pub clock: Arc<dyn Clock>,
    pub schedule: Settings,
    pub retry: RetryPolicy,
}

/// The daemon's ties to the outside: systemd, metrics, health, and the
/// seams tests use.
#[derive(Clone, Default)]
pub struct Hooks {
    /// SIGHUP: reload policies now.
    pub reload: reload::Trigger,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
    pub notifier: Notifier,
    /// Counts the daemon's tasks at work: a test driving a manual clock
    /// moves it only while this reads zero.
    pub activity: Arc<Activity>,
    /// Wraps the store the writer writes to; `None` in production. Tests
    /// use it to lose a claim's answer after its commit.
    pub wrap_rows: Option<WrapRows>,
}

/// State shared by the loop and its jobs.
pub(crate) struct Shared {
    /// Writes claims as this instance (see [`instance`]).
    store: Store,
    instance: InstanceId,
    client: Arc<Client>,
    /// The context's clock, with every wait counted in `activity`.
    clock: Arc<dyn Clock>,
    schedule: Settings,
    retry: RetryPolicy,
    /// Stops new work; also cancels waits between retries.
    cancel: CancellationToken,
    /// The open rows this process is responsible for.
    open: OpenRows,
    /// One lock per user: requests for one user never overlap. With the
    /// map's size at which unheld locks are next swept out.
    user_locks: Mutex<(UserLocks, usize)>,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    /// Bad rows found so far, reported once per change.
    bad_rows: Arc<reload::BadRows>,
    activity: Arc<Activity>,
    /// The one writer of recording rows (batched commits).
    writer: writer::Writer,
    /// Segments `(user, start)` whose claim failed: its commit may have
    /// landed with the answer lost. The next pass adopts those it finds
    /// open and this instance's.
    unconfirmed: Mutex<Vec<(UserId, DateTime<Utc>)>>,
    /// Wakes the loop to plan now (rows were taken over).
    wake: tokio::sync::Notify,
}

/// One async lock per user.
type UserLocks = HashMap<UserId, Arc<tokio::sync::Mutex<()>>>;

impl Shared {
    fn user_lock(&self, user: &UserId) -> Arc<tokio::sync::Mutex<()>> {
        let mut guard = self.user_locks.lock().unwrap_or_else(|e| e.into_inner());
        let (locks, sweep_at) = &mut *guard;
        // Drop locks nobody holds, so the map does not grow without bound;
        // sweep only when it has doubled since the last sweep, so a burst
        // of N users costs O(N), not a scan per user.
        if locks.len() >= *sweep_at {
            locks.retain(|_, l| Arc::strong_count(l) > 1);
            *sweep_at = (locks.len() * 2).max(4096);
        }
        locks.entry(user.clone()).or_default().clone()
    }

    /// Remembers segments `(user, start)` whose claim failed, for the next
    /// pass to adopt what it finds of them (see `unconfirmed`).
    fn remember_unconfirmed(&self, keys: impl IntoIterator<Item = (UserId, DateTime<Utc>)>) {
        self.unconfirmed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(keys);
    }

    /// Until when a lease set by a statement sent at `sent` surely lasts,
    /// where rows carry leases (see `open_rows`).
    fn lease_from(&self, sent: tokio::time::Instant) -> Option<tokio::time::Instant> {
        self.store.lease().map(|lease| sent + lease)
    }

    /// Rows `ids` are no longer this instance's (`why`): forgets them and
    /// stops every request for them at once; logs and counts those it
    /// still tracked.
    fn lose(&self, ids: &[RecordingId], why: &'static str) {
        let dropped = self.open.lost(ids);
        if dropped > 0 {
            self.metrics.leases_lost(dropped);
            tracing::warn!(
                rows = dropped,
                recordings = ?ids.iter().map(|id| id.get()).collect::<Vec<_>>(),
                "lost open rows to another instance ({why}); no further request is sent for them"
            );
        }
    }

    /// Spawns a job on `tracker`, counted as working from this moment.
    fn spawn_job(&self, tracker: &TaskTracker, job: impl Future<Output = ()> + Send + 'static) {
        let busy = self.activity.busy();
        tracker.spawn(async move {
            let _busy = busy;
            job.await;
        });
    }
}

/// Runs the daemon until `shutdown` is cancelled: reconcile, then the
/// scheduling loop; on shutdown, lets requests in flight finish (bounded
/// by `schedule.shutdown_grace_seconds`) and returns.
pub async fn run(ctx: Context, shutdown: CancellationToken) -> Result<(), DaemonError> {
    run_with(ctx, shutdown, Hooks::default(), || {}).await
}

/// [`run`] with its [`Hooks`] to the outside, and a callback called once
/// migrations and reconcile are done (when systemd hears READY=1).
pub async fn run_with(
    ctx: Context,
    shutdown: CancellationToken,
    hooks: Hooks,
    on_ready: impl FnOnce(),
) -> Result<(), DaemonError> {
    let activity = hooks.activity.clone();
    // The loop's own: it is at work whenever it is not waiting.
    let _busy = activity.busy();
    let clock: Arc<dyn Clock> = Arc::new(CountingClock {
        inner: ctx.clock,
        activity: activity.clone(),
    });
    let jobs_cancel = shutdown.child_token();
    let instance = InstanceId::generate();
    let store = ctx.store.for_instance(instance.as_str());
    let bad_rows = Arc::new(reload::BadRows::new(hooks.metrics.clone()));
    let sink: Arc<dyn RowSink> = match &hooks.wrap_rows {
        Some(wrap) => wrap(store.clone()),
        None => Arc::new(store.clone()),
    };
    let (writer, writer_task) = writer::Writer::spawn(sink, clock.clone(), activity.clone());
    let shared = Arc::new(Shared {
        store,
        instance,
        client: ctx.client,
        clock,
        schedule: ctx.schedule,
        retry: ctx.retry,
        cancel: jobs_cancel.clone(),
        open: OpenRows::new(jobs_cancel.clone()),
        user_locks: Mutex::new((HashMap::new(), 4096)),
        metrics: hooks.metrics.clone(),
        liveness: hooks.liveness.clone(),
        bad_rows: bad_rows.clone(),
        activity,
        writer,
        unconfirmed: Mutex::default(),
        wake: tokio::sync::Notify::new(),
    });
    let notifier = hooks.notifier.clone();
    let tracker = TaskTracker::new();

    // Policies first: a broken row is logged and skipped, never fatal.
    let mut policies = reload::Watcher::new(
        shared.store.clone(),
        shared.schedule.reload_poll(),
        hooks.reload.clone(),
        shared.metrics.clone(),
        notifier.clone(),
        shared.clock.clone(),
        bad_rows,
    );
    let current = policies.load_now().await?;

    // Reconcile: adopt open rows, resume pending starts, find the instant
    // the previous process was last seen.
    let since = reconcile::reconcile(&shared, &tracker, shared.clock.now()).await?;
    let housekeeping = housekeeping::start(&shared, &tracker);
    on_ready();
    notifier.ready();
    tracing::info!(
        policies = current.len(),
        instance = %shared.instance,
        database = %shared.store.describe(),
        "recsched running"
    );

    let policies_rx = policies.subscribe();
    let watcher = tracker.spawn(policies.run(shutdown.clone()));
    run_loop::run(
        &shared,
        &tracker,
        policies_rx,
        current,
        since,
        &notifier,
        &shutdown,
    )
    .await;

    tracing::info!("shutting down: finishing requests in flight");
    notifier.stopping();
    housekeeping.stop().await;
    tracker.close();
    // Real time, not the daemon's clock: this bounds how long the process
    // takes to exit, whatever the clock does.
    let grace = shared.schedule.shutdown_grace();
    if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
        tracing::warn!(grace_seconds = grace.as_secs(), "requests still in flight after the grace period; their rows stay open for the next start");
    }
    drop(watcher);
    // Every job has waited for its writes; nothing is left to commit.
    writer_task.abort();
    // Open rows go on at the vendor: let another instance take them over
    // now rather than when the lease runs out.
    match shared.store.release_leases().await {
        Ok(0) => {}
        Ok(released) => tracing::info!(released, "released leases on open rows"),
        Err(e) => {
            tracing::warn!(error = %e, "could not release leases; other instances take the rows over when they run out")
        }
    }
    let _ = shared
        .store
        .set_state_value(LAST_SEEN_KEY, &format_utc(shared.clock.now()))
        .await;
    tracing::info!("stopped");
    Ok(())
}
