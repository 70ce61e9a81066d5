use super::*;
use crate::daemon::open_rows::OpenRow;
use crate::policy::fixtures::policy;
use crate::policy::EndMode;
use crate::recording::{ContactId, RecordingState};
use chrono::{Duration, TimeZone};

/// 2026-01-01 at `h:m:s` UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
}

fn user(u: &str) -> UserId {
    UserId::parse(u).unwrap()
}

fn horizon() -> Duration {
    Duration::seconds(12_600)
}

/// A live (recording) row of `u` for `[start, start + secs)`.
fn live(id: i64, u: &str, start: DateTime<Utc>, secs: i64, busy: bool) -> Tracked {
    Tracked {
        row: OpenRow {
            id: RecordingId::new(id),
            segment: Segment {
                user: user(u),
                start,
                end: start + Duration::seconds(secs),
                duration: RecordingDuration::from_secs(secs).unwrap(),
                policy: PolicyId::new(1),
                end_mode: EndMode::Expire,
            },
            state: RecordingState::Recording,
            contact: Some(ContactId::new(id).unwrap()),
        },
        busy,
    }
}

fn plan_at(policies: &[Policy], tracked: &[Tracked], now: DateTime<Utc>) -> Plan {
    let cov = coverage(policies, now, now, horizon());
    decide(&cov, &HashMap::new(), tracked, now, SegmentLimit::default())
}

#[test]
fn a_window_opening_now_starts_with_its_whole_length_and_no_lateness() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann", "bob"])];
    let plan = plan_at(&p, &[], at(9, 0, 0));
    assert_eq!(plan.starts.len(), 2);
    for s in &plan.starts {
        assert_eq!(s.remaining.as_secs(), 600);
        assert_eq!(s.late, Duration::zero());
        assert_eq!(s.segment.start, at(9, 0, 0));
    }
    assert!(plan.missed.is_empty() && plan.ends.is_empty());
}

#[test]
fn a_late_start_asks_for_what_is_left_and_says_how_late() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    let plan = plan_at(&p, &[], at(9, 4, 0));
    let [s] = plan.starts.as_slice() else {
        panic!("{:?}", plan.starts)
    };
    assert_eq!(s.remaining.as_secs(), 360);
    assert_eq!(s.late, Duration::minutes(4));
}

#[test]
fn an_upcoming_window_sets_the_next_wake_and_the_next_start() {
    let p = [
        policy(1, "0 9 * * *", 600, "expire", &["ann"]),
        policy(2, "30 8 * * *", 60, "expire", &["bob"]),
    ];
    let plan = plan_at(&p, &[], at(8, 0, 0));
    assert!(plan.starts.is_empty());
    assert_eq!(plan.next, Some(at(8, 30, 0)));
    assert_eq!(plan.next_start, Some((at(8, 30, 0), PolicyId::new(2))));
}

#[test]
fn windows_wholly_past_since_from_are_missed() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    let now = at(9, 30, 0);
    let cov = coverage(&p, at(8, 0, 0), now, horizon());
    let plan = decide(&cov, &HashMap::new(), &[], now, SegmentLimit::default());
    assert_eq!(plan.missed.len(), 1);
    assert_eq!(plan.missed[0].start, at(9, 0, 0));
    assert!(plan.starts.is_empty());
}

#[test]
fn occupied_time_is_not_planned_again() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    let now = at(9, 0, 0);
    let cov = coverage(&p, now, now, horizon());
    let occupied = by_user(vec![(user("ann"), at(9, 0, 0), at(9, 10, 0))]);
    let plan = decide(&cov, &occupied, &[], now, SegmentLimit::default());
    assert!(plan.starts.is_empty() && plan.missed.is_empty());
}

#[test]
fn a_recording_ends_at_its_end_and_early_when_no_longer_covered() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    let due = live(1, "ann", at(8, 0, 0), 600, false);
    let uncovered = live(2, "bob", at(9, 0, 0), 600, false);
    let covered = live(3, "ann", at(9, 0, 0), 600, false);
    let plan = plan_at(&p, &[due, uncovered, covered], at(9, 5, 0));
    assert_eq!(
        plan.ends,
        vec![
            (RecordingId::new(1), EndReason::Due),
            (RecordingId::new(2), EndReason::Uncovered)
        ]
    );
    assert_eq!(plan.next, Some(at(9, 10, 0)));
}

