//! `recsched check`: every problem of every row, by name and column, and
//! a non-zero exit; the daemon's loader still keeps the good rows.

use recsched::policy::{self, Column};
use recsched::store::{Settings, Store};
use serde_json::json;

use super::{insert_policy, Recsched};

#[tokio::test]
async fn broken_rows_are_named_with_their_column_and_the_good_ones_still_load() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    insert_policy(
        &mut sql,
        "good",
        "0 9 * * 1-5",
        "Europe/Amsterdam",
        3600,
        &["u1"],
    )
    .await;
    insert_policy(&mut sql, "bad-cron", "61 * * * *", "UTC", 3600, &["u1"]).await;
    insert_policy(
        &mut sql,
        "bad-zone",
        "0 9 * * *",
        "Europe/Amsterdm",
        3600,
        &["u1"],
    )
    .await;
    insert_policy(&mut sql, "short", "0 9 * * *", "UTC", 3, &["u1"]).await;
    insert_policy(&mut sql, "nobody", "0 9 * * *", "UTC", 3600, &[]).await;
    insert_policy(&mut sql, "good-too", "@hourly", "UTC", 60, &["u2"]).await;
    // Two problems in one row: both are reported.
    insert_policy(&mut sql, "twice", "nonsense", "Mars/Olympus", 3600, &["u1"]).await;

    let run = r.fails(&["check"]);
    let lines: Vec<&str> = run.stdout.lines().collect();
    let expected = [
        "policy `bad-cron`: cron `61 * * * *`: minute 61 out of range 0-59",
        "policy `bad-zone`: timezone `Europe/Amsterdm`: not an IANA time zone name",
        "policy `short`: window_seconds 3: must be between 5 and 604800",
        "policy `nobody`: users: no users; add one with `recsched policy add-user nobody USER`",
        "policy `twice`: timezone `Mars/Olympus`: not an IANA time zone name",
    ];
    for line in expected {
        assert!(lines.contains(&line), "missing {line:?}:\n{run:?}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("policy `twice`: cron `nonsense`")),
        "{run:?}"
    );
    assert!(!run.stdout.contains("`good"), "{run:?}");
    assert!(
        run.stdout.contains("6 problems in 5 policies (7 checked)"),
        "{run:?}"
    );

    let problems = r.fails(&["check", "--json"]).json();
    let problems = problems.as_array().unwrap();
    assert_eq!(problems.len(), 6);
    assert_eq!(
        problems[0],
        json!({
            "source": "policy",
            "table": "policies",
            "key": "id",
            "id": 2,
            "policy_id": 2,
            "policy": "bad-cron",
            "column": "cron",
            "message": "policy `bad-cron`: cron `61 * * * *`: minute 61 out of range 0-59"
        })
    );
    let columns: Vec<(&str, &str)> = problems
        .iter()
        .map(|p| (p["policy"].as_str().unwrap(), p["column"].as_str().unwrap()))
        .collect();
    assert_eq!(
        columns,
        [
            ("bad-cron", "cron"),
            ("bad-zone", "timezone"),
            ("short", "window_seconds"),
            ("nobody", "users"),
            ("twice", "timezone"),
            ("twice", "cron"),
        ]
    );

    // The daemon's loader over the same rows skips the bad ones only.
    let store = Store::open_read_only(&Settings {
        path: r.db.clone(),
        ..Settings::default()
    })
    .await
    .unwrap();
    let (good, errors) = policy::load(store.policy_rows().await.unwrap());
    let names: Vec<&str> = good.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["good", "good-too"]);
    assert_eq!(errors.len(), 6);
    assert_eq!(errors[0].column(), Column::Cron);
}

