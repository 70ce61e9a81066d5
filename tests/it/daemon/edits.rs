//! Rows edited with plain SQL while the daemon runs take effect within 2 s.

use super::add_policy;
use crate::common::daemon::{wait_for, Rig};
use recsched::recording::RecordingState;
use recsched::simulator::EndReason;
use std::time::{Duration, Instant};

const WITHIN: Duration = Duration::from_secs(2);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sql_edits_take_effect_within_two_seconds() {
    let rig = Rig::new().await;
    // Windows every 2 s lasting 10 s: the user is always covered.
    add_policy(&rig, "always", "*/2 * * * * *", 10, "expire", &["e1"]).await;
    let mut daemon = rig.spawn();
    wait_for(Duration::from_secs(10), "e1 recording", || async {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == "e1" && r.ended_at.is_none())
            .then_some(())
    })
    .await;

    // A user added to a running window is caught up at once.
    let t = Instant::now();
    rig.sql("INSERT INTO policy_users (policy_id, user_id) SELECT id, 'e2' FROM policies WHERE name = 'always';").await;
    wait_for(WITHIN, "e2 to be recorded after INSERT", || async {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == "e2" && r.ended_at.is_none())
            .then_some(())
    })
    .await;
    println!("user added -> recording in {:?}", t.elapsed());

    // A broken row is reported and disturbs nothing.
    add_policy(&rig, "broken", "61 * * * *", 10, "expire", &["e3"]).await;
    wait_for(WITHIN, "the broken row to be reported", || async {
        daemon
            .log()
            .contains("policy `broken`: cron `61 * * * *`")
            .then_some(())
    })
    .await;
    daemon.assert_running();
    assert!(rig.recordings().iter().all(|r| r.user_id != "e3"));
    let running = |u: &str| {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == u && r.ended_at.is_none())
    };
    assert!(running("e1") && running("e2"), "{:?}", rig.recordings());

    // Disabling the policy stops its users' recordings.
    let t = Instant::now();
    rig.sql("UPDATE policies SET enabled = 0 WHERE name = 'always';")
        .await;
    wait_for(WITHIN, "recordings to stop after disable", || async {
        let sim = rig.recordings();
        sim.iter()
            .filter(|r| r.user_id == "e1" || r.user_id == "e2")
            .all(|r| r.ended_at.is_some())
            .then_some(())
    })
    .await;
    println!("disabled -> stopped in {:?}", t.elapsed());
    let sim = rig.recordings();
    assert!(
        sim.iter()
            .filter(|r| r.user_id == "e1")
            .any(|r| r.end_reason == Some(EndReason::Stopped)),
        "{sim:?}"
    );
    // The rows follow the answers to the stops.
    let rows = wait_for(WITHIN, "rows to be marked stopped", || async {
        let rows = rig.rows().await;
        rows.iter().all(|r| r.state.is_final()).then_some(rows)
    })
    .await;
    let stopped: Vec<_> = rows
        .iter()
        .filter(|r| r.state == RecordingState::Stopped)
        .collect();
    assert!(stopped.iter().all(|r| r.ended_at.is_some()), "{stopped:?}");
    assert!(!stopped.is_empty(), "{rows:?}");

    // Changing the cron (and enabling again) starts recording again.
    let t = Instant::now();
    let before = rig.recordings().len();
    rig.sql("UPDATE policies SET cron = '*/3 * * * * *', enabled = 1 WHERE name = 'always';")
        .await;
    wait_for(
        WITHIN,
        "recording to resume after the cron change",
        || async {
            let sim = rig.recordings();
            (sim.len() >= before + 2 && running("e1") && running("e2")).then_some(())
        },
    )
    .await;
    println!("cron changed -> recording in {:?}", t.elapsed());

    // Deleting the policy stops them again; its history stays.
    rig.sql("DELETE FROM policies WHERE name = 'always';").await;
    wait_for(WITHIN, "recordings to stop after delete", || async {
        (!running("e1") && !running("e2")).then_some(())
    })
    .await;
    let rows = rig.rows().await;
    assert!(rows.len() >= 4, "history was lost: {rows:?}");
    let (status, log) = daemon.term(Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once_even_with_slow_polling() {
    let mut rig = Rig::new().await;
    rig.set("RECSCHED_SCHEDULE__RELOAD_POLL_MS", "60000");
    add_policy(&rig, "always", "*/2 * * * * *", 10, "expire", &["h1"]).await;
    let daemon = rig.spawn();
    wait_for(Duration::from_secs(10), "h1 recording", || async {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == "h1")
            .then_some(())
    })
    .await;
    rig.sql("INSERT INTO policy_users (policy_id, user_id) SELECT id, 'h2' FROM policies WHERE name = 'always';").await;
    daemon.hup();
    wait_for(WITHIN, "h2 to be recorded after SIGHUP", || async {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == "h2")
            .then_some(())
    })
    .await;
    assert!(
        daemon.log().contains("reload requested"),
        "{}",
        daemon.log()
    );
    let (status, log) = daemon.term(Duration::from_secs(15));
    assert!(status.success(), "{log}");
}