#[test]
fn a_row_a_job_holds_is_left_alone_but_woken_for() {
    let busy = live(1, "ann", at(9, 0, 0), 60, true);
    let plan = plan_at(&[], &[busy], at(9, 0, 30));
    assert!(plan.ends.is_empty());
    assert_eq!(plan.next, Some(at(9, 1, 0)));
    let busy_past = live(1, "ann", at(9, 0, 0), 60, true);
    assert!(plan_at(&[], &[busy_past], at(9, 2, 0)).ends.is_empty());
}

#[test]
fn after_the_clock_steps_back_a_recording_ahead_of_now_is_not_ended_early() {
    // The 09:00 window is recording; the wall clock steps back to 08:00.
    let p = [policy(1, "0 9 * * *", 600, "stop", &["ann"])];
    let rec = live(1, "ann", at(9, 0, 0), 600, false);
    let plan = plan_at(&p, std::slice::from_ref(&rec), at(8, 0, 0));
    assert!(plan.ends.is_empty(), "{:?}", plan.ends);
    assert_eq!(plan.next, Some(at(9, 0, 0)));
    // Even with its policy gone.
    let plan = plan_at(&[], &[rec], at(8, 0, 0));
    assert!(plan.ends.is_empty(), "{:?}", plan.ends);
}

#[test]
fn a_pending_row_of_an_earlier_process_is_never_planned_again() {
    let mut pending = live(1, "ann", at(9, 0, 0), 600, false);
    pending.row.state = RecordingState::Pending;
    pending.row.contact = None;
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    let plan = plan_at(&p, &[pending], at(9, 20, 0));
    assert!(plan.ends.is_empty());
    assert!(plan.next.is_none_or(|n| n > at(9, 20, 0)));
}

/// Exclusions cut coverage while a recording runs.
mod excluded {
    use super::*;
    use crate::daemon::open_rows::OpenRow;
    use crate::planner::Segment;
    use crate::policy::exclusion::{attach, Span};
    use crate::policy::{Exclusion, ExclusionId, PolicyRow};
    use crate::recording::RecordingDuration;
    use chrono::TimeZone;

    fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, h, m, s).unwrap()
    }

    fn ann() -> UserId {
        UserId::parse("ann").unwrap()
    }

    /// A 09:00-12:00 policy for ann, with an exclusion from `excluded` on.
    fn policies(end_mode: &str, excluded: Option<DateTime<Utc>>) -> Vec<Policy> {
        let mut p = vec![Policy::from_row(&PolicyRow {
            id: 1,
            name: "p".into(),
            enabled: true,
            cron: "0 9 * * *".into(),
            timezone: "UTC".into(),
            window_seconds: 3 * 3600,
            end_mode: end_mode.into(),
            users: vec!["ann".into()],
            teams: Vec::new(),
        })
        .unwrap()];
        if let Some(start) = excluded {
            let e = Exclusion {
                id: ExclusionId::new(1),
                policy: None,
                user: None,
                span: Span::Instants {
                    start,
                    end: at(23, 0, 0),
                },
                timezone: None,
                reason: Some("shutdown".into()),
            };
            attach(&mut p, &[e]);
        }
        p
    }

    /// Ann's live 09:00-12:00 recording.
    fn live(end_mode: EndMode, end: DateTime<Utc>) -> Tracked {
        let start = at(9, 0, 0);
        Tracked {
            row: OpenRow {
                id: RecordingId::new(7),
                segment: Segment {
                    user: ann(),
                    start,
                    end,
                    duration: RecordingDuration::from_secs((end - start).num_seconds()).unwrap(),
                    policy: PolicyId::new(1),
                    end_mode,
                },
                state: RecordingState::Recording,
                contact: None,
            },
            busy: false,
        }
    }

    fn plan(policies: &[Policy], t: &Tracked, now: DateTime<Utc>) -> Plan {
        let cov = coverage(policies, now, now, chrono::Duration::hours(4));
        let seg = &t.row.segment;
        let occupied = by_user(vec![(ann(), seg.start, seg.end)]);
        decide(
            &cov,
            &occupied,
            std::slice::from_ref(t),
            now,
            SegmentLimit::default(),
        )
    }

    #[test]
    fn an_exclusion_beginning_mid_recording_wakes_the_loop_when_it_begins_and_ends_it() {
        for mode in [EndMode::Expire, EndMode::Stop] {
            let ps = policies(mode.as_str(), Some(at(10, 0, 0)));
            let t = live(mode, at(12, 0, 0));
            let before = plan(&ps, &t, at(9, 30, 0));
            assert!(before.ends.is_empty());
            assert_eq!(before.next, Some(at(10, 0, 0)), "{mode:?}");
            let then = plan(&ps, &t, at(10, 0, 0));
            assert_eq!(
                then.ends,
                [(RecordingId::new(7), EndReason::Uncovered)],
                "{mode:?}"
            );
            assert!(then.starts.is_empty());
        }
    }

    #[test]
    fn an_expiring_recording_that_ends_within_5_s_of_the_exclusion_is_left_to_expire() {
        let ps = policies("expire", Some(at(11, 59, 56)));
        let t = live(EndMode::Expire, at(12, 0, 0));
        let covered = plan(&ps, &t, at(11, 0, 0));
        assert_eq!(covered.next, Some(at(12, 0, 0)), "no wake-up for 4 s");
        let uncovered = plan(&ps, &t, at(11, 59, 56));
        assert!(uncovered.ends.is_empty(), "{:?}", uncovered.ends);
        assert_eq!(uncovered.next, Some(at(12, 0, 0)));

        // In stop mode it is stopped all the same.
        let ps = policies("stop", Some(at(11, 59, 56)));
        let t = live(EndMode::Stop, at(12, 0, 0));
        assert_eq!(
            plan(&ps, &t, at(11, 59, 57)).ends,
            [(RecordingId::new(7), EndReason::Uncovered)]
        );
    }

    #[test]
    fn without_exclusions_a_covered_recording_wakes_the_loop_at_its_end() {
        let ps = policies("stop", None);
        let t = live(EndMode::Stop, at(12, 0, 0));
        let p = plan(&ps, &t, at(10, 0, 0));
        assert!(p.ends.is_empty());
        assert_eq!(p.next, Some(at(12, 0, 0)));
    }
}

/// Issue 15's dense row, `* 11 * * *` with 30 s windows (every minute of
/// one hour, two hours ahead) for 100,000 users, beside a small policy
/// (2 users, 5 s every 10 s). A pass must cost what is due, not what the
/// horizon holds: before this guard, each user got a copy of the 60
/// stretches and every one of its 60 segments was cut, every pass.
mod dense {
    use super::*;

    const USERS: usize = 100_000;

