//! Bad rows, end to end (issue 12, cases 1, 2, 3, 4 and 9): what an
//! operator can type into sqlite3 with its defaults (foreign keys off, no
//! type checks) must cost only the row itself.
//!
//! Each test puts a healthy policy beside the bad input and asserts the
//! same five things: the daemon stays up; the healthy policy's users are
//! recorded inside their window; the bad row is named by table, id and
//! column in the log, by `recsched check` (exit 1), by `recsched status`
//! and in `recsched_invalid_rows`; the simulator saw nothing but the
//! token, starts for the expected users and no other request; and the log
//! has no "panicked". Windows open two seconds after the daemon is asked
//! to start (a slow start is caught up, still within the on-time bound),
//! and nothing waits for a window's end: each test takes 3 to 6 seconds.

use super::{cron_at, now, running, second_after, user_of};
use crate::common::daemon::{wait_for, Daemon, Rig};
use chrono::{DateTime, Duration, Utc};
use recsched::recording::RecordingState;
use recsched::store::RecordingFilter;
use std::collections::BTreeSet;
use std::process::Command;

/// How long each window stays open: long enough that a user caught up
/// late still has the vendor's minimum of 5 s left (nothing waits for the
/// end: the policies let recordings expire).
const WINDOW_SECS: i64 = 20;

/// A healthy user's start must leave within this long of its window's
/// opening (a loaded CI machine included).
const ON_TIME_SECS: i64 = 5;

/// How far ahead of the daemon's start the first window opens; a daemon
/// slower than this catches the window up late, within [`ON_TIME_SECS`].
const LEAD_SECS: i64 = 2;

/// Plain SQL as sqlite3 runs it: foreign keys off.
async fn sqlite3(rig: &Rig, statements: &str) {
    rig.sql(&format!("PRAGMA foreign_keys = OFF; {statements}"))
        .await;
}

/// Inserts a valid one-shot policy opening at `at` for `users`; returns
/// its id.
async fn policy(rig: &Rig, name: &str, at: DateTime<Utc>, users: &[&str]) -> i64 {
    let mut sql = format!(
        "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) \
         VALUES ('{name}', '{}', 'UTC', {WINDOW_SECS}, 'expire');",
        cron_at(at)
    );
    for u in users {
        sql.push_str(&format!(
            "INSERT INTO policy_users (policy_id, user_id) \
             SELECT id, '{u}' FROM policies WHERE name = '{name}';"
        ));
    }
    rig.sql(&sql).await;
    let rows = rig.store.policy_rows().await.unwrap();
    rows.iter().find(|r| r.name == name).unwrap().id
}

/// A rig whose daemon serves metrics on a free loopback port.
async fn rig() -> Rig {
    let mut rig = Rig::new().await;
    rig.set("RECSCHED_METRICS__LISTEN", "127.0.0.1:0");
    rig
}

/// Starts the daemon and waits until it runs; returns it with its
/// metrics URL.
async fn start(rig: &Rig) -> (Daemon, String) {
    let daemon = rig.spawn();
    running(&daemon).await;
    let url = wait_for(
        std::time::Duration::from_secs(10),
        "the metrics URL in the log",
        || async {
            let log = daemon.log();
            let at = log.find("http://127.0.0.1:")?;
            let url: String = log[at..]
                .chars()
                .take_while(|c| !c.is_whitespace() && *c != '"')
                .collect();
            Some(url.trim_end_matches("/metrics").to_owned())
        },
    )
    .await;
    (daemon, url)
}

/// The value of one exported series, e.g. `recsched_invalid_rows{table="recordings"}`.
async fn metric(url: &str, series: &str) -> f64 {
    let text = reqwest::get(format!("{url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{series} missing:\n{text}"))
}

/// Waits until `series` reads `value`.
async fn metric_reaches(url: &str, series: &str, value: f64) {
    wait_for(
        std::time::Duration::from_secs(10),
        &format!("{series} = {value}"),
        || async { (metric(url, series).await == value).then_some(()) },
    )
    .await;
}

