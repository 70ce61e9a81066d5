//! Policy rows: edits and the revision counter on both backends;
//! updated_at, and broken rows sqlite3 lets in that must be read rather
//! than refused.

use recsched::store::StoreError;
use sqlx::Row;

use super::{at, on_both_backends, operator, policy, segment, temp_store, TestDb};

async fn policies_can_be_inserted_listed_changed_and_removed(db: TestDb) {
    let store = &db.store;
    let id = store
        .insert_policy(&policy("day", &["u2", "u1", "u1"]))
        .await
        .unwrap();
    store.insert_policy(&policy("night", &[])).await.unwrap();

    let rows = store.policy_rows().await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].id, id);
    assert_eq!(rows[0].name, "day");
    assert!(rows[0].enabled);
    assert_eq!(rows[0].cron, "0 9 * * MON-FRI");
    assert_eq!(rows[0].timezone, "Europe/Amsterdam");
    assert_eq!(rows[0].window_seconds, 3600);
    assert_eq!(rows[0].end_mode, "expire");
    assert_eq!(rows[0].users, ["u1", "u2"]);
    assert!(rows[1].users.is_empty());

    let err = store.insert_policy(&policy("day", &[])).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::DuplicatePolicy(n) if n == "day"),
        "{err:?}"
    );

    store.set_policy_enabled("day", false).await.unwrap();
    assert!(store.add_policy_user("day", "u3").await.unwrap());
    assert!(!store.add_policy_user("day", "u3").await.unwrap());
    assert!(store.remove_policy_user("day", "u1").await.unwrap());
    assert!(!store.remove_policy_user("day", "u1").await.unwrap());
    let day = store.policy_row("day").await.unwrap().unwrap();
    assert!(!day.enabled);
    assert_eq!(day.users, ["u2", "u3"]);

    store.remove_policy("day").await.unwrap();
    assert_eq!(store.policy_row("day").await.unwrap(), None);
    assert_eq!(store.policy_rows().await.unwrap().len(), 1);
}

async fn unknown_policy_names_are_reported(db: TestDb) {
    let store = &db.store;
    for err in [
        store.set_policy_enabled("ghost", true).await.unwrap_err(),
        store.remove_policy("ghost").await.unwrap_err(),
        store.add_policy_user("ghost", "u1").await.unwrap_err(),
        store.remove_policy_user("ghost", "u1").await.unwrap_err(),
    ] {
        assert!(
            matches!(&err, StoreError::PolicyNotFound(n) if n == "ghost"),
            "{err:?}"
        );
        assert!(err.to_string().contains("`ghost`"));
    }
}

async fn removing_a_policy_keeps_its_recordings(db: TestDb) {
    let store = &db.store;
    let id = store.insert_policy(&policy("day", &["u1"])).await.unwrap();
    let mut seg = segment("u1", at(9, 0, 0));
    seg.policy_id = id;
    store.claim(&seg).await.unwrap().unwrap();

    store.remove_policy("day").await.unwrap();
    let rows = store.open_rows().await.unwrap().rows;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].policy_id, Some(id));

    let users = db.number("SELECT COUNT(*) FROM policy_users").await;
    assert_eq!(users, 0, "the user list goes with its policy");
}

async fn the_revision_moves_on_a_plain_sql_edit_by_another_connection(db: TestDb) {
    let store = &db.store;
    store.insert_policy(&policy("day", &["u1"])).await.unwrap();

    let mut last = store.policy_revision().await.unwrap();
    for edit in [
        "UPDATE policies SET cron = '0 10 * * *' WHERE name = 'day'",
        "INSERT INTO policies (name, cron, window_seconds) VALUES ('sql', '* * * * *', 60)",
        "INSERT INTO policy_users (policy_id, user_id) VALUES (1, 'u9')",
        "UPDATE policy_users SET user_id = 'u8' WHERE user_id = 'u9'",
        "DELETE FROM policy_users WHERE user_id = 'u8'",
        "DELETE FROM policies WHERE name = 'sql'",
    ] {
        db.sql(edit).await;
        let now = store.policy_revision().await.unwrap();
        assert!(now > last, "{edit}: revision {last} -> {now}");
        last = now;
    }

    // The daemon's own recording writes do not move it.
    store.claim(&segment("u1", at(9, 0, 0))).await.unwrap();
    assert_eq!(store.policy_revision().await.unwrap(), last);
}