#[tokio::test]
async fn a_clean_database_passes_with_a_summary() {
    let r = Recsched::migrated();
    let run = r.ok(&["check"]);
    assert!(run.stdout.starts_with("ok: "), "{run:?}");
    assert!(run.stdout.contains("no policies"), "{run:?}");
    assert_eq!(r.ok(&["check", "--json"]).json(), json!([]));

    let mut sql = r.sql().await;
    insert_policy(&mut sql, "a", "@daily", "UTC", 60, &["u1"]).await;
    insert_policy(&mut sql, "b", "@daily", "UTC", 60, &["u1"]).await;
    sqlx::query("UPDATE policies SET enabled = 0 WHERE name = 'b'")
        .execute(&mut sql)
        .await
        .unwrap();
    let run = r.ok(&["check"]);
    assert!(
        run.stdout.contains("all 2 policies") && run.stdout.contains("(1 enabled)"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&r.config.display().to_string()),
        "names the config file it read: {run:?}"
    );
}

#[tokio::test]
async fn a_bad_config_is_reported_by_check() {
    let r = Recsched::migrated();
    std::fs::write(&r.config, "[schedule]\nsegment_limt_seconds = 5\n").unwrap();
    let run = r.fails(&["check"]);
    assert!(run.stdout.contains("segment_limt_seconds"), "{run:?}");
    assert!(
        run.stdout.contains(&r.config.display().to_string()),
        "names the file: {run:?}"
    );
    let json = r.fails(&["check", "--json"]).json();
    assert_eq!(json[0]["source"], json!("config"));

    // Other commands refuse to run on it.
    let run = r.fails(&["policy", "list"]);
    assert!(run.stderr.contains("segment_limt_seconds"), "{run:?}");

    let run = r.fails(&["check"]);
    assert!(!run.stdout.starts_with("ok"), "{run:?}");
}

#[tokio::test]
async fn rows_that_do_not_read_back_are_named_by_table_id_and_column() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    insert_policy(&mut sql, "good", "@hourly", "UTC", 60, &["u1"]).await;
    insert_policy(&mut sql, "float", "@hourly", "UTC", 60, &["u2"]).await;
    // What sqlite3 accepts with its defaults (foreign keys off).
    sqlx::raw_sql(
        "PRAGMA foreign_keys = OFF; \
         UPDATE policies SET window_seconds = 3600.9 WHERE name = 'float'; \
         INSERT INTO policy_users VALUES ('abc', 'u1'); \
         INSERT INTO recordings (id, user_id, policy_id, segment_start, segment_end, \
             requested_seconds, state) \
         VALUES (7, 'u1', 1, '2026-03-29T09:00:00.000Z', 'zzz', 60, 'recording');",
    )
    .execute(&mut sql)
    .await
    .unwrap();

    let run = r.fails(&["check"]);
    for line in [
        "table policies, id 2, column window_seconds: stored as real 3600.9, not an integer; \
         nothing is converted; the policy is skipped until the row is fixed or deleted",
        "table policy_users, rowid 3, column policy_id: 'abc' names no policy",
        "table recordings, id 7, column segment_end: `zzz` is not a UTC timestamp",
        "nothing is started for user `u1` until the row is fixed or deleted",
        "3 bad values in rows that do not read back (policies 1, policy_users 1, recordings 1)",
    ] {
        assert!(run.stdout.contains(line), "missing {line:?}:\n{run:?}");
    }
    assert!(!run.stdout.contains("ok:"), "{run:?}");

    let problems = r.fails(&["check", "--json"]).json();
    let rows: Vec<(&str, &str, i64, &str)> = problems
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["source"] == "row")
        .map(|p| {
            (
                p["table"].as_str().unwrap(),
                p["key"].as_str().unwrap(),
                p["id"].as_i64().unwrap(),
                p["column"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("policies", "id", 2, "window_seconds"),
            ("policy_users", "rowid", 3, "policy_id"),
            ("recordings", "id", 7, "segment_end"),
        ]
    );

    // Fixed by the operator: clean again.
    sqlx::raw_sql(
        "UPDATE policies SET window_seconds = 3600 WHERE name = 'float'; \
         DELETE FROM policy_users WHERE rowid = 3; \
         UPDATE recordings SET segment_end = '2026-03-29T09:01:00.000Z' WHERE id = 7;",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    let run = r.ok(&["check"]);
    assert!(run.stdout.starts_with("ok: "), "{run:?}");
}
