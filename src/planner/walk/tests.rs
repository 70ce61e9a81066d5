//! The walk against the plain merge of every window, and what it costs.

use super::*;
use crate::planner::interval::merge;
use chrono::TimeZone;
use chrono_tz::Tz;
use proptest::prelude::*;

fn cron(expr: &str, tz: Tz) -> ZonedCron {
    ZonedCron::new(expr, tz).unwrap()
}

fn secs(s: i64) -> Duration {
    Duration::seconds(s)
}

/// Every window meeting `[from, until)`, merged: what the walk must find.
fn plain(
    cron: &ZonedCron,
    length: Duration,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Interval> {
    merge(
        window_starts(cron, from - length)
            .take_while(|s| *s < until)
            .filter(|s| *s + length > from)
            .map(|s| Interval::new(s, s + length))
            .collect(),
    )
}

/// Like [`plain`], for the windows opening before `stop` only.
fn plain_before(
    cron: &ZonedCron,
    length: Duration,
    from: DateTime<Utc>,
    stop: DateTime<Utc>,
) -> Vec<Interval> {
    plain(cron, length, from, stop)
}

fn at(d: u32, h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, h, m, s).unwrap()
}

#[test]
fn every_second_for_a_week_is_one_run_found_in_a_few_dozen_looks() {
    // 617,400 window starts meet this horizon, all of them one run.
    let c = cron("* * * * * *", chrono_tz::UTC);
    let from = at(10, 9, 0, 0);
    let until = from + secs(12_600);
    let w = walk(&c, secs(604_800), from, until, u64::MAX);
    assert_eq!(
        w.runs,
        [Interval::new(
            from - secs(604_799),
            until - secs(1) + secs(604_800)
        )]
    );
    assert!(w.walked <= 64, "{} starts walked", w.walked);
    assert_eq!(w.stopped_at, None);
}

#[test]
fn a_dense_hour_of_short_windows_costs_one_look_per_window() {
    // `* 11 * * *`, 30 s windows, planned from 09:00: 60 separate runs.
    let c = cron("* 11 * * *", chrono_tz::UTC);
    let from = at(10, 9, 0, 0);
    let until = from + secs(12_600);
    let w = walk(&c, secs(30), from, until, u64::MAX);
    assert_eq!(w.runs, plain(&c, secs(30), from, until));
    assert_eq!(w.runs.len(), 60);
    assert!(w.walked <= 64, "{} starts walked", w.walked);
}

#[test]
fn overlapping_minute_windows_jump_by_the_window_length() {
    // Every minute, 1 h long: one run; about two looks an hour.
    let c = cron("* * * * *", chrono_tz::Europe::Amsterdam);
    let from = at(28, 20, 0, 0);
    let until = from + secs(13_200);
    let w = walk(&c, secs(3_600), from, until, u64::MAX);
    assert_eq!(w.runs, plain(&c, secs(3_600), from, until));
    assert!(w.walked <= 32, "{} starts walked", w.walked);
}

#[test]
fn a_walk_stopped_at_its_limit_holds_every_window_before_the_stop_and_none_after() {
    let c = cron("*/10 * * * * *", chrono_tz::UTC);
    let from = at(10, 9, 0, 0);
    let until = from + secs(12_600);
    let w = walk(&c, secs(5), from, until, 100);
    let stop = w.stopped_at.expect("1,260 windows do not fit in 100 looks");
    assert!(stop > from);
    assert!(w.walked <= 102, "{} starts walked", w.walked);
    assert_eq!(w.runs, plain_before(&c, secs(5), from, stop));
    // The rest, walked from the stop, completes it.
    let rest = walk(&c, secs(5), stop, until, u64::MAX);
    let mut all = w.runs.clone();
    all.extend(rest.runs);
    assert_eq!(merge(all), plain(&c, secs(5), from, until));
}

#[test]
fn a_walk_never_stops_before_it_has_passed_from() {
    // The run holding `from` is walked whole, even with no looks to spare.
    let c = cron("* * * * * *", chrono_tz::UTC);
    let from = at(10, 9, 0, 0);
    let until = from + secs(600);
    let w = walk(&c, secs(604_800), from, until, 0);
    assert!(w.stopped_at.is_some_and(|s| s > from), "{w:?}");
    assert!(w.runs.first().is_some_and(|r| r.contains(from)), "{w:?}");
}

#[test]
fn a_run_cut_at_the_limit_in_the_middle_resumes_where_it_stopped() {
    // Irregular seconds defeat the guess; short windows keep the runs long.
    let c = cron("0,1,2,4,7,8,9,11,14,15,16,18,21,22,23,25,28,29,30,32,35,36,37,39,42,43,44,46,49,50,51,53,56,57,58 * * * * *", chrono_tz::UTC);
    let from = at(10, 9, 0, 0);
    let until = from + secs(3_600);
    let w = walk(&c, secs(5), from, until, 50);
    let stop = w.stopped_at.expect("stopped");
    assert_eq!(w.runs, plain_before(&c, secs(5), from, stop));
    let rest = walk(&c, secs(5), stop, until, u64::MAX);
    let mut all = w.runs.clone();
    all.extend(rest.runs);
    assert_eq!(merge(all), plain(&c, secs(5), from, until));
}

