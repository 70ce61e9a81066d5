use super::*;
use crate::policy::exclusion::{attach, Span};
use crate::policy::{Exclusion, ExclusionId, PolicyRow};
use crate::store::RecordingId;
use chrono::TimeZone;

fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap()
}

fn row(id: i64, user: &str, start: DateTime<Utc>, secs: i64, state: RecordingState) -> ReportRow {
    ReportRow {
        id: RecordingId::new(id),
        user_id: UserId::parse(user).unwrap(),
        policy_id: Some(1),
        segment_start: start,
        segment_end: start + chrono::Duration::seconds(secs),
        state,
        last_error: None,
        late_seconds: None,
        ended_at: None,
        answered_at: Some(start + chrono::Duration::milliseconds(120)),
    }
}

fn scope(range: Interval, by: By, names: &HashMap<i64, String>) -> Scope<'_> {
    Scope {
        range,
        by,
        zone: chrono_tz::UTC,
        names,
    }
}

fn group<'a>(groups: &'a [Group], key: &str) -> &'a Group {
    groups.iter().find(|g| g.group == key).unwrap()
}

#[test]
fn a_healthy_user_is_at_1_and_a_failing_one_at_0_with_the_error() {
    let names = HashMap::new();
    let t = at(29, 9, 0, 0);
    let failed = ReportRow {
        last_error: Some("403 Forbidden: final".into()),
        answered_at: None,
        ..row(2, "bob", t, 600, RecordingState::Failed)
    };
    let rows = [row(1, "ann", t, 600, RecordingState::Expired), failed];
    let range = Interval::new(at(29, 0, 0, 0), at(30, 0, 0, 0));
    let (groups, total) = report(&rows, &[], &scope(range, By::User, &names));
    let ann = group(&groups, "ann");
    assert_eq!(ann.sums.planned_seconds, 600.0);
    assert_eq!(
        ann.sums.recorded_seconds, 600.0,
        "answered within its first second"
    );
    assert_eq!(ann.sums.ratio, Some(1.0));
    assert!(ann.gaps.is_empty());
    let bob = group(&groups, "bob");
    assert_eq!(bob.sums.ratio, Some(0.0));
    assert_eq!(bob.sums.failed_seconds, 600.0);
    assert_eq!(bob.gaps.len(), 1);
    assert_eq!(bob.gaps[0].reason, GapReason::Failed);
    assert_eq!(bob.gaps[0].detail, "403 Forbidden: final");
    assert_eq!(total.planned_seconds, 1200.0);
    assert_eq!(total.ratio, Some(0.5));
    // Nothing excluded is a plain 0, not -0 (an empty float sum).
    assert!(total.excluded_seconds == 0.0 && total.excluded_seconds.is_sign_positive());
    assert!(ann.sums.excluded_seconds.is_sign_positive());
}

#[test]
fn a_late_start_is_a_late_gap_and_a_missed_window_a_missed_one() {
    let names = HashMap::new();
    let t = at(29, 9, 0, 0);
    let late = ReportRow {
        answered_at: Some(t + chrono::Duration::milliseconds(7_400)),
        late_seconds: Some(7.0),
        ..row(1, "ann", t, 60, RecordingState::Stopped)
    };
    let missed = row(
        2,
        "ann",
        t + chrono::Duration::hours(1),
        60,
        RecordingState::Missed,
    );
    let range = Interval::new(at(29, 0, 0, 0), at(30, 0, 0, 0));
    let (groups, _) = report(&[late, missed], &[], &scope(range, By::User, &names));
    let ann = group(&groups, "ann");
    assert_eq!(ann.sums.planned_seconds, 120.0);
    assert_eq!(ann.sums.recorded_seconds, 53.0);
    assert_eq!(ann.sums.late_seconds, 7.0);
    assert_eq!(ann.sums.missed_seconds, 60.0);
    let reasons: Vec<_> = ann.gaps.iter().map(|g| g.reason).collect();
    assert_eq!(reasons, [GapReason::Late, GapReason::Missed]);
    assert_eq!(ann.gaps[0].detail, "started 7 s late");
}

#[test]
fn a_recording_ended_early_on_purpose_was_planned_only_until_then() {
    let names = HashMap::new();
    let t = at(29, 9, 0, 0);
    let cut = ReportRow {
        ended_at: Some(t + chrono::Duration::seconds(100)),
        ..row(1, "ann", t, 600, RecordingState::Stopped)
    };
    let range = Interval::new(at(29, 0, 0, 0), at(30, 0, 0, 0));
    let (groups, _) = report(&[cut], &[], &scope(range, By::User, &names));
    assert_eq!(groups[0].sums.planned_seconds, 100.0);
    assert_eq!(groups[0].sums.ratio, Some(1.0));
}

