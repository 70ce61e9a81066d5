//! Exclusions end to end: the real daemon, the simulator, rows edited by
//! SQL and by `recsched exclusions import`.

use super::{cli, ics};
use crate::common::daemon::{wait_for, Rig};
use crate::daemon::add_policy;
use crate::faults::{cron_at, running, second_after, start_requests, user_of};
use chrono::{Duration, Timelike};
use recsched::clock::format_utc;
use recsched::recording::RecordingState;
use recsched::simulator::EndReason;

/// Windows every 6 s lasting 5 s; an exclusion inserted by SQL over the
/// next one, while the daemon runs: that window never starts, the one
/// after it does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusion_inserted_by_sql_skips_the_next_window_and_not_the_following_one() {
    let rig = Rig::new().await;
    add_policy(&rig, "every-6s", "*/6 * * * * *", 5, "expire", &["ann"]).await;
    let mut daemon = rig.spawn();
    running(&daemon).await;

    let mut next = second_after(Duration::seconds(2));
    while next.second() % 6 != 0 {
        next += Duration::seconds(1);
    }
    let following = next + Duration::seconds(6);
    rig.sql(&format!(
        "INSERT INTO exclusions (starts_at, ends_at, reason) VALUES ('{}', '{}', 'maintenance');",
        format_utc(next),
        format_utc(next + Duration::seconds(5))
    ))
    .await;

    wait_for(
        std::time::Duration::from_secs(20),
        "the window after the excluded one to start",
        || async {
            rig.rows()
                .await
                .iter()
                .any(|r| {
                    r.segment_start == following
                        && r.state == RecordingState::Recording
                        && r.contact_id.is_some()
                })
                .then_some(())
        },
    )
    .await;
    let rows = rig.rows().await;
    let excluded: Vec<_> = rows
        .iter()
        .filter(|r| r.segment_start >= next && r.segment_start < following)
        .collect();
    assert!(
        excluded.is_empty(),
        "a row inside the exclusion: {excluded:?}"
    );
    let made: Vec<_> = rig
        .recordings()
        .into_iter()
        .filter(|r| r.started_at >= next && r.started_at < following)
        .collect();
    assert!(
        made.is_empty(),
        "the vendor recorded inside the exclusion: {made:?}"
    );
    daemon.assert_running();
    assert!(!daemon.log().contains("panicked"));
}

/// An exclusion that begins while a recording runs ends it there, as a
/// disabled policy does: the recording is stopped, and nothing new starts
/// while it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exclusion_beginning_mid_recording_stops_it_when_it_begins() {
    let rig = Rig::new().await;
    // Windows every 2 s lasting 60 s: ann is always covered.
    add_policy(&rig, "always", "*/2 * * * * *", 60, "expire", &["ann"]).await;
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(15),
        "ann recording",
        || async {
            rig.recordings()
                .iter()
                .any(|r| r.user_id == "ann" && r.ended_at.is_none())
                .then_some(())
        },
    )
    .await;
    let begins = second_after(Duration::seconds(2));
    rig.sql(&format!(
        "INSERT INTO exclusions (starts_at, ends_at, reason) VALUES ('{}', '{}', 'fire drill');",
        format_utc(begins),
        format_utc(begins + Duration::hours(1))
    ))
    .await;
    let stopped = wait_for(
        std::time::Duration::from_secs(15),
        "ann's recording to be stopped",
        || async {
            rig.recordings()
                .into_iter()
                .find(|r| r.user_id == "ann" && r.end_reason == Some(EndReason::Stopped))
        },
    )
    .await;
    let ended = stopped.ended_at.unwrap();
    assert!(
        ended >= begins,
        "stopped at {ended}, before the exclusion began at {begins}"
    );
    assert!(
        ended < begins + Duration::seconds(5),
        "stopped at {ended}, not when the exclusion began at {begins}"
    );
    // The vendor has the stop before the daemon's writer commits its row.
    let row = wait_for(
        std::time::Duration::from_secs(15),
        "ann's row to record its end",
        || async { rig.rows().await.into_iter().find(|r| r.ended_at.is_some()) },
    )
    .await;
    assert_eq!(row.state, RecordingState::Stopped, "{row:?}");
    // Nothing started inside the exclusion.
    assert!(
        rig.recordings().iter().all(|r| r.started_at < begins),
        "{:?}",
        rig.recordings()
    );
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

/// `exclusions import` of a holiday calendar: `next` marks the excluded
/// windows with the event's summary, and the daemon skips the holiday for
/// the policy it was imported for, not for another one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ics_import_excludes_its_dates() {
    let rig = Rig::new().await;
    let w = second_after(Duration::seconds(3));
    add_policy(&rig, "office", &cron_at(w), 20, "expire", &["o1"]).await;
    add_policy(&rig, "support", &cron_at(w), 20, "expire", &["s1"]).await;
    let day = w.date_naive();
    let path = ics(
        &rig,
        "holidays.ics",
        &[(
            "Founders Day",
            &day.format("%Y%m%d").to_string(),
            &day.succ_opt().unwrap().format("%Y%m%d").to_string(),
        )],
    );
    let (code, out, err) = cli(
        &rig,
        &[
            "exclusions",
            "import",
            path.to_str().unwrap(),
            "--policy",
            "office",
            "--tz",
            "UTC",
        ],
    );
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("imported 1 exclusions"), "{out}");

    // `next` shows the window excluded, with the reason.
    let from = format_utc(w - Duration::seconds(1));
    let (code, out, err) = cli(
        &rig,
        &["next", "office", "--from", &from, "--count", "1", "--json"],
    );
    assert_eq!(code, Some(0), "{err}");
    let windows: serde_json::Value = serde_json::from_str(&out).unwrap();
    let excluded = &windows[0]["excluded"][0];
    assert_eq!(excluded["whole"], true, "{windows:#}");
    assert_eq!(excluded["reason"], "Founders Day");
    let (_, out, _) = cli(
        &rig,
        &["next", "support", "--from", &from, "--count", "1", "--json"],
    );
    let windows: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(windows[0]["excluded"], serde_json::json!([]));

    // The daemon: support's user is recorded, office's is not.
    let mut daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(15),
        "s1 recording",
        || async {
            rig.rows()
                .await
                .iter()
                .any(|r| {
                    r.user_id.as_str() == "s1" && r.segment_start == w && r.contact_id.is_some()
                })
                .then_some(())
        },
    )
    .await;
    assert!(
        rig.rows().await.iter().all(|r| r.user_id.as_str() != "o1"),
        "{:?}",
        rig.rows().await
    );
    let starts: Vec<_> = start_requests(&rig).iter().filter_map(user_of).collect();
    assert_eq!(starts, ["s1"], "only s1 was started");
    daemon.assert_running();
}