/// `recsched <args>` against the rig's database, as an operator runs it.
fn cli(rig: &Rig, args: &[&str]) -> (Option<i32>, String) {
    let config = rig.dir.path().join("cli.toml");
    std::fs::write(&config, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recsched"));
    for (key, _) in std::env::vars_os() {
        let text = key.to_string_lossy();
        if text.starts_with("RECSCHED_") || text == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .env("RECSCHED_DATABASE__PATH", &rig.db)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `recsched check` exits 1 and prints each of `lines`.
fn check_names(rig: &Rig, lines: &[&str]) {
    let (code, out) = cli(rig, &["check"]);
    assert_eq!(code, Some(1), "check did not fail:\n{out}");
    for line in lines {
        assert!(out.contains(line), "check does not say {line:?}:\n{out}");
    }
}

/// `recsched status --json` lists exactly these bad rows as (table,
/// column).
fn status_lists(rig: &Rig, expected: &[(&str, &str)]) {
    let (code, out) = cli(rig, &["status", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut listed: Vec<(String, String)> = status["bad_rows"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["table"].as_str().unwrap().to_owned(),
                r["column"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    listed.sort();
    let mut expected: Vec<(String, String)> = expected
        .iter()
        .map(|(t, c)| ((*t).to_owned(), (*c).to_owned()))
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{status:#}");
}

/// Each of `users` had exactly one recording started within
/// [`ON_TIME_SECS`] of the window opening at `w`, and its row holds that
/// recording's contact id.
async fn recorded_on_time(rig: &Rig, users: &[&str], w: DateTime<Utc>) {
    let end = w + Duration::seconds(ON_TIME_SECS);
    let rows = wait_for(
        std::time::Duration::from_secs(15),
        &format!("{users:?} recording with their contact ids"),
        || async {
            // A read that skips the bad rows these tests make.
            let rows = rig
                .store
                .read_recordings(&RecordingFilter::default())
                .await
                .unwrap()
                .rows;
            users
                .iter()
                .all(|u| {
                    rows.iter().any(|r| {
                        r.user_id.as_str() == *u
                            && r.segment_start == w
                            && r.state == RecordingState::Recording
                            && r.contact_id.is_some()
                    })
                })
                .then_some(rows)
        },
    )
    .await;
    let sim = rig.recordings();
    for u in users {
        let made: Vec<_> = sim
            .iter()
            .filter(|r| r.user_id == *u && r.started_at >= w && r.started_at < end)
            .collect();
        assert_eq!(made.len(), 1, "{u}: {made:?}");
        let row = rows
            .iter()
            .find(|r| r.user_id.as_str() == *u && r.segment_start == w)
            .unwrap();
        assert_eq!(
            row.contact_id.map(|c| c.get()),
            Some(made[0].contact_id as i64)
        );
    }
}

/// The simulator saw nothing but token requests and starts for
/// `expected` users, and the log has no panic; the daemon still runs.
fn clean(rig: &Rig, daemon: &mut Daemon, expected: &[&str]) {
    daemon.assert_running();
    let expected: BTreeSet<&str> = expected.iter().copied().collect();
    for r in rig.sim.requests() {
        if r.path == "/auth/token" {
            continue;
        }
        assert!(
            r.path.ends_with("/start-screen-interaction-recording"),
            "unexpected request {r:?}"
        );
        let user = user_of(&r).unwrap_or_default();
        assert!(
            expected.contains(user.as_str()),
            "a start for {user:?}: {r:?}"
        );
    }
    let log = daemon.log();
    assert!(!log.contains("panicked"), "{log}");
}

/// Case 1: an orphan `policy_users` row, present at start and added while
/// running, stops nothing, and a later valid edit still takes effect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_orphan_user_row_neither_stops_the_start_nor_freezes_reloads() {
    let rig = rig().await;
    let w = second_after(Duration::seconds(LEAD_SECS));
    policy(&rig, "healthy", w, &["h1", "h2"]).await;
    sqlite3(&rig, "INSERT INTO policy_users VALUES ('abc', 'u1');").await;
    let (mut daemon, url) = start(&rig).await;

    recorded_on_time(&rig, &["h1", "h2"], w).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policy_users\"}", 1.0).await;
    assert!(
        daemon
            .log()
            .contains("table policy_users, rowid 3, column policy_id: 'abc' names no policy"),
        "{}",
        daemon.log()
    );

    // While running: a typo'd policy id, then a valid edit.
    sqlite3(&rig, "INSERT INTO policy_users VALUES (99, 'u9');").await;
    let w2 = second_after(Duration::seconds(1));
    policy(&rig, "later", w2, &["l1"]).await;
    recorded_on_time(&rig, &["l1"], w2).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policy_users\"}", 2.0).await;
    let log = daemon.log();
    assert!(
        log.contains("table policy_users, rowid 4, column policy_id: 99 names no policy"),
        "{log}"
    );
    assert_eq!(
        log.matches("rowid 3, column policy_id").count(),
        1,
        "reported once, not at every reload:\n{log}"
    );

    check_names(
        &rig,
        &[
            "table policy_users, rowid 3, column policy_id: 'abc' names no policy",
            "table policy_users, rowid 4, column policy_id: 99 names no policy",
        ],
    );
    status_lists(
        &rig,
        &[("policy_users", "policy_id"), ("policy_users", "policy_id")],
    );
    clean(&rig, &mut daemon, &["h1", "h2", "l1"]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

/// Case 2: a policy name and a user id that are not valid UTF-8.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_and_user_ids_that_are_not_utf8_are_skipped_and_named() {
    let rig = rig().await;
    let w = second_after(Duration::seconds(LEAD_SECS));
    let healthy = policy(&rig, "healthy", w, &["h1", "h2"]).await;
    let other = policy(&rig, "bytes", w, &["b1"]).await;
    sqlite3(
        &rig,
        &format!(
            "UPDATE policies SET name = CAST(X'FF6E616D65' AS TEXT) WHERE id = {other}; \
             INSERT INTO policy_users VALUES ({healthy}, CAST(X'FF75' AS TEXT));"
        ),
    )
    .await;
    let (mut daemon, url) = start(&rig).await;

    recorded_on_time(&rig, &["h1", "h2"], w).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policies\"}", 1.0).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policy_users\"}", 1.0).await;
    let named = [
        format!("table policies, id {other}, column name: not valid UTF-8 text"),
        "table policy_users, rowid 4, column user_id: not valid UTF-8 text".to_owned(),
    ];
    let log = daemon.log();
    for line in &named {
        assert!(log.contains(line.as_str()), "no {line:?} in:\n{log}");
    }
    check_names(&rig, &[named[0].as_str(), named[1].as_str()]);
    status_lists(&rig, &[("policies", "name"), ("policy_users", "user_id")]);
    // `recsched policy list` shows the healthy policy and names the
    // policy it cannot show, rather than leaving it out silently.
    let (code, out) = cli(&rig, &["policy", "list"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("healthy"), "{out}");
    assert!(out.contains(named[0].as_str()), "{out}");
    clean(&rig, &mut daemon, &["h1", "h2"]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

/// Case 3: a hand-damaged `recordings` row leaves its user alone (and
/// fails neither reconcile nor any pass); every other user is recorded,
/// and once the row is fixed its user is recorded too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_recording_row_costs_only_its_user_until_it_is_fixed() {
    let rig = rig().await;
    let w = second_after(Duration::seconds(LEAD_SECS));
    policy(&rig, "healthy", w, &["h1", "h2", "d1"]).await;
    // An open row of d1 from an hour ago, then damaged by hand.
    let earlier = recsched::clock::format_utc(now() - Duration::hours(1));
    sqlite3(
        &rig,
        &format!(
            "INSERT INTO recordings (id, user_id, policy_id, segment_start, segment_end, \
                 requested_seconds, state, contact_id) \
             VALUES (1, 'd1', 1, '{earlier}', '{earlier}', 60, 'recording', 777); \
             UPDATE recordings SET segment_end = 'zzz' WHERE id = 1;"
        ),
    )
    .await;
    let (mut daemon, url) = start(&rig).await;

    recorded_on_time(&rig, &["h1", "h2"], w).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"recordings\"}", 1.0).await;
    let named = "table recordings, id 1, column segment_end: `zzz` is not a UTC timestamp";
    let log = daemon.log();
    assert!(log.contains(named), "{log}");
    assert!(log.contains("nothing is started for user `d1`"), "{log}");
    assert!(
        !rig.recordings().iter().any(|r| r.user_id == "d1"),
        "d1 was started while its row is broken"
    );
    check_names(&rig, &[named, "nothing is started for user `d1`"]);
    status_lists(&rig, &[("recordings", "segment_end")]);
    // `recsched recordings` lists the rows that read back and names the
    // one that does not, in text and in JSON.
    let (code, out) = cli(&rig, &["recordings"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(named), "{out}");
    assert!(out.contains("h1") && out.contains("h2"), "{out}");
    let (code, out) = cli(&rig, &["recordings", "--json"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains(named), "{out}");

    // The operator fixes the row inside the window (the others are
    // recording already): d1 is caught up.
    assert!(
        now() < w + Duration::seconds(WINDOW_SECS - 10),
        "too late to fix"
    );
    let earlier_end = recsched::clock::format_utc(now() - Duration::minutes(59));
    sqlite3(
        &rig,
        &format!(
            "UPDATE recordings SET segment_end = '{earlier_end}', state = 'expired' WHERE id = 1;"
        ),
    )
    .await;
    wait_for(
        std::time::Duration::from_secs(10),
        "d1 started once its row reads back",
        || async { rig.recordings().into_iter().find(|r| r.user_id == "d1") },
    )
    .await;
    let d1 = rig
        .recordings()
        .into_iter()
        .find(|r| r.user_id == "d1")
        .unwrap();
    assert!(
        d1.started_at < w + Duration::seconds(WINDOW_SECS - 5),
        "d1 started too late: {d1:?}"
    );
    metric_reaches(&url, "recsched_invalid_rows{table=\"recordings\"}", 0.0).await;
    assert!(
        daemon
            .log()
            .contains("table recordings, id 1 reads back again"),
        "{}",
        daemon.log()
    );
    clean(&rig, &mut daemon, &["h1", "h2", "d1"]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

/// Case 4: a policy name holding a newline and `WATCHDOG=trigger` is
/// refused by the daemon's own parser, and nothing sent to systemd holds
/// it as an assignment of its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_cannot_smuggle_an_assignment_to_systemd() {
    use tokio::net::UnixDatagram;
    let mut rig = rig().await;
    let sock_path = rig.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    rig.set("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    rig.set("WATCHDOG_USEC", "2000000");
    let w = second_after(Duration::seconds(LEAD_SECS));
    policy(&rig, "healthy", w, &["h1", "h2"]).await;
    // Opens first, so it would be the STATUS line's "next window".
    let evil = policy(&rig, "evil", w - Duration::seconds(1), &["e1"]).await;
    sqlite3(
        &rig,
        &format!(
            "UPDATE policies SET name = 'evil' || char(10) || 'WATCHDOG=trigger' WHERE id = {evil};"
        ),
    )
    .await;
    let (mut daemon, url) = start(&rig).await;

    recorded_on_time(&rig, &["h1", "h2"], w).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policies\"}", 1.0).await;
    let named = format!(
        "table policies, id {evil}, column name: policy `evil\\nWATCHDOG=trigger`: name \
         `evil\\nWATCHDOG=trigger`: has a character that is not printable (U+000A)"
    );
    let log = daemon.log();
    assert!(log.contains(&named), "no {named:?} in:\n{log}");
    check_names(
        &rig,
        &[
            "policy `evil\\nWATCHDOG=trigger`: name `evil\\nWATCHDOG=trigger`: has a character \
           that is not printable (U+000A)",
        ],
    );
    let (_, out) = cli(&rig, &["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        status["invalid_policies"]["rows"][0]["column"], "name",
        "{status:#}"
    );

    // Everything systemd was sent: one assignment per line, none a
    // WATCHDOG=trigger.
    let mut messages = Vec::new();
    let mut buf = vec![0u8; 4096];
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(300), sock.recv(&mut buf)).await
    {
        messages.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(
        messages.iter().any(|m| m.starts_with("STATUS=")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("READY=1")),
        "{messages:?}"
    );
    for m in &messages {
        for line in m.lines() {
            assert!(
                !line.starts_with("WATCHDOG=") || line == "WATCHDOG=1",
                "{line:?} in {messages:?}"
            );
            assert!(
                line.split_once('=')
                    .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_uppercase() || c == '_')),
                "not an assignment: {line:?} in {messages:?}"
            );
        }
    }
    clean(&rig, &mut daemon, &["h1", "h2"]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

/// Case 9: values of the wrong type in policy columns are refused and
/// named with their stored type and value, never coerced.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_values_of_the_wrong_type_are_named_not_coerced() {
    let rig = rig().await;
    let w = second_after(Duration::seconds(LEAD_SECS));
    policy(&rig, "healthy", w, &["h1", "h2"]).await;
    let float = policy(&rig, "float", w, &["f1"]).await;
    let truthy = policy(&rig, "truthy", w, &["t1"]).await;
    sqlite3(
        &rig,
        &format!(
            "UPDATE policies SET window_seconds = 3600.9 WHERE id = {float}; \
             UPDATE policies SET enabled = 'true' WHERE id = {truthy};"
        ),
    )
    .await;
    let (mut daemon, url) = start(&rig).await;

    recorded_on_time(&rig, &["h1", "h2"], w).await;
    metric_reaches(&url, "recsched_invalid_rows{table=\"policies\"}", 2.0).await;
    let named = [
        format!(
            "table policies, id {float}, column window_seconds: stored as real 3600.9, not an \
             integer; nothing is converted; the policy is skipped"
        ),
        format!(
            "table policies, id {truthy}, column enabled: stored as text 'true', not an integer"
        ),
    ];
    let log = daemon.log();
    for line in &named {
        assert!(log.contains(line.as_str()), "no {line:?} in:\n{log}");
    }
    check_names(&rig, &[named[0].as_str(), named[1].as_str()]);
    status_lists(
        &rig,
        &[("policies", "enabled"), ("policies", "window_seconds")],
    );
    clean(&rig, &mut daemon, &["h1", "h2"]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}
