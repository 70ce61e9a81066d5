//! SIGTERM during a burst: exit 0 promptly, and no row stays pending once
//! the next start has resolved it.

use super::{add_policy, assert_each_started_once, until};
use crate::common::daemon::{wait_for, Rig};
use crate::faults::{cron_at, second_after};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::Faults;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_burst_exits_cleanly_and_leaves_nothing_unresolved() {
    let mut rig = Rig::with_faults(Faults {
        latency_ms: 200,
        ..Faults::default()
    })
    .await;
    rig.set("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "8");
    let users: Vec<String> = (0..100).map(|i| format!("burst-{i:03}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    // One window, a few seconds ahead, long enough that the restart below
    // lands inside it even on a loaded machine.
    let w = second_after(Duration::seconds(3));
    add_policy(&rig, "burst", &cron_at(w), 25, "expire", &refs).await;
    let daemon = rig.spawn();
    until(w + Duration::milliseconds(800)).await;
    let started_at = std::time::Instant::now();
    let (status, log) = daemon.term(std::time::Duration::from_secs(12));
    assert!(status.success(), "exit {status}:\n{log}");
    println!("SIGTERM to exit: {:?}", started_at.elapsed());
    assert!(log.contains("shutting down"), "{log}");
    let rows = rig.rows().await;
    let in_window = rows.iter().filter(|r| r.segment_start == w).count();
    assert_eq!(
        in_window,
        users.len(),
        "every due segment was claimed before any start"
    );
    let pending = rows
        .iter()
        .filter(|r| r.state == RecordingState::Pending)
        .count();
    println!("after SIGTERM: {pending} of {} rows pending", rows.len());
    assert!(
        pending > 0,
        "the burst finished before SIGTERM: the test proves nothing"
    );

    // The next start resolves every pending row.
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(12),
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
    let sim = rig.recordings();
    assert_each_started_once(&rows, &sim, &users, w, Duration::seconds(25));
}
