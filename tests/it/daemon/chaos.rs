//! `kill -9` at random moments (seeded, printed) across many windows: 14 s
//! of kills over ten users in two policies 3 s apart, so at least 20 user
//! windows (two rounds of each policy at the least) fall in it.

use super::{add_policy, now, row_at, sim_in, starts};
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
        .unwrap_or(14);
    println!(
        "chaos: seed {seed}, {secs} s of kill -9 (RECSCHED_CHAOS_SEED, RECSCHED_CHAOS_SECONDS)"
    );
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let rig = Rig::new().await;
    let even = ["a1", "a2", "a3", "a4", "a5", "a6"];
    add_policy(&rig, "even", "*/6 * * * * *", 5, "expire", &even).await;
    let odd = ["b1", "b2", "b3", "b4"];
    add_policy(&rig, "odd", "3-59/6 * * * * *", 5, "stop", &odd).await;
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
    // A last start resolves what the kills left open, then a clean stop
    // once every window has a row in a final state (nothing changes after
    // that) and has ended; a row lost or left open keeps the wait going to
    // its deadline, then fails below with the counts.
    let last = rig.spawn();
    let rounds = [(&even[..], 0), (&odd[..], 3)];
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let rows = rig.rows().await;
        let resolved = rounds.iter().all(|(users, offset)| {
            starts(t0 + Duration::seconds(1), stop_killing, 6, *offset)
                .iter()
                .all(|w| {
                    users.iter().all(|u| {
                        matches!(row_at(&rows, u, *w).as_slice(), [row] if row.state.is_final())
                    })
                })
        });
        if resolved && now() > stop_killing + Duration::seconds(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let (status, log) = last.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");

    let rows = rig.rows().await;
    let sim = rig.recordings();
    let (mut windows, mut doubled, mut lost, mut started, mut missed_or_failed) = (0, 0, 0, 0, 0);
    for (users, every_offset) in rounds {
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
