//! DST tables for window starts (2026 transitions), the croner
//! cross-check, and property tests against a brute-force oracle.

use super::*;
use chrono::{Offset, TimeZone};
use chrono_tz::America::New_York;
use chrono_tz::Asia::Tokyo;
use chrono_tz::Australia::Lord_Howe;
use chrono_tz::Europe::Amsterdam;
use chrono_tz::UTC;
use proptest::prelude::*;

fn utc(s: &str) -> DateTime<Utc> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f")
        .unwrap()
        .and_utc()
}

fn cron(expr: &str, tz: Tz) -> ZonedCron {
    ZonedCron::new(expr, tz).unwrap()
}

/// The first `n` starts, each as "UTC = local wall clock and zone".
fn starts(expr: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
    let cron = cron(expr, tz);
    window_starts(&cron, utc(from))
        .take(n)
        .map(|t| {
            format!(
                "{} = {}",
                t.format("%m-%d %H:%M:%S"),
                t.with_timezone(&tz).format("%H:%M:%S %Z")
            )
        })
        .collect()
}

// --- Spring forward: a gap --------------------------------------------------

#[test]
fn spring_forward_gap_moves_fixed_job_to_first_instant_after_gap() {
    assert_eq!(
        starts("30 2 * * *", Amsterdam, "2026-03-28 00:00:00", 3),
        [
            "03-28 01:30:00 = 02:30:00 CET",
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-30 00:30:00 = 02:30:00 CEST",
        ]
    );
    assert_eq!(
        starts("30 2 * * *", New_York, "2026-03-07 00:00:00", 3),
        [
            "03-07 07:30:00 = 02:30:00 EST",
            "03-08 07:00:00 = 03:00:00 EDT",
            "03-09 06:30:00 = 02:30:00 EDT",
        ]
    );
    // Lord Howe springs forward half an hour: 02:00 -> 02:30.
    assert_eq!(
        starts("15 2 * * *", Lord_Howe, "2026-10-02 12:00:00", 3),
        [
            "10-02 15:45:00 = 02:15:00 +1030",
            "10-03 15:30:00 = 02:30:00 +11",
            "10-04 15:15:00 = 02:15:00 +11",
        ]
    );
}

#[test]
fn spring_forward_gap_moves_six_field_fixed_job_too() {
    assert_eq!(
        starts("10 30 2 * * *", Amsterdam, "2026-03-28 00:00:00", 3),
        [
            "03-28 01:30:10 = 02:30:10 CET",
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-30 00:30:10 = 02:30:10 CEST",
        ]
    );
}

#[test]
fn spring_forward_gap_hour_is_skipped_by_hourly_job() {
    assert_eq!(
        starts("0 * * * *", Amsterdam, "2026-03-29 00:00:00", 3),
        [
            "03-29 00:00:00 = 01:00:00 CET",
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-29 02:00:00 = 04:00:00 CEST",
        ]
    );
    assert_eq!(
        starts("0 * * * *", New_York, "2026-03-08 06:00:00", 3),
        [
            "03-08 06:00:00 = 01:00:00 EST",
            "03-08 07:00:00 = 03:00:00 EDT",
            "03-08 08:00:00 = 04:00:00 EDT",
        ]
    );
    assert_eq!(
        starts("0 * * * *", Lord_Howe, "2026-10-03 14:00:00", 2),
        [
            "10-03 14:30:00 = 01:00:00 +1030",
            "10-03 16:00:00 = 03:00:00 +11",
        ]
    );
}

#[test]
fn spring_forward_gap_is_skipped_by_quarter_hour_job() {
    assert_eq!(
        starts("*/15 * * * *", Lord_Howe, "2026-10-03 15:00:00", 4),
        [
            "10-03 15:00:00 = 01:30:00 +1030",
            "10-03 15:15:00 = 01:45:00 +1030",
            "10-03 15:30:00 = 02:30:00 +11",
            "10-03 15:45:00 = 02:45:00 +11",
        ]
    );
    assert_eq!(
        starts("*/15 * * * *", Amsterdam, "2026-03-29 00:45:00", 3),
        [
            "03-29 00:45:00 = 01:45:00 CET",
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-29 01:15:00 = 03:15:00 CEST",
        ]
    );
}

