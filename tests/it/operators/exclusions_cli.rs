//! `recsched exclusions add/list/remove` and `recsched check` on the real
//! binary against a real database.

use crate::common::bin::Recsched;

fn office(r: &Recsched) {
    r.ok(&[
        "policy",
        "add",
        "--name",
        "office",
        "--cron",
        "0 9 * * MON-FRI",
        "--tz",
        "Europe/Amsterdam",
        "--window",
        "3600",
        "--user",
        "ann",
        "--user",
        "bob",
    ]);
}

#[test]
fn add_list_and_remove_exclusions() {
    let r = Recsched::migrated();
    office(&r);
    let out = r.ok(&[
        "exclusions",
        "add",
        "--from",
        "2026-12-24",
        "--to",
        "2026-12-26",
        "--reason",
        "Christmas",
    ]);
    assert!(
        out.stdout
            .starts_with("added exclusion 1: 2026-12-24 to 2026-12-26"),
        "{out:?}"
    );
    r.ok(&[
        "exclusions",
        "add",
        "--policy",
        "office",
        "--user",
        "bob",
        "--from",
        "2026-08-03T07:00:00+02:00",
        "--to",
        "2026-08-03T17:00:00+02:00",
        "--reason",
        "dentist",
    ]);
    // The same again: nothing added.
    let again = r.ok(&[
        "exclusions",
        "add",
        "--from",
        "2026-12-24",
        "--to",
        "2026-12-26",
        "--reason",
        "Christmas",
    ]);
    assert!(again.stdout.contains("already there"), "{again:?}");

    let list = r.ok(&["exclusions", "list", "--json"]).json();
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list:#}");
    assert_eq!(rows[0]["starts_at"], "2026-12-24");
    assert_eq!(rows[0]["policy_id"], serde_json::Value::Null);
    assert_eq!(rows[1]["policy"], "office");
    assert_eq!(rows[1]["user_id"], "bob");
    assert_eq!(
        rows[1]["starts_at"], "2026-08-03T05:00:00.000Z",
        "stored in UTC"
    );
    assert_eq!(rows[1]["problems"], serde_json::json!([]));
    // Filtered by user: ann sees only the one for everybody.
    let ann = r
        .ok(&["exclusions", "list", "--user", "ann", "--json"])
        .json();
    assert_eq!(ann.as_array().unwrap().len(), 1);
    let text = r.ok(&["exclusions", "list"]).stdout;
    assert!(
        text.contains("Christmas") && text.contains("dentist"),
        "{text}"
    );

    let out = r.ok(&["exclusions", "remove", "1"]);
    assert_eq!(out.stdout, "removed exclusion 1\n");
    let missing = r.fails(&["exclusions", "remove", "1"]);
    assert!(
        missing.stderr.contains("no exclusion with id 1"),
        "{missing:?}"
    );
    assert_eq!(
        r.ok(&["exclusions", "list", "--json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn add_refuses_what_the_daemon_would_skip_and_writes_nothing() {
    let r = Recsched::migrated();
    office(&r);
    for (args, expected) in [
        (
            vec!["--from", "2026-12-26", "--to", "2026-12-24"],
            "--to `2026-12-24`: is before",
        ),
        (
            vec!["--from", "24-12-2026"],
            "--from `24-12-2026`: is neither a local date",
        ),
        (
            vec!["--from", "2026-12-24", "--tz", "Mars/Base"],
            "--tz `Mars/Base`",
        ),
        (vec!["--from", "2026-12-24T10:00:00Z"], "--to is needed"),
        (
            vec!["--from", "2026-12-24", "--policy", "nope"],
            "no policy named `nope`",
        ),
    ] {
        let mut all = vec!["exclusions", "add"];
        all.extend(args);
        let run = r.fails(&all);
        assert!(run.stderr.contains(expected), "{all:?}: {run:?}");
    }
    assert_eq!(
        r.ok(&["exclusions", "list", "--json"]).json(),
        serde_json::json!([])
    );
}

#[tokio::test]
async fn check_names_a_bad_exclusion_row_by_table_id_and_column() {
    let r = Recsched::migrated();
    office(&r);
    let mut conn = r.sql().await;
    sqlx::raw_sql(
        "INSERT INTO exclusions (id, starts_at, ends_at) VALUES (1, '2026-12-24', '2026-12-24');
         INSERT INTO exclusions (id, starts_at, ends_at) VALUES (2, '2026-12-31', 'tomorrow');
         INSERT INTO exclusions (id, starts_at, ends_at, timezone) VALUES (3, '2026-12-31', '2026-12-31', 'Europe/Amsterdm');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let run = r.fails(&["check"]);
    assert!(
        run.stdout.contains(
            "table exclusions, id 2, column ends_at: `tomorrow`: is neither a local date like \
             2026-12-24 nor a UTC instant"
        ),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("table exclusions, id 3, column timezone: `Europe/Amsterdm`"),
        "{run:?}"
    );
    assert!(
        run.stdout.contains("the exclusion is not applied"),
        "{run:?}"
    );
    assert!(!run.stdout.contains("id 1,"), "{run:?}");
    let json = r.fails(&["check", "--json"]).json();
    let tables: Vec<&str> = json
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["table"].as_str().unwrap())
        .collect();
    assert_eq!(tables, ["exclusions", "exclusions"]);
    // `list` shows the problem beside each row.
    let list = r.ok(&["exclusions", "list", "--json"]).json();
    assert_eq!(list[0]["problems"], serde_json::json!([]));
    assert!(list[1]["problems"][0]
        .as_str()
        .unwrap()
        .starts_with("ends_at"));
}
