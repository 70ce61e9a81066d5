//! `recsched next`: window starts across daylight-saving changes, checked
//! by hand against the tz database, through the real binary.

use serde_json::{json, Value};

use super::{insert_policy, Recsched};

/// `next --json` for an expression; the windows' (start, end) in UTC.
fn windows(r: &Recsched, cron: &str, tz: &str, window: &str, from: &str, count: &str) -> Value {
    r.ok(&[
        "next", "--cron", cron, "--tz", tz, "--window", window, "--from", from, "--count", count,
        "--json",
    ])
    .json()
}

fn starts(windows: &Value) -> Vec<&str> {
    windows
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["start"].as_str().unwrap())
        .collect()
}

#[test]
fn a_start_in_the_spring_gap_opens_at_the_first_instant_after_it() {
    let r = Recsched::new();
    let got = windows(
        &r,
        "30 2 * * *",
        "Europe/Amsterdam",
        "3600",
        "2026-03-28T00:00:00Z",
        "3",
    );
    // 02:30 CET; 02:30 does not exist on the 29th, so 03:00 CEST; 02:30 CEST.
    assert_eq!(
        starts(&got),
        [
            "2026-03-28T01:30:00.000Z",
            "2026-03-29T01:00:00.000Z",
            "2026-03-30T00:30:00.000Z"
        ]
    );
    assert_eq!(
        got[1],
        json!({
            "start": "2026-03-29T01:00:00.000Z",
            "end": "2026-03-29T02:00:00.000Z",
            "start_local": "2026-03-29T03:00:00+02:00",
            "end_local": "2026-03-29T04:00:00+02:00",
            "start_abbreviation": "CEST",
            "end_abbreviation": "CEST",
            "timezone": "Europe/Amsterdam",
            "excluded": []
        })
    );
    assert_eq!(got[0]["start_local"], json!("2026-03-28T02:30:00+01:00"));
    assert_eq!(got[2]["start_local"], json!("2026-03-30T02:30:00+02:00"));
}

#[test]
fn a_fixed_start_in_the_autumn_fold_opens_once() {
    let r = Recsched::new();
    let got = windows(
        &r,
        "30 2 * * *",
        "Europe/Amsterdam",
        "3600",
        "2026-10-24T12:00:00Z",
        "2",
    );
    // 02:30 happens twice on the 25th (CEST, then CET): one window, the first.
    assert_eq!(
        starts(&got),
        ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"]
    );
    assert_eq!(got[0]["start_local"], json!("2026-10-25T02:30:00+02:00"));
    // An hour later the clock reads 02:30 again, now in CET.
    assert_eq!(got[0]["end_local"], json!("2026-10-25T02:30:00+01:00"));
    assert_eq!(got[1]["start_local"], json!("2026-10-26T02:30:00+01:00"));

    // Starting inside the second pass, the repeated 02:30 is not offered again.
    let got = windows(
        &r,
        "30 2 * * *",
        "Europe/Amsterdam",
        "3600",
        "2026-10-25T01:15:00Z",
        "1",
    );
    assert_eq!(starts(&got), ["2026-10-26T01:30:00.000Z"]);
}

#[test]
fn an_hourly_job_follows_the_clock_through_both_changes() {
    let r = Recsched::new();
    // Autumn: 02:00 CEST and 02:00 CET are both on the hour.
    let got = windows(
        &r,
        "0 * * * *",
        "Europe/Amsterdam",
        "60",
        "2026-10-24T23:30:00Z",
        "3",
    );
    assert_eq!(
        starts(&got),
        [
            "2026-10-25T00:00:00.000Z",
            "2026-10-25T01:00:00.000Z",
            "2026-10-25T02:00:00.000Z"
        ]
    );
    let locals: Vec<&str> = got
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["start_local"].as_str().unwrap())
        .collect();
    assert_eq!(
        locals,
        [
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00"
        ]
    );
    // Spring: 02:00 does not exist; nothing fires in the gap.
    let got = windows(
        &r,
        "0 * * * *",
        "Europe/Amsterdam",
        "60",
        "2026-03-29T00:30:00Z",
        "2",
    );
    assert_eq!(
        starts(&got),
        ["2026-03-29T01:00:00.000Z", "2026-03-29T02:00:00.000Z"]
    );
    assert_eq!(got[0]["start_local"], json!("2026-03-29T03:00:00+02:00"));
}

#[test]
fn new_york_skips_to_three_in_march() {
    let r = Recsched::new();
    let got = windows(
        &r,
        "0 2 * * *",
        "America/New_York",
        "60",
        "2026-03-07T00:00:00Z",
        "3",
    );
    assert_eq!(
        starts(&got),
        [
            "2026-03-07T07:00:00.000Z",
            "2026-03-08T07:00:00.000Z",
            "2026-03-09T06:00:00.000Z"
        ]
    );
    assert_eq!(got[1]["start_local"], json!("2026-03-08T03:00:00-04:00"));
}

