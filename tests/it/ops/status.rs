//! `recsched status`, run as the real binary: against databases seeded
//! with plain SQL (times relative to SQLite's own `now`, so the test never
//! reads the clock), in text and JSON, with a stale, a fresh and no
//! heartbeat, with a missing database, and beside a running daemon.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use sqlx::SqliteConnection;

use crate::cli::insert_policy;
use crate::common::bin::{Recsched, BIN};
use crate::common::daemon::{wait_for, Rig};

/// SQL for "now plus `offset`" (an SQLite modifier such as `-2 hours`) in
/// the database's canonical UTC form.
fn at(offset: &str) -> String {
    format!("strftime('%Y-%m-%dT%H:%M:%fZ', 'now', '{offset}')")
}

async fn exec(sql: &mut SqliteConnection, statement: &str) {
    sqlx::raw_sql(statement).execute(sql).await.unwrap();
}

/// A recording row for `user` from `start` to `end` (SQLite modifiers).
async fn recording(
    sql: &mut SqliteConnection,
    user: &str,
    policy: i64,
    (start, end): (&str, &str),
    state: &str,
    contact: Option<i64>,
    error: Option<&str>,
) {
    sqlx::query(&format!(
        "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
         requested_seconds, state, contact_id, attempts, last_error) \
         VALUES (?, ?, {}, {}, 3600, ?, ?, 2, ?)",
        at(start),
        at(end)
    ))
    .bind(user)
    .bind(policy)
    .bind(state)
    .bind(contact)
    .bind(error)
    .execute(sql)
    .await
    .unwrap();
}

async fn heartbeat(sql: &mut SqliteConnection, offset: &str) {
    exec(
        sql,
        &format!(
            "INSERT INTO daemon_state (key, value) VALUES ('last_seen', {}) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            at(offset)
        ),
    )
    .await;
}

/// Policies: one valid and enabled, one valid and disabled, one broken
/// twice over; a recording row in every state in the last 24 h, an older
/// failure, and a running one whose policy was deleted.
async fn seed(r: &Recsched) -> i64 {
    let mut sql = r.sql().await;
    let office = insert_policy(
        &mut sql,
        "back-office",
        "0 9 * * 1-5",
        "Europe/Amsterdam",
        30_600,
        &["1234567", "1234568"],
    )
    .await;
    let nights = insert_policy(&mut sql, "nights", "0 22 * * *", "UTC", 3600, &["n1"]).await;
    exec(
        &mut sql,
        &format!("UPDATE policies SET enabled = 0 WHERE id = {nights}"),
    )
    .await;
    insert_policy(
        &mut sql,
        "broken",
        "61 * * * *",
        "Europe/Amsterdm",
        3600,
        &["b1"],
    )
    .await;

    let now = ("-10 minutes", "+50 minutes");
    recording(&mut sql, "u-rec", office, now, "recording", Some(42), None).await;
    recording(&mut sql, "u-stop", office, now, "stopping", Some(43), None).await;
    recording(&mut sql, "u-pend", office, now, "pending", None, None).await;
    recording(&mut sql, "u-gone", 99, now, "recording", Some(44), None).await;
    let past = ("-3 hours", "-2 hours");
    recording(&mut sql, "u-done", office, past, "stopped", Some(45), None).await;
    recording(&mut sql, "u-exp", office, past, "expired", Some(46), None).await;
    let why = "start: HTTP 403 Forbidden: user is not licensed for screen recording";
    recording(&mut sql, "u-fail", office, past, "failed", None, Some(why)).await;
    recording(
        &mut sql,
        "u-miss",
        office,
        ("-5 hours", "-4 hours"),
        "missed",
        None,
        Some("the service was down for the whole window"),
    )
    .await;
    recording(
        &mut sql,
        "u-old",
        office,
        ("-3 days", "-71 hours"),
        "failed",
        None,
        Some("an old failure"),
    )
    .await;
    office
}

