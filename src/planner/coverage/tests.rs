use super::*;
use crate::policy::PolicyRow;
use chrono::{Duration, TimeZone};
use proptest::prelude::*;

fn policy(id: i64, cron: &str, secs: i64, end_mode: &str, users: &[&str]) -> Policy {
    Policy::from_row(&PolicyRow {
        id,
        name: format!("p{id}"),
        enabled: true,
        cron: cron.into(),
        timezone: "UTC".into(),
        window_seconds: secs,
        end_mode: end_mode.into(),
        users: users.iter().map(|u| u.to_string()).collect(),
        teams: Vec::new(),
    })
    .unwrap()
}

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap()
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn spans(plan: &BTreeMap<UserId, Vec<Coverage>>, u: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    plan.get(&user(u))
        .map(|c| c.iter().map(|c| (c.start, c.end)).collect())
        .unwrap_or_default()
}

#[test]
fn touching_windows_of_two_policies_merge() {
    let policies = [
        policy(1, "0 9 * * *", 3600, "expire", &["a"]),
        policy(2, "0 10 * * *", 3600, "expire", &["a"]),
    ];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(spans(&plan, "a"), [(at(9, 0), at(11, 0))]);
    let stretch = &plan[&user("a")][0];
    assert_eq!(
        stretch.policies,
        BTreeSet::from([PolicyId::new(1), PolicyId::new(2)])
    );
}

#[test]
fn separate_windows_stay_separate_and_sorted() {
    let policies = [
        policy(1, "0 11 * * *", 600, "expire", &["a"]),
        policy(2, "0 9 * * *", 600, "expire", &["a"]),
    ];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(
        spans(&plan, "a"),
        [(at(9, 0), at(9, 10)), (at(11, 0), at(11, 10))]
    );
}

#[test]
fn overlapping_windows_of_one_policy_merge() {
    // Every 15 minutes for 30 minutes: one continuous stretch.
    let policies = [policy(1, "*/15 9 * * *", 1800, "expire", &["a"])];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(spans(&plan, "a"), [(at(9, 0), at(10, 15))]);
}

#[test]
fn any_stop_policy_makes_the_stretch_stop() {
    let policies = [
        policy(1, "0 9 * * *", 3600, "expire", &["a", "b"]),
        policy(2, "30 9 * * *", 600, "stop", &["a"]),
    ];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(plan[&user("a")][0].end_mode, EndMode::Stop);
    assert_eq!(plan[&user("b")][0].end_mode, EndMode::Expire);
}

#[test]
fn disabled_policies_cover_nobody() {
    let mut off = policy(2, "0 10 * * *", 3600, "expire", &["a", "b"]);
    off.enabled = false;
    let policies = [policy(1, "0 9 * * *", 3600, "expire", &["a"]), off];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(spans(&plan, "a"), [(at(9, 0), at(10, 0))]);
    assert!(!plan.contains_key(&user("b")));
}

#[test]
fn users_without_windows_in_the_horizon_are_absent() {
    let policies = [policy(1, "0 20 * * *", 3600, "expire", &["a"])];
    assert!(coverage(&policies, at(8, 0), at(12, 0)).is_empty());
}

#[test]
fn stretches_are_not_clipped_to_the_horizon() {
    let policies = [policy(1, "0 9 * * *", 7200, "expire", &["a"])];
    let plan = coverage(&policies, at(10, 0), at(10, 5));
    assert_eq!(spans(&plan, "a"), [(at(9, 0), at(11, 0))]);
}

#[test]
fn policy_at_names_the_lowest_id_whose_window_holds_the_instant() {
    let policies = [
        policy(5, "0 9 * * *", 3600, "expire", &["a"]),
        policy(3, "30 9 * * *", 3600, "expire", &["a"]),
    ];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    let stretch = &plan[&user("a")][0];
    assert_eq!(stretch.policy_at(at(9, 0)), Some(PolicyId::new(5)));
    assert_eq!(stretch.policy_at(at(9, 45)), Some(PolicyId::new(3)));
    assert_eq!(stretch.policy_at(at(10, 15)), Some(PolicyId::new(3)));
    assert_eq!(stretch.policy_at(at(10, 30)), None);
}

#[test]
fn users_sharing_policies_get_equal_coverage() {
    let policies = [
        policy(1, "0 9 * * *", 3600, "expire", &["a", "b", "c"]),
        policy(2, "0 11 * * *", 600, "stop", &["b", "c"]),
    ];
    let plan = coverage(&policies, at(8, 0), at(12, 0));
    assert_eq!(plan[&user("b")], plan[&user("c")]);
    assert_ne!(plan[&user("a")], plan[&user("b")]);
}

/// 100,000 users in 1,000 policies over one hour; the benchmark proper
/// runs in release later. Run with `cargo test --lib -- --ignored`.
#[test]
#[ignore = "timing; run by hand"]
fn many_users_in_many_policies_plan_quickly() {
    let users: Vec<String> = (0..100_000).map(|i| format!("user-{i}")).collect();
    let policies: Vec<Policy> = (0..1000)
        .map(|i| {
            let members: Vec<&str> = users
                .iter()
                .skip(i * 100)
                .take(1000)
                .map(String::as_str)
                .collect();
            let cron = format!("{} * * * *", i % 60);
            policy(
                i as i64,
                &cron,
                900 + (i as i64 % 7) * 60,
                "expire",
                &members,
            )
        })
        .collect();
    let started = std::time::Instant::now();
    let plan = coverage(&policies, at(9, 0), at(10, 0));
    let elapsed = started.elapsed();
    assert_eq!(plan.len(), 100_000);
    eprintln!("planned {} users in {elapsed:?}", plan.len());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Coverage is exactly the union of the enabled windows, per user,
    /// sorted, disjoint and non-touching.
    #[test]
    fn coverage_is_the_union_of_enabled_windows(
        specs in prop::collection::vec(
            (0u32..60, 1i64..90, any::<bool>(), prop::collection::btree_set(0usize..4, 1..4)),
            1..6,
        ),
        from_minute in 0i64..120,
    ) {
        let names = ["a", "b", "c", "d"];
        let policies: Vec<Policy> = specs
            .iter()
            .enumerate()
            .map(|(i, (minute, len, enabled, members))| {
                let members: Vec<&str> = members.iter().map(|&m| names[m]).collect();
                let cron = format!("{minute} */2 * * *");
                let mut p = policy(i as i64, &cron, len * 60, "expire", &members);
                p.enabled = *enabled;
                p
            })
            .collect();
        let from = at(0, 0) + Duration::minutes(from_minute);
        let until = from + Duration::hours(6);
        let plan = coverage(&policies, from, until);
        for name in names {
            let mut expected: Vec<Interval> = policies
                .iter()
                .filter(|p| p.enabled && p.users.contains(&user(name)))
                .flat_map(|p| windows(p, from, until))
                .map(|w| w.interval())
                .collect();
            expected = merge(expected);
            let got: Vec<Interval> = plan
                .get(&user(name))
                .map(|c| c.iter().map(Coverage::interval).collect())
                .unwrap_or_default();
            prop_assert_eq!(&got, &expected);
            for pair in got.windows(2) {
                prop_assert!(pair[0].end < pair[1].start);
            }
        }
    }
}
