//! Two `recsched run` instances on one PostgreSQL database share a burst
//! claimed ahead: each walks the burst in its own order and claims its
//! share before the rest, so neither takes it whole while the other
//! idles; no start is doubled, none is lost.

use std::collections::{BTreeMap, HashMap};

use chrono::Duration;
use recsched::recording::RecordingState;

use crate::common::daemon::wait_for;
use crate::common::pg::PgRig;
use crate::faults::{cron_at, second_after, users};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_split_a_burst_claimed_ahead_neither_doubling_nor_losing_a_start() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    // Shorter than the wait between the claim and the instant (5 s): the
    // rows claimed ahead keep their owner only if their leases are
    // renewed while they wait.
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "3");
    let n = 300;
    let burst = users("split", n);
    let refs: Vec<&str> = burst.iter().map(String::as_str).collect();
    // Far enough ahead that both instances run before the claim (5 s
    // ahead of the window, the default).
    let w = second_after(Duration::seconds(9));
    rig.add_policy("split", &cron_at(w), 30, "expire", &refs)
        .await;
    let daemons = [rig.spawn(), rig.spawn()];
    let rows = wait_for(
        std::time::Duration::from_secs(40),
        "every start of the burst to be answered",
        || async {
            let rows = rig.rows().await;
            (rows.len() >= n && rows.iter().all(|r| r.state == RecordingState::Recording))
                .then_some(rows)
        },
    )
    .await;
    let logs = || {
        daemons
            .iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(rows.len(), n, "one row per user");
    assert!(
        rows.iter().all(|r| r.segment_start == w),
        "{rows:?}\n{}",
        logs()
    );

    let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
    for (_, owner, _) in rig.owners().await {
        *by_owner.entry(owner.unwrap_or_default()).or_default() += 1;
    }
    println!("claims by instance: {by_owner:?}");
    assert_eq!(by_owner.len(), 2, "{by_owner:?}\n{}", logs());
    for (owner, claimed) in &by_owner {
        assert!(
            *claimed * 4 >= n,
            "{owner} claimed only {claimed} of {n}: {by_owner:?}"
        );
    }
    let logs = logs();
    assert!(
        !logs.contains("took over open rows"),
        "a row claimed ahead lost its lease while it waited:\n{logs}"
    );
    // Every user recorded once at the vendor: none doubled, none lost.
    let sim = rig.rig.sim.recordings();
    let mut per_user: HashMap<&str, usize> = HashMap::new();
    for r in &sim {
        *per_user.entry(r.user_id.as_str()).or_default() += 1;
    }
    assert_eq!(per_user.len(), n, "{logs}");
    assert!(per_user.values().all(|c| *c == 1), "{per_user:?}");
    let starts = rig
        .rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .count();
    assert_eq!(starts, n, "one start request per user");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_killed_between_the_claim_and_the_instant_leaves_its_share_to_the_other() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "1");
    let n = 60;
    let burst = users("killed", n);
    let refs: Vec<&str> = burst.iter().map(String::as_str).collect();
    let w = second_after(Duration::seconds(9));
    rig.add_policy("killed", &cron_at(w), 30, "expire", &refs)
        .await;
    let mut daemons = vec![rig.spawn(), rig.spawn()];
    // Both shares claimed ahead, well before the instant.
    let owners = wait_for(
        std::time::Duration::from_secs(30),
        "the burst claimed ahead by both instances",
        || async {
            let mut by_owner: BTreeMap<String, usize> = BTreeMap::new();
            for (_, owner, _) in rig.owners().await {
                *by_owner.entry(owner.unwrap_or_default()).or_default() += 1;
            }
            (by_owner.values().sum::<usize>() == n && by_owner.len() == 2).then_some(by_owner)
        },
    )
    .await;
    assert!(
        crate::daemon::now() < w - Duration::seconds(2),
        "claimed too late to kill an instance before the instant: {owners:?}"
    );
    let victim = daemons.remove(0);
    // Instance ids are `host-pid-random`.
    let victim_pid = format!("-{}-", victim.pid());
    victim.kill9();
    println!("claims at the kill: {owners:?}");

    // The survivor takes the victim's pending rows over once their lease
    // runs out and sends them at the instant, not before.
    let rows = wait_for(
        std::time::Duration::from_secs(30),
        "every start of the burst to be answered",
        || async {
            let rows = rig.rows().await;
            (rows.len() == n && rows.iter().all(|r| r.state == RecordingState::Recording))
                .then_some(rows)
        },
    )
    .await;
    let log = daemons[0].log();
    assert!(log.contains("took over open rows"), "{log}");
    for (_, owner, _) in rig.owners().await {
        assert!(
            !owner.unwrap_or_default().contains(&victim_pid),
            "a row left to the killed instance: {rows:?}"
        );
    }
    let sim = rig.rig.sim.recordings();
    assert_eq!(sim.len(), n, "one recording per user: {sim:?}");
    let starts: Vec<_> = rig
        .rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .collect();
    assert_eq!(starts.len(), n, "{log}");
    assert!(
        starts.iter().all(|r| r.at >= w),
        "a start left before the instant {w}: {starts:?}"
    );
}