    fn policies() -> Vec<Policy> {
        let names: Vec<String> = (0..USERS).map(|i| format!("agent-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        vec![
            policy(1, "* 11 * * *", 30, "expire", &names),
            policy(2, "*/10 * * * * *", 5, "expire", &["small-1", "small-2"]),
        ]
    }

    /// Distinct unions held, by allocation.
    fn unions(cov: &CoverageMap) -> usize {
        let mut seen: Vec<*const [Coverage]> = cov.values().map(Arc::as_ptr).collect();
        seen.sort_unstable();
        seen.dedup();
        seen.len()
    }

    #[test]
    fn two_hours_ahead_a_pass_cuts_one_segment_per_user_and_holds_two_unions() {
        let policies = policies();
        let now = at(9, 0, 0);
        let covered = cover(&policies, now, now, horizon());
        // One walk per policy: 60 windows ahead for the dense one, one
        // look per 10 s of horizon for the small one; nothing per user.
        assert!(covered.walked <= 1_400, "{} starts walked", covered.walked);
        assert_eq!(covered.users.len(), USERS + 2);
        assert_eq!(unions(&covered.users), 2);

        let plan = decide(
            &covered.users,
            &HashMap::new(),
            &[],
            now,
            SegmentLimit::default(),
        );
        // The small policy's two starts and next segments, and each dense
        // user's next segment: never the other 59 of the hour.
        assert_eq!(plan.starts.len(), 2);
        assert_eq!(plan.cut, USERS as u64 + 4);
        assert_eq!(plan.next, Some(at(9, 0, 10)));
    }

    #[test]
    fn inside_the_dense_hour_a_pass_cuts_what_is_due_and_the_next() {
        let policies = policies();
        let now = at(11, 1, 0);
        let covered = cover(&policies, now, now, horizon());
        assert_eq!(unions(&covered.users), 2);
        let plan = decide(
            &covered.users,
            &HashMap::new(),
            &[],
            now,
            SegmentLimit::default(),
        );
        assert_eq!(plan.starts.len(), USERS + 2);
        assert!(plan.starts.iter().all(|s| s.late.is_zero()));
        assert_eq!(plan.cut, 2 * USERS as u64 + 4);
        assert_eq!(plan.next, Some(at(11, 1, 10)));
    }
}

#[test]
fn every_second_with_week_long_windows_walks_a_few_dozen_starts_not_600000() {
    let p = [policy(1, "* * * * * *", 604_800, "stop", &["ann"])];
    let now = at(9, 0, 0);
    let covered = cover(&p, now, now, horizon());
    assert!(covered.walked <= 64, "{} starts walked", covered.walked);
    let plan = decide(
        &covered.users,
        &HashMap::new(),
        &[],
        now,
        SegmentLimit::default(),
    );
    // Windows opened a week ago are still open: the week before now is
    // coverage (48 segments of 3.5 h, nothing recorded: missed), then the
    // next segment. Nothing of the horizon beyond it.
    assert_eq!(plan.missed.len(), 48);
    assert_eq!(plan.cut, 49);
}

#[test]
fn due_starts_take_turns_between_policies() {
    let big: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    let big: Vec<&str> = big.iter().map(String::as_str).collect();
    let p = [
        policy(1, "0 9 * * *", 600, "expire", &big),
        policy(2, "0 9 * * *", 60, "expire", &["z1", "z2"]),
    ];
    let mut plan = plan_at(&p, &[], at(9, 0, 0));
    fair_order(&mut plan.starts);
    let order: Vec<&str> = plan
        .starts
        .iter()
        .map(|s| s.segment.user.as_str())
        .collect();
    assert_eq!(order, ["a0", "z1", "a1", "z2", "a2", "a3", "a4"]);
}

#[test]
fn the_first_pass_is_decide_on_an_empty_database_over_the_segment_limit() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann", "bob"])];
    let now = at(9, 0, 0);
    let first = first_pass(&p, now, SegmentLimit::default());
    let plain = plan_at(&p, &[], now);
    assert_eq!(first.starts, plain.starts);
    assert_eq!(first.starts.len(), 2);
    assert_eq!(first.next, plain.next);
}

fn plan_ahead(policies: &[Policy], tracked: &[Tracked], now: DateTime<Utc>, ahead: i64) -> Plan {
    let cov = coverage(policies, now, now, horizon());
    decide_ahead(
        &cov,
        &HashMap::new(),
        tracked,
        now,
        SegmentLimit::default(),
        Duration::seconds(ahead),
    )
}

#[test]
fn a_window_opening_within_the_claim_ahead_span_is_claimed_now_and_others_wake_ahead() {
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann", "bob"])];
    let plan = plan_ahead(&p, &[], at(8, 59, 56), 5);
    assert!(plan.starts.is_empty());
    assert_eq!(plan.ahead.len(), 2);
    for s in &plan.ahead {
        assert_eq!(s.segment.start, at(9, 0, 0));
        assert_eq!(s.remaining.as_secs(), 600);
        assert_eq!(s.late, Duration::zero());
    }
    assert_eq!(plan.next_start.map(|(t, _)| t), Some(at(9, 0, 0)));

    // Further away: nothing to claim; the pass wakes `ahead` before it.
    let plan = plan_ahead(&p, &[], at(8, 59, 50), 5);
    assert!(plan.ahead.is_empty());
    assert_eq!(plan.next, Some(at(8, 59, 55)));

    // Off: as `decide`.
    let plan = plan_ahead(&p, &[], at(8, 59, 56), 0);
    assert!(plan.ahead.is_empty());
    assert_eq!(plan.next, Some(at(9, 0, 0)));
}