#[test]
fn text_output_shows_utc_and_local_times() {
    let r = Recsched::new();
    let run = r.ok(&[
        "next",
        "--cron",
        "30 2 * * *",
        "--tz",
        "Europe/Amsterdam",
        "--window",
        "3600",
        "--from",
        "2026-03-29T00:00:00Z",
        "--count",
        "1",
    ]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:?}");
    assert!(lines[0].contains("Europe/Amsterdam"), "{run:?}");
    assert_eq!(
        lines[2].split("  ").map(str::trim).collect::<Vec<_>>(),
        [
            "2026-03-29T01:00:00.000Z",
            "2026-03-29T02:00:00.000Z",
            "2026-03-29T03:00:00+02:00 CEST",
            "2026-03-29T04:00:00+02:00 CEST"
        ]
    );
    assert_eq!(
        r.ok(&["next", "--cron", "@daily", "--window", "60"])
            .stdout
            .lines()
            .count(),
        2 + 5,
        "five windows by default"
    );
}

#[test]
fn bad_expressions_are_refused_naming_the_flag() {
    let r = Recsched::new();
    let run = r.fails(&["next", "--cron", "61 * * * *", "--window", "60"]);
    assert!(
        run.stderr
            .contains("--cron `61 * * * *`: minute 61 out of range 0-59"),
        "{run:?}"
    );
    let run = r.fails(&[
        "next",
        "--cron",
        "@daily",
        "--tz",
        "Europe/Amsterdm",
        "--window",
        "60",
    ]);
    assert!(run.stderr.contains("--tz `Europe/Amsterdm`"), "{run:?}");
    let run = r.fails(&["next", "--cron", "@daily", "--window", "3"]);
    assert!(run.stderr.contains("--window 3"), "{run:?}");
    // A policy or an expression, not both, not neither.
    assert_eq!(r.run(&["next"]).code, Some(2));
    assert_eq!(
        r.run(&["next", "p", "--cron", "@daily", "--window", "60"])
            .code,
        Some(2)
    );
    assert_eq!(r.run(&["next", "--cron", "@daily"]).code, Some(2));
}

#[tokio::test]
async fn a_policy_in_the_database_gives_its_windows() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    insert_policy(
        &mut sql,
        "ams",
        "30 2 * * *",
        "Europe/Amsterdam",
        3600,
        &["u1"],
    )
    .await;
    insert_policy(
        &mut sql,
        "broken",
        "30 2 * * *",
        "Europe/Amsterdm",
        3600,
        &["u1"],
    )
    .await;

    let got = r
        .ok(&[
            "next",
            "ams",
            "--from",
            "2026-03-28T00:00:00Z",
            "--count",
            "3",
            "--json",
        ])
        .json();
    assert_eq!(
        starts(&got),
        [
            "2026-03-28T01:30:00.000Z",
            "2026-03-29T01:00:00.000Z",
            "2026-03-30T00:30:00.000Z"
        ]
    );
    assert_eq!(got[1]["end"], json!("2026-03-29T02:00:00.000Z"));

    let run = r.fails(&["next", "broken"]);
    assert!(run.stderr.contains("does not validate"), "{run:?}");
    assert!(run.stderr.contains("Europe/Amsterdm"), "{run:?}");
    let run = r.fails(&["next", "ghost"]);
    assert!(run.stderr.contains("recsched policy list"), "{run:?}");

    // `policy show` lists the next three windows from now.
    let shown = r.ok(&["policy", "show", "ams", "--json"]).json();
    let next = shown["next_windows"].as_array().unwrap();
    assert_eq!(next.len(), 3);
    assert!(next[0]["start"].as_str().unwrap() < next[1]["start"].as_str().unwrap());
    let shown = r.ok(&["policy", "show", "broken", "--json"]).json();
    assert_eq!(shown["next_windows"], json!([]));
    let text = r.ok(&["policy", "show", "ams"]).stdout;
    assert!(text.contains("next windows:"), "{text}");
}

#[test]
fn trying_an_expression_needs_no_config_or_database() {
    let r = Recsched::new();
    std::fs::write(&r.config, "[schedule]\nsegment_limt_seconds = 5\n").unwrap();
    let run = r.ok(&["next", "--cron", "@daily", "--window", "60", "--json"]);
    assert_eq!(run.json().as_array().unwrap().len(), 5);
    assert!(!r.db.exists());
    // With a policy name it does need both, and says what is wrong.
    let run = r.fails(&["next", "ams"]);
    assert!(run.stderr.contains("segment_limt_seconds"), "{run:?}");
}