#[test]
fn rows_are_clipped_to_the_range_and_cut_at_local_midnight() {
    let names = HashMap::new();
    // 23:00 to 01:00 UTC.
    let rows = [row(
        1,
        "ann",
        at(28, 23, 0, 0),
        7200,
        RecordingState::Expired,
    )];
    let range = Interval::new(at(28, 0, 0, 0), at(30, 0, 0, 0));
    let (groups, _) = report(&rows, &[], &scope(range, By::Day, &names));
    let days: Vec<(&str, f64)> = groups
        .iter()
        .map(|g| (g.group.as_str(), g.sums.planned_seconds))
        .collect();
    assert_eq!(days, [("2026-03-28", 3600.0), ("2026-03-29", 3600.0)]);

    let narrow = Interval::new(at(29, 0, 30, 0), at(29, 1, 0, 0));
    let (groups, _) = report(&rows, &[], &scope(narrow, By::User, &names));
    assert_eq!(groups[0].sums.planned_seconds, 1800.0);

    // Amsterdam's 29 March is 23 hours long.
    let long = [row(
        2,
        "ann",
        at(28, 23, 0, 0),
        23 * 3600,
        RecordingState::Expired,
    )];
    let wide = Interval::new(at(27, 0, 0, 0), at(31, 0, 0, 0));
    let ams = Scope {
        zone: chrono_tz::Europe::Amsterdam,
        ..scope(wide, By::Day, &names)
    };
    let (groups, _) = report(&long, &[], &ams);
    let days: Vec<(&str, f64)> = groups
        .iter()
        .map(|g| (g.group.as_str(), g.sums.planned_seconds))
        .collect();
    assert_eq!(days, [("2026-03-29", 23.0 * 3600.0)]);
}

#[test]
fn by_policy_groups_by_name() {
    let names = HashMap::from([(1, "office".to_owned())]);
    let mut orphan = row(2, "bob", at(29, 9, 0, 0), 60, RecordingState::Expired);
    orphan.policy_id = None;
    let rows = [
        row(1, "ann", at(29, 9, 0, 0), 60, RecordingState::Expired),
        orphan,
    ];
    let range = Interval::new(at(29, 0, 0, 0), at(30, 0, 0, 0));
    let (groups, _) = report(&rows, &[], &scope(range, By::Policy, &names));
    let keys: Vec<&str> = groups.iter().map(|g| g.group.as_str()).collect();
    assert_eq!(keys, ["(none)", "office"]);
}

fn policy(id: i64, cron: &str, users: &[&str]) -> Policy {
    Policy::from_row(&PolicyRow {
        id,
        name: format!("p{id}"),
        enabled: true,
        cron: cron.into(),
        timezone: "UTC".into(),
        window_seconds: 3600,
        end_mode: "expire".into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        teams: Vec::new(),
    })
    .unwrap()
}

fn holiday(id: i64, policy: Option<i64>, day: &str) -> Exclusion {
    let d = NaiveDate::parse_from_str(day, "%Y-%m-%d").unwrap();
    Exclusion {
        id: ExclusionId::new(id),
        policy: policy.map(crate::policy::PolicyId::new),
        user: None,
        span: Span::Days { first: d, last: d },
        timezone: None,
        reason: None,
    }
}

#[test]
fn excluded_time_counts_what_exclusions_cut_unless_another_policy_covers_it() {
    let names = HashMap::new();
    let mut policies = vec![
        policy(1, "0 9 * * *", &["ann", "bob"]),
        // Bob is also covered 09:30-10:30 by a policy with no exclusion.
        policy(2, "30 9 * * *", &["bob"]),
    ];
    attach(&mut policies, &[holiday(1, Some(1), "2026-03-29")]);
    let range = Interval::new(at(29, 0, 0, 0), at(30, 0, 0, 0));
    let excluded = excluded_time(&policies, range);
    let (groups, total) = report(&[], &excluded, &scope(range, By::User, &names));
    assert_eq!(group(&groups, "ann").sums.excluded_seconds, 3600.0);
    assert_eq!(group(&groups, "bob").sums.excluded_seconds, 1800.0);
    assert_eq!(group(&groups, "ann").sums.ratio, None, "nothing planned");
    assert_eq!(total.excluded_seconds, 5400.0);
    // Another day: nothing excluded.
    let next = Interval::new(at(30, 0, 0, 0), at(31, 0, 0, 0));
    assert!(excluded_time(&policies, next).is_empty());
}
