//! The `exclusions` table through the store, on SQLite and PostgreSQL:
//! rows read back as written, a bad row is named and skipped, inserts are
//! idempotent, and every edit moves the policy revision (so the daemon
//! reloads it like a policy edit).

use recsched::store::{NewExclusion, NewPolicy, Settings, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};

use crate::common::pg::pg;

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

/// The contract, whichever backend `store` is.
async fn contract(store: &Store) {
    let policy_id = store.insert_policy(&policy()).await.unwrap();
    let r0 = store.policy_revision().await.unwrap();
    let ids = store
        .insert_exclusions(&[
            holiday(None, "2026-12-25"),
            holiday(Some(policy_id), "2026-12-26"),
        ])
        .await
        .unwrap();
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    let r1 = store.policy_revision().await.unwrap();
    assert!(r1 > r0, "an insert moves the revision");

    // The same rows again: nothing added.
    let again = store
        .insert_exclusions(&[
            holiday(None, "2026-12-25"),
            holiday(Some(policy_id), "2026-12-26"),
        ])
        .await
        .unwrap();
    assert_eq!(again, [None, None]);

    let read = store.read_exclusions().await.unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    assert_eq!(read.rows.len(), 2);
    assert_eq!(read.rows[0].policy_id, None);
    assert_eq!(read.rows[0].starts_at, "2026-12-25");
    assert_eq!(read.rows[0].reason.as_deref(), Some("holiday 2026-12-25"));
    assert_eq!(read.rows[1].policy_id, Some(policy_id));

    let first = ids[0].unwrap();
    assert!(store.remove_exclusion(first).await.unwrap());
    assert!(!store.remove_exclusion(first).await.unwrap());
    assert!(store.policy_revision().await.unwrap() > r1);

    // Removing the policy removes its exclusions (ON DELETE CASCADE).
    store.remove_policy("office").await.unwrap();
    assert!(store.read_exclusions().await.unwrap().rows.is_empty());
}

#[tokio::test]
async fn exclusions_read_back_insert_once_and_move_the_revision_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Settings {
        path: dir.path().join("r.db"),
        ..Settings::default()
    })
    .await
    .unwrap();
    contract(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusions_read_back_insert_once_and_move_the_revision_on_postgres() {
    let Some(db) = pg().await else { return };
    contract(&db.store().await).await;
}

/// What sqlite3 lets an operator write: a wrong type, bytes that are not
/// UTF-8, a policy id naming no policy. Each such row is named by table,
/// id and column, and skipped; the good row reads.
#[tokio::test]
async fn a_bad_exclusion_row_is_named_and_skipped_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("r.db");
    let store = Store::open(&Settings {
        path: path.clone(),
        ..Settings::default()
    })
    .await
    .unwrap();
    let mut conn = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&path))
        .await
        .unwrap();
    sqlx::raw_sql(
        "PRAGMA foreign_keys = OFF;
         INSERT INTO exclusions (id, starts_at, ends_at) VALUES (1, '2026-12-25', '2026-12-25');
         INSERT INTO exclusions (id, starts_at, ends_at) VALUES (2, X'3230', '2026-12-25');
         INSERT INTO exclusions (id, starts_at, ends_at, reason)
             VALUES (3, '2026-12-25', '2026-12-25', CAST(X'FF' AS TEXT));
         INSERT INTO exclusions (id, policy_id, starts_at, ends_at) VALUES (4, 99, '2026-12-25', '2026-12-25');",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let read = store.read_exclusions().await.unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(read.rows[0].id, 1);
    let named: Vec<String> = read.bad.iter().map(ToString::to_string).collect();
    assert_eq!(named.len(), 3, "{named:#?}");
    assert!(named[0]
        .starts_with("table exclusions, id 2, column starts_at: stored as blob X'3230', not text"));
    assert!(named[1].starts_with("table exclusions, id 3, column reason: not valid UTF-8"));
    assert!(named[2].starts_with("table exclusions, id 4, column policy_id: 99 names no policy"));
}
