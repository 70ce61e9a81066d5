//! The SQLite daemon tests that matter most, again on PostgreSQL: one
//! coverage chain from overlapping policies, a flaky API and SQL edits
//! arriving by NOTIFY (in-process, on driven time); SIGTERM during a
//! burst and `status` against a running daemon (the real binary).

use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::Faults;

use crate::common::daemon::wait_for;
use crate::common::driven::Driven;
use crate::common::pg::PgRig;
use crate::daemon::{assert_chain, assert_each_started_once, row_at, starts, t0, until};
use crate::faults::{cron_at, second_after};

#[tokio::test]
async fn overlapping_policies_make_one_chain_on_postgres() {
    let Some(mut rig) = Driven::on_postgres(Faults::default(), t0()).await else {
        return;
    };
    rig.add_policy("a", "*/20 * * * * *", 12, "expire", &["over"])
        .await;
    rig.add_policy("b", "6-59/20 * * * * *", 12, "expire", &["over"])
        .await;
    rig.schedule.segment_limit_seconds = 6;
    rig.start().await;
    let t0 = rig.now();
    let cov = starts(t0 + Duration::seconds(2), t0 + Duration::seconds(22), 20, 0)[0];
    rig.run_until(cov + Duration::seconds(19)).await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    for offset in [0, 6, 12] {
        let start = cov + Duration::seconds(offset);
        let r = row_at(&rows, "over", start);
        assert_eq!(r.len(), 1, "segment at +{offset} s: {r:?}\n{log}");
        assert_eq!(r[0].segment_end, start + Duration::seconds(6));
        assert!(r[0].contact_id.is_some(), "{:?}", r[0]);
    }
    let sim = rig.recordings();
    let n = assert_chain(
        &sim,
        "over",
        cov,
        cov + Duration::seconds(18),
        Duration::milliseconds(1500),
    );
    assert_eq!(n, 3, "{sim:?}");
}

