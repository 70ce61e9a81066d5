//! The daily history sweep: deletes what `[history]` no longer keeps
//! (`store::retention` says which rows), in short paced batches, so the
//! daemon's own writes never wait long behind it. `recsched prune` runs
//! the same [`prune`] on demand.
//!
//! # Batches
//! Each batch is one short transaction. The [`Pacer`] sizes the next one
//! from how long the last held its locks, aiming at [`TARGET_HOLD`] so
//! that none comes near [`HOLD_LIMIT`]: it halves the size (or more)
//! after a slow batch and doubles it after a fast one, between
//! [`MIN_BATCH`] and [`MAX_BATCH`] rows. Between batches the sweep pauses
//! at least as long as the last one held, so another writer (the daemon's
//! row writer, an operator's `sqlite3`) gets the lock in between.
//!
//! # Schedule
//! Every day at 03:30 UTC ([`DAILY`]) on tokio-cron-scheduler, which
//! compares its schedule with the wall clock: a clock step can move or
//! skip one sweep, which does no harm to a daily cleanup (the next one
//! deletes what this one left). Nothing time-critical runs on it. With
//! `[history]` at its default (keep everything) no scheduler is started.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use tokio::task::JoinHandle;
use tokio_cron_scheduler::{Job, JobScheduler, JobSchedulerError};
use tokio_util::sync::CancellationToken;

use crate::clock::Clock;
use crate::store::{Cutoffs, History, Prune, PruneCounts, Store, StoreError};

/// When the sweep runs: every day at 03:30:00 UTC (seconds, minutes,
/// hours, day of month, month, day of week).
pub const DAILY: &str = "0 30 3 * * *";

/// What a batch aims to hold its locks for.
pub const TARGET_HOLD: Duration = Duration::from_millis(25);
/// What no batch should reach.
pub const HOLD_LIMIT: Duration = Duration::from_millis(50);
/// The first batch's size, in rows.
pub const FIRST_BATCH: u32 = 256;
pub const MIN_BATCH: u32 = 16;
pub const MAX_BATCH: u32 = 5_000;
/// The least pause between two batches.
const MIN_PAUSE: Duration = Duration::from_millis(10);
/// How often a batch refused as busy is tried again before the sweep
/// gives up (until the next one).
const BUSY_TRIES: u32 = 5;

/// Sizes batches from how long the last one held its locks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    size: u32,
}

impl Default for Pacer {
    fn default() -> Self {
        Self { size: FIRST_BATCH }
    }
}

impl Pacer {
    /// Rows in the next batch.
    pub fn size(&self) -> u32 {
        self.size
    }

    /// Learns from a batch of [`Pacer::size`] rows that held its locks
    /// for `held`: slower than [`TARGET_HOLD`] shrinks the next batch in
    /// proportion (at least by half when it passed [`HOLD_LIMIT`]); less
    /// than half of it doubles the next one.
    pub fn after(&mut self, held: Duration) {
        let size = u128::from(self.size);
        let next = if held > TARGET_HOLD {
            let scaled = size * TARGET_HOLD.as_micros() / held.as_micros().max(1);
            if held > HOLD_LIMIT {
                scaled.min(size / 2)
            } else {
                scaled
            }
        } else if held < TARGET_HOLD / 2 {
            size * 2
        } else {
            size
        };
        self.size = u32::try_from(next)
            .unwrap_or(MAX_BATCH)
            .clamp(MIN_BATCH, MAX_BATCH);
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub removed: PruneCounts,
    /// Batches that found rows.
    pub batches: u32,
    /// The most rows one batch found.
    pub largest_batch: u64,
    /// The longest one batch held its locks.
    pub longest_hold: Duration,
}

/// A prune that stopped on a store error, with what it removed before.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
pub struct PruneError {
    pub done: Pruned,
    #[source]
    pub source: StoreError,
}

/// Deletes what `cutoffs` no longer keep: old final recordings with their
/// audit rows, then old audit rows of final recordings, in paced batches
/// (see the module docs), pausing on `clock` between them.
pub async fn prune(
    store: &Store,
    cutoffs: &Cutoffs,
    clock: &dyn Clock,
) -> Result<Pruned, PruneError> {
    let mut done = Pruned::default();
    let mut pacer = Pacer::default();
    for what in [Prune::Recordings, Prune::Attempts] {
        let mut after = 0;
        let mut busy = 0;
        loop {
            let batch = match store.prune_batch(cutoffs, what, after, pacer.size()).await {
                Ok(batch) => batch,
                Err(e) if e.is_busy() && busy < BUSY_TRIES => {
                    busy += 1;
                    clock.sleep(Duration::from_millis(200) * busy).await;
                    continue;
                }
                Err(source) => return Err(PruneError { done, source }),
            };
            busy = 0;
            if batch.found == 0 {
                break;
            }
            match what {
                Prune::Recordings => {
                    done.removed.recordings += batch.recordings;
                    done.removed.attempts_of_recordings += batch.attempts;
                }
                Prune::Attempts => done.removed.attempts += batch.attempts,
            }
            done.batches += 1;
            done.largest_batch = done.largest_batch.max(batch.found);
            done.longest_hold = done.longest_hold.max(batch.held);
            if batch.held > HOLD_LIMIT {
                tracing::debug!(
                    held_ms = batch.held.as_millis(),
                    rows = batch.found,
                    "a history batch held its locks longer than intended; the next is smaller"
                );
            }
            after = batch.last_id;
            pacer.after(batch.held);
            clock.sleep(batch.held.max(MIN_PAUSE)).await;
        }
    }
    Ok(done)
}

/// The daily sweep of one database.
#[derive(Clone)]
pub struct Sweeper {
    pub store: Store,
    pub history: History,
    pub clock: Arc<dyn Clock>,
}

impl Sweeper {
    /// One sweep now: deletes what `[history]` no longer keeps, and logs
    /// what went.
    pub async fn sweep_once(&self) -> Result<Pruned, PruneError> {
        let now = self.clock.now();
        let cutoffs = self.history.cutoffs(now);
        let result = prune(&self.store, &cutoffs, self.clock.as_ref()).await;
        match &result {
            Ok(p) => tracing::info!(
                recordings = p.removed.recordings,
                attempts = p.removed.attempts + p.removed.attempts_of_recordings,
                batches = p.batches,
                longest_hold_ms = p.longest_hold.as_millis(),
                keep_days = self.history.keep_days,
                keep_attempts_days = self.history.keep_attempts_days,
                "history sweep: removed what [history] no longer keeps"
            ),
            Err(e) => tracing::warn!(
                error = %e.source,
                recordings = e.done.removed.recordings,
                attempts = e.done.removed.attempts + e.done.removed.attempts_of_recordings,
                "history sweep stopped early; the next one carries on"
            ),
        }
        result
    }