#[test]
fn spring_forward_gap_is_skipped_by_six_field_wildcard_job() {
    assert_eq!(
        starts("*/20 30 2 * * *", Amsterdam, "2026-03-28 00:00:00", 4),
        [
            "03-28 01:30:00 = 02:30:00 CET",
            "03-28 01:30:20 = 02:30:20 CET",
            "03-28 01:30:40 = 02:30:40 CET",
            "03-30 00:30:00 = 02:30:00 CEST",
        ]
    );
}

// --- Fall back: a fold ------------------------------------------------------

#[test]
fn fall_back_hour_fires_once_for_fixed_job() {
    assert_eq!(
        starts("30 2 * * *", Amsterdam, "2026-10-24 00:00:00", 3),
        [
            "10-24 00:30:00 = 02:30:00 CEST",
            "10-25 00:30:00 = 02:30:00 CEST",
            "10-26 01:30:00 = 02:30:00 CET",
        ]
    );
    assert_eq!(
        starts("30 1 * * *", New_York, "2026-10-31 00:00:00", 3),
        [
            "10-31 05:30:00 = 01:30:00 EDT",
            "11-01 05:30:00 = 01:30:00 EDT",
            "11-02 06:30:00 = 01:30:00 EST",
        ]
    );
    // Lord Howe falls back half an hour: 02:00 -> 01:30.
    assert_eq!(
        starts("45 1 * * *", Lord_Howe, "2026-04-03 00:00:00", 3),
        [
            "04-03 14:45:00 = 01:45:00 +11",
            "04-04 14:45:00 = 01:45:00 +11",
            "04-05 15:15:00 = 01:45:00 +1030",
        ]
    );
}

#[test]
fn fall_back_hour_fires_once_for_six_field_fixed_job() {
    assert_eq!(
        starts("5 30 2 * * *", Amsterdam, "2026-10-25 00:00:00", 2),
        [
            "10-25 00:30:05 = 02:30:05 CEST",
            "10-26 01:30:05 = 02:30:05 CET",
        ]
    );
}

#[test]
fn fall_back_hour_fires_twice_for_hourly_job() {
    assert_eq!(
        starts("0 * * * *", Amsterdam, "2026-10-25 00:00:00", 3),
        [
            "10-25 00:00:00 = 02:00:00 CEST",
            "10-25 01:00:00 = 02:00:00 CET",
            "10-25 02:00:00 = 03:00:00 CET",
        ]
    );
    assert_eq!(
        starts("0 * * * *", New_York, "2026-11-01 04:00:00", 4),
        [
            "11-01 04:00:00 = 00:00:00 EDT",
            "11-01 05:00:00 = 01:00:00 EDT",
            "11-01 06:00:00 = 01:00:00 EST",
            "11-01 07:00:00 = 02:00:00 EST",
        ]
    );
}

#[test]
fn fall_back_hour_runs_both_passes_in_order_for_quarter_hour_job() {
    assert_eq!(
        starts("*/30 * * * *", Amsterdam, "2026-10-25 00:00:00", 5),
        [
            "10-25 00:00:00 = 02:00:00 CEST",
            "10-25 00:30:00 = 02:30:00 CEST",
            "10-25 01:00:00 = 02:00:00 CET",
            "10-25 01:30:00 = 02:30:00 CET",
            "10-25 02:00:00 = 03:00:00 CET",
        ]
    );
    assert_eq!(
        starts("*/15 * * * *", Lord_Howe, "2026-04-04 14:30:00", 5),
        [
            "04-04 14:30:00 = 01:30:00 +11",
            "04-04 14:45:00 = 01:45:00 +11",
            "04-04 15:00:00 = 01:30:00 +1030",
            "04-04 15:15:00 = 01:45:00 +1030",
            "04-04 15:30:00 = 02:00:00 +1030",
        ]
    );
    assert_eq!(
        starts("*/15 * * * *", New_York, "2026-11-01 05:45:00", 3),
        [
            "11-01 05:45:00 = 01:45:00 EDT",
            "11-01 06:00:00 = 01:00:00 EST",
            "11-01 06:15:00 = 01:15:00 EST",
        ]
    );
}

