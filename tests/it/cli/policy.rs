//! `recsched policy ...`: rows written with SQL are listed, `add` refuses
//! what the daemon would skip, and the edits round-trip.

use serde_json::json;

use super::{count, insert_policy, Recsched};

#[tokio::test]
async fn rows_written_with_sql_are_listed_as_text_and_json() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    insert_policy(
        &mut sql,
        "night-shift",
        "0 22 * * 1-5",
        "Europe/Amsterdam",
        28_800,
        &["agent-2", "agent-1"],
    )
    .await;
    insert_policy(
        &mut sql,
        "typo",
        "0 9 * * *",
        "Europe/Amsterdm",
        3600,
        &["u1"],
    )
    .await;
    sqlx::query("UPDATE policies SET enabled = 0, end_mode = 'stop' WHERE name = 'typo'")
        .execute(&mut sql)
        .await
        .unwrap();

    let text = r.ok(&["policy", "list"]).stdout;
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    for column in [
        "ID", "NAME", "ENABLED", "CRON", "TZ", "WINDOW", "END", "USERS", "PROBLEM",
    ] {
        assert!(lines[0].contains(column), "{text}");
    }
    let night: Vec<&str> = lines[1]
        .split("  ")
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    assert_eq!(
        night,
        [
            "1",
            "night-shift",
            "yes",
            "0 22 * * 1-5",
            "Europe/Amsterdam",
            "28800s",
            "expire",
            "2"
        ]
    );
    assert!(
        lines[2].contains("typo") && lines[2].contains(" no "),
        "{text}"
    );
    assert!(
        lines[2].contains("timezone `Europe/Amsterdm`: not an IANA time zone name"),
        "{text}"
    );

    let list = r.ok(&["policy", "list", "--json"]).json();
    assert_eq!(
        list,
        json!([
            {
                "id": 1, "name": "night-shift", "enabled": true, "cron": "0 22 * * 1-5",
                "timezone": "Europe/Amsterdam", "window_seconds": 28800, "end_mode": "expire",
                "users": ["agent-1", "agent-2"], "problems": []
            },
            {
                "id": 2, "name": "typo", "enabled": false, "cron": "0 9 * * *",
                "timezone": "Europe/Amsterdm", "window_seconds": 3600, "end_mode": "stop",
                "users": ["u1"],
                "problems": ["timezone `Europe/Amsterdm`: not an IANA time zone name"]
            }
        ])
    );
}

#[tokio::test]
async fn an_empty_table_lists_as_an_empty_array() {
    let r = Recsched::migrated();
    assert_eq!(r.ok(&["policy", "list", "--json"]).json(), json!([]));
    let text = r.ok(&["policy", "list"]).stdout;
    assert!(text.contains("recsched policy add"), "{text}");
}

