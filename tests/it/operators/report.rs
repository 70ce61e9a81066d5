//! `recsched report` over a real run: the daemon, the simulator with one
//! user whose every start fails, and the report read from the rows.

use super::cli;
use crate::common::daemon::{wait_for, Rig};
use crate::daemon::{add_policy, now};
use crate::faults::{cron_at, running, second_after};
use chrono::Duration;
use recsched::clock::format_utc;
use recsched::recording::RecordingState;
use recsched::simulator::{Faults, UserFault};
use serde_json::Value;

const WINDOW: i64 = 30;

/// Runs one window for h1, h2 (healthy) and f1 (every start answered
/// with a redirect: a final error), until each row has its outcome.
/// Returns the rig and the window's start.
async fn run() -> (Rig, chrono::DateTime<chrono::Utc>) {
    let rig = Rig::with_faults(Faults {
        user_faults: [(
            "f1".to_owned(),
            UserFault::Redirect {
                location: "http://127.0.0.1:9/elsewhere".to_owned(),
            },
        )]
        .into(),
        ..Faults::default()
    })
    .await;
    let daemon = rig.spawn();
    running(&daemon).await;
    let w = second_after(Duration::seconds(2));
    add_policy(
        &rig,
        "desk",
        &cron_at(w),
        WINDOW,
        "expire",
        &["h1", "h2", "f1"],
    )
    .await;
    wait_for(
        std::time::Duration::from_secs(20),
        "every start answered",
        || async {
            let rows = rig.rows().await;
            let state = |u: &str| {
                rows.iter()
                    .find(|r| r.user_id.as_str() == u)
                    .map(|r| r.state)
            };
            (state("h1") == Some(RecordingState::Recording)
                && state("h2") == Some(RecordingState::Recording)
                && state("f1") == Some(RecordingState::Failed))
            .then_some(())
        },
    )
    .await;
    daemon.kill9();
    (rig, w)
}

fn group<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == name)
        .unwrap_or_else(|| panic!("no group {name}: {report:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_report_shows_an_always_failing_user_at_0_and_the_others_at_1() {
    let (rig, w) = run().await;
    let from = format_utc(w - Duration::minutes(1));
    // Up to now: the window is still open, so the report stops at now.
    let to = format_utc(now());
    let (code, out, err) = cli(&rig, &["report", "--from", &from, "--to", &to, "--json"]);
    assert_eq!(code, Some(0), "{out}{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    let until = recsched::clock::parse_utc(report["to"].as_str().unwrap()).unwrap();
    let planned = (until.min(w + Duration::seconds(WINDOW)) - w).num_milliseconds() as f64 / 1000.0;
    assert!(planned > 0.0);

    let f1 = group(&report, "f1");
    assert_eq!(f1["planned_seconds"], planned, "{f1:#}");
    assert_eq!(f1["recorded_seconds"], 0.0);
    assert_eq!(f1["ratio"], 0.0);
    assert_eq!(f1["failed_seconds"], planned);
    let gap = &f1["gaps"][0];
    assert_eq!(gap["reason"], "failed");
    assert!(
        gap["detail"].as_str().unwrap().contains("127.0.0.1"),
        "{gap:#}"
    );

    for h in ["h1", "h2"] {
        let g = group(&report, h);
        assert_eq!(g["planned_seconds"], planned, "{g:#}");
        assert_eq!(g["failed_seconds"], 0.0);
        assert_eq!(g["missed_seconds"], 0.0);
        // On time (answered within the window's first second): every
        // planned second recorded. A start this loaded machine answered
        // later shows as a `late` gap, never as lost time.
        let recorded = g["recorded_seconds"].as_f64().unwrap();
        let late = g["late_seconds"].as_f64().unwrap();
        assert!((recorded + late - planned).abs() < 0.002, "{g:#}");
        if late == 0.0 {
            assert_eq!(g["ratio"], 1.0, "{g:#}");
        } else {
            assert_eq!(g["gaps"][0]["reason"], "late", "{g:#}");
        }
    }
    let total = report["total"]["planned_seconds"].as_f64().unwrap();
    assert!(
        (total - 3.0 * planned).abs() < 0.002,
        "{total} != 3 x {planned}"
    );
    assert_eq!(report["unreadable_rows"], serde_json::json!([]));

    // --csv: a header, one line per group, the total.
    let (code, out, err) = cli(
        &rig,
        &[
            "report", "--from", &from, "--to", &to, "--csv", "--by", "policy",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        lines[0],
        "group,planned_seconds,recorded_seconds,excluded_seconds,ratio,failed_seconds,\
         missed_seconds,late_seconds,pending_seconds,gaps"
    );
    assert_eq!(lines.len(), 3, "{out}");
    assert!(lines[1].starts_with("desk,"), "{out}");
    assert!(lines[2].starts_with("(total),"), "{out}");
    let cells: Vec<&str> = lines[1].split(',').collect();
    assert!(
        (cells[1].parse::<f64>().unwrap() - 3.0 * planned).abs() < 0.002,
        "{out}"
    );
    assert_eq!(
        cells[5].parse::<f64>().unwrap(),
        planned,
        "f1's failed seconds"
    );
}
