use super::*;
use crate::planner::windows;
use crate::policy::fixtures::policy;
use chrono::{Duration, TimeZone};
use proptest::prelude::*;

fn at(h: u32, m: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap()
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn spans(plan: &CoverageMap, u: &str) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
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

#[test]
fn users_with_the_same_policies_share_one_union_not_a_copy_each() {
    let many: Vec<String> = (0..1000).map(|i| format!("agent-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let policies = [
        policy(1, "* 11 * * *", 30, "expire", &many),
        policy(2, "0 9 * * *", 600, "stop", &["agent-1", "solo"]),
    ];
    let plan = coverage(&policies, at(9, 0), at(12, 30));
    let first = &plan[&user("agent-0")];
    assert_eq!(first.len(), 60);
    let sharing = many
        .iter()
        .filter(|u| Arc::ptr_eq(&plan[&user(u)], first))
        .count();
    // All but agent-1, who is in both policies.
    assert_eq!(sharing, 999);
    assert_eq!(plan[&user("agent-1")].len(), 61);
    assert_eq!(plan[&user("solo")].len(), 1);
}

#[test]
fn missed_and_ahead_walked_apart_cover_what_one_walk_covers() {
    let policies = [
        policy(1, "*/10 * * * *", 300, "expire", &["a", "b"]),
        policy(2, "0 * * * *", 5400, "stop", &["b"]),
    ];
    let (from, now, until) = (at(1, 3), at(5, 17), at(8, 47));
    let covered = cover(&policies, from, now, until, WALK_LIMIT);
    assert_eq!(covered.users, coverage(&policies, from, until));
    assert_eq!((covered.behind_until, covered.ahead_until), (None, None));
    assert!(covered.walked > 0 && covered.most_walked <= covered.walked);
}

#[test]
fn a_walk_of_what_was_missed_that_stops_says_where_and_keeps_what_it_walked() {
    // Five-second windows every 10 s, missed for an hour: 360 windows.
    let policies = [policy(1, "*/10 * * * * *", 5, "expire", &["a"])];
    let (from, now, until) = (at(4, 0), at(5, 0), at(5, 10));
    let covered = cover(&policies, from, now, until, 100);
    let stop = covered.behind_until.expect("the walk behind stops");
    assert!(stop > from && stop < now, "{stop}");
    assert_eq!(covered.ahead_until, None);
    // Every window opening before the stop, and every one meeting now on.
    let mut expected = coverage(&policies, from, stop)[&user("a")].to_vec();
    expected.extend(coverage(&policies, now, until)[&user("a")].iter().cloned());
    assert_eq!(covered.users[&user("a")].to_vec(), expected);
    // The next pass, from the stop, finds the rest.
    let next = cover(&policies, stop, now, until, u64::MAX);
    assert_eq!(next.users, coverage(&policies, stop, until));
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

/// An exclusion of `policy` (`None`: every policy) for `user` (`None`:
/// every user), over `[a, b)` minutes after 00:00.
fn exclusion(
    id: i64,
    policy: Option<i64>,
    user: Option<&str>,
    a: i64,
    b: i64,
) -> crate::policy::Exclusion {
    crate::policy::Exclusion {
        id: crate::policy::ExclusionId::new(id),
        policy: policy.map(PolicyId::new),
        user: user.map(|u| UserId::parse(u).unwrap()),
        span: crate::policy::exclusion::Span::Instants {
            start: at(0, 0) + Duration::minutes(a),
            end: at(0, 0) + Duration::minutes(b),
        },
        timezone: None,
        reason: None,
    }
}

fn with(mut policies: Vec<Policy>, exclusions: &[crate::policy::Exclusion]) -> Vec<Policy> {
    crate::policy::exclusion::attach(&mut policies, exclusions);
    policies
}

#[test]
fn an_exclusion_over_a_whole_window_removes_it() {
    let policies = with(
        vec![policy(1, "0 9,11 * * *", 3600, "expire", &["a", "b"])],
        &[exclusion(1, None, None, 9 * 60, 10 * 60)],
    );
    let plan = coverage(&policies, at(8, 0), at(13, 0));
    assert_eq!(spans(&plan, "a"), [(at(11, 0), at(12, 0))]);
    assert_eq!(spans(&plan, "b"), [(at(11, 0), at(12, 0))]);
}

#[test]
fn an_exclusion_inside_a_window_splits_it() {
    let policies = with(
        vec![policy(1, "0 9 * * *", 3 * 3600, "stop", &["a"])],
        &[exclusion(1, Some(1), None, 10 * 60, 10 * 60 + 30)],
    );
    let plan = coverage(&policies, at(8, 0), at(13, 0));
    assert_eq!(
        spans(&plan, "a"),
        [(at(9, 0), at(10, 0)), (at(10, 30), at(12, 0))]
    );
}

#[test]
fn an_exclusion_of_one_policy_leaves_another_covering() {
    let policies = with(
        vec![
            policy(1, "0 9 * * *", 3600, "expire", &["a"]),
            policy(2, "30 9 * * *", 3600, "expire", &["a"]),
        ],
        &[exclusion(1, Some(1), None, 0, 24 * 60)],
    );
    let plan = coverage(&policies, at(8, 0), at(13, 0));
    assert_eq!(spans(&plan, "a"), [(at(9, 30), at(10, 30))]);
    assert_eq!(
        plan[&user("a")][0].policies,
        BTreeSet::from([PolicyId::new(2)])
    );
}

#[test]
fn an_exclusion_of_one_user_leaves_the_others_alone() {
    let policies = with(
        vec![policy(1, "0 9 * * *", 3600, "expire", &["a", "b", "c"])],
        &[exclusion(1, None, Some("b"), 0, 24 * 60)],
    );
    let plan = coverage(&policies, at(8, 0), at(13, 0));
    assert_eq!(spans(&plan, "a"), [(at(9, 0), at(10, 0))]);
    assert_eq!(spans(&plan, "c"), [(at(9, 0), at(10, 0))]);
    assert!(!plan.contains_key(&user("b")), "{plan:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// An exclusion never adds coverage; what is left is disjoint from
    /// every exclusion that applies to every policy of the user; each
    /// policy's part is disjoint from that policy's exclusions; and only
    /// excluded time is removed.
    #[test]
    fn exclusions_only_ever_remove_the_time_they_hold(
        specs in prop::collection::vec(
            (0u32..60, 1i64..90, prop::collection::btree_set(0usize..3, 1..3)),
            1..4,
        ),
        cuts in prop::collection::vec(
            (prop::option::of(0i64..4), prop::option::of(0usize..3), 0i64..400, 1i64..120),
            0..5,
        ),
    ) {
        let names = ["a", "b", "c"];
        let policies: Vec<Policy> = specs
            .iter()
            .enumerate()
            .map(|(i, (minute, len, members))| {
                let members: Vec<&str> = members.iter().map(|&m| names[m]).collect();
                policy(i as i64, &format!("{minute} */2 * * *"), len * 60, "expire", &members)
            })
            .collect();
        let exclusions: Vec<_> = cuts
            .iter()
            .enumerate()
            .map(|(i, &(p, u, a, l))| exclusion(i as i64, p, u.map(|u| names[u]), a, a + l))
            .collect();
        let from = at(0, 0);
        let until = at(6, 0);
        let before = coverage(&policies, from, until);
        let cut = with(policies.clone(), &exclusions);
        let after = coverage(&cut, from, until);

        for name in names {
            let u = user(name);
            let was: Vec<Interval> = before.get(&u).map(|c| c.iter().map(Coverage::interval).collect()).unwrap_or_default();
            let is: Vec<Interval> = after.get(&u).map(|c| c.iter().map(Coverage::interval).collect()).unwrap_or_default();
            let covered = |spans: &[Interval], t: DateTime<Utc>| spans.iter().any(|s| s.contains(t));
            // Each policy's own time, less its exclusions for this user.
            let own: Vec<(PolicyId, Vec<Interval>)> = cut
                .iter()
                .filter(|p| p.users.contains(&u))
                .map(|p| {
                    let runs = merge(windows(p, from, until).iter().map(|w| w.interval()).collect());
                    let mine = merge(p.exclusions.iter().filter(|e| e.applies_to(&u)).map(|e| Interval::new(e.start, e.end)).collect());
                    (p.id, crate::planner::subtract(&runs, &mine))
                })
                .collect();
            for minute in 0..(8 * 60) {
                let t = from + Duration::minutes(minute);
                // Never adds.
                prop_assert!(!covered(&is, t) || covered(&was, t), "{name} at {minute}");
                // Covered now exactly where some policy still covers.
                let expected = own.iter().any(|(_, spans)| covered(spans, t));
                prop_assert_eq!(covered(&is, t), expected, "{} at {}", name, minute);
                // Disjoint from an exclusion of every policy of the user.
                for e in &exclusions {
                    let everywhere = e.policy.is_none() && e.user.as_ref().is_none_or(|x| *x == u);
                    let (s, end) = e.resolve(chrono_tz::UTC);
                    if everywhere && s <= t && t < end {
                        prop_assert!(!covered(&is, t), "{name} at {minute} excluded by {:?}", e.id);
                    }
                }
            }
            // Each contribution lies outside its policy's exclusions.
            for stretch in after.get(&u).into_iter().flat_map(|c| c.iter()) {
                for c in &stretch.contributions {
                    let policy = cut.iter().find(|p| p.id == c.policy).unwrap();
                    for e in policy.exclusions.iter().filter(|e| e.applies_to(&u)) {
                        prop_assert!(!c.interval.overlaps(&Interval::new(e.start, e.end)));
                    }
                }
            }
        }
    }
}
