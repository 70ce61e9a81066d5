//! Rows edited with plain SQL while the daemon runs take effect within 2 s
//! (in-process, on driven time); SIGHUP reloads at once (the real binary).

use super::{add_policy, t0};
use crate::common::daemon::{wait_for, Rig};
use crate::common::driven::Driven;
use recsched::recording::RecordingState;
use recsched::simulator::EndReason;
use std::time::Duration;

/// How soon, on the daemon's clock, an edit takes effect.
const WITHIN: Duration = Duration::from_secs(2);

/// How long (real time) this machine may take to show an effect: the
/// watcher polls every 50 ms. Not a correctness margin.
const SEEN: Duration = Duration::from_secs(10);

#[tokio::test]
async fn sql_edits_take_effect_within_two_seconds() {
    let mut rig = Driven::new(t0()).await;
    // Windows every 2 s lasting 10 s: the user is always covered.
    rig.add_policy("always", "*/2 * * * * *", 10, "expire", &["e1"])
        .await;
    rig.start().await;
    rig.run_for(chrono::Duration::seconds(3)).await;
    let running = |u: &str| {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == u && r.ended_at.is_none())
    };
    assert!(running("e1"), "{:?}\n{}", rig.recordings(), rig.log());

    // Each edit below takes effect while the daemon's clock stands still
    // (the watcher polls on real time, the effect happens at once): well
    // within 2 s. `SEEN` only bounds how long this machine may take.
    let edited_at = rig.now();
    let within = |what: &str| {
        assert!(
            rig.now() - edited_at <= chrono::Duration::from_std(WITHIN).unwrap(),
            "{what} took longer than {WITHIN:?} on the daemon's clock"
        );
    };

    // A user added to a running window is caught up at once.
    rig.sql("INSERT INTO policy_users (policy_id, user_id) SELECT id, 'e2' FROM policies WHERE name = 'always';").await;
    wait_for(SEEN, "e2 to be recorded after INSERT", || async {
        running("e2").then_some(())
    })
    .await;
    within("recording a user added");

    // A broken row is reported and disturbs nothing.
    rig.add_policy("broken", "61 * * * *", 10, "expire", &["e3"])
        .await;
    wait_for(SEEN, "the broken row to be reported", || async {
        rig.log()
            .contains("policy `broken`: cron `61 * * * *`")
            .then_some(())
    })
    .await;
    rig.settle().await;
    assert!(rig.recordings().iter().all(|r| r.user_id != "e3"));
    assert!(running("e1") && running("e2"), "{:?}", rig.recordings());

    // Disabling the policy stops its users' recordings.
    rig.sql("UPDATE policies SET enabled = 0 WHERE name = 'always';")
        .await;
    wait_for(SEEN, "recordings to stop after disable", || async {
        let sim = rig.recordings();
        sim.iter()
            .filter(|r| r.user_id == "e1" || r.user_id == "e2")
            .all(|r| r.ended_at.is_some())
            .then_some(())
    })
    .await;
    within("stopping after disable");
    let sim = rig.recordings();
    assert!(
        sim.iter()
            .filter(|r| r.user_id == "e1")
            .any(|r| r.end_reason == Some(EndReason::Stopped)),
        "{sim:?}"
    );
    // The rows follow the answers to the stops.
    let rows = wait_for(SEEN, "rows to be marked stopped", || async {
        let rows = rig.rows().await;
        rows.iter().all(|r| r.state.is_final()).then_some(rows)
    })
    .await;
    within("marking rows stopped");
    let stopped: Vec<_> = rows
        .iter()
        .filter(|r| r.state == RecordingState::Stopped)
        .collect();
    assert!(stopped.iter().all(|r| r.ended_at.is_some()), "{stopped:?}");
    assert!(!stopped.is_empty(), "{rows:?}");

    // Changing the cron (and enabling again) starts recording again.
    let before = rig.recordings().len();
    rig.sql("UPDATE policies SET cron = '*/3 * * * * *', enabled = 1 WHERE name = 'always';")
        .await;
    wait_for(
        SEEN,
        "recording to resume after the cron change",
        || async {
            let sim = rig.recordings();
            (sim.len() >= before + 2 && running("e1") && running("e2")).then_some(())
        },
    )
    .await;
    within("recording again after the cron change");

    // Deleting the policy stops them again; its history stays.
    rig.sql("DELETE FROM policies WHERE name = 'always';").await;
    wait_for(SEEN, "recordings to stop after delete", || async {
        (!running("e1") && !running("e2")).then_some(())
    })
    .await;
    within("stopping after delete");
    let rows = rig.rows().await;
    assert!(rows.len() >= 4, "history was lost: {rows:?}");
    rig.stop().await;
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
    // Polling would take a minute: anything well under that came from the
    // signal (no tight margin on a loaded machine).
    wait_for(SEEN, "h2 to be recorded after SIGHUP", || async {
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
