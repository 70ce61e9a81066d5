//! Policies that name CXone teams, end to end on the real binary: a team
//! of 1,200 read in pages of 500 is recorded once each, a leaver's
//! recording ends at the next refresh, a joiner is covered at once, and a
//! directory that goes down keeps the last membership (status, teams and
//! the metric show its age).

use super::issuer_only;
use crate::common::bin::Recsched;
use crate::common::daemon::{wait_for, Daemon, Rig};
use recsched::simulator::{EndReason, Faults, SimConfig, SEARCH_PATH};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

const TEAM: &str = "back-office";

fn member(i: usize) -> String {
    format!("bo-{i:04}")
}

/// Sim recordings per user: (how many, how many still running).
fn per_user(rig: &Rig) -> HashMap<String, (usize, usize)> {
    let mut by: HashMap<String, (usize, usize)> = HashMap::new();
    for r in rig.recordings() {
        let e = by.entry(r.user_id.clone()).or_default();
        e.0 += 1;
        e.1 += usize::from(r.ended_at.is_none());
    }
    by
}

/// `http://127.0.0.1:PORT` of the daemon's metrics listener, from its log.
async fn metrics_url(daemon: &Daemon) -> String {
    wait_for(Duration::from_secs(10), "the metrics listener", || async {
        let log = daemon.log();
        let line = log.lines().find(|l| l.contains("metrics listening"))?;
        let start = line.find("http://")?;
        let url: String = line[start..]
            .chars()
            .take_while(|c| !c.is_whitespace() && *c != '"')
            .collect();
        Some(url.trim_end_matches("/metrics").to_owned())
    })
    .await
}

/// A `recsched` CLI run against the rig's database.
fn cli(rig: &Rig, args: &[&str]) -> String {
    let r = Recsched::new();
    let out = r
        .command(args)
        .env("RECSCHED_DATABASE__PATH", &rig.db)
        .env("RECSCHED_DIRECTORY__REFRESH_SECONDS", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_of_1200_is_recorded_once_each_and_follows_the_directory() {
    let members: Vec<String> = (0..1200).map(member).collect();
    let mut rig = Rig::with_config(SimConfig {
        teams: BTreeMap::from([(TEAM.to_owned(), members.clone())]),
        ..SimConfig::default()
    })
    .await;
    issuer_only(&mut rig);
    rig.set("RECSCHED_DIRECTORY__REFRESH_SECONDS", "1");
    rig.set("RECSCHED_DIRECTORY__TEAM_TIMEOUT_SECONDS", "2");
    rig.set("RECSCHED_METRICS__LISTEN", "127.0.0.1:0");
    // Windows every second lasting ten minutes: the team is covered
    // throughout, so each member is one recording, started once.
    rig.sql(&format!(
        "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) \
         VALUES ('team', '* * * * * *', 'UTC', 600, 'stop'); \
         INSERT INTO policy_teams (policy_id, team_id) SELECT id, '{TEAM}' FROM policies \
         WHERE name = 'team';"
    ))
    .await;
    let daemon = rig.spawn();
    let t0 = std::time::Instant::now();

    let by = wait_for(
        Duration::from_secs(60),
        "all 1200 members recording",
        || async {
            let by = per_user(&rig);
            (by.values().filter(|(_, running)| *running > 0).count() == 1200).then_some(by)
        },
    )
    .await;
    for m in &members {
        assert_eq!(by.get(m), Some(&(1, 1)), "{m} is not recorded exactly once");
    }
    assert_eq!(by.len(), 1200, "someone else was recorded");
    let searches = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == SEARCH_PATH)
        .count();
    assert!(
        searches >= 3,
        "1200 users at 500 a page take 3 searches, saw {searches}"
    );
    // One write-ahead row each, each with its contact id once written.
    let rows = wait_for(
        Duration::from_secs(10),
        "1200 rows with contact ids",
        || async {
            let rows = rig.rows().await;
            rows.iter().all(|r| r.contact_id.is_some()).then_some(rows)
        },
    )
    .await;
    assert_eq!(rows.len(), 1200);

    println!("1200 recording after {:?}", t0.elapsed());
    // A leaver's recording ends at the next refresh; a joiner's starts.
    let leaver = member(7);
    assert!(rig.sim.remove_from_team(TEAM, &leaver));
    rig.sim.add_to_team(TEAM, "newcomer");
    wait_for(
        Duration::from_secs(15),
        "the leaver stopped, the joiner recording",
        || async {
            let sim = rig.recordings();
            let stopped = sim
                .iter()
                .any(|r| r.user_id == leaver && r.end_reason == Some(EndReason::Stopped));
            let joined = sim
                .iter()
                .any(|r| r.user_id == "newcomer" && r.ended_at.is_none());
            (stopped && joined).then_some(())
        },
    )
    .await;

    println!("leaver and joiner after {:?}", t0.elapsed());
    // The directory goes down: the membership stays, nobody is stopped.
    rig.sim
        .set_faults(Faults {
            search_down: true,
            ..Faults::default()
        })
        .unwrap();
    let failures = || async {
        rig.store
            .team_refreshes()
            .await
            .unwrap()
            .rows
            .into_iter()
            .find(|r| r.team_id == TEAM)
            .filter(|r| r.last_error.is_some())
    };
    let first = wait_for(Duration::from_secs(20), "a failed refresh", failures).await;
    wait_for(
        Duration::from_secs(20),
        "a second failed refresh",
        || async {
            failures()
                .await
                .filter(|r| r.attempted_at > first.attempted_at)
        },
    )
    .await;
    println!("two failed refreshes after {:?}", t0.elapsed());
    let after = per_user(&rig);
    let running = after.values().filter(|(_, running)| *running > 0).count();
    assert_eq!(
        running, 1200,
        "1199 members and the newcomer keep recording"
    );
    assert!(
        after.values().all(|(n, _)| *n == 1),
        "no one was started twice"
    );
    let kept = rig.store.team_member_rows(TEAM).await.unwrap();
    assert!(kept.bad.is_empty(), "{:?}", kept.bad);
    let kept = kept.rows;
    assert_eq!(kept.len(), 1200);
    assert!(kept.iter().all(|m| m.user_id != leaver));

    // The age shows in status, teams and the metric.
    let status = cli(&rig, &["status"]);
    assert!(
        status.contains("team back-office: 1200 members, read"),
        "{status}"
    );
    assert!(status.contains("last read failed at"), "{status}");
    let teams: serde_json::Value = serde_json::from_str(&cli(&rig, &["teams", "--json"])).unwrap();
    assert_eq!(teams[0]["team_id"], TEAM);
    assert_eq!(teams[0]["member_count"], 1200);
    assert_eq!(teams[0]["members"].as_array().unwrap().len(), 1200);
    assert_eq!(teams[0]["policies"][0]["name"], "team");
    assert!(teams[0]["last_error"].is_string(), "{}", teams[0]);
    assert!(teams[0]["age_seconds"].as_i64().unwrap() >= 1);
    let url = metrics_url(&daemon).await;
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("recsched_team_membership_age_seconds{team=\"back-office\"}")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "recsched_team_members{team=\"back-office\"} 1200"),
        "{text}"
    );
    let log = daemon.log();
    assert!(
        log.contains("team refresh failed; keeping the last membership"),
        "{log}"
    );
    assert!(log.contains("team membership changed"), "{log}");
}
