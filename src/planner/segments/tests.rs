use std::collections::BTreeSet;

use super::*;
use crate::planner::{coverage, Contribution};
use crate::policy::{Policy, PolicyRow};
use chrono::TimeZone;
use proptest::prelude::*;

fn base() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap()
}

/// `base + s` seconds.
fn t(s: i64) -> DateTime<Utc> {
    base() + Duration::seconds(s)
}

fn secs(at: DateTime<Utc>) -> i64 {
    (at - base()).num_seconds()
}

fn stretch(start: i64, end: i64) -> Coverage {
    Coverage {
        start: t(start),
        end: t(end),
        policies: BTreeSet::from([PolicyId::new(1)]),
        end_mode: EndMode::Expire,
        contributions: vec![Contribution {
            policy: PolicyId::new(1),
            interval: Interval::new(t(start), t(end)),
        }],
    }
}

fn ann() -> UserId {
    UserId::parse("ann").unwrap()
}

fn limit(s: i64) -> SegmentLimit {
    SegmentLimit::from_secs(s).unwrap()
}

/// Segments as (start, end) seconds from `base`.
fn cut(stretches: &[Coverage], occupied: &[(i64, i64)], lim: i64) -> Vec<(i64, i64)> {
    let occupied: Vec<Interval> = occupied
        .iter()
        .map(|&(a, b)| Interval::new(t(a), t(b)))
        .collect();
    segments(&ann(), stretches, &occupied, limit(lim))
        .iter()
        .map(|s| {
            assert_eq!(
                s.end - s.start,
                Duration::seconds(s.duration.as_secs().into())
            );
            (secs(s.start), secs(s.end))
        })
        .collect()
}

#[test]
fn long_stretch_is_cut_into_limit_pieces_from_its_start() {
    assert_eq!(
        cut(&[stretch(0, 28_800)], &[], 12_600),
        [(0, 12_600), (12_600, 25_200), (25_200, 28_800)]
    );
}

#[test]
fn occupied_time_splits_a_stretch_into_free_runs() {
    assert_eq!(
        cut(&[stretch(0, 3_600)], &[(600, 1_200)], 12_600),
        [(0, 600), (1_200, 3_600)]
    );
}

#[test]
fn chain_continues_where_the_stored_segment_ended() {
    // Stored: [0, 100) of a growing stretch; limit 100.
    assert_eq!(
        cut(&[stretch(0, 250)], &[(0, 100)], 100),
        [(100, 200), (200, 250)]
    );
}

#[test]
fn fully_occupied_stretch_needs_no_segments() {
    assert!(cut(&[stretch(0, 600)], &[(-10, 300), (300, 700)], 100).is_empty());
}

#[test]
fn remainder_under_five_seconds_is_padded_past_coverage() {
    assert_eq!(cut(&[stretch(0, 103)], &[], 100), [(0, 100), (100, 105)]);
}

#[test]
fn padding_that_would_reach_occupied_time_ends_with_the_run_instead() {
    // Free run [0, 3) before a recording at 3: the 5 s end at 3.
    assert_eq!(cut(&[stretch(0, 600)], &[(3, 600)], 100), [(-2, 3)]);
}

#[test]
fn remainder_squeezed_between_recordings_is_dropped() {
    assert!(cut(&[stretch(0, 600)], &[(-100, 0), (3, 600)], 100).is_empty());
    // ... or between our own piece and a recording.
    assert_eq!(cut(&[stretch(0, 600)], &[(103, 600)], 100), [(0, 100)]);
}

#[test]
fn padded_segment_pushes_the_next_stretch_to_start_at_its_end() {
    assert_eq!(
        cut(&[stretch(0, 8), stretch(9, 60)], &[], 5),
        [
            (0, 5),
            (5, 10),
            (10, 15),
            (15, 20),
            (20, 25),
            (25, 30),
            (30, 35),
            (35, 40),
            (40, 45),
            (45, 50),
            (50, 55),
            (55, 60)
        ]
    );
}

#[test]
fn sub_second_occupied_edges_are_widened_to_whole_seconds() {
    let occupied = [Interval::new(
        t(10) + Duration::milliseconds(300),
        t(20) + Duration::milliseconds(300),
    )];
    let got: Vec<(i64, i64)> = segments(&ann(), &[stretch(0, 60)], &occupied, limit(100))
        .iter()
        .map(|s| (secs(s.start), secs(s.end)))
        .collect();
    assert_eq!(got, [(0, 10), (21, 60)]);
}