    /// Runs [`Sweeper::sweep_once`] every day ([`DAILY`]) until `cancel`;
    /// does nothing when `[history]` keeps everything.
    pub fn spawn(self, cancel: CancellationToken) {
        if self.history.keeps_everything() {
            return;
        }
        self.spawn_on(DAILY, cancel);
    }

    /// Runs [`Sweeper::sweep_once`] on cron schedule `spec` until
    /// `cancel`; the task ends once the scheduler has stopped.
    fn spawn_on(self, spec: &'static str, cancel: CancellationToken) -> JoinHandle<()> {
        let running = Arc::new(tokio::sync::Mutex::new(()));
        let job = move || -> BoxFuture<'static, ()> {
            let sweeper = self.clone();
            let running = running.clone();
            Box::pin(async move {
                // A sweep still running at the next tick: let it finish.
                let Ok(_alone) = running.try_lock() else {
                    return;
                };
                let _ = sweeper.sweep_once().await;
            })
        };
        tokio::spawn(async move {
            match schedule(spec, job).await {
                Ok(mut scheduler) => {
                    cancel.cancelled().await;
                    if let Err(e) = scheduler.shutdown().await {
                        tracing::debug!(error = %e, "the history sweep's scheduler did not stop cleanly");
                    }
                }
                Err(e) => tracing::error!(
                    error = %e,
                    "cannot schedule the daily history sweep; run `recsched prune` from a timer instead"
                ),
            }
        })
    }
}

