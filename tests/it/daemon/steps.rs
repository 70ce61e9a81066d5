//! The wall clock steps while the daemon runs (in-process, on driven
//! time: the manual clock steps its wall-clock reading alone, as NTP
//! would). The real binary under libfaketime is in `crate::faketime`.

use super::{row_at, sim_in, t0};
use crate::common::driven::Driven;
use crate::faults::cron_at;
use chrono::Duration;
use recsched::clock::parse_utc;
use recsched::daemon::LAST_SEEN_KEY;
use recsched::recording::RecordingState;

#[tokio::test]
async fn a_forward_step_while_waiting_starts_the_window_on_time_by_the_new_clock() {
    let mut rig = Driven::new(t0()).await;
    let w = t0() + Duration::minutes(30) + Duration::seconds(10);
    rig.add_policy("ahead", &cron_at(w), 60, "expire", &["s1"])
        .await;
    rig.start().await;
    rig.run_for(Duration::seconds(2)).await;
    rig.clock.step(Duration::minutes(30));
    rig.run_until(w + Duration::seconds(2)).await;
    rig.stop().await;
    let log = rig.log();
    assert!(
        log.contains("the wall clock stepped forward by 30 min"),
        "{log}"
    );
    // One recording at the vendor (whose clock did not step).
    let sim = rig.recordings();
    let vendor_w = w - Duration::minutes(30);
    let made = sim_in(&sim, "s1", vendor_w, vendor_w + Duration::seconds(60));
    assert_eq!(made.len(), 1, "{sim:?}\n{log}");
    // Sent within 2 s of the window on the stepped clock.
    let rows = rig.rows().await;
    let r = row_at(&rows, "s1", w);
    assert_eq!(r.len(), 1, "{rows:?}");
    assert_eq!(
        r[0].contact_id.map(|c| c.get()),
        Some(made[0].contact_id as i64)
    );
    let sent = rig.store.attempts_for(r[0].id).await.unwrap()[0].at;
    assert!(
        sent >= w && sent - w < Duration::seconds(2),
        "sent at {sent}, window at {w}"
    );
}

#[tokio::test]
async fn windows_a_forward_step_jumps_over_are_missed_with_the_reason_and_an_open_one_starts_late()
{
    let mut rig = Driven::new(t0()).await;
    // The slices below are counted from a pass at 09:00:00, the window's
    // instant; a claim ahead makes no pass then.
    rig.schedule.claim_ahead_seconds = 0;
    rig.add_policy("every-10s", "*/10 * * * * *", 8, "expire", &["j1"])
        .await;
    rig.start().await;
    // 08:59:58 -> 09:00:03: the 09:00:00 window starts on time.
    rig.run_for(Duration::seconds(5)).await;
    // The clock jumps 17 s, to 09:00:20. The loop sees it at the end of
    // its current slice (09:00:05 had the clock not stepped, so 09:00:22):
    // the window of 09:00:10 to :18 was jumped over; the one from :20 to
    // :28 has 6 s left.
    rig.clock.step(Duration::seconds(17));
    rig.run_for(Duration::seconds(6)).await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    let at = |s: i64| t0() + Duration::seconds(2 + s);
    let missed = row_at(&rows, "j1", at(10));
    assert_eq!(missed.len(), 1, "{rows:?}\n{log}");
    assert_eq!(missed[0].state, RecordingState::Missed);
    assert_eq!(
        missed[0].last_error.as_deref(),
        Some("the wall clock stepped forward over the window")
    );
    let late = row_at(&rows, "j1", at(20));
    assert_eq!(late.len(), 1, "{rows:?}\n{log}");
    assert_ne!(late[0].state, RecordingState::Missed, "{:?}", late[0]);
    assert!(late[0].contact_id.is_some(), "{:?}", late[0]);
    assert!(late[0].late_seconds.unwrap_or(0.0) > 1.0, "{:?}", late[0]);
}

#[tokio::test]
async fn a_backward_step_starts_no_window_twice_and_the_heartbeat_keeps_its_period() {
    let mut rig = Driven::new(t0()).await;
    rig.add_policy("every-10s", "*/10 * * * * *", 5, "stop", &["b1"])
        .await;
    rig.start().await;
    let w = t0() + Duration::seconds(2);
    rig.run_until(w + Duration::seconds(1)).await;
    let before = rig.rows().await;
    assert_eq!(row_at(&before, "b1", w).len(), 1, "{before:?}");
    rig.clock.step(-Duration::hours(1));
    // The heartbeat goes on every 5 s on the stepped clock.
    for _ in 0..3 {
        rig.run_for(Duration::seconds(5)).await;
        let seen = rig
            .store
            .get_state(LAST_SEEN_KEY)
            .await
            .unwrap()
            .and_then(|v| parse_utc(&v).ok())
            .expect("a heartbeat");
        let now = rig.now();
        assert!(
            seen <= now && now - seen <= Duration::seconds(5),
            "last seen {seen}, now {now}\n{}",
            rig.log()
        );
    }
    rig.stop().await;
    let log = rig.log();
    assert!(log.contains("the wall clock stepped back by 1 h"), "{log}");
    let rows = rig.rows().await;
    let sim = rig.recordings();
    // The window started before the step: one row, one start, still
    // recording (its window now lies ahead: it is not ended early).
    let r = row_at(&rows, "b1", w);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].state, RecordingState::Recording, "{:?}\n{log}", r[0]);
    let starts = rig
        .store
        .attempts_for(r[0].id)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.operation.as_str() == "start")
        .count();
    assert_eq!(starts, 1, "{log}");
    // Every vendor recording belongs to exactly one row.
    for m in &sim {
        let holders = rows
            .iter()
            .filter(|r| r.contact_id.map(|c| c.get()) == Some(m.contact_id as i64))
            .count();
        assert_eq!(holders, 1, "{m:?} in {rows:?}");
    }
    // And every row that started holds a recording of its own.
    let started = rows.iter().filter(|r| r.contact_id.is_some()).count();
    assert_eq!(sim.len(), started, "{sim:?}\n{rows:?}\n{log}");
}
