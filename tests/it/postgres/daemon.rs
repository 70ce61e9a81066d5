//! The daemon end to end on PostgreSQL, a policy written with plain SQL,
//! the simulator on loopback: windows and edits by NOTIFY in-process on
//! driven time, a takeover with the real binary.

use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{EndReason, Faults};

use crate::common::daemon::{started, wait_for};
use crate::common::driven::Driven;
use crate::common::pg::PgRig;
use crate::daemon::{row_at, sim_in, starts, t0};

#[tokio::test]
async fn every_window_is_recorded_once_with_its_contact_id_and_edits_arrive_by_notify() {
    let Some(mut rig) = Driven::on_postgres(Faults::default(), t0()).await else {
        return;
    };
    // Polling every 30 s: an edit seen sooner came by LISTEN/NOTIFY.
    rig.schedule.reload_poll_ms = 30_000;
    rig.add_policy("every-10s", "*/10 * * * * *", 5, "expire", &["u1", "u2"])
        .await;
    rig.start().await;
    // A second policy, added while it runs, in stop mode: it must be seen
    // before the daemon's clock moves at all.
    rig.add_policy("stopper", "5-59/10 * * * * *", 5, "stop", &["s1"])
        .await;
    wait_for(
        std::time::Duration::from_secs(10),
        "the edit to arrive by NOTIFY",
        || async { rig.log().contains("policies reloaded").then_some(()) },
    )
    .await;
    let t0 = rig.now();
    let windows = starts(t0 + Duration::seconds(2), t0 + Duration::seconds(22), 10, 0);
    let stops = starts(t0 + Duration::seconds(2), t0 + Duration::seconds(22), 10, 5);
    let last = *windows.last().unwrap().max(stops.last().unwrap());
    rig.run_until(last + Duration::seconds(6)).await;
    rig.stop().await;
    let log = rig.log();

    let rows = rig.rows().await;
    let sim = rig.recordings();
    for (users, list, len, end) in [
        (&["u1", "u2"][..], &windows, 5, RecordingState::Expired),
        (&["s1"][..], &stops, 5, RecordingState::Stopped),
    ] {
        for w in list {
            for u in users {
                let r = row_at(&rows, u, *w);
                assert_eq!(r.len(), 1, "rows for {u} at {w}: {r:?}\n{log}");
                assert_eq!(r[0].state, end, "{:?}\n{log}", r[0]);
                assert_eq!(r[0].segment_end, *w + Duration::seconds(len));
                let s = sim_in(&sim, u, *w, *w + Duration::seconds(len));
                assert_eq!(s.len(), 1, "simulator recordings for {u} in {w}: {s:?}");
                assert_eq!(
                    Some(s[0].contact_id as i64),
                    r[0].contact_id.map(|c| c.get())
                );
            }
        }
    }
    for r in started(&rows) {
        let a = rig.store.attempts_for(r.id).await.unwrap();
        assert_eq!(a.first().and_then(|a| a.http_status), Some(200), "{r:?}");
    }
    // A clean stop released its leases: a recording still running at the
    // vendor may be taken over by another instance at once.
    let mut conn = rig.pg().expect("on PostgreSQL").conn().await;
    let held: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recordings \
         WHERE state IN ('pending', 'recording', 'stopping') AND lease_until > now()",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert_eq!(held, 0, "leases left after a clean stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_instance_takes_over_and_sends_a_dead_instances_pending_start() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "2");
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(20),
        "the daemon to run",
        || async { daemon.log().contains("recsched running").then_some(()) },
    )
    .await;
    // Another instance claimed this segment, then died before its start
    // was answered; its lease has run out.
    rig.db
        .sql(
            "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
             requested_seconds, end_mode, state, owner, lease_until) \
             VALUES ('orphan', 1, now() - interval '1 second', now() + interval '9 seconds', \
             10, 'stop', 'pending', 'dead-host-1-abcdef', now() - interval '1 second')",
        )
        .await;
    let row = wait_for(
        std::time::Duration::from_secs(10),
        "the orphaned start to be taken over and answered",
        || async {
            let rows = rig.rows().await;
            rows.into_iter()
                .find(|r| r.user_id.as_str() == "orphan" && r.contact_id.is_some())
        },
    )
    .await;
    let sim = rig.rig.recordings();
    let mine: Vec<_> = sim.iter().filter(|r| r.user_id == "orphan").collect();
    assert_eq!(mine.len(), 1, "{mine:?}");
    assert_eq!(
        Some(mine[0].contact_id as i64),
        row.contact_id.map(|c| c.get())
    );
    // No policy covers the orphan here, so a pass that runs right after
    // the start's answer stops it at once as uncovered; otherwise it is
    // still recording when seen (it is stopped at its end).
    match row.state {
        RecordingState::Recording => assert!(row.ended_at.is_none(), "{row:?}"),
        RecordingState::Stopped => {
            assert!(row.ended_at.is_some(), "{row:?}");
            assert_eq!(mine[0].end_reason, Some(EndReason::Stopped), "{mine:?}");
        }
        _ => panic!("taken over and answered, then neither recording nor stopped: {row:?}"),
    }
    let owner = rig
        .owners()
        .await
        .into_iter()
        .find(|(id, ..)| *id == row.id.get())
        .and_then(|(_, owner, _)| owner);
    assert!(
        owner.as_deref().is_some_and(|o| o != "dead-host-1-abcdef"),
        "{owner:?}"
    );
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
    assert!(log.contains("took over open rows"), "{log}");
    assert!(log.contains("dead-host-1-abcdef"), "{log}");
}

/// An edit committed after the daemon loaded its policies and before its
/// listener was up notified nobody. With polling every 30 s it must still
/// take effect at once: the watcher reads the revision once it listens.
#[tokio::test]
async fn an_edit_made_before_the_listener_is_up_still_takes_effect_at_once() {
    let Some(mut rig) = Driven::on_postgres(Faults::default(), t0()).await else {
        return;
    };
    rig.schedule.reload_poll_ms = 30_000;
    rig.at_ready = Some(crate::common::driven::policy_sql(
        "early",
        "*/10 * * * * *",
        5,
        "expire",
        &["early1"],
    ));
    rig.start().await;
    wait_for(
        std::time::Duration::from_secs(10),
        "the edit made before the listener was up",
        || async { rig.log().contains("policies reloaded").then_some(()) },
    )
    .await;
    let t0 = rig.now();
    let w = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(11), 10, 0)[0];
    rig.run_until(w + Duration::seconds(1)).await;
    let rows = rig.rows().await;
    let r = row_at(&rows, "early1", w);
    assert_eq!(r.len(), 1, "{rows:?}\n{}", rig.log());
    assert!(r[0].contact_id.is_some(), "{:?}", r[0]);
    rig.stop().await;
}
