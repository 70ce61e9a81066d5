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
