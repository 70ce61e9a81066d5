//! The long-running service: the only home of timers and tasks.
//!
//! One scheduling loop owns "when": it runs a planning pass
//! ([`pass::plan`], pure) over the parsed policies and the durable rows,
//! claims every due segment in one transaction (the write-ahead row,
//! committed before any request), and hands each user's work to a job
//! (`jobs`). It then sleeps with tokio's own timer until the next
//! instant the planner computed, a policy edit, or shutdown.
//! tokio-cron-scheduler runs only periodic housekeeping (a heartbeat and a
//! sweep that wakes the loop); it never fires a window and never sees a
//! time zone (its offsets go stale across DST changes, and it wakes only
//! every 500 ms).
//!
//! The durable record is the `recordings` table: after a crash, a new
//! process reads it back, resumes pending starts, tracks live recordings
//! and records what was missed. In-memory state only mirrors it.
//!
//! # Several instances (PostgreSQL)
//! Every instance plans every segment and races to claim it; the unique
//! key gives each to one. The winner is the row's `owner` ([`instance`])
//! and holds a lease on it while it is open, renewed by housekeeping every
//! third of `database.lease_seconds`. An instance whose lease on a row ran
//! out (it died, or lost the database for longer than the lease) loses the
//! row: housekeeping in another instance takes it over and adopts it
//! exactly as reconcile adopts the rows of a crashed predecessor
//! ([`adopt`]): a pending start is sent again (the vendor never makes a
//! second recording for a user, it answers with the running one's contact
//! id), a live recording is tracked and ended or stopped on time. A clean
//! shutdown releases its leases so the others take over at once. On
//! SQLite there is one instance per file and no lease.

pub mod directory;
pub mod endpoints;
mod housekeeping;
mod instance;
mod jobs;
mod liveness;
mod notify;
pub mod pass;
pub mod reload;
mod settings;
mod writer;

pub use instance::InstanceId;
pub use liveness::Liveness;
pub use notify::Notifier;
pub use settings::Settings;

use crate::clock::{format_utc, parse_utc, Clock};
use crate::cxone::Client;
use crate::metrics::Metrics;
use crate::planner::SegmentLimit;
use crate::policy::Policy;
use crate::recording::{RecordingState, UserId};
use crate::retry::RetryPolicy;
use crate::store::{Adopted, NewRecording, Store, StoreError};
use chrono::{DateTime, Utc};
use pass::{EndReason, Tracked};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The `daemon_state` key of the instant the loop was last seen alive
/// (written every few seconds; `recsched status` reads it).
pub const LAST_SEEN_KEY: &str = "last_seen";

/// Why the daemon could not run.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("housekeeping scheduler: {0}")]
    Housekeeping(String),
}

/// What the daemon runs with.
pub struct Context {
    pub store: Store,
    pub client: Arc<Client>,
    pub clock: Arc<dyn Clock>,
    pub schedule: Settings,
    pub retry: RetryPolicy,
}

/// What the daemon reports to the outside: systemd, metrics, health.
#[derive(Clone, Default)]
pub struct Hooks {
    /// SIGHUP: reload policies now.
    pub reload: reload::Trigger,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
    pub notifier: Notifier,
}