#[tokio::test]
async fn updated_at_follows_a_plain_sql_update() {
    let (_dir, store) = temp_store().await;
    store.insert_policy(&policy("day", &[])).await.unwrap();
    store.claim(&segment("u1", at(9, 0, 0))).await.unwrap();
    let mut conn = operator(store.path()).await;
    let old = "2000-01-01T00:00:00.000Z";
    for (backdate, edit, read) in [
        (
            "UPDATE policies SET updated_at = ?",
            "UPDATE policies SET window_seconds = 7200",
            "SELECT updated_at, created_at FROM policies",
        ),
        (
            "UPDATE recordings SET updated_at = ?",
            "UPDATE recordings SET last_error = 'poked by hand'",
            "SELECT updated_at, created_at FROM recordings",
        ),
    ] {
        sqlx::query(backdate)
            .bind(old)
            .execute(&mut conn)
            .await
            .unwrap();
        let row = sqlx::query(read).fetch_one(&mut conn).await.unwrap();
        let kept: String = row.get(0);
        assert_eq!(kept, old, "setting updated_at by hand is kept");

        sqlx::query(edit).execute(&mut conn).await.unwrap();
        let row = sqlx::query(read).fetch_one(&mut conn).await.unwrap();
        let (updated, created): (String, String) = (row.get(0), row.get(1));
        assert_ne!(updated, old, "{edit} must stamp updated_at");
        assert!(updated >= created, "{edit}: {updated} vs {created}");
        recsched::clock::parse_utc(&updated).unwrap();
        assert_eq!(updated.len(), old.len(), "canonical form: {updated}");
    }
}

