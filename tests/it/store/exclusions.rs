//! The `exclusions` table, on both backends: rows read back as written,
//! inserts are idempotent, every edit moves the policy revision (so the
//! daemon reloads it like a policy edit), and on SQLite a bad row is
//! named and skipped.

use recsched::store::{NewExclusion, NewPolicy};

use super::{on_both_backends, TestDb};

fn holiday(policy_id: Option<i64>, day: &str) -> NewExclusion {
    NewExclusion {
        policy_id,
        user_id: None,
        starts_at: day.to_owned(),
        ends_at: day.to_owned(),
        timezone: None,
        reason: Some(format!("holiday {day}")),
    }
}

fn policy() -> NewPolicy {
    NewPolicy {
        name: "office".into(),
        enabled: true,
        cron: "0 9 * * MON-FRI".into(),
        timezone: "Europe/Amsterdam".into(),
        window_seconds: 3600,
        end_mode: "expire".into(),
        users: vec!["ann".into()],
    }
}

async fn exclusions_read_back_insert_once_and_move_the_revision(db: TestDb) {
    let store = &db.store;
    let policy_id = store.insert_policy(&policy()).await.unwrap();
    let r0 = store.policy_revision().await.unwrap();
    let leave = NewExclusion {
        user_id: Some("ann".into()),
        timezone: Some("Europe/Amsterdam".into()),
        reason: None,
        ..holiday(Some(policy_id), "2026-07-01")
    };
    let ids = store
        .insert_exclusions(&[
            holiday(None, "2026-12-25"),
            holiday(Some(policy_id), "2026-12-26"),
            leave.clone(),
        ])
        .await
        .unwrap();
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    let r1 = store.policy_revision().await.unwrap();
    assert!(r1 > r0, "an insert moves the revision");

    // The same rows again (NULLs compared as equal): nothing added.
    let again = store
        .insert_exclusions(&[
            holiday(None, "2026-12-25"),
            holiday(Some(policy_id), "2026-12-26"),
            leave,
        ])
        .await
        .unwrap();
    assert_eq!(again, [None, None, None]);

    let read = store.read_exclusions().await.unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    assert_eq!(read.rows.len(), 3);
    assert_eq!(read.rows[0].id, ids[0].unwrap());
    assert_eq!(read.rows[0].policy_id, None);
    assert_eq!(read.rows[0].user_id, None);
    assert_eq!(read.rows[0].starts_at, "2026-12-25");
    assert_eq!(read.rows[0].ends_at, "2026-12-25");
    assert_eq!(read.rows[0].reason.as_deref(), Some("holiday 2026-12-25"));
    assert_eq!(read.rows[1].policy_id, Some(policy_id));
    assert_eq!(read.rows[2].user_id.as_deref(), Some("ann"));
    assert_eq!(read.rows[2].timezone.as_deref(), Some("Europe/Amsterdam"));
    assert_eq!(read.rows[2].reason, None);

    let first = ids[0].unwrap();
    assert!(store.remove_exclusion(first).await.unwrap());
    assert!(!store.remove_exclusion(first).await.unwrap());
    assert!(store.policy_revision().await.unwrap() > r1);

    // Removing the policy removes its exclusions (ON DELETE CASCADE).
    store.remove_policy("office").await.unwrap();
    assert!(store.read_exclusions().await.unwrap().rows.is_empty());
}

/// Two importers of the same calendar at once insert each row once.
async fn concurrent_imports_insert_each_row_once(db: TestDb) {
    let other = db.another().await;
    let days: Vec<NewExclusion> = (1..=20)
        .map(|d| holiday(None, &format!("2026-01-{d:02}")))
        .collect();
    let (a, b) = tokio::join!(
        db.store.insert_exclusions(&days),
        other.insert_exclusions(&days)
    );
    let inserted = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .filter(Option::is_some)
        .count();
    assert_eq!(inserted, 20);
    assert_eq!(db.number("SELECT COUNT(*) FROM exclusions").await, 20);
}

on_both_backends!(
    exclusions_read_back_insert_once_and_move_the_revision,
    concurrent_imports_insert_each_row_once,
);

/// What sqlite3 lets an operator write: a wrong type, bytes that are not
/// UTF-8, a policy id naming no policy. Each such row is named by table,
/// id and column, and skipped; the good row reads.
#[tokio::test]
async fn a_bad_exclusion_row_is_named_and_skipped_on_sqlite() {
    let db = TestDb::sqlite().await;
    db.sql(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO exclusions (id, starts_at, ends_at) VALUES (1, '2026-12-25', '2026-12-25');
         INSERT INTO exclusions (id, starts_at, ends_at) VALUES (2, X'3230', '2026-12-25');
         INSERT INTO exclusions (id, starts_at, ends_at, reason)
             VALUES (3, '2026-12-25', '2026-12-25', CAST(X'FF' AS TEXT));
         INSERT INTO exclusions (id, policy_id, starts_at, ends_at) VALUES (4, 99, '2026-12-25', '2026-12-25');
         INSERT INTO exclusions (id, starts_at, ends_at, timezone) VALUES (5, '2026-12-25', '2026-12-25', X'37');",
    )
    .await;
    let read = db.store.read_exclusions().await.unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(read.rows[0].id, 1);
    let named: Vec<String> = read.bad.iter().map(ToString::to_string).collect();
    assert_eq!(named.len(), 4, "{named:#?}");
    assert!(named[0]
        .starts_with("table exclusions, id 2, column starts_at: stored as blob X'3230', not text"));
    assert!(named[1].starts_with("table exclusions, id 3, column reason: not valid UTF-8"));
    assert!(named[2].starts_with("table exclusions, id 4, column policy_id: 99 names no policy"));
    assert!(
        named[3].starts_with(
            "table exclusions, id 5, column timezone: stored as blob X'37', not text or NULL"
        ),
        "{named:#?}"
    );
}
