//! Dense policies and long catch-ups (issue 15), in-process on driven
//! time: a pass costs what is due, a small policy beside a dense one is
//! started on time and among the first of a shared burst, and windows
//! missed over more than one pass's walk are all recorded.

use super::{row_at, sim_in, t0};
use crate::common::daemon::wait_for;
use crate::common::driven::Driven;
use crate::faults::cron_at;
use chrono::{DateTime, Duration, Utc};
use futures::future::BoxFuture;
use recsched::clock::format_utc;
use recsched::daemon::RowSink;
use recsched::planner::WALK_LIMIT;
use recsched::recording::RecordingState;
use recsched::store::{NewRecording, RecordingId, RowWrite, Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A policy (UTC, expire) and `n` users `{prefix}-{i}`, in one statement
/// per table.
fn many_users_sql(name: &str, cron: &str, window: i64, prefix: &str, n: usize) -> String {
    format!(
        "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) \
         VALUES ('{name}', '{cron}', 'UTC', {window}, 'expire'); \
         WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {last}) \
         INSERT INTO policy_users (policy_id, user_id) \
         SELECT (SELECT id FROM policies WHERE name = '{name}'), '{prefix}-' || i FROM n;",
        last = n - 1
    )
}

/// The `key=value` numbers of every "planned" line the daemon logged.
fn planned(log: &str, key: &str) -> Vec<u64> {
    log.lines()
        .filter(|l| l.contains(" planned") || l.ends_with("planned"))
        .filter_map(|l| {
            let at = l.find(&format!("{key}="))? + key.len() + 1;
            l[at..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[tokio::test]
async fn a_dense_hour_ahead_costs_a_segment_per_user_and_the_small_policy_starts_on_time() {
    // Issue 15's row, `* 11 * * *` with 30 s windows (two hours ahead of
    // 08:59:58), with 2,000 users; beside it 2 users, 5 s every 10 s.
    const USERS: u64 = 2_000;
    let mut rig = Driven::new(t0()).await;
    rig.sql(&many_users_sql("dense", "* 11 * * *", 30, "agent", 2_000))
        .await;
    rig.add_policy(
        "small",
        "*/10 * * * * *",
        5,
        "expire",
        &["small-1", "small-2"],
    )
    .await;
    rig.start().await;
    rig.run_for(Duration::seconds(32)).await;
    rig.stop().await;
    let log = rig.log();

    // Every pass: one segment per dense user (its next one, at 11:00),
    // never the hour's 60; the windows walked once per policy.
    let cut = planned(&log, "segments_cut");
    assert!(cut.len() >= 6, "{} passes logged\n{log}", cut.len());
    assert!(
        cut.iter().all(|&c| c <= USERS + 4),
        "segments cut per pass: {cut:?}"
    );
    let walked = planned(&log, "starts_walked");
    assert!(
        walked.iter().all(|&w| w <= 1_400),
        "window starts walked per pass: {walked:?}"
    );

    // The small policy: every window started at its instant.
    let rows = rig.rows().await;
    let sim = rig.recordings();
    let first = t0() + Duration::seconds(2);
    for k in 0..3 {
        let w = first + Duration::seconds(10 * k);
        for u in ["small-1", "small-2"] {
            let r = row_at(&rows, u, w);
            assert_eq!(r.len(), 1, "{u} at {w}: {rows:?}\n{log}");
            assert_eq!(r[0].late_seconds, Some(0.0), "{:?}", r[0]);
            let made = sim_in(&sim, u, w, w + Duration::seconds(5));
            assert_eq!(made.len(), 1, "{u} at {w}: {sim:?}");
            assert_eq!(made[0].started_at, w, "{:?}", made[0]);
        }
    }
    assert!(
        rows.iter()
            .all(|r| r.user_id.as_str().starts_with("small-")),
        "nothing of the dense hour yet"
    );
}

#[tokio::test]
async fn a_burst_takes_turns_between_policies_so_a_small_one_is_not_sent_last() {
    // 300 users of one policy and 2 of another, due at the same instant.
    // The small policy's users sort last by id; their starts go out with
    // the first ones all the same.
    let mut rig = Driven::new(t0()).await;
    let w = t0() + Duration::seconds(2);
    rig.sql(&many_users_sql("burst", &cron_at(w), 30, "agent", 300))
        .await;
    rig.add_policy("small", &cron_at(w), 30, "expire", &["zz-1", "zz-2"])
        .await;
    rig.start().await;
    rig.run_until(w + Duration::seconds(1)).await;
    // The rig may see the daemon idle for the instant between a claim's
    // answer and the starter taking it up: drive on until all went out.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rig.recordings().len() < 302 {
        assert!(std::time::Instant::now() < deadline, "{}", rig.log());
        rig.run_for(Duration::milliseconds(100)).await;
    }
    rig.stop().await;
    let mut sim = rig.recordings();
    assert_eq!(sim.len(), 302, "{}", rig.log());
    // The vendor numbers contact ids in the order it took the starts: the
    // small policy's are in the first wave of requests (64 go at once, in
    // whatever order the connections deliver them), not after the 300.
    sim.sort_by_key(|r| r.contact_id);
    let place = |u: &str| sim.iter().position(|r| r.user_id == u).unwrap();
    let wave = rig.schedule.max_concurrency;
    assert!(
        place("zz-1") < wave && place("zz-2") < wave,
        "the small policy's starts were taken {} and {} of 302",
        place("zz-1") + 1,
        place("zz-2") + 1
    );
}

/// The starts of the windows every 10 s in `[from, until)`.
fn every_10s(from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut t = from;
    let mut out = Vec::new();
    while t < until {
        if t.timestamp() % 10 == 0 {
            out.push(t);
        }
        t += Duration::seconds(1);
    }
    out
}

#[tokio::test]
async fn windows_missed_over_more_than_one_walk_are_all_recorded_over_several_passes() {
    // Down for 60 h with a 5 s window every 10 s: 21,600 windows missed,
    // more than one pass walks (WALK_LIMIT). Each gets its `missed` row,
    // over two passes, and the present is planned all along.
    let mut rig = Driven::new(t0()).await;
    let down = t0() - Duration::hours(60);
    rig.sql(&format!(
        "INSERT INTO daemon_state (key, value) VALUES ('last_seen', '{}');",
        format_utc(down)
    ))
    .await;
    rig.add_policy("every-10s", "*/10 * * * * *", 5, "expire", &["c1"])
        .await;
    rig.start().await;
    rig.run_for(Duration::seconds(5)).await;
    rig.stop().await;
    let log = rig.log();
    assert!(
        log.contains("take more than one pass to walk"),
        "one pass walked it all:\n{}",
        &log[..log.len().min(4000)]
    );
    let rows = rig.rows().await;
    let missed: Vec<_> = rows
        .iter()
        .filter(|r| r.state == RecordingState::Missed)
        .map(|r| r.segment_start)
        .collect();
    // Every window still open when last seen or opened since, up to the
    // last one that ended before the daemon started (08:59:50 to :55).
    let expected = every_10s(down - Duration::seconds(4), t0() - Duration::seconds(4));
    assert!(expected.len() as u64 > WALK_LIMIT);
    assert_eq!(missed.len(), expected.len(), "missed rows");
    assert_eq!(missed, expected);
    assert!(rows
        .iter()
        .filter(|r| r.state == RecordingState::Missed)
        .all(
            |r| r.last_error.as_deref() == Some("the window passed while recsched was not running")
        ));
    // The window of 09:00:00 started on time.
    let w = t0() + Duration::seconds(2);
    let r = row_at(&rows, "c1", w);
    assert_eq!(r.len(), 1, "{r:?}");
    assert!(r[0].contact_id.is_some(), "{:?}", r[0]);
}

/// Fails (without committing) the first claim of `missed` rows.
struct FailFirstMissed {
    store: Store,
    failed: Arc<AtomicUsize>,
}

impl RowSink for FailFirstMissed {
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>> {
        Box::pin(async move {
            let missed = rows.iter().any(|r| r.state == RecordingState::Missed);
            if missed && self.failed.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StoreError::Io {
                    path: self.store.path().to_owned(),
                    context: "claiming missed windows",
                    source: std::io::Error::other("disk I/O error"),
                });
            }
            self.store.claim_many(rows).await
        })
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>> {
        Box::pin(self.store.write_batch(writes))
    }
}

#[tokio::test]
async fn a_failed_first_pass_still_records_the_windows_missed_while_down() {
    // Before: the pass after a failed one planned from its own now, and
    // the windows missed while the daemon was down never got their rows.
    let mut rig = Driven::new(t0()).await;
    let down = t0() - Duration::seconds(58);
    rig.sql(&format!(
        "INSERT INTO daemon_state (key, value) VALUES ('last_seen', '{}');",
        format_utc(down)
    ))
    .await;
    rig.add_policy("every-10s", "*/10 * * * * *", 5, "expire", &["f1"])
        .await;
    let failed = Arc::new(AtomicUsize::new(0));
    let counter = failed.clone();
    rig.hooks.wrap_rows = Some(Arc::new(move |store| {
        Arc::new(FailFirstMissed {
            store,
            failed: counter.clone(),
        }) as Arc<dyn RowSink>
    }));
    rig.start().await;
    rig.run_for(Duration::seconds(3)).await;
    rig.stop().await;
    let log = rig.log();
    assert!(failed.load(Ordering::SeqCst) >= 2, "no retry:\n{log}");
    assert!(log.contains("planning pass failed"), "{log}");
    let rows = rig.rows().await;
    let missed: Vec<_> = rows
        .iter()
        .filter(|r| r.state == RecordingState::Missed)
        .map(|r| r.segment_start)
        .collect();
    assert_eq!(
        missed,
        every_10s(down - Duration::seconds(4), t0() - Duration::seconds(4)),
        "{rows:?}\n{log}"
    );
}

/// Holds the first claim of pending rows until the test lets it go.
struct HoldFirstClaim {
    store: Store,
    held: AtomicUsize,
    entered: Arc<tokio::sync::Notify>,
    release: Arc<tokio::sync::Semaphore>,
}

impl RowSink for HoldFirstClaim {
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>> {
        Box::pin(async move {
            let pending = rows.iter().any(|r| r.state == RecordingState::Pending);
            if pending && self.held.fetch_add(1, Ordering::SeqCst) == 0 {
                self.entered.notify_one();
                let _go = self.release.acquire().await;
            }
            self.store.claim_many(rows).await
        })
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>> {
        Box::pin(self.store.write_batch(writes))
    }
}

#[tokio::test]
async fn windows_that_end_while_the_daemon_stalls_are_recorded_not_dropped() {
    // The daemon stalls for 25 s at 09:00:00 (its claim held by a slow
    // disk, the host busy with a burst of 100,000): the small policy's
    // windows of 09:00:10 and 09:00:20 open and close meanwhile. Before:
    // the next pass planned from its own now and they got no row at all.
    let mut rig = Driven::new(t0()).await;
    // The claim held is the one made at 09:00:00, not ahead of it.
    rig.schedule.claim_ahead_seconds = 0;
    let w = t0() + Duration::seconds(2);
    rig.add_policy("small", "*/10 * * * * *", 5, "expire", &["s1"])
        .await;
    let entered = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Semaphore::new(0));
    let (e, r) = (entered.clone(), release.clone());
    rig.hooks.wrap_rows = Some(Arc::new(move |store| {
        Arc::new(HoldFirstClaim {
            store,
            held: AtomicUsize::new(0),
            entered: e.clone(),
            release: r.clone(),
        }) as Arc<dyn RowSink>
    }));
    rig.start().await;
    rig.clock.advance_to(w);
    tokio::time::timeout(std::time::Duration::from_secs(60), entered.notified())
        .await
        .expect("the pass at 09:00:00 claims");
    rig.clock.advance_to(w + Duration::seconds(25));
    release.add_permits(1);
    rig.run_until(w + Duration::seconds(32)).await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    for late in [10, 20] {
        let r = row_at(&rows, "s1", w + Duration::seconds(late));
        assert_eq!(r.len(), 1, "09:00:{late}: {rows:?}\n{log}");
        assert_eq!(r[0].state, RecordingState::Missed, "{:?}", r[0]);
        assert_eq!(
            r[0].last_error.as_deref(),
            Some("the window passed while recsched was too busy or stalled to plan it")
        );
    }
    // The one after starts on time again.
    let r = row_at(&rows, "s1", w + Duration::seconds(30));
    assert_eq!(r.len(), 1, "{rows:?}");
    assert_eq!(r[0].late_seconds, Some(0.0), "{:?}", r[0]);
}

#[tokio::test]
async fn a_small_policy_is_started_while_a_long_burst_is_still_being_sent() {
    // 2,000 starts at 09:00:00 against a vendor answering in 100 ms, 64 at
    // a time: about 3 s of requests. The small policy's window of 09:00:10
    // comes meanwhile. Its start waits behind the burst's jobs that are
    // already queued, at most a few hundred (the pacer), not behind the
    // rest of the burst.
    let mut rig = Driven::with_faults(
        recsched::simulator::Faults {
            latency_ms: 100,
            ..Default::default()
        },
        t0(),
    )
    .await;
    let w = t0() + Duration::seconds(2);
    rig.sql(&many_users_sql("burst", &cron_at(w), 30, "agent", 2_000))
        .await;
    rig.add_policy("small", "*/10 * * * * *", 5, "expire", &["zz-1", "zz-2"])
        .await;
    rig.start().await;
    rig.clock.advance_to(w);
    wait_for(
        std::time::Duration::from_secs(60),
        "the burst under way",
        || async { (rig.recordings().len() >= 100).then_some(()) },
    )
    .await;
    let under_way = rig.recordings().len();
    rig.clock.advance_to(w + Duration::seconds(10));
    let small = |sim: &[recsched::simulator::Recording]| {
        sim.iter()
            .filter(|r| r.user_id.starts_with("zz-") && r.started_at >= w + Duration::seconds(10))
            .map(|r| r.contact_id)
            .max()
    };
    // Everything due at 09:00:10 goes out before the clock moves on.
    rig.run_until(w + Duration::seconds(11)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while rig.recordings().len() < 2_004 {
        assert!(std::time::Instant::now() < deadline, "{}", rig.log());
        rig.run_for(Duration::milliseconds(100)).await;
    }
    rig.stop().await;
    let sim = rig.recordings();
    let small_contact = small(&sim).expect("the small policy's start of 09:00:10");
    let after = sim
        .iter()
        .filter(|r| r.user_id.starts_with("agent-") && r.contact_id > small_contact)
        .count();
    assert!(
        after >= 500,
        "the small start went out behind all but {after} of the burst's 2,000 \
         (it was {under_way} in when the window opened)"
    );
}