#[test]
fn segment_names_lowest_id_policy_holding_its_start_and_stretch_end_mode() {
    let row = |id, cron: &str, end_mode: &str| PolicyRow {
        id,
        name: format!("p{id}"),
        enabled: true,
        cron: cron.into(),
        timezone: "UTC".into(),
        window_seconds: 3600,
        end_mode: end_mode.into(),
        users: vec!["ann".into()],
        teams: Vec::new(),
    };
    let policies = [
        Policy::from_row(&row(7, "0 9 * * *", "expire")).unwrap(),
        Policy::from_row(&row(3, "30 9 * * *", "stop")).unwrap(),
    ];
    let plan = coverage(&policies, t(0), t(7200));
    let got = segments(
        &ann(),
        &plan[&ann()],
        &[(Interval::new(t(0), t(1800)))],
        limit(1800),
    );
    let summary: Vec<(i64, i64, PolicyId, EndMode)> = got
        .iter()
        .map(|s| (secs(s.start), secs(s.end), s.policy, s.end_mode))
        .collect();
    assert_eq!(
        summary,
        [
            (1800, 3600, PolicyId::new(3), EndMode::Stop),
            (3600, 5400, PolicyId::new(3), EndMode::Stop),
        ]
    );
}

#[test]
fn segment_limit_accepts_the_api_range_only() {
    assert!(SegmentLimit::from_secs(4).is_err());
    assert_eq!(SegmentLimit::from_secs(5).map(SegmentLimit::as_secs), Ok(5));
    assert_eq!(
        SegmentLimit::from_secs(13_200).map(SegmentLimit::as_secs),
        Ok(13_200)
    );
    assert!(SegmentLimit::from_secs(13_201).is_err());
    assert_eq!(SegmentLimit::default().as_secs(), 12_600);
    let parsed: SegmentLimit = serde_json::from_str("600").unwrap();
    assert_eq!(parsed.as_secs(), 600);
    assert!(serde_json::from_str::<SegmentLimit>("20000").is_err());
}

// --- Properties --------------------------------------------------------------

/// Seconds `-OFF .. SPAN - OFF` hold every stretch, occupied interval and
/// segment the strategies below can produce.
const OFF: i64 = 40;
const SPAN: i64 = 2_600;

/// Coverage stretches as alternating covered (>= 5 s) and gap (>= 1 s)
/// lengths from second 0, non-touching.
fn stretches() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((5i64..400, 1i64..30), 1..6).prop_map(|lengths| {
        let mut at = 0;
        let mut out = Vec::new();
        for (covered, gap) in lengths {
            out.push((at, at + covered));
            at += covered + gap;
        }
        out
    })
}

fn occupied() -> impl Strategy<Value = Vec<(i64, i64)>> {
    prop::collection::vec((-20i64..1_800, 1i64..300), 0..6)
        .prop_map(|v| v.into_iter().map(|(s, len)| (s, s + len)).collect())
}

fn mark(spans: &[(i64, i64)]) -> Vec<bool> {
    let mut on = vec![false; SPAN as usize];
    for &(a, b) in spans {
        for s in a..b {
            on[(s + OFF) as usize] = true;
        }
    }
    on
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn segments_tile_coverage_minus_occupied(
        stretches in stretches(),
        occupied in occupied(),
        lim in 5i64..120,
    ) {
        let coverage: Vec<Coverage> = stretches.iter().map(|&(a, b)| stretch(a, b)).collect();
        let got = cut(&coverage, &occupied, lim);

        // Every segment lasts 5 ..= limit, and none overlap.
        for &(a, b) in &got {
            prop_assert!((5..=lim).contains(&(b - a)), "{:?}", (a, b));
        }
        for pair in got.windows(2) {
            prop_assert!(pair[0].1 <= pair[1].0, "overlap {:?}", pair);
        }

        let covered = mark(&stretches);
        let busy = mark(&occupied);
        let recorded = mark(&got);
        let free: Vec<bool> = covered.iter().zip(&busy).map(|(c, b)| *c && !*b).collect();

        // No segment touches occupied time; only padding leaves free time.
        for &(a, b) in &got {
            let outside = (a..b).filter(|&s| !free[(s + OFF) as usize]).count();
            prop_assert!(outside == 0 || b - a == 5, "{:?} has {} s outside", (a, b), outside);
            prop_assert!((a..b).all(|s| !busy[(s + OFF) as usize]), "{:?} overlaps occupied", (a, b));
        }

        // Free time left unrecorded comes only in pieces under 5 s that
        // a recording follows within 5 s (padding had nowhere to go).
        let mut s = -OFF;
        while s < SPAN - OFF {
            let i = (s + OFF) as usize;
            if free[i] && !recorded[i] {
                let start = s;
                while s < SPAN - OFF && free[(s + OFF) as usize] && !recorded[(s + OFF) as usize] {
                    s += 1;
                }
                prop_assert!(s - start < 5, "free {}..{} unrecorded", start, s);
                let blocked = occupied.iter().any(|&(a, b)| a < start + 5 && b > start && a >= start);
                prop_assert!(blocked, "free {}..{} dropped without a recording after it", start, s);
            }
            s += 1;
        }
    }

    #[test]
    fn planning_again_from_the_stored_segments_adds_nothing(
        stretches in stretches(),
        occupied in occupied(),
        lim in 5i64..120,
    ) {
        let coverage: Vec<Coverage> = stretches.iter().map(|&(a, b)| stretch(a, b)).collect();
        let first = cut(&coverage, &occupied, lim);
        let stored: Vec<(i64, i64)> = occupied.iter().chain(&first).copied().collect();
        prop_assert!(cut(&coverage, &stored, lim).is_empty());
    }
}
