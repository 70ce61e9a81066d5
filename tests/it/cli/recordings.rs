//! `recsched recordings`: newest first, every filter narrows, bad filter
//! values are refused with the valid ones.

use serde_json::json;
use sqlx::SqliteConnection;

use super::Recsched;

async fn recording(
    sql: &mut SqliteConnection,
    user: &str,
    start: &str,
    end: &str,
    state: &str,
    contact: Option<i64>,
    error: Option<&str>,
) {
    sqlx::query(
        "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
         requested_seconds, state, contact_id, attempts, last_error, late_seconds) \
         VALUES (?, 7, ?, ?, 3600, ?, ?, 1, ?, ?)",
    )
    .bind(user)
    .bind(start)
    .bind(end)
    .bind(state)
    .bind(contact)
    .bind(error)
    .bind(error.map(|_| 2.5))
    .execute(sql)
    .await
    .unwrap();
}

fn ids(value: &serde_json::Value) -> Vec<i64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn recordings_are_listed_newest_first_and_filtered() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    let day = |h: u32| format!("2026-03-29T{h:02}:00:00.000Z");
    recording(&mut sql, "u1", &day(8), &day(9), "expired", Some(11), None).await;
    recording(
        &mut sql,
        "u2",
        &day(9),
        &day(10),
        "failed",
        None,
        Some("HTTP 403: forbidden\nfinal"),
    )
    .await;
    recording(
        &mut sql,
        "u1",
        &day(10),
        &day(11),
        "recording",
        Some(13),
        None,
    )
    .await;
    recording(
        &mut sql,
        "u2",
        &day(11),
        &day(12),
        "missed",
        None,
        Some("service was down"),
    )
    .await;

    let all = r.ok(&["recordings", "--json"]).json();
    assert_eq!(ids(&all), [4, 3, 2, 1]);
    assert_eq!(all[1]["segment_start"], json!("2026-03-29T10:00:00.000Z"));
    assert_eq!(all[1]["segment_end"], json!("2026-03-29T11:00:00.000Z"));
    assert_eq!(all[1]["state"], json!("recording"));
    assert_eq!(all[1]["contact_id"], json!(13));
    assert_eq!(all[1]["user_id"], json!("u1"));
    assert_eq!(all[1]["policy_id"], json!(7));
    assert_eq!(all[1]["attempts"], json!(1));
    assert_eq!(all[2]["last_error"], json!("HTTP 403: forbidden\nfinal"));
    assert_eq!(all[2]["late_seconds"], json!(2.5));

    assert_eq!(
        ids(&r.ok(&["recordings", "--json", "--user", "u1"]).json()),
        [3, 1]
    );
    assert_eq!(
        ids(&r.ok(&["recordings", "--json", "--state", "failed"]).json()),
        [2]
    );
    assert_eq!(
        ids(&r
            .ok(&["recordings", "--json", "--since", "2026-03-29T10:30:00Z"])
            .json()),
        [4, 3]
    );
    // Any offset is read as the instant it names.
    assert_eq!(
        ids(&r
            .ok(&[
                "recordings",
                "--json",
                "--since",
                "2026-03-29T12:30:00+02:00"
            ])
            .json()),
        [4, 3]
    );
    assert_eq!(
        ids(&r.ok(&["recordings", "--json", "--limit", "2"]).json()),
        [4, 3]
    );
    assert_eq!(
        ids(&r
            .ok(&["recordings", "--json", "--user", "u2", "--state", "missed"])
            .json()),
        [4]
    );
    assert_eq!(
        r.ok(&["recordings", "--json", "--user", "nobody"]).json(),
        json!([])
    );

    let text = r.ok(&["recordings"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        5,
        "one line per row, errors kept on one line: {text}"
    );
    for column in [
        "ID", "USER", "POLICY", "START", "END", "STATE", "CONTACT", "ATTEMPTS", "LATE_S", "ERROR",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    assert!(
        lines[2].contains("2026-03-29T10:00:00.000Z  2026-03-29T11:00:00.000Z  recording  13"),
        "{text}"
    );
    assert!(lines[3].contains("HTTP 403: forbidden\\nfinal"), "{text}");
    assert!(lines[3].contains("2.5"), "{text}");
}

#[tokio::test]
async fn bad_filters_are_refused_with_what_is_valid() {
    let r = Recsched::migrated();
    let run = r.run(&["recordings", "--state", "running"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(
        run.stderr
            .contains("pending, recording, stopping, stopped, expired, failed, missed"),
        "{run:?}"
    );
    let run = r.run(&["recordings", "--since", "yesterday"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("RFC 3339"), "{run:?}");
    let run = r.run(&["recordings", "--limit", "0"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}
