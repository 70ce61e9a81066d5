//! The operator CLI against PostgreSQL, selected by
//! `RECSCHED_DATABASE__URL` alone: migrate, policy add/list/disable,
//! check, recordings. The URL's password never shows.

use serde_json::json;

use super::pg;
use crate::common::bin::{Recsched, Run};
use crate::common::pg::PgDb;

/// Runs `recsched args` against `db`, with a password in the URL (the
/// test server trusts local connections, so any password does).
fn run(r: &Recsched, db: &PgDb, args: &[&str]) -> Run {
    let url = db.url.replace("postgres@", "postgres:hunter2-secret@");
    let out = r
        .command(args)
        .env("RECSCHED_DATABASE__URL", url)
        .output()
        .expect("run recsched");
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !run.stdout.contains("hunter2") && !run.stderr.contains("hunter2"),
        "the password leaked:\n{run:?}"
    );
    run
}

fn ok(r: &Recsched, db: &PgDb, args: &[&str]) -> Run {
    let out = run(r, db, args);
    assert_eq!(out.code, Some(0), "recsched {args:?} failed:\n{out:?}");
    out
}

#[tokio::test]
async fn policies_are_added_listed_and_checked_through_the_database_url() {
    let Some(db) = pg().await else { return };
    let r = Recsched::new();

    let out = ok(&r, &db, &["migrate"]);
    assert!(
        out.stdout.contains("postgres://postgres@127.0.0.1"),
        "{out:?}"
    );
    assert!(!r.db.exists(), "no SQLite file when a URL is set");

    ok(
        &r,
        &db,
        &[
            "policy",
            "add",
            "--name",
            "night-shift",
            "--cron",
            "0 22 * * 1-5",
            "--tz",
            "Europe/Amsterdam",
            "--window",
            "28800",
            "--end-mode",
            "stop",
            "--user",
            "agent-2",
            "--user",
            "agent-1",
        ],
    );
    let list = ok(&r, &db, &["policy", "list", "--json"]).json();
    assert_eq!(
        list,
        json!([{
            "id": 1, "name": "night-shift", "enabled": true, "cron": "0 22 * * 1-5",
            "timezone": "Europe/Amsterdam", "window_seconds": 28800, "end_mode": "stop",
            "users": ["agent-1", "agent-2"], "problems": []
        }])
    );
    let out = ok(&r, &db, &["check"]);
    assert!(
        out.stdout.contains("the one policy in postgres://"),
        "{out:?}"
    );

    // A row written with psql that the daemon would skip is named by check.
    db.sql(
        "INSERT INTO policies (name, cron, timezone, window_seconds) \
         VALUES ('typo', '0 9 * * *', 'Europe/Amsterdm', 3600); \
         INSERT INTO policy_users (policy_id, user_id) SELECT id, 'u1' FROM policies \
         WHERE name = 'typo';",
    )
    .await;
    let out = run(&r, &db, &["check"]);
    assert_eq!(out.code, Some(1), "{out:?}");
    assert!(
        out.stdout
            .contains("timezone `Europe/Amsterdm`: not an IANA time zone name"),
        "{out:?}"
    );

    ok(&r, &db, &["policy", "disable", "night-shift"]);
    let list = ok(&r, &db, &["policy", "list", "--json"]).json();
    assert_eq!(list[0]["enabled"], json!(false), "{list}");
    assert_eq!(
        ok(&r, &db, &["recordings", "--json"]).json(),
        json!([]),
        "no recordings yet"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_named_without_the_password() {
    let Some(db) = pg().await else { return };
    let r = Recsched::new();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!(
        "postgres://postgres:hunter2-secret@127.0.0.1:{port}/{}",
        db.name
    );
    let out = r
        .command(&["policy", "list"])
        .env("RECSCHED_DATABASE__URL", &url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(
        stderr.contains(&format!("postgres://postgres@127.0.0.1:{port}/")),
        "{stderr}"
    );
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