/// Starts a scheduler that runs `job` on cron schedule `spec` (6 fields,
/// UTC).
pub async fn schedule<F>(spec: &str, job: F) -> Result<JobScheduler, JobSchedulerError>
where
    F: Fn() -> BoxFuture<'static, ()> + Send + Sync + 'static,
{
    let scheduler = JobScheduler::new().await?;
    scheduler
        .add(Job::new_async(spec, move |_, _| job())?)
        .await?;
    scheduler.start().await?;
    Ok(scheduler)
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Timelike, Utc};

    use super::*;
    use crate::clock::{Sleep, SystemClock};
    use crate::recording::{RecordingState, UserId};
    use crate::store::{EndMode, NewRecording, Settings};

    /// The wall clock stopped at an instant; waits on real time.
    struct At(chrono::DateTime<Utc>);

    impl Clock for At {
        fn now(&self) -> chrono::DateTime<Utc> {
            self.0
        }
        fn instant(&self) -> tokio::time::Instant {
            SystemClock.instant()
        }
        fn sleep_until(&self, deadline: tokio::time::Instant) -> Sleep {
            SystemClock.sleep_until(deadline)
        }
    }

    #[test]
    fn the_pacer_grows_fast_batches_and_cuts_slow_ones_within_bounds() {
        let mut p = Pacer::default();
        assert_eq!(p.size(), FIRST_BATCH);
        p.after(Duration::from_millis(2));
        assert_eq!(p.size(), 2 * FIRST_BATCH);
        p.after(Duration::from_millis(20));
        assert_eq!(p.size(), 2 * FIRST_BATCH, "near the target: kept");
        p.after(Duration::from_millis(40));
        assert_eq!(p.size(), 320, "512 x 25/40");
        p.after(Duration::from_millis(60));
        assert_eq!(p.size(), 133, "past the limit: 320 x 25/60");
        p.after(Duration::from_millis(30));
        assert_eq!(p.size(), 110);
        p.after(Duration::from_millis(26));
        assert_eq!(p.size(), 105);
        p.after(Duration::from_millis(51));
        assert_eq!(p.size(), 51, "past the limit: at least halved");
        for _ in 0..20 {
            p.after(Duration::from_secs(5));
        }
        assert_eq!(p.size(), MIN_BATCH);
        for _ in 0..20 {
            p.after(Duration::ZERO);
        }
        assert_eq!(p.size(), MAX_BATCH);
    }

    #[tokio::test]
    async fn the_daily_schedule_fires_next_at_half_past_three_utc() {
        let mut scheduler = JobScheduler::new().await.unwrap();
        let job = scheduler
            .add(Job::new_async(DAILY, |_, _| Box::pin(async {})).unwrap())
            .await
            .unwrap();
        let before = SystemClock.now();
        let next = scheduler.next_tick_for_job(job).await.unwrap().unwrap();
        assert_eq!(
            (next.hour(), next.minute(), next.second()),
            (3, 30, 0),
            "{next}"
        );
        assert!(next > before - chrono::Duration::seconds(1), "{next}");
        assert!(next <= before + chrono::Duration::days(1), "{next}");
        scheduler.shutdown().await.unwrap();
    }

    /// A store with three rows: finished on March 1st, pending on March
    /// 1st, finished on March 28th; and a sweeper keeping 7 days, on March
    /// 29th. Returns the old row's id.
    async fn with_history(dir: &std::path::Path) -> (Sweeper, crate::store::RecordingId) {
        let store = Store::open(&Settings {
            path: dir.join("r.db"),
            ..Settings::default()
        })
        .await
        .unwrap();
        let day = |d: u32| Utc.with_ymd_and_hms(2026, 3, d, 9, 0, 0).unwrap();
        let row = |user: &str, start| NewRecording {
            user_id: UserId::parse(user).unwrap(),
            policy_id: 1,
            segment_start: start,
            segment_end: start + chrono::Duration::hours(1),
            requested_seconds: 3600,
            end_mode: EndMode::Expire,
            state: RecordingState::Pending,
            late_seconds: None,
            last_error: None,
        };
        let ids = store
            .claim_many(&[row("old", day(1)), row("open", day(1)), row("new", day(28))])
            .await
            .unwrap();
        let [Some(old), Some(_open), Some(new)] = ids[..] else {
            panic!("{ids:?}");
        };
        for id in [old, new] {
            store
                .set_state(id, RecordingState::Expired, None, None)
                .await
                .unwrap();
        }
        let sweeper = Sweeper {
            store,
            history: History {
                keep_days: 7,
                keep_attempts_days: 0,
            },
            clock: Arc::new(At(day(29))),
        };
        (sweeper, old)
    }

    async fn users_left(store: &Store) -> Vec<String> {
        let left = store.read_recordings(&Default::default()).await.unwrap();
        let mut users: Vec<String> = left.rows.iter().map(|r| r.user_id.to_string()).collect();
        users.sort();
        users
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sweep_deletes_what_history_no_longer_keeps_and_nothing_open() {
        let dir = tempfile::tempdir().unwrap();
        let (sweeper, old) = with_history(dir.path()).await;
        let pruned = sweeper.sweep_once().await.unwrap();
        assert_eq!(pruned.removed.recordings, 1);
        assert_eq!(pruned.batches, 1);
        assert!(sweeper.store.recording(old).await.unwrap().is_none());
        assert_eq!(users_left(&sweeper.store).await, ["new", "open"]);
        // Nothing more to do: a second sweep finds nothing.
        assert_eq!(sweeper.sweep_once().await.unwrap(), Pruned::default());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_spawned_sweeper_sweeps_on_its_schedule_until_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let (sweeper, old) = with_history(dir.path()).await;
        let store = sweeper.store.clone();
        let cancel = CancellationToken::new();
        // The daily schedule's wiring, on a schedule of every second.
        let task = sweeper.spawn_on("* * * * * *", cancel.clone());
        let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
        while store.recording(old).await.unwrap().is_some() {
            assert!(tokio::time::Instant::now() < deadline, "no sweep in 15 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(users_left(&store).await, ["new", "open"]);
        cancel.cancel();
        tokio::time::timeout(Duration::from_secs(10), task)
            .await
            .expect("the sweeper stops once cancelled")
            .unwrap();
    }
}