#[tokio::test]
async fn sql_edits_take_effect_within_two_seconds_on_postgres() {
    let Some(mut rig) = Driven::on_postgres(Faults::default(), t0()).await else {
        return;
    };
    // Polling every 30 s: an edit seen sooner came by LISTEN/NOTIFY.
    rig.schedule.reload_poll_ms = 30_000;
    rig.add_policy("always", "*/2 * * * * *", 10, "expire", &["e1"])
        .await;
    rig.start().await;
    rig.run_for(Duration::seconds(3)).await;
    let running = |u: &str| {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == u && r.ended_at.is_none())
    };
    assert!(running("e1"), "{:?}\n{}", rig.recordings(), rig.log());
    // Every edit below takes effect while the daemon's clock stands still:
    // within 2 s on it, whatever this machine's load. `SEEN` only bounds
    // how long (real time) the machine may take to show it.
    const SEEN: std::time::Duration = std::time::Duration::from_secs(10);
    let edited_at = rig.now();
    let within = |what: &str| {
        assert!(
            rig.now() - edited_at <= Duration::seconds(2),
            "{what} took longer than 2 s on the daemon's clock"
        );
    };

    rig.sql("INSERT INTO policy_users (policy_id, user_id) SELECT id, 'e2' FROM policies WHERE name = 'always'")
        .await;
    wait_for(SEEN, "e2 recording after INSERT", || async {
        running("e2").then_some(())
    })
    .await;
    within("recording a user added");
    rig.sql("UPDATE policies SET enabled = false WHERE name = 'always'")
        .await;
    wait_for(SEEN, "recordings stopped after disable", || async {
        (!running("e1") && !running("e2")).then_some(())
    })
    .await;
    within("stopping after disable");
    let rows = wait_for(SEEN, "rows marked stopped", || async {
        let rows = rig.rows().await;
        rows.iter().all(|r| r.state.is_final()).then_some(rows)
    })
    .await;
    within("marking rows stopped");
    assert!(
        rows.iter()
            .any(|r| r.state == RecordingState::Stopped && r.ended_at.is_some()),
        "{rows:?}"
    );
    rig.sql("UPDATE policies SET enabled = true WHERE name = 'always'")
        .await;
    wait_for(SEEN, "recording again after enable", || async {
        (running("e1") && running("e2")).then_some(())
    })
    .await;
    within("recording again after enable");
    rig.sql("DELETE FROM policies WHERE name = 'always'").await;
    wait_for(SEEN, "recordings stopped after delete", || async {
        (!running("e1") && !running("e2")).then_some(())
    })
    .await;
    within("stopping after delete");
    assert!(rig.rows().await.len() >= 4, "history was lost");
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_leaves_nothing_unresolved_on_postgres() {
    let Some(mut rig) = PgRig::with_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    })
    .await
    else {
        return;
    };
    rig.set("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "8");
    let users: Vec<String> = (0..150).map(|i| format!("pburst-{i:03}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    // One window a few seconds ahead.
    let w = second_after(Duration::seconds(4));
    rig.add_policy("burst", &cron_at(w), 25, "expire", &refs)
        .await;
    let daemon = rig.spawn();
    until(w + Duration::milliseconds(800)).await;
    let (status, log) = daemon.term(std::time::Duration::from_secs(12));
    assert!(status.success(), "exit {status}:\n{log}");
    let rows = rig.rows().await;
    let pending = rows
        .iter()
        .filter(|r| r.state == RecordingState::Pending)
        .count();
    println!(
        "postgres, after SIGTERM: {pending} of {} rows pending",
        rows.len()
    );
    assert!(
        pending > 0,
        "the burst finished before SIGTERM: the test proves nothing"
    );

    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(15),
        "no pending rows",
        || async {
            let rows = rig.rows().await;
            (!rows.iter().any(|r| r.state == RecordingState::Pending)).then_some(())
        },
    )
    .await;
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
    let rows = rig.rows().await;
    let sim = rig.rig.recordings();
    assert_each_started_once(&rows, &sim, &users, w, Duration::seconds(25));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reads_a_running_daemon_on_postgres() {
    let Some(rig) = PgRig::new().await else {
        return;
    };
    rig.add_policy("always", "*/2 * * * * *", 10, "expire", &["st1"])
        .await;
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(15),
        "st1 recording",
        || async {
            let rows = rig.rows().await;
            rows.iter()
                .any(|r| r.user_id.as_str() == "st1" && r.state == RecordingState::Recording)
                .then_some(())
        },
    )
    .await;
    let bin = crate::common::bin::Recsched::new();
    let out = bin
        .command(&["status", "--json"])
        .env("RECSCHED_DATABASE__URL", &rig.db.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let now = &status["recording_now"]["rows"];
    assert!(
        now.as_array()
            .unwrap()
            .iter()
            .any(|r| r["user_id"] == "st1" && r["policy"] == "always"),
        "{status:#}"
    );
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

#[tokio::test]
async fn a_flaky_api_still_gets_every_window_started_once_on_postgres() {
    let faults = Faults {
        rate_425: 0.1,
        rate_504: 0.1,
        rate_504_after_start: 0.1,
        seed: 11,
        ..Faults::default()
    };
    let Some(mut rig) = Driven::on_postgres(faults, t0()).await else {
        return;
    };
    rig.retry.base_ms = 100;
    rig.retry.cap_ms = 1000;
    let users = ["pf1", "pf2", "pf3", "pf4"];
    rig.add_policy("flaky", "*/10 * * * * *", 8, "expire", &users)
        .await;
    rig.start().await;
    let t0 = rig.now();
    let windows = starts(t0 + Duration::seconds(2), t0 + Duration::seconds(22), 10, 0);
    rig.run_until(*windows.last().unwrap() + Duration::seconds(9))
        .await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    let sim = rig.recordings();
    let mut retried = 0;
    for w in &windows {
        for u in users {
            let r = row_at(&rows, u, *w);
            assert_eq!(r.len(), 1, "{u} {w}: {r:?}");
            let s = crate::daemon::sim_in(&sim, u, *w, *w + Duration::seconds(8));
            assert_eq!(s.len(), 1, "{u} at {w}: {s:?}\n{log}");
            assert_eq!(
                r[0].contact_id.map(|c| c.get()),
                Some(s[0].contact_id as i64)
            );
            retried += usize::from(r[0].attempts > 1);
        }
    }
    println!(
        "postgres, flaky API: {} windows started once each, {retried} after retries",
        windows.len() * users.len()
    );
    assert!(retried > 0, "the faults never fired");
}