#[tokio::test]
async fn add_refuses_what_the_daemon_would_skip_and_writes_nothing() {
    let r = Recsched::migrated();
    let base = [
        "policy",
        "add",
        "--name",
        "bad",
        "--tz",
        "Europe/Amsterdam",
        "--window",
        "3600",
        "--user",
        "u1",
    ];
    let mut bad_cron = base.to_vec();
    bad_cron.extend(["--cron", "61 * * * *"]);
    let run = r.fails(&bad_cron);
    assert!(
        run.stderr
            .contains("cron `61 * * * *`: minute 61 out of range 0-59"),
        "{run:?}"
    );
    assert!(run.stderr.contains("--cron"), "{run:?}");
    assert!(run.stderr.contains("nothing was written"), "{run:?}");

    // Every problem at once, each with the flag to fix.
    let run = r.fails(&[
        "policy",
        "add",
        "--name",
        "worse",
        "--cron",
        "* * *",
        "--tz",
        "Mars/Olympus",
        "--window",
        "-1",
        "--end-mode",
        "halt",
        "--user",
        "",
    ]);
    for expected in [
        "timezone `Mars/Olympus`",
        "(fix --tz)",
        "(fix --cron)",
        "window_seconds -1: must be between 5 and 604800 (fix --window)",
        "end_mode `halt`: must be `expire` or `stop` (fix --end-mode)",
        "user id is empty (fix --user)",
    ] {
        assert!(run.stderr.contains(expected), "{expected}: {run:?}");
    }

    // A user is required.
    let run = r.run(&[
        "policy", "add", "--name", "x", "--cron", "@daily", "--window", "60",
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("--user"), "{run:?}");

    let mut sql = r.sql().await;
    assert_eq!(count(&mut sql, "policies").await, 0);
    assert_eq!(count(&mut sql, "policy_users").await, 0);
    let revision: i64 = sqlx::query_scalar("SELECT revision FROM policy_revision")
        .fetch_one(&mut sql)
        .await
        .unwrap();
    assert_eq!(
        revision, 0,
        "nothing was written, so the daemon has nothing to reload"
    );
}

#[tokio::test]
async fn add_enable_disable_users_and_remove_round_trip() {
    let r = Recsched::migrated();
    let added = r.ok(&[
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
        "agent-1",
        "--user",
        "agent-2",
        "--user",
        "agent-1",
        "--disabled",
    ]);
    assert!(
        added
            .stdout
            .contains("added policy `night-shift` (id 1, disabled"),
        "{added:?}"
    );

    let show = r.ok(&["policy", "show", "night-shift", "--json"]).json();
    assert_eq!(show["enabled"], json!(false));
    assert_eq!(show["end_mode"], json!("stop"));
    assert_eq!(show["timezone"], json!("Europe/Amsterdam"));
    assert_eq!(show["window_seconds"], json!(28800));
    assert_eq!(show["users"], json!(["agent-1", "agent-2"]));

    let run = r.fails(&[
        "policy",
        "add",
        "--name",
        "night-shift",
        "--cron",
        "@daily",
        "--window",
        "60",
        "--user",
        "u",
    ]);
    assert!(run.stderr.contains("already exists"), "{run:?}");

    r.ok(&["policy", "enable", "night-shift"]);
    assert_eq!(
        r.ok(&["policy", "show", "1", "--json"]).json()["enabled"],
        json!(true)
    );
    let again = r.ok(&["policy", "enable", "night-shift"]);
    assert!(again.stdout.contains("already"), "{again:?}");
    r.ok(&["policy", "disable", "night-shift"]);
    assert_eq!(
        r.ok(&["policy", "show", "night-shift", "--json"]).json()["enabled"],
        json!(false)
    );

    // Ids that would add a query parameter stay one value.
    let run = r.ok(&[
        "policy",
        "add-user",
        "night-shift",
        "agent-3",
        "agent-1",
        "1&userId=2",
    ]);
    assert!(run.stdout.contains("added agent-3, 1&userId=2"), "{run:?}");
    assert!(run.stdout.contains("already there: agent-1"), "{run:?}");
    assert!(run.stdout.contains("4 users now"), "{run:?}");

    let run = r.run(&["policy", "add-user", "night-shift", "a\u{7}b"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    assert!(run.stderr.contains("control character"), "{run:?}");

    let run = r.ok(&["policy", "remove-user", "night-shift", "agent-1", "nobody"]);
    assert!(run.stdout.contains("removed agent-1"), "{run:?}");
    assert!(run.stdout.contains("not in it: nobody"), "{run:?}");
    assert_eq!(
        r.ok(&["policy", "show", "night-shift", "--json"]).json()["users"],
        json!(["1&userId=2", "agent-2", "agent-3"])
    );

    let run = r.ok(&[
        "policy",
        "remove-user",
        "night-shift",
        "agent-2",
        "agent-3",
        "1&userId=2",
    ]);
    assert!(run.stdout.contains("no users"), "{run:?}");
    assert!(run.stdout.contains("skips it"), "{run:?}");
    assert!(
        run.stdout
            .contains("recsched policy add-user night-shift USER"),
        "{run:?}"
    );
    let listed = r.ok(&["policy", "list", "--json"]).json();
    assert_eq!(listed[0]["users"], json!([]));
    assert!(listed[0]["problems"][0]
        .as_str()
        .unwrap()
        .contains("no users"));

    let text = r.ok(&["policy", "show", "night-shift"]).stdout;
    assert!(text.contains("28800 s (8h)"), "{text}");
    assert!(text.contains("the daemon skips this policy"), "{text}");

    // History outlives the policy.
    let mut sql = r.sql().await;
    sqlx::query(
        "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
         requested_seconds, state) VALUES ('agent-1', 1, '2026-03-29T20:00:00.000Z', \
         '2026-03-30T04:00:00.000Z', 12600, 'expired')",
    )
    .execute(&mut sql)
    .await
    .unwrap();
    let run = r.ok(&["policy", "remove", "night-shift"]);
    assert!(
        run.stdout.contains("removed policy `night-shift`"),
        "{run:?}"
    );
    assert!(run.stdout.contains("kept"), "{run:?}");
    assert_eq!(r.ok(&["policy", "list", "--json"]).json(), json!([]));
    assert_eq!(count(&mut sql, "policy_users").await, 0);
    assert_eq!(count(&mut sql, "recordings").await, 1);
}

#[tokio::test]
async fn unknown_policies_are_named_with_the_way_to_list_them() {
    let r = Recsched::migrated();
    for args in [
        &["policy", "show", "ghost"][..],
        &["policy", "enable", "ghost"],
        &["policy", "disable", "ghost"],
        &["policy", "remove", "ghost"],
        &["policy", "add-user", "ghost", "u1"],
        &["policy", "remove-user", "ghost", "u1"],
    ] {
        let run = r.fails(args);
        assert!(
            run.stderr.contains("no policy named `ghost`"),
            "{args:?}: {run:?}"
        );
        assert!(
            run.stderr.contains("recsched policy list"),
            "{args:?}: {run:?}"
        );
    }
}

#[tokio::test]
async fn a_policy_whose_name_is_hard_to_type_is_reached_by_its_id() {
    let r = Recsched::migrated();
    let mut sql = r.sql().await;
    let id = insert_policy(&mut sql, "night\nshift", "@daily", "UTC", 60, &[]).await;

    let check = r.fails(&["check"]);
    let hint = format!("recsched policy add-user {id} USER");
    assert!(check.stdout.contains(&hint), "{check:?}");
    assert!(check.stdout.contains("policy `night\\nshift`"), "{check:?}");

    r.ok(&["policy", "add-user", &id.to_string(), "u1"]);
    // The daemon refuses such a name (it would reach systemd's STATUS
    // line); only that is left to fix.
    let check = r.fails(&["check"]);
    assert!(
        check
            .stdout
            .contains("name `night\\nshift`: has a character that is not printable"),
        "{check:?}"
    );
    assert!(!check.stdout.contains("no users"), "{check:?}");
    let text = r.ok(&["policy", "list"]).stdout;
    assert!(text.contains("night\\nshift"), "one line per row: {text}");
    assert_eq!(text.lines().count(), 2, "{text}");

    let run = r.fails(&[
        "policy", "add", "--name", "42", "--cron", "@daily", "--window", "60", "--user", "u",
    ]);
    assert!(run.stderr.contains("--name"), "{run:?}");
}
