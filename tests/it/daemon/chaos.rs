//! `kill -9` at random moments (seeded, printed) across many windows.

use super::{add_policy, now, row_at, sim_in, starts, until};
use crate::common::daemon::Rig;
use chrono::Duration;
use rand::{Rng, SeedableRng};
use recsched::recording::RecordingState;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_moments_neither_doubles_nor_loses_a_window() {
    let seed: u64 = std::env::var("RECSCHED_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20261125);
    let secs: i64 = std::env::var("RECSCHED_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    println!(
        "chaos: seed {seed}, {secs} s of kill -9 (RECSCHED_CHAOS_SEED, RECSCHED_CHAOS_SECONDS)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rig = Rig::new().await;
    let even = ["a1", "a2", "a3", "a4", "a5", "a6"];
    add_policy(&rig, "even", "*/6 * * * * *", 5, "expire", &even).await;
    add_policy(&rig, "odd", "3-59/6 * * * * *", 5, "stop", &["b1"]).await;
    let t0 = now();
    let stop_killing = t0 + Duration::seconds(secs);
    let mut kills = 0;
    while now() < stop_killing {
        let daemon = rig.spawn();
        let alive = std::time::Duration::from_millis(rng.random_range(300..3500));
        tokio::time::sleep(alive).await;
        daemon.kill9();
        kills += 1;
    }
    // A last start resolves what the kills left open, then a clean stop.
    let last = rig.spawn();
    until(now() + Duration::seconds(7)).await;
    let (status, log) = last.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");

    let rows = rig.rows().await;
    let sim = rig.recordings();
    let (mut windows, mut doubled, mut lost, mut started, mut missed_or_failed) = (0, 0, 0, 0, 0);
    for (users, every_offset) in [(&even[..], 0), (&["b1"][..], 3)] {
        for w in starts(t0 + Duration::seconds(1), stop_killing, 6, every_offset) {
            for u in users {
                windows += 1;
                let r = row_at(&rows, u, w);
                let s = sim_in(&sim, u, w, w + Duration::seconds(5));
                if s.len() > 1 {
                    doubled += 1;
                    eprintln!("doubled: {u} {w}: {s:?}");
                }
                match r.as_slice() {
                    [] => {
                        lost += 1;
                        eprintln!("lost: {u} {w}");
                    }
                    [row] => match row.state {
                        RecordingState::Missed | RecordingState::Failed => {
                            assert!(row.last_error.is_some(), "no reason: {row:?}");
                            missed_or_failed += 1;
                        }
                        RecordingState::Pending => {
                            lost += 1;
                            eprintln!("left pending: {row:?}");
                        }
                        _ => {
                            started += 1;
                            assert_eq!(
                                s.len(),
                                1,
                                "row says started, simulator disagrees: {row:?} {s:?}"
                            );
                            assert_eq!(
                                row.contact_id.map(|c| c.get()),
                                Some(s[0].contact_id as i64)
                            );
                        }
                    },
                    more => panic!("UNIQUE key broken: {more:?}"),
                }
            }
        }
    }
    println!(
        "chaos: {kills} kills over {windows} windows: {started} started, {missed_or_failed} missed/failed with a reason, {doubled} doubled, {lost} lost"
    );
    if lost > 0 || doubled > 0 {
        for r in &rows {
            eprintln!(
                "row: {} {} {} {} {:?} {:?} {:?}",
                r.user_id,
                r.segment_start,
                r.segment_end,
                r.state,
                r.contact_id,
                r.ended_at,
                r.last_error
            );
        }
        eprintln!("last log:\n{log}");
    }
    assert_eq!(doubled, 0);
    assert_eq!(lost, 0);
    assert!(windows >= 20, "only {windows} windows");
    assert!(
        started > windows / 2,
        "most windows should start: {started}/{windows}"
    );
}