#[tokio::test]
async fn values_of_the_wrong_type_are_named_and_never_coerced() {
    let (_dir, store) = temp_store().await;
    let mut conn = operator(store.path()).await;
    sqlx::query(
        "INSERT INTO policies (name, enabled, cron, timezone, window_seconds, end_mode) \
         VALUES ('bad', 'true', 'every day', 'Europe/Amsterdm', 'one hour', 'sometimes'), \
                ('float', 1, '0 9 * * *', 'UTC', 3600.9, 'stop'), \
                (42, 1, '0 9 * * *', 'UTC', -5, 'expire'), \
                (CAST(X'FF6E616D65' AS TEXT), 1, '0 9 * * *', 'UTC', 60, 'expire'), \
                ('blob', 2, X'00', 'UTC', 60, 'expire')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    store.insert_policy(&policy("good", &["u1"])).await.unwrap();

    let read = store.read_policies().await.unwrap();
    // Only rows whose every value has its column's type are read; their
    // meaning (cron, zone, range) is the parser's to judge.
    let names: Vec<&str> = read.rows.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["42", "good"]);
    assert_eq!(read.rows[0].window_seconds, -5);
    let bad: Vec<(i64, &str, &str)> = read
        .bad
        .iter()
        .map(|b| (b.id, b.column, b.problem.as_str()))
        .collect();
    assert_eq!(
        bad,
        [
            (
                1,
                "enabled",
                "stored as text 'true', not an integer; nothing is converted"
            ),
            (
                1,
                "window_seconds",
                "stored as text 'one hour', not an integer; nothing is converted"
            ),
            (
                2,
                "window_seconds",
                "stored as real 3600.9, not an integer; nothing is converted"
            ),
            (
                4,
                "name",
                "not valid UTF-8 text (byte 0 of 5; starts ff 6e 61 6d 65)"
            ),
            (5, "enabled", "2: must be 0 (off) or 1 (on)"),
            (
                5,
                "cron",
                "stored as blob X'00', not text; nothing is converted"
            ),
        ]
    );
    assert!(read
        .bad
        .iter()
        .all(|b| b.table == "policies" && b.key == "id"));
    assert_eq!(
        read.bad[2].to_string(),
        "table policies, id 2, column window_seconds: stored as real 3600.9, not an integer; \
         nothing is converted; the policy is skipped until the row is fixed or deleted \
         (sqlite3 or psql)"
    );

    // Asked for by name, a row that does not read back is an error naming it.
    let err = store.policy_row("float").await.unwrap_err();
    assert!(
        matches!(&err, StoreError::BadRow(b) if b.id == 2 && b.column == "window_seconds"),
        "{err:?}"
    );
    assert_eq!(store.policy_rows().await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_user_row_without_a_policy_or_with_a_bad_user_id_is_skipped_alone() {
    let (_dir, store) = temp_store().await;
    let id = store
        .insert_policy(&policy("day", &["u1", "u2"]))
        .await
        .unwrap();
    let mut conn = operator(store.path()).await;
    // sqlite3 leaves foreign keys off: all of these are accepted.
    sqlx::query("PRAGMA foreign_keys = OFF")
        .execute(&mut conn)
        .await
        .unwrap();
    for (n, edit) in [
        "INSERT INTO policy_users VALUES ('abc', 'u1')",
        "INSERT INTO policy_users VALUES (99, 'u9')",
        "INSERT INTO policy_users VALUES (1, CAST(X'FF6E616D65' AS TEXT))",
        "INSERT INTO policy_users VALUES (1, 'tab\there')",
        "INSERT INTO policy_users VALUES (1, X'0102')",
    ]
    .iter()
    .enumerate()
    {
        sqlx::query(edit)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("edit {n} {edit}: {e}"));
    }

    let read = store.read_policies().await.unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(read.rows[0].id, id);
    assert_eq!(
        read.rows[0].users,
        ["u1", "u2"],
        "the policy keeps its good users"
    );
    let mut bad: Vec<(&str, &str, &str)> = read
        .bad
        .iter()
        .map(|b| (b.table, b.key, b.column))
        .collect();
    bad.sort();
    assert_eq!(
        bad,
        [
            ("policy_users", "rowid", "policy_id"),
            ("policy_users", "rowid", "policy_id"),
            ("policy_users", "rowid", "user_id"),
            ("policy_users", "rowid", "user_id"),
            ("policy_users", "rowid", "user_id"),
        ]
    );
    let text: Vec<String> = read.bad.iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    assert!(
        all.contains("column policy_id: 'abc' names no policy"),
        "{all}"
    );
    assert!(
        all.contains("column policy_id: 99 names no policy"),
        "{all}"
    );
    assert!(all.contains("not valid UTF-8 text"), "{all}");
    assert!(
        all.contains("`tab\\there`: user id contains a control character"),
        "{all}"
    );
    assert!(all.contains("stored as blob X'0102', not text"), "{all}");
    assert!(
        text.iter()
            .all(|t| t.contains("it is skipped until the row is fixed")),
        "{all}"
    );
    // The rowid finds the row for the operator.
    let orphan = read
        .bad
        .iter()
        .find(|b| b.problem.starts_with("99"))
        .unwrap();
    let user: String = sqlx::query_scalar("SELECT user_id FROM policy_users WHERE rowid = ?")
        .bind(orphan.id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(user, "u9");
}

/// The revision row is the triggers' counter: deleted by hand, it is put
/// back on the next read (a new revision), and edits move it again.
async fn a_deleted_revision_row_is_put_back(db: TestDb) {
    let store = &db.store;
    store.insert_policy(&policy("day", &["u1"])).await.unwrap();
    let before = store.policy_revision().await.unwrap();
    assert!(before > 0);
    db.sql("DELETE FROM policy_revision").await;
    assert_eq!(store.policy_revision().await.unwrap(), 0);
    assert_eq!(db.number("SELECT COUNT(*) FROM policy_revision").await, 1);
    store.add_policy_user("day", "u2").await.unwrap();
    assert!(store.policy_revision().await.unwrap() > 0);
}

on_both_backends!(
    a_deleted_revision_row_is_put_back,
    policies_can_be_inserted_listed_changed_and_removed,
    unknown_policy_names_are_reported,
    removing_a_policy_keeps_its_recordings,
    the_revision_moves_on_a_plain_sql_edit_by_another_connection,
);
