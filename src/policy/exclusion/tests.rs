use super::*;
use crate::policy::PolicyRow;
use chrono::TimeZone;

fn row() -> ExclusionRow {
    ExclusionRow {
        id: 1,
        policy_id: None,
        user_id: None,
        starts_at: "2026-12-24".into(),
        ends_at: "2026-12-24".into(),
        timezone: None,
        reason: Some("Christmas Eve".into()),
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
}

fn policy(id: i64, tz: &str, users: &[&str]) -> Policy {
    Policy::from_row(&PolicyRow {
        id,
        name: format!("p{id}"),
        enabled: true,
        cron: "0 9 * * *".into(),
        timezone: tz.into(),
        window_seconds: 3600,
        end_mode: "expire".into(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
        teams: Vec::new(),
    })
    .unwrap()
}

fn only_problem(row: &ExclusionRow) -> String {
    let all = exclusion_problems(row);
    assert_eq!(all.len(), 1, "{all:?}");
    all[0].to_string()
}

#[test]
fn one_local_date_is_one_whole_day_in_the_policy_zone() {
    let e = Exclusion::from_row(&row()).unwrap();
    let tz: Tz = "Europe/Amsterdam".parse().unwrap();
    assert_eq!(
        e.resolve(tz),
        (utc(2026, 12, 23, 23, 0), utc(2026, 12, 24, 23, 0))
    );
    assert_eq!(
        e.resolve(chrono_tz::UTC),
        (utc(2026, 12, 24, 0, 0), utc(2026, 12, 25, 0, 0))
    );
}

#[test]
fn the_row_zone_beats_the_policy_zone() {
    let e = Exclusion::from_row(&ExclusionRow {
        timezone: Some("America/New_York".into()),
        ..row()
    })
    .unwrap();
    let (start, end) = e.resolve("Europe/Amsterdam".parse().unwrap());
    assert_eq!(start, utc(2026, 12, 24, 5, 0));
    assert_eq!(end, utc(2026, 12, 25, 5, 0));
}

#[test]
fn days_across_a_clock_change_are_23_or_25_hours() {
    let tz: Tz = "Europe/Amsterdam".parse().unwrap();
    let spring = Exclusion::from_row(&ExclusionRow {
        starts_at: "2026-03-29".into(),
        ends_at: "2026-03-29".into(),
        ..row()
    })
    .unwrap();
    let (s, e) = spring.resolve(tz);
    assert_eq!((e - s).num_hours(), 23);
    let autumn = Exclusion::from_row(&ExclusionRow {
        starts_at: "2026-10-25".into(),
        ends_at: "2026-10-25".into(),
        ..row()
    })
    .unwrap();
    let (s, e) = autumn.resolve(tz);
    assert_eq!((e - s).num_hours(), 25);
}

#[test]
fn a_midnight_skipped_by_a_gap_starts_the_day_after_the_gap() {
    // Santiago springs forward at 00:00 (to 01:00) on 2026-09-06.
    let tz: Tz = "America/Santiago".parse().unwrap();
    let day = NaiveDate::from_ymd_opt(2026, 9, 6).unwrap();
    let start = start_of_day(day, tz);
    assert_eq!(start.with_timezone(&tz).date_naive(), day);
    assert_eq!(
        start.with_timezone(&tz).format("%H:%M").to_string(),
        "01:00"
    );
    // The instant before it is still the day before.
    let before = start - chrono::Duration::seconds(1);
    assert!(before.with_timezone(&tz).date_naive() < day);
    // The day is 23 hours long.
    assert_eq!((end_of_day(day, tz) - start).num_hours(), 23);
}

#[test]
fn a_repeated_wall_time_reads_as_the_earlier_instant() {
    let tz: Tz = "Europe/Amsterdam".parse().unwrap();
    let wall = NaiveDate::from_ymd_opt(2026, 10, 25)
        .unwrap()
        .and_hms_opt(2, 30, 0)
        .unwrap();
    assert_eq!(local_instant(wall, tz), utc(2026, 10, 25, 0, 30));
}

#[test]
fn instants_are_half_open_and_any_offset_names_its_instant() {
    let e = Exclusion::from_row(&ExclusionRow {
        starts_at: "2026-12-24T12:00:00.000Z".into(),
        ends_at: "2026-12-24T15:00:00+01:00".into(),
        ..row()
    })
    .unwrap();
    assert_eq!(
        e.resolve(chrono_tz::Asia::Tokyo),
        (utc(2026, 12, 24, 12, 0), utc(2026, 12, 24, 14, 0))
    );
}

#[test]
fn bad_values_are_named_by_column() {
    assert_eq!(
        only_problem(&ExclusionRow {
            starts_at: "24-12-2026".into(),
            ..row()
        }),
        "exclusion 1: starts_at `24-12-2026`: is neither a local date like 2026-12-24 nor a \
         UTC instant like 2026-12-24T00:00:00.000Z"
    );
    assert_eq!(
        only_problem(&ExclusionRow {
            ends_at: "2026-12-24T00:00:00".into(),
            ..row()
        })
        .split(':')
        .next(),
        Some("exclusion 1")
    );
    assert_eq!(
        only_problem(&ExclusionRow {
            ends_at: "2026-12-23".into(),
            ..row()
        }),
        "exclusion 1: ends_at `2026-12-23`: is before starts_at `2026-12-24`"
    );
    assert_eq!(
        only_problem(&ExclusionRow {
            timezone: Some("europe/amsterdam".into()),
            ..row()
        }),
        "exclusion 1: timezone `europe/amsterdam`: not an IANA time zone name; did you mean \
         `Europe/Amsterdam`?"
    );
    assert!(only_problem(&ExclusionRow {
        user_id: Some("a\nb".into()),
        ..row()
    })
    .starts_with("exclusion 1: user_id `a\\nb`: "));
}

#[test]
fn mixed_forms_empty_instants_and_a_zone_on_instants_are_refused() {
    let mixed = ExclusionRow {
        ends_at: "2026-12-25T00:00:00.000Z".into(),
        ..row()
    };
    let e = Exclusion::from_row(&mixed).unwrap_err();
    assert_eq!(e.column, ExclusionColumn::EndsAt);
    assert!(e.problem.contains("other form"), "{e}");

    let empty = ExclusionRow {
        starts_at: "2026-12-24T10:00:00.000Z".into(),
        ends_at: "2026-12-24T10:00:00.000Z".into(),
        ..row()
    };
    assert_eq!(
        Exclusion::from_row(&empty).unwrap_err().column,
        ExclusionColumn::EndsAt
    );

    let zoned = ExclusionRow {
        starts_at: "2026-12-24T10:00:00.000Z".into(),
        ends_at: "2026-12-24T11:00:00.000Z".into(),
        timezone: Some("UTC".into()),
        ..row()
    };
    assert_eq!(
        Exclusion::from_row(&zoned).unwrap_err().column,
        ExclusionColumn::Timezone
    );
}

#[test]
fn every_problem_of_a_row_is_reported() {
    let bad = ExclusionRow {
        user_id: Some(String::new()),
        starts_at: "x".into(),
        ends_at: "y".into(),
        timezone: Some("Mars/Olympus".into()),
        ..row()
    };
    let columns: Vec<_> = exclusion_problems(&bad).iter().map(|e| e.column).collect();
    assert_eq!(
        columns,
        [
            ExclusionColumn::UserId,
            ExclusionColumn::StartsAt,
            ExclusionColumn::EndsAt,
            ExclusionColumn::Timezone
        ]
    );
    let (good, errors) = load_exclusions(&[row(), bad]);
    assert_eq!(good.len(), 1);
    assert_eq!(errors.len(), 4);
}

#[test]
fn attach_gives_each_policy_what_applies_to_it_in_its_zone() {
    let mut policies = vec![
        policy(1, "Europe/Amsterdam", &["ann", "bob"]),
        policy(2, "UTC", &["ann"]),
    ];
    let rows = [
        // Every policy, every user.
        row(),
        // Policy 2 only.
        ExclusionRow {
            id: 2,
            policy_id: Some(2),
            starts_at: "2026-12-31".into(),
            ends_at: "2026-12-31".into(),
            ..row()
        },
        // Bob, wherever he is named (only policy 1).
        ExclusionRow {
            id: 3,
            user_id: Some("bob".into()),
            starts_at: "2026-08-01".into(),
            ends_at: "2026-08-14".into(),
            ..row()
        },
    ];
    let (exclusions, errors) = load_exclusions(&rows);
    assert!(errors.is_empty());
    attach(&mut policies, &exclusions);

    let ids = |p: &Policy| p.exclusions.iter().map(|e| e.id.get()).collect::<Vec<_>>();
    assert_eq!(ids(&policies[0]), [3, 1]);
    assert_eq!(ids(&policies[1]), [1, 2]);
    let christmas_eve = &policies[0].exclusions[1];
    assert_eq!(christmas_eve.start, utc(2026, 12, 23, 23, 0));
    assert_eq!(policies[1].exclusions[0].start, utc(2026, 12, 24, 0, 0));
    let bob = UserId::parse("bob").unwrap();
    let ann = UserId::parse("ann").unwrap();
    assert!(policies[0].exclusions[0].applies_to(&bob));
    assert!(!policies[0].exclusions[0].applies_to(&ann));
    assert!(policies[0].exclusions[1].applies_to(&ann));

    // Attaching again replaces, never adds.
    attach(&mut policies, &exclusions);
    assert_eq!(ids(&policies[0]), [3, 1]);
}