#[test]
fn a_user_with_a_tracked_row_is_not_claimed_ahead() {
    // ann's recording ends at 09:00; her next segment follows it at the
    // instant (ends first), so it is not claimed ahead; bob's is.
    let p = [policy(1, "0 9 * * *", 600, "expire", &["ann", "bob"])];
    let tracked = [live(7, "ann", at(8, 59, 0), 60, false)];
    let plan = plan_ahead(&p, &tracked, at(8, 59, 57), 5);
    let users: Vec<&str> = plan.ahead.iter().map(|s| s.segment.user.as_str()).collect();
    assert_eq!(users, ["bob"]);
    assert_eq!(plan.next, Some(at(9, 0, 0)));
}

#[test]
fn a_row_claimed_ahead_is_withdrawn_once_its_policy_no_longer_gives_it() {
    let now = at(8, 59, 57);
    let claimed = |u: &str, secs: i64| OpenRow {
        id: RecordingId::new(secs),
        segment: Segment {
            user: user(u),
            start: at(9, 0, 0),
            end: at(9, 0, 0) + Duration::seconds(secs),
            duration: RecordingDuration::from_secs(secs).unwrap(),
            policy: PolicyId::new(1),
            end_mode: EndMode::Expire,
        },
        state: RecordingState::Pending,
        contact: None,
    };
    let occupied = |rows: &[&OpenRow]| {
        by_user(
            rows.iter()
                .map(|r| (r.segment.user.clone(), r.segment.start, r.segment.end))
                .collect(),
        )
    };
    let row = claimed("ann", 600);
    let check = |p: &[Policy]| {
        let cov = coverage(p, now, now, horizon());
        withdrawn(
            &cov,
            &occupied(&[&row]),
            std::slice::from_ref(&row),
            SegmentLimit::default(),
        )
    };
    let same = [policy(1, "0 9 * * *", 600, "expire", &["ann"])];
    assert!(check(&same).is_empty(), "unchanged: kept");
    let longer = [policy(1, "0 9 * * *", 900, "expire", &["ann"])];
    assert_eq!(check(&longer), [row.id], "window edited");
    let moved = [policy(1, "0 10 * * *", 600, "expire", &["ann"])];
    assert_eq!(check(&moved), [row.id], "cron edited");
    let mode = [policy(1, "0 9 * * *", 600, "stop", &["ann"])];
    assert_eq!(check(&mode), [row.id], "end mode edited");
    let removed = [policy(1, "0 9 * * *", 600, "expire", &["bob"])];
    assert_eq!(check(&removed), [row.id], "user removed");
    assert_eq!(check(&[]), [row.id], "policy disabled or deleted");
}

#[test]
fn each_instance_walks_a_burst_in_its_own_order_and_policies_keep_their_turns() {
    let users: Vec<String> = (0..200).map(|i| format!("u{i:03}")).collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let p = [
        policy(1, "0 9 * * *", 600, "expire", &refs),
        policy(2, "0 9 * * *", 600, "expire", &["small-a", "small-b"]),
    ];
    let ordered = |seed: &str| {
        let mut plan = plan_ahead(&p, &[], at(8, 59, 57), 5);
        spread(&mut plan.ahead, seed);
        fair_order(&mut plan.ahead);
        plan.ahead
            .iter()
            .map(|s| s.segment.user.as_str().to_owned())
            .collect::<Vec<_>>()
    };
    let a = ordered("host-1-a");
    assert_eq!(a, ordered("host-1-a"), "the same seed, the same order");
    let b = ordered("host-2-b");
    assert_ne!(a, b);
    // The first halves differ: each instance claims a different share first.
    let half: std::collections::HashSet<_> = a[..101].iter().collect();
    let shared = b[..101].iter().filter(|u| half.contains(u)).count();
    assert!(shared < 80, "{shared} of 101 in common");
    // The small policy's users are still among the first two rounds.
    for order in [&a, &b] {
        let small: Vec<usize> = order
            .iter()
            .enumerate()
            .filter(|(_, u)| u.starts_with("small"))
            .map(|(i, _)| i)
            .collect();
        assert!(small.iter().all(|i| *i < 4), "{small:?}");
    }
}