/// State shared by the loop and its jobs.
pub(crate) struct Shared {
    /// Writes claims as this instance (see [`instance`]).
    store: Store,
    instance: InstanceId,
    client: Arc<Client>,
    clock: Arc<dyn Clock>,
    schedule: Settings,
    retry: RetryPolicy,
    /// Stops new work; also cancels waits between retries.
    cancel: CancellationToken,
    /// Open rows this process knows, by row id (a mirror of the table).
    tracked: Mutex<HashMap<i64, Tracked>>,
    /// One lock per user: requests for one user never overlap. With the
    /// map's size at which unheld locks are next swept out.
    user_locks: Mutex<(UserLocks, usize)>,
    metrics: Arc<Metrics>,
    liveness: Arc<Liveness>,
    /// The one writer of recording rows (batched commits).
    writer: writer::Writer,
}

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

    fn update(&self, id: i64, f: impl FnOnce(&mut Tracked)) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = tracked.get_mut(&id) {
            f(t);
        }
    }

    /// Whether a row no job holds should have ended by `now`: the loop
    /// missed it (its job finished after the loop last looked).
    fn overdue(&self, now: DateTime<Utc>) -> bool {
        self.tracked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .any(|t| !t.busy && t.end <= now)
    }

    /// The job is done with the row, which stays open.
    fn release(&self, id: i64) {
        self.update(id, |t| t.busy = false);
    }

    /// The row reached a final state.
    fn forget(&self, id: i64) {
        let mut tracked = self.tracked.lock().unwrap_or_else(|e| e.into_inner());
        tracked.remove(&id);
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
    let limit =
        SegmentLimit::from_secs(i64::from(ctx.schedule.segment_limit_seconds)).unwrap_or_default();
    let jobs_cancel = shutdown.child_token();
    let instance = InstanceId::generate();
    let store = ctx.store.for_instance(instance.as_str());
    let (writer, writer_task) = writer::Writer::spawn(store.clone());
    let shared = Arc::new(Shared {
        store,
        instance,
        client: ctx.client,
        clock: ctx.clock,
        schedule: ctx.schedule,
        retry: ctx.retry,
        cancel: jobs_cancel.clone(),
        tracked: Mutex::default(),
        user_locks: Mutex::new((HashMap::new(), 4096)),
        metrics: hooks.metrics.clone(),
        liveness: hooks.liveness.clone(),
        writer,
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
    );
    let current = policies.load_now().await?;

    // Reconcile: adopt open rows, resume pending starts, find the instant
    // the previous process was last seen.
    let now = shared.clock.now();
    let from = reconcile(&shared, &tracker, now).await?;
    let housekeeping = housekeeping::start(shared.clone(), tracker.clone()).await?;
    on_ready();
    notifier.ready();
    tracing::info!(
        policies = current.len(),
        instance = %shared.instance,
        database = %shared.store.describe(),
        "recsched running"
    );

    let mut policies_rx = policies.subscribe();
    let watcher = tracker.spawn(policies.run(shutdown.clone()));
    let mut from = Some(from);
    let mut current = current;
    let mut last_status = String::new();
    loop {
        let now = shared.clock.now();
        shared.liveness.loop_turned(now);
        notifier.watchdog();
        let from_now = from.take().unwrap_or(now);
        let next = match pass(&shared, &tracker, &current, from_now, now, limit).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "planning pass failed; trying again in 1 s");
                Next::default().at(now + chrono::Duration::seconds(1))
            }
        };
        let line = status_line(&shared, &current, &next);
        if line != last_status {
            notifier.status(&line);
            last_status = line;
        }
        // Nothing to do before the next start or end: sleep until then (at
        // most an hour; edits and housekeeping wake the loop earlier). An
        // idle daemon plans once per event, not on a timer.
        let mut wake_at = now + chrono::Duration::hours(1);
        if let Some(n) = next.at {
            wake_at = wake_at.min(n);
        }
        let ping = notifier.ping_every();
        shared.liveness.loop_sleeps_until(wake_at);
        let woke = loop {
            let sleep = (wake_at - shared.clock.now())
                .to_std()
                .unwrap_or(Duration::ZERO);
            // The watchdog is pinged from this loop, so a stuck loop stops
            // the pings; a ping needs no planning pass.
            let ping_in = ping
                .unwrap_or(Duration::MAX)
                .min(sleep.saturating_add(Duration::from_secs(1)));
            tokio::select! {
                () = tokio::time::sleep(sleep) => break Woke::Plan,
                () = tokio::time::sleep(ping_in), if ping.is_some() && ping_in < sleep => {
                    notifier.watchdog();
                }
                changed = policies_rx.changed() => {
                    if changed.is_ok() {
                        current = policies_rx.borrow_and_update().clone();
                    }
                    break Woke::Plan;
                }
                () = housekeeping.wake.notified() => break Woke::Plan,
                () = shutdown.cancelled() => break Woke::Shutdown,
            }
        };
        if let Woke::Shutdown = woke {
            break;
        }
    }

    tracing::info!("shutting down: finishing requests in flight");
    notifier.stopping();
    housekeeping.stop().await;
    tracker.close();
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

