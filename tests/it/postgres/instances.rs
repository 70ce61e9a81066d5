//! The headline: three `recsched run` instances on one PostgreSQL
//! database, all active, one killed with `kill -9` midway. No window is
//! started twice, none is lost, and the killed instance's open rows are
//! taken over by the others once its lease runs out.
//!
//! 300 user windows in three rounds of 100 (a round before the kill, the
//! round it hits, a round after), 6 s apart; the test ends as soon as
//! every one of them is resolved.

use std::collections::{BTreeMap, HashSet};

use chrono::Duration;
use recsched::recording::RecordingState;

use crate::common::daemon::wait_for;
use crate::common::pg::PgRig;
use crate::daemon::{now, row_at, sim_in, starts, until};

fn refs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// The `instance` field of the daemon's "recsched running" line.
fn instance_of(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("recsched running"))?;
    let rest = line.split("instance=").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_instances_one_killed_neither_double_nor_lose_a_window() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "3");
    let expire: Vec<String> = (0..50).map(|i| format!("e{i:02}")).collect();
    let stop: Vec<String> = (0..50).map(|i| format!("s{i:02}")).collect();
    rig.add_policy(
        "expire-every-6s",
        "*/6 * * * * *",
        5,
        "expire",
        &refs(&expire),
    )
    .await;
    rig.add_policy("stop-every-6s", "*/6 * * * * *", 5, "stop", &refs(&stop))
        .await;

    let daemons: Vec<_> = (0..3).map(|_| rig.spawn()).collect();
    let mut ids = Vec::new();
    for d in &daemons {
        ids.push(
            wait_for(
                std::time::Duration::from_secs(30),
                "an instance to run",
                || async { instance_of(&d.log()) },
            )
            .await,
        );
    }
    println!("instances: {ids:?}");
    let t0 = now();
    let windows = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(19), 6, 0);
    assert_eq!(windows.len(), 3);

    // 1.5 s into the second window, kill with -9 the instance that holds
    // the most open rows (pending, recording, stop-mode rows to stop).
    // (On a loaded machine the claims may trail the window's opening:
    // wait for them, up to a second before the 5 s window ends.)
    until(windows[1] + Duration::milliseconds(1500)).await;
    let open_by: BTreeMap<String, usize> = wait_for(
        std::time::Duration::from_millis(2500),
        "open rows in the second window",
        || async {
            let mut open_by: BTreeMap<String, usize> = BTreeMap::new();
            for (_, owner, state) in rig.owners().await {
                if matches!(state.as_str(), "pending" | "recording" | "stopping") {
                    *open_by.entry(owner.unwrap_or_default()).or_default() += 1;
                }
            }
            (!open_by.is_empty()).then_some(open_by)
        },
    )
    .await;
    let victim_id = open_by
        .iter()
        .max_by_key(|(_, n)| **n)
        .map(|(id, _)| id.clone())
        .expect("open rows in the second window");
    let index = ids
        .iter()
        .position(|id| *id == victim_id)
        .expect("the owner is one of the three");
    let mut daemons: Vec<_> = daemons.into_iter().map(Some).collect();
    let victim = daemons[index].take().unwrap();
    let victim_log = victim.log.clone();
    victim.kill9();
    let owned_at_kill: Vec<i64> = rig
        .owners()
        .await
        .into_iter()
        .filter(|(_, owner, state)| {
            owner.as_deref() == Some(victim_id.as_str())
                && matches!(state.as_str(), "pending" | "recording" | "stopping")
        })
        .map(|(id, ..)| id)
        .collect();
    println!(
        "killed {victim_id} holding {} open rows",
        owned_at_kill.len()
    );

    // Until every window has a row in a final state (ended, stopped,
    // failed or missed with a reason): nothing changes after that. A row
    // lost or left open keeps the wait going to its deadline, then fails
    // below with the counts.
    let last = *windows.last().unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(40);
    while std::time::Instant::now() < deadline {
        let rows = rig.rows().await;
        let resolved = windows.iter().all(|w| {
            expire
                .iter()
                .chain(&stop)
                .all(|u| matches!(row_at(&rows, u, *w).as_slice(), [row] if row.state.is_final()))
        });
        if resolved && now() > last + Duration::seconds(5) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let mut logs = String::new();
    for d in daemons.into_iter().flatten() {
        let (status, log) = d.term(std::time::Duration::from_secs(20));
        assert!(status.success(), "exit {status}:\n{log}");
        logs.push_str(&log);
    }

    let rows = rig.rows().await;
    let sim = rig.rig.recordings();
    let owners: BTreeMap<i64, Option<String>> = rig
        .owners()
        .await
        .into_iter()
        .map(|(id, owner, _)| (id, owner))
        .collect();
    let (mut total, mut doubled, mut lost, mut started, mut failed) = (0, 0, 0, 0, 0);
    for w in &windows {
        for u in expire.iter().chain(&stop) {
            total += 1;
            let s = sim_in(&sim, u, *w, *w + Duration::seconds(5));
            if s.len() > 1 {
                doubled += 1;
                eprintln!("doubled: {u} {w}: {s:?}");
            }
            match row_at(&rows, u, *w).as_slice() {
                [] => {
                    lost += 1;
                    eprintln!("lost: no row for {u} at {w}");
                }
                [row] => match row.state {
                    RecordingState::Expired | RecordingState::Stopped => {
                        started += 1;
                        assert_eq!(s.len(), 1, "row started, simulator disagrees: {row:?}");
                        assert_eq!(
                            row.contact_id.map(|c| c.get()),
                            Some(s[0].contact_id as i64),
                            "{row:?}"
                        );
                    }
                    RecordingState::Failed | RecordingState::Missed => {
                        failed += 1;
                        assert!(row.last_error.is_some(), "no reason: {row:?}");
                    }
                    _ => {
                        lost += 1;
                        eprintln!("left open: {row:?}");
                    }
                },
                more => panic!("UNIQUE key broken: {more:?}"),
            }
        }
    }
    let taken_over = owned_at_kill
        .iter()
        .filter(|id| {
            owners
                .get(id)
                .is_some_and(|o| o.as_deref() != Some(victim_id.as_str()))
        })
        .count();
    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for owner in owners.values() {
        *by_owner
            .entry(owner.clone().unwrap_or_default())
            .or_default() += 1;
    }
    println!(
        "three instances, one killed: {total} windows, {started} started, {failed} failed or \
         missed with a reason, {doubled} doubled, {lost} lost; the killed instance had {} open \
         rows, {taken_over} taken over; rows by owner: {by_owner:?}",
        owned_at_kill.len()
    );
    if doubled > 0 || lost > 0 || taken_over < owned_at_kill.len() {
        eprintln!(
            "killed instance's log:\n{}",
            std::fs::read_to_string(&victim_log).unwrap_or_default()
        );
        eprintln!("survivors' logs:\n{logs}");
    }
    assert_eq!(total, 300);
    assert_eq!(doubled, 0);
    assert_eq!(lost, 0);
    assert!(
        !owned_at_kill.is_empty(),
        "the victim held no open rows: the test proves nothing"
    );
    assert_eq!(
        taken_over,
        owned_at_kill.len(),
        "every open row of the killed instance"
    );
    assert!(logs.contains("took over open rows"), "no takeover logged");
    let distinct: HashSet<&String> = by_owner.keys().collect();
    assert!(
        distinct.len() >= 2,
        "claims all went to one instance: {by_owner:?}"
    );
    assert!(
        started >= total * 8 / 10,
        "most windows start: {started}/{total}"
    );
}