#[test]
fn fall_back_hour_runs_both_passes_for_six_field_wildcard_job() {
    assert_eq!(
        starts("*/20 30 2 * * *", Amsterdam, "2026-10-25 00:00:00", 6),
        [
            "10-25 00:30:00 = 02:30:00 CEST",
            "10-25 00:30:20 = 02:30:20 CEST",
            "10-25 00:30:40 = 02:30:40 CEST",
            "10-25 01:30:00 = 02:30:00 CET",
            "10-25 01:30:20 = 02:30:20 CET",
            "10-25 01:30:40 = 02:30:40 CET",
        ]
    );
}

// --- Where croner 4 alone differs from Vixie cron ---------------------------

#[test]
fn hour_list_is_a_fixed_job_in_gap_and_fold() {
    // Croner 4 would skip 02:30 in the gap and fire it twice in the fold.
    assert_eq!(
        starts("30 1,2 * * *", Amsterdam, "2026-03-28 12:00:00", 3),
        [
            "03-29 00:30:00 = 01:30:00 CET",
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-29 23:30:00 = 01:30:00 CEST",
        ]
    );
    assert_eq!(
        starts("30 1,2 * * *", Amsterdam, "2026-10-24 12:00:00", 3),
        [
            "10-24 23:30:00 = 01:30:00 CEST",
            "10-25 00:30:00 = 02:30:00 CEST",
            "10-26 00:30:00 = 01:30:00 CET",
        ]
    );
}

#[test]
fn hour_range_gap_time_and_next_hour_fire_once_together() {
    // 02:00 is in the gap and moves to 03:00, where 03:00 fires anyway.
    assert_eq!(
        starts("0 2-3 * * *", Amsterdam, "2026-03-28 12:00:00", 3),
        [
            "03-29 01:00:00 = 03:00:00 CEST",
            "03-30 00:00:00 = 02:00:00 CEST",
            "03-30 01:00:00 = 03:00:00 CEST",
        ]
    );
    assert_eq!(
        starts("0 2-3 * * *", Amsterdam, "2026-10-24 12:00:00", 3),
        [
            "10-25 00:00:00 = 02:00:00 CEST",
            "10-25 02:00:00 = 03:00:00 CET",
            "10-26 01:00:00 = 02:00:00 CET",
        ]
    );
}

// --- Zones without daylight saving -----------------------------------------

#[test]
fn zone_without_dst_fires_at_the_same_utc_time_all_year() {
    for from in ["2026-03-28 00:00:00", "2026-10-24 00:00:00"] {
        let tokyo = starts("30 2 * * *", Tokyo, from, 3);
        let times: Vec<&str> = tokyo.iter().map(|s| &s[6..]).collect();
        assert_eq!(times, ["17:30:00 = 02:30:00 JST"; 3]);
    }
    assert_eq!(
        starts("0 * * * *", UTC, "2026-03-29 00:00:00", 3),
        [
            "03-29 00:00:00 = 00:00:00 UTC",
            "03-29 01:00:00 = 01:00:00 UTC",
            "03-29 02:00:00 = 02:00:00 UTC",
        ]
    );
}

// --- Where the iteration begins ---------------------------------------------

#[test]
fn starts_include_from_and_round_sub_seconds_up() {
    assert_eq!(
        starts("*/15 * * * *", UTC, "2026-01-01 10:15:00", 1),
        ["01-01 10:15:00 = 10:15:00 UTC"]
    );
    assert_eq!(
        starts("*/15 * * * *", UTC, "2026-01-01 10:15:00.5", 1),
        ["01-01 10:30:00 = 10:30:00 UTC"]
    );
}