/// Adopts the open rows of earlier processes (on PostgreSQL: those whose
/// lease ran out) and resumes their pending starts. Returns where the first
/// pass should plan from: when the loop was last seen, so windows that
/// passed while it was down are recorded.
async fn reconcile(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, DaemonError> {
    let rows = shared.store.adopt_open_rows().await?;
    let (adopted, resumed) = adopt(shared, tracker, rows, now).await?;
    let lookback = chrono::Duration::seconds(shared.schedule.missed_lookback_seconds as i64);
    let last_seen = shared
        .store
        .get_state(LAST_SEEN_KEY)
        .await?
        .and_then(|v| parse_utc(&v).ok());
    let from = last_seen.map_or(now, |t| t.max(now - lookback)).min(now);
    tracing::info!(adopted, resumed, since = %format_utc(from), "reconciled");
    Ok(from)
}

/// Starts tracking open rows this instance has just become responsible
/// for (at start, or taken over from a lost instance): a pending start is
/// resumed if its window still has time, else marked failed; a recording
/// is tracked, to be ended by the loop. Rows already tracked are skipped.
/// Returns (tracked without a job, resumed starts).
pub(crate) async fn adopt(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    rows: Vec<Adopted>,
    now: DateTime<Utc>,
) -> Result<(usize, usize), DaemonError> {
    let mut resumed = 0;
    let mut adopted = 0;
    for Adopted { row, .. } in rows {
        let pending = row.state == RecordingState::Pending;
        let t = Tracked {
            id: row.id.get(),
            user: row.user_id.clone(),
            policy_id: row.policy_id,
            start: row.segment_start,
            end: row.segment_end,
            end_mode: row.end_mode,
            state: row.state,
            contact: row.contact_id,
            busy: pending,
        };
        {
            let mut tracked = shared.tracked.lock().unwrap_or_else(|e| e.into_inner());
            if tracked.contains_key(&t.id) {
                continue;
            }
            tracked.insert(t.id, t.clone());
        }
        if !pending {
            adopted += 1;
            continue;
        }
        if crate::recording::RecordingDuration::remaining(t.end, now).is_some() {
            resumed += 1;
            tracker.spawn(jobs::resume(shared.clone(), t));
        } else {
            let reason = "recsched stopped before the start was answered, and the window has ended";
            shared
                .store
                .set_state(row.id, RecordingState::Failed, Some(reason), None)
                .await?;
            shared.forget(t.id);
            tracing::warn!(user = %t.user, segment_start = %format_utc(t.start), "failed: {reason}");
        }
    }
    Ok((adopted, resumed))
}

/// One async lock per user.
type UserLocks = HashMap<UserId, Arc<tokio::sync::Mutex<()>>>;

/// Starts claimed per transaction before their jobs are spawned: enough to
/// keep the request slots busy while the next chunk is claimed.
const START_CHUNK: usize = 256;

/// One planning pass: plan, claim, spawn. Returns when to look again.
async fn pass(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    policies: &Arc<Vec<Policy>>,
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    limit: SegmentLimit,
) -> Result<Next, DaemonError> {
    let horizon = chrono::Duration::seconds(i64::from(limit.as_secs()));
    let coverage = pass::coverage(policies, from, now, horizon);
    let since = pass::earliest(&coverage).unwrap_or(now).min(from);
    let occupied = pass::by_user(shared.store.occupied_since(since).await?);
    let tracked: Vec<Tracked> = shared
        .tracked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .cloned()
        .collect();
    let plan = pass::plan(&coverage, &occupied, &tracked, now, limit);

    // Missed segments: rows, no requests.
    let missed: Vec<NewRecording> = plan
        .missed
        .iter()
        .map(|seg| {
            tracing::warn!(policy = seg.policy.get(), user = %seg.user, segment_start = %format_utc(seg.start), "missed");
            shared.metrics.start("missed");
            NewRecording {
                user_id: seg.user.clone(),
                policy_id: seg.policy.get(),
                segment_start: seg.start,
                segment_end: seg.end,
                requested_seconds: seg.duration.as_secs(),
                end_mode: seg.end_mode,
                state: RecordingState::Missed,
                late_seconds: None,
                last_error: Some("the window passed while recsched was not running".into()),
            }
        })
        .collect();
    if !missed.is_empty() {
        shared.store.claim_many(&missed).await?;
    }

    // Ends, per user. A user whose next segment starts now gets its ends
    // and its start in one job, ends first, so the chain never overlaps.
    let by_id: HashMap<i64, &Tracked> = tracked.iter().map(|t| (t.id, t)).collect();
    let starting: HashSet<&UserId> = plan.starts.iter().map(|(seg, _)| &seg.user).collect();
    let mut ends: HashMap<UserId, Vec<(Tracked, EndReason)>> = HashMap::new();
    {
        let mut live = shared.tracked.lock().unwrap_or_else(|e| e.into_inner());
        for (id, reason) in &plan.ends {
            if let (Some(t), Some(l)) = (by_id.get(id), live.get_mut(id)) {
                l.busy = true;
                ends.entry(t.user.clone())
                    .or_default()
                    .push(((*t).clone(), *reason));
            }
        }
    }
    let (mut ends, end_only): (HashMap<_, _>, HashMap<_, _>) = ends
        .into_iter()
        .partition(|(user, _)| starting.contains(user));
    for (user, e) in end_only {
        tracker.spawn(jobs::run_user(shared.clone(), user, e, None));
    }

    // Starts: claimed (the write-ahead rows, committed before any request)
    // and handed to jobs a chunk at a time, so the first requests leave
    // while later rows are still being claimed.
    let mut next = Next {
        at: plan.next,
        start: plan.next_start,
    };
    for chunk in plan.starts.chunks(START_CHUNK) {
        let rows: Vec<NewRecording> = chunk
            .iter()
            .map(|(seg, late)| NewRecording {
                user_id: seg.user.clone(),
                policy_id: seg.policy.get(),
                segment_start: seg.start,
                segment_end: seg.end,
                requested_seconds: crate::recording::RecordingDuration::remaining(seg.end, now)
                    .map_or(seg.duration.as_secs(), |d| d.as_secs()),
                end_mode: seg.end_mode,
                state: RecordingState::Pending,
                late_seconds: Some(late.num_milliseconds() as f64 / 1000.0),
                last_error: None,
            })
            .collect();
        let ids = match shared.store.claim_many(&rows).await {
            Ok(ids) => ids,
            Err(e) => {
                // Nothing of this chunk was claimed: the ends waiting for
                // these starts go back to the next pass, which tries again.
                for (_, waiting) in ends.drain() {
                    for (t, _) in waiting {
                        shared.release(t.id);
                    }
                }
                return Err(e.into());
            }
        };
        let mut claimed = Vec::with_capacity(chunk.len());
        {
            let mut live = shared.tracked.lock().unwrap_or_else(|e| e.into_inner());
            for ((seg, late), id) in chunk.iter().zip(ids) {
                // `None`: someone else (another process on this database)
                // already has this segment: exactly once.
                let Some(id) = id else { continue };
                live.insert(
                    id.get(),
                    Tracked {
                        id: id.get(),
                        user: seg.user.clone(),
                        policy_id: Some(seg.policy.get()),
                        start: seg.start,
                        end: seg.end,
                        end_mode: seg.end_mode,
                        state: RecordingState::Pending,
                        contact: None,
                        busy: true,
                    },
                );
                claimed.push(jobs::StartJob {
                    id,
                    segment: seg.clone(),
                    late: *late,
                });
            }
        }
        for job in claimed {
            // Wake at its end too: the plan was made before the row existed.
            next = next.at(job.segment.end);
            let user = job.segment.user.clone();
            let user_ends = ends.remove(&user).unwrap_or_default();
            tracker.spawn(jobs::run_user(shared.clone(), user, user_ends, Some(job)));
        }
    }
    // Ends whose start someone else claimed still run.
    for (user, e) in ends {
        tracker.spawn(jobs::run_user(shared.clone(), user, e, None));
    }
    shared
        .metrics
        .active_recordings
        .set(live_count(shared) as i64);
    shared.metrics.passes.inc();
    Ok(next)
}

/// When the loop must look again, and the next window start (for the
/// status line).
#[derive(Debug, Default, Clone, Copy)]
struct Next {
    at: Option<DateTime<Utc>>,
    start: Option<(DateTime<Utc>, crate::policy::PolicyId)>,
}

impl Next {
    fn at(mut self, t: DateTime<Utc>) -> Self {
        self.at = Some(self.at.map_or(t, |n| n.min(t)));
        self
    }
}

/// Rows recording now (or being stopped).
fn live_count(shared: &Shared) -> usize {
    shared
        .tracked
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .filter(|t| {
            matches!(
                t.state,
                RecordingState::Recording | RecordingState::Stopping
            )
        })
        .count()
}

/// systemd's STATUS line: "12 recording, next window 09:00 Europe/Amsterdam
/// (back-office), 0 failed".
fn status_line(shared: &Shared, policies: &[Policy], next: &Next) -> String {
    let recording = live_count(shared);
    let failed = shared.metrics.count(&shared.metrics.starts, "failed");
    let next = match next.start {
        Some((at, id)) => match policies.iter().find(|p| p.id == id) {
            Some(p) => {
                let tz = p.cron.timezone();
                format!(
                    "next window {} {} ({})",
                    at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
                    tz.name(),
                    p.name
                )
            }
            None => format!("next window {} UTC", at.format("%Y-%m-%d %H:%M:%S")),
        },
        None => "no window in the next hours".to_owned(),
    };
    format!("{recording} recording, {next}, {failed} failed since start")
}

/// Why the loop stopped waiting.
enum Woke {
    Plan,
    Shutdown,
}