/// Legal rows chosen to be expensive ahead: seconds as dense and as
/// irregular as a cron allows, with the shortest windows, over the
/// longest horizon (13,200 s). None reaches the limit.
#[test]
fn no_legal_row_reaches_the_limit_over_the_longest_horizon() {
    let rows = [
        ("* * * * * *", 5),
        ("* * * * * *", 604_800),
        ("*/2 * * * * *", 5),
        ("*/3 * * * * *", 5),
        ("*/6 * * * * *", 5),
        ("0-58 * * * * *", 5),
        ("0,2,3,5,6,8,9,11,12,14,15,17,18,20,21,23,24,26,27,29,30,32,33,35,36,38,39,41,42,44,45,47,48,50,51,53,54,56,57,59 * * * * *", 5),
        ("0,1,2,4,7,8,9,11,14,15,16,18,21,22,23,25,28,29,30,32,35,36,37,39,42,43,44,46,49,50,51,53,56,57,58 * * * * *", 5),
        ("0,1,3,6,10,15,21,28,36,45,55 * * * * *", 5),
        ("0,1,3,6,10,15,21,28,36,45,55 * * * * *", 16),
        ("0,1,3,6,10,15,21,28,36,45,55 * * * * *", 17),
        ("0,1,3,6,10,15,21,28,36,45,55 * * * * *", 604_800),
        ("0,1,2,3,5,8,13,21,34,55 * * * * *", 20),
        // The worst of 3,000 random second lists with 5..80 s windows.
        ("0,3,4,5,7,8,10,11,12,13,14,16,17,19,20,22,23,27,28,30,31,32,33,34,35,36,40,41,43,44,48,49,50,51,54,55,56,57,58,59 * * * * *", 12),
        ("* * * * *", 5),
        ("* * * * *", 3_600),
    ];
    let from = at(29, 0, 30, 0); // across the Amsterdam spring gap
    let until = from + secs(13_200);
    let mut worst = 0;
    for (expr, length) in rows {
        for tz in [chrono_tz::UTC, chrono_tz::Europe::Amsterdam] {
            let c = cron(expr, tz);
            let w = walk(&c, secs(length), from, until, WALK_LIMIT);
            assert_eq!(w.stopped_at, None, "{expr} {length} s in {tz}");
            assert_eq!(
                w.runs,
                plain(&c, secs(length), from, until),
                "{expr} {length} s in {tz}"
            );
            worst = worst.max(w.walked);
        }
    }
    // What WALK_LIMIT's docs promise.
    assert!(worst < 9_000, "{worst}");
}

const ZONES: [Tz; 4] = [
    chrono_tz::UTC,
    chrono_tz::Europe::Amsterdam,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe,
];

fn expression() -> impl Strategy<Value = String> {
    let second = prop::sample::select(vec![
        "*",
        "0",
        "*/2",
        "*/3",
        "*/7",
        "0-29",
        "0,1,2,10,30",
        "5-50/5",
        "0,1,3,6,10,15,21,28,36,45,55",
    ]);
    let minute = prop::sample::select(vec!["*", "0", "*/5", "0-9", "0,30", "15-45/15", "59"]);
    let hour = prop::sample::select(vec!["*", "1", "2", "1-3", "*/2", "0,12"]);
    (second, minute, hour).prop_map(|(s, m, h)| format!("{s} {m} {h} * * *"))
}

fn length() -> impl Strategy<Value = i64> {
    prop_oneof![5i64..40, 40i64..4_000, 4_000i64..604_801]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(96))]

    /// Whatever the cron, zone and length, the walk finds exactly the
    /// merged windows; with a limit, exactly those before its stop.
    #[test]
    fn the_walk_finds_what_merging_every_window_finds(
        expr in expression(),
        zone in 0..ZONES.len(),
        length in length(),
        // Around the 2026 transitions of the zones above (March to April,
        // October to November).
        offset in 0i64..(60 * 86_400),
        autumn in any::<bool>(),
        span in 1i64..20_000,
        limit in prop_oneof![Just(u64::MAX), 0u64..200],
    ) {
        let tz = ZONES[zone];
        let c = cron(&expr, tz);
        let base = if autumn { at(1, 0, 0, 0) + secs(214 * 86_400) } else { at(1, 0, 0, 0) };
        let from = base + secs(offset) + Duration::milliseconds(offset % 1000);
        let until = from + secs(span);
        let length = secs(length);
        let w = walk(&c, length, from, until, limit);
        match w.stopped_at {
            None => prop_assert_eq!(&w.runs, &plain(&c, length, from, until)),
            Some(stop) => {
                prop_assert!(stop > from && stop < until);
                prop_assert_eq!(&w.runs, &plain_before(&c, length, from, stop));
            }
        }
        for pair in w.runs.windows(2) {
            prop_assert!(pair[0].end < pair[1].start, "{:?}", pair);
        }
    }
}