#[test]
fn starting_in_the_first_pass_of_a_fold_keeps_both_passes() {
    assert_eq!(
        starts("*/30 * * * *", Amsterdam, "2026-10-25 00:10:00", 3),
        [
            "10-25 00:30:00 = 02:30:00 CEST",
            "10-25 01:00:00 = 02:00:00 CET",
            "10-25 01:30:00 = 02:30:00 CET",
        ]
    );
    assert_eq!(
        starts("30 2 * * *", Amsterdam, "2026-10-25 00:10:00", 1),
        ["10-25 00:30:00 = 02:30:00 CEST"]
    );
}

#[test]
fn starting_in_the_second_pass_of_a_fold_skips_the_first() {
    assert_eq!(
        starts("*/30 * * * *", Amsterdam, "2026-10-25 01:10:00", 2),
        [
            "10-25 01:30:00 = 02:30:00 CET",
            "10-25 02:00:00 = 03:00:00 CET",
        ]
    );
    // The fixed job already fired at 02:30 CEST, before `from`.
    assert_eq!(
        starts("30 2 * * *", Amsterdam, "2026-10-25 01:10:00", 1),
        ["10-26 01:30:00 = 02:30:00 CET"]
    );
}

// --- Cross-check with croner's own zoned search -----------------------------

/// Croner 4 applies the same DST rule when every time field is a single
/// value or starts with `*`; there both must agree.
#[test]
fn croner_zoned_search_agrees_where_it_classifies_like_vixie() {
    use croner::parser::{CronParser, Seconds};
    use croner::Direction;
    let exprs = [
        "30 2 * * *",
        "0 2 * * *",
        "45 1 * * *",
        "15 2 * * *",
        "0 * * * *",
        "*/15 * * * *",
        "*/20 30 2 * * *",
        "0 30 2 * * *",
        "30 * * * *",
        "0 */2 * * *",
    ];
    let froms = [
        "2026-03-27 00:00:00",
        "2026-03-07 00:00:00",
        "2026-10-23 00:00:00",
        "2026-10-31 00:00:00",
        "2026-04-03 00:00:00",
        "2026-10-02 00:00:00",
    ];
    for tz in [Amsterdam, New_York, Lord_Howe, Tokyo] {
        for expr in exprs {
            let ours = cron(expr, tz);
            let theirs = CronParser::builder()
                .seconds(Seconds::Optional)
                .build()
                .parse(expr)
                .unwrap();
            for from in froms {
                let from = utc(from);
                let a: Vec<_> = window_starts(&ours, from).take(80).collect();
                let b: Vec<_> = theirs
                    .iter_from(from.with_timezone(&tz), Direction::Forward)
                    .take(80)
                    .map(|t| t.to_utc())
                    .collect();
                assert_eq!(a, b, "{expr} in {tz} from {from}");
            }
        }
    }
}

// --- Properties against a brute-force oracle --------------------------------

fn offset_at(tz: Tz, t: DateTime<Utc>) -> Duration {
    Duration::seconds(i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    ))
}

/// Walks every `step` of UTC time in `[from, until)` and applies the
/// Vixie rule instant by instant. Assumes transitions fall on a `step`.
fn oracle(
    cron: &ZonedCron,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    step: i64,
) -> Vec<DateTime<Utc>> {
    let tz = cron.timezone();
    let step = Duration::seconds(step);
    let mut out: Vec<DateTime<Utc>> = Vec::new();
    let mut t = from;
    while t < until {
        let offset = offset_at(tz, t);
        let before = offset_at(tz, t - step);
        if cron.kind() == JobKind::Fixed && offset > before {
            // A gap began at `t`: its wall times are [t + before, t + offset).
            let mut wall = t.naive_utc() + before;
            while wall < t.naive_utc() + offset {
                if cron.matches_local(wall) {
                    out.push(t);
                    break;
                }
                wall += step;
            }
        }
        let wall = t.naive_utc() + offset;
        if cron.matches_local(wall) {
            let second_pass = matches!(
                tz.from_local_datetime(&wall),
                LocalResult::Ambiguous(_, later) if later.to_utc() == t
            );
            if cron.kind() == JobKind::Wildcard || !second_pass {
                out.push(t);
            }
        }
        t += step;
    }
    out.dedup();
    out
}