/// The cells of a text table line (columns are two or more spaces apart).
fn cells(line: &str) -> Vec<String> {
    line.split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

fn users(rows: &Value) -> Vec<&str> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| r["user_id"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn status_answers_every_question_from_a_seeded_database() {
    let r = Recsched::migrated();
    let office = seed(&r).await;
    heartbeat(&mut r.sql().await, "-5 minutes").await;

    let s = r.ok(&["status", "--json"]).json();
    assert_eq!(s["database"], json!(r.db.display().to_string()));

    // Daemon: stopped five minutes ago.
    assert_eq!(s["daemon"]["state"], json!("not_running"));
    let age = s["daemon"]["heartbeat_age_seconds"].as_i64().unwrap();
    assert!((300..330).contains(&age), "{age}");

    // Recording now: the open rows, oldest first, with who, what and since.
    let now = &s["recording_now"];
    assert_eq!(now["total"], json!(4));
    assert_eq!(users(&now["rows"]), ["u-rec", "u-stop", "u-pend", "u-gone"]);
    assert_eq!(now["rows"][0]["policy"], json!("back-office"));
    assert_eq!(now["rows"][0]["state"], json!("recording"));
    assert_eq!(now["rows"][0]["contact_id"], json!(42));
    assert_eq!(now["rows"][0]["past_end"], json!(false));
    assert_eq!(now["rows"][2]["contact_id"], json!(null));
    assert_eq!(now["rows"][3]["policy"], json!("#99 (deleted)"));
    assert!(now["rows"][0]["since"].as_str().unwrap() < s["at"].as_str().unwrap());
    assert!(now["rows"][0]["until"].as_str().unwrap() > s["at"].as_str().unwrap());

    // Opening next: only the enabled, valid policy, in time order, future.
    let next = s["opens_next"].as_array().unwrap();
    assert_eq!(next.len(), 10, "the default limit");
    for w in next {
        assert_eq!(w["policy"], json!("back-office"));
        assert_eq!(w["policy_id"], json!(office));
        assert_eq!(w["users"], json!(2));
        assert_eq!(w["window_seconds"], json!(30_600));
        assert_eq!(w["timezone"], json!("Europe/Amsterdam"));
        assert!(w["start"].as_str().unwrap() > s["at"].as_str().unwrap());
        assert!(w["start_local"].as_str().unwrap().contains("T09:00:00+0"));
    }
    assert!(next
        .windows(2)
        .all(|p| p[0]["start"].as_str() < p[1]["start"].as_str()));

    // Failed in the last 24 h, with the reason; the older one is not shown.
    let failed = &s["failed_last_24h"];
    assert_eq!(failed["total"], json!(1));
    assert_eq!(failed["missed"], json!(1));
    assert_eq!(users(&failed["rows"]), ["u-fail"]);
    assert_eq!(
        failed["rows"][0]["last_error"],
        json!("start: HTTP 403 Forbidden: user is not licensed for screen recording")
    );
    assert_eq!(failed["rows"][0]["attempts"], json!(2));

    // Invalid policies: every problem, exactly as `check` reports them.
    let check = r.fails(&["check", "--json"]).json();
    let expected: Vec<&Value> = check
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["message"])
        .collect();
    let bad = &s["invalid_policies"];
    assert_eq!(bad["total"], json!(2));
    let got: Vec<&Value> = bad["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| &p["message"])
        .collect();
    assert_eq!(got, expected);
    assert_eq!(bad["rows"][0]["policy"], json!("broken"));

    // Totals by state over the last 24 h.
    assert_eq!(
        s["last_24h"],
        json!({"pending": 1, "recording": 2, "stopping": 1, "stopped": 1,
               "expired": 1, "failed": 1, "missed": 1})
    );

    let text = r.ok(&["status"]).stdout;
    let has = |needle: &str| assert!(text.contains(needle), "no `{needle}` in:\n{text}");
    has("Daemon: not running? last heartbeat ");
    has("(5 min ago)");
    has("Recording now: 4\n");
    for column in [
        "USER",
        "POLICY",
        "STATE",
        "SINCE (UTC)",
        "UNTIL (UTC)",
        "CONTACT",
    ] {
        has(column);
    }
    let row = |user: &str| {
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{user} ")))
            .unwrap_or_else(|| panic!("no line for {user}:\n{text}"));
        cells(line)
    };
    let rec = row("u-rec");
    assert_eq!(rec[..3], ["u-rec", "back-office", "recording"], "{text}");
    assert_eq!(rec[5], "42", "{text}");
    assert_eq!(row("u-gone")[1], "#99 (deleted)", "{text}");
    assert_eq!(row("u-pend").len(), 5, "no contact id yet: {text}");
    has("Opening next:\n");
    has("(Europe/Amsterdam)  8h 30m  2");
    has("Failed in the last 24 h: 1; missed (service was down): 1\n");
    let failed_line = text
        .lines()
        .find(|l| l.contains("  u-fail  "))
        .unwrap_or_else(|| panic!("no failed row in:\n{text}"));
    assert_eq!(
        cells(failed_line)[1..],
        [
            "u-fail",
            "back-office",
            "2",
            "start: HTTP 403 Forbidden: user is not licensed for screen recording"
        ]
        .map(|c| c.to_owned()),
        "{text}"
    );
    assert!(!text.contains("an old failure"), "{text}");
    has("Invalid policies (the daemon skips them): 2 problems\n");
    let check_text = r.fails(&["check"]).stdout;
    for problem in check_text.lines().filter(|l| l.starts_with("policy `")) {
        has(&format!("\n{problem}\n"));
    }
    has(
        "Last 24 h: pending 1, recording 2, stopping 1, stopped 1, expired 1, failed 1, missed 1\n",
    );
}

#[tokio::test]
async fn a_fresh_heartbeat_reads_as_running() {
    let r = Recsched::migrated();
    heartbeat(&mut r.sql().await, "-2 seconds").await;
    let s = r.ok(&["status", "--json"]).json();
    assert_eq!(s["daemon"]["state"], json!("running"));
    assert!(s["daemon"]["heartbeat_age_seconds"].as_i64().unwrap() < 30);
    let text = r.ok(&["status"]).stdout;
    assert!(text.contains("Daemon: running (heartbeat "), "{text}");
    assert!(text.contains(" s ago)"), "{text}");
}

#[tokio::test]
async fn rows_that_do_not_read_back_are_listed_and_the_rest_still_shown() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    let office = insert_policy(&mut sql, "office", "@hourly", "UTC", 3600, &["u1"]).await;
    recording(
        &mut sql,
        "u2",
        office,
        ("-10 minutes", "+50 minutes"),
        "recording",
        Some(42),
        None,
    )
    .await;
    recording(
        &mut sql,
        "u3",
        office,
        ("-5 minutes", "+55 minutes"),
        "recording",
        Some(43),
        None,
    )
    .await;
    exec(
        &mut sql,
        "PRAGMA foreign_keys = OFF; \
         INSERT INTO policy_users VALUES (77, 'ghost'); \
         UPDATE recordings SET segment_end = 'zzz' WHERE user_id = 'u3';",
    )
    .await;

    let s = r.ok(&["status", "--json"]).json();
    assert_eq!(users(&s["recording_now"]["rows"]), ["u2"], "{s:#}");
    assert_eq!(s["bad_rows"]["total"], json!(2), "{s:#}");
    let rows = s["bad_rows"]["rows"].as_array().unwrap();
    assert_eq!(rows[0]["table"], json!("policy_users"));
    assert_eq!(rows[0]["key"], json!("rowid"));
    assert_eq!(rows[0]["column"], json!("policy_id"));
    assert_eq!(rows[1]["table"], json!("recordings"));
    assert_eq!(rows[1]["column"], json!("segment_end"));
    assert_eq!(rows[1]["user"], json!("u3"));
    assert!(rows[1]["id"].as_i64().is_some());
    assert!(
        rows[1]["message"]
            .as_str()
            .unwrap()
            .contains("nothing is started for user `u3`"),
        "{s:#}"
    );

    let text = r.ok(&["status"]).stdout;
    assert!(
        text.contains("Bad rows (do not read back; skipped): 2\n"),
        "{text}"
    );
    assert!(
        text.contains("table policy_users, rowid 2, column policy_id: 77 names no policy"),
        "{text}"
    );
    assert!(text.contains(", column segment_end: `zzz`"), "{text}");
}

#[tokio::test]
async fn an_empty_database_says_so_in_every_section() {
    let r = Recsched::migrated();
    let s = r.ok(&["status", "--json"]).json();
    assert_eq!(s["daemon"]["state"], json!("never_ran"));
    assert_eq!(s["daemon"]["last_heartbeat"], json!(null));
    assert_eq!(s["recording_now"], json!({"total": 0, "rows": []}));
    assert_eq!(s["opens_next"], json!([]));
    assert_eq!(
        s["failed_last_24h"],
        json!({"total": 0, "missed": 0, "rows": []})
    );
    assert_eq!(s["invalid_policies"], json!({"total": 0, "rows": []}));
    assert_eq!(s["bad_rows"], json!({"total": 0, "rows": []}));

    let text = r.ok(&["status"]).stdout;
    for line in [
        "Bad rows: none, every row reads back",
        "Daemon: never ran on this database (no heartbeat)",
        "nobody is being recorded",
        "no window of an enabled, valid policy is coming",
        "Failed in the last 24 h: 0; missed (service was down): 0",
        "Invalid policies: none, every policy row validates",
        "Last 24 h: pending 0, recording 0, stopping 0, stopped 0, expired 0, failed 0, missed 0",
    ] {
        assert!(text.contains(line), "no `{line}` in:\n{text}");
    }
}

#[tokio::test]
async fn limit_cuts_each_list_and_says_how_much_is_left() {
    let r = Recsched::migrated();
    seed(&r).await;
    let s = r.ok(&["status", "--json", "--limit", "2"]).json();
    assert_eq!(s["recording_now"]["total"], json!(4));
    assert_eq!(users(&s["recording_now"]["rows"]), ["u-rec", "u-stop"]);
    assert_eq!(s["opens_next"].as_array().unwrap().len(), 2);
    assert_eq!(s["invalid_policies"]["rows"].as_array().unwrap().len(), 2);
    let s = r.ok(&["status", "--json", "--limit", "1"]).json();
    assert_eq!(s["invalid_policies"]["total"], json!(2));
    assert_eq!(s["invalid_policies"]["rows"].as_array().unwrap().len(), 1);

    let text = r.ok(&["status", "--limit", "1"]).stdout;
    assert!(
        text.contains("Recording now: 4 (1 shown; raise --limit)"),
        "{text}"
    );
    assert!(
        text.contains("2 problems (1 shown; raise --limit)"),
        "{text}"
    );
    let run = r.run(&["status", "--limit", "0"]);
    assert_eq!(run.code, Some(2), "{run:?}");
}

#[tokio::test]
async fn a_missing_database_names_the_path_and_the_fix() {
    let r = Recsched::new();
    let run = r.fails(&["status"]);
    assert!(run.stderr.contains(&r.db.display().to_string()), "{run:?}");
    assert!(run.stderr.contains("`recsched migrate`"), "{run:?}");
    assert!(run.stdout.is_empty(), "{run:?}");
    assert!(!r.db.exists(), "status must not create the database");
    let run = r.fails(&["status", "--json"]);
    assert!(run.stderr.contains("`recsched migrate`"), "{run:?}");
}

#[tokio::test]
async fn status_reads_the_running_daemon_and_changes_nothing() {
    let rig = Rig::new().await;
    rig.sql(
        "INSERT INTO policies (name, cron, timezone, window_seconds) \
         VALUES ('every-minute', '0 * * * * *', 'UTC', 30); \
         INSERT INTO policy_users (policy_id, user_id) VALUES (1, 'agent-1');",
    )
    .await;
    let mut daemon = rig.spawn();
    let config = rig.dir.path().join("status.toml");
    std::fs::write(&config, "").unwrap();
    let status = || {
        let mut cmd = Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RECSCHED_") {
                cmd.env_remove(key);
            }
        }
        let out = cmd
            .env("RECSCHED_DATABASE__PATH", &rig.db)
            .arg("--config")
            .arg(&config)
            .args(["status", "--json"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "status failed beside the daemon: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    let s = wait_for(
        Duration::from_secs(20),
        "the daemon's heartbeat",
        || async {
            let s = status();
            (s["daemon"]["state"] == json!("running")).then_some(s)
        },
    )
    .await;
    daemon.assert_running();
    assert!(s["daemon"]["heartbeat_age_seconds"].as_i64().unwrap() < 30);
    assert_eq!(s["opens_next"][0]["policy"], json!("every-minute"));
    assert_eq!(s["invalid_policies"]["total"], json!(0));
    let (exit, log) = daemon.term(Duration::from_secs(15));
    assert!(exit.success(), "daemon exit {exit}:\n{log}");
}

/// On PostgreSQL the screen names the server the store opened (its URL
/// without the password), not the SQLite path of the config, and reads
/// the same sections from it.
#[tokio::test]
async fn on_postgresql_status_names_the_server_and_reads_its_rows() {
    let Some(db) = crate::common::pg::pg().await else {
        return;
    };
    db.store().await.close().await;
    db.sql(
        "INSERT INTO policies (name, cron, timezone, window_seconds) \
         VALUES ('pg-office', '0 9 * * *', 'UTC', 3600); \
         INSERT INTO policy_users (policy_id, user_id) \
         SELECT id, 'pg-user' FROM policies WHERE name = 'pg-office'; \
         INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
         requested_seconds, state, contact_id, attempts) \
         SELECT 'pg-user', id, now() - interval '10 minutes', now() + interval '50 minutes', \
         3600, 'recording', 42, 1 FROM policies WHERE name = 'pg-office'; \
         INSERT INTO daemon_state (key, value) VALUES ('last_seen', \
         to_char((now() - interval '5 minutes') AT TIME ZONE 'UTC', \
         'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'));",
    )
    .await;
    let r = Recsched::new();
    // The test server trusts local connections, so any password does.
    let url = db.url.replace("postgres@", "postgres:hunter2-secret@");
    let status = |args: &[&str]| {
        let out = r
            .command(args)
            .env("RECSCHED_DATABASE__URL", &url)
            .output()
            .unwrap();
        let run = crate::common::bin::Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(
            !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
            "the password leaked:\n{run:?}"
        );
        run
    };

    let s = status(&["status", "--json"]).json();
    assert_eq!(s["database"], json!(db.url), "{s:#}");
    assert_eq!(s["daemon"]["state"], json!("not_running"), "{s:#}");
    assert_eq!(s["recording_now"]["total"], json!(1), "{s:#}");
    let row = &s["recording_now"]["rows"][0];
    assert_eq!(
        (&row["user_id"], &row["policy"], &row["contact_id"]),
        (&json!("pg-user"), &json!("pg-office"), &json!(42)),
        "{s:#}"
    );
    assert_eq!(s["opens_next"][0]["policy"], json!("pg-office"), "{s:#}");
    assert_eq!(s["last_24h"]["recording"], json!(1), "{s:#}");

    let text = status(&["status"]).stdout;
    let first = text.lines().next().unwrap_or_default();
    assert!(first.ends_with(&format!(", database {}", db.url)), "{text}");
    assert!(!text.contains("recsched.db"), "{text}");
    assert!(!r.db.exists(), "no SQLite file when a URL is set");
}