/// Is `t` the first instant after a gap holding a wall time that matches?
fn fires_for_gap(cron: &ZonedCron, t: DateTime<Utc>) -> bool {
    let tz = cron.timezone();
    let (before, after) = (offset_at(tz, t - Duration::seconds(1)), offset_at(tz, t));
    let mut wall = t.naive_utc() + before;
    while wall < t.naive_utc() + after {
        if cron.matches_local(wall) {
            return true;
        }
        wall += Duration::seconds(1);
    }
    false
}

const ZONES: [Tz; 4] = [Amsterdam, New_York, Lord_Howe, Tokyo];

/// The 2026 transitions of each zone in `ZONES` (Tokyo has none).
fn transitions(tz: Tz) -> [&'static str; 2] {
    if tz == New_York {
        ["2026-03-08 07:00:00", "2026-11-01 06:00:00"]
    } else if tz == Lord_Howe {
        ["2026-04-04 15:00:00", "2026-10-03 15:30:00"]
    } else {
        ["2026-03-29 01:00:00", "2026-10-25 01:00:00"]
    }
}

fn five_field() -> impl Strategy<Value = String> {
    let minute = prop::sample::select(vec!["0", "30", "45", "*/15", "*", "0,30", "10-50/20"]);
    let hour = prop::sample::select(vec!["*", "1", "2", "0", "*/2", "1-3", "1,2"]);
    let dow = prop::sample::select(vec!["*", "*", "0", "1-5"]);
    (minute, hour, dow).prop_map(|(m, h, d)| format!("{m} {h} * * {d}"))
}

fn six_field() -> impl Strategy<Value = String> {
    let second = prop::sample::select(vec!["0", "30", "*/20"]);
    let minute = prop::sample::select(vec!["0", "30", "*/30", "15-45/15"]);
    let hour = prop::sample::select(vec!["*", "1", "2", "1-2"]);
    (second, minute, hour).prop_map(|(s, m, h)| format!("{s} {m} {h} * * *"))
}

fn check_against_oracle(
    expr: &str,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    step: i64,
) -> Result<(), TestCaseError> {
    let cron = cron(expr, tz);
    let got: Vec<_> = window_starts(&cron, from)
        .take_while(|t| *t < until)
        .collect();
    for pair in got.windows(2) {
        prop_assert!(pair[0] < pair[1], "not increasing: {:?}", pair);
    }
    for &t in &got {
        let wall = t.with_timezone(&tz).naive_local();
        prop_assert!(
            cron.matches_local(wall) || (cron.kind() == JobKind::Fixed && fires_for_gap(&cron, t)),
            "{} does not match {} at {}",
            t,
            expr,
            wall
        );
    }
    prop_assert_eq!(got, oracle(&cron, from, until, step), "{} in {}", expr, tz);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn five_field_starts_match_the_oracle_around_transitions(
        expr in five_field(),
        zone in 0..ZONES.len(),
        which in 0..2usize,
        lead_minutes in -120i64..2160,
        span_minutes in 1i64..2880,
    ) {
        let tz = ZONES[zone];
        let from = utc(transitions(tz)[which]) - Duration::minutes(lead_minutes);
        let until = from + Duration::minutes(span_minutes);
        check_against_oracle(&expr, tz, from, until, 60)?;
    }

    #[test]
    fn six_field_starts_match_the_oracle_around_transitions(
        expr in six_field(),
        zone in 0..ZONES.len(),
        which in 0..2usize,
        lead_seconds in -3600i64..7200,
        span_seconds in 1i64..10_800,
    ) {
        let tz = ZONES[zone];
        let from = utc(transitions(tz)[which]) - Duration::seconds(lead_seconds);
        let until = from + Duration::seconds(span_seconds);
        check_against_oracle(&expr, tz, from, until, 1)?;
    }
}
