//! Opening: file creation, pragmas, migrations, and the errors an operator
//! meets (missing directory, read-only file, not a database).

use std::os::unix::fs::PermissionsExt;

use recsched::store::{Store, StoreError};

use super::{at, segment, settings_in, temp_store};

#[tokio::test]
async fn open_creates_a_private_migrated_wal_file() {
    let (_dir, store) = temp_store().await;
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(store.policy_revision().await.unwrap(), 0);

    let mut conn = super::operator(store.path()).await;
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(journal, "wal");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE '\\_%' ESCAPE '\\' \
         ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        tables,
        [
            "attempts",
            "daemon_state",
            "exclusions",
            "policies",
            "policy_revision",
            "policy_teams",
            "policy_users",
            "recordings",
            "team_members",
            "team_refreshes"
        ]
    );
}

#[tokio::test]
async fn reopening_keeps_data_and_migrates_nothing_twice() {
    let (dir, store) = temp_store().await;
    store.claim(&segment("u1", at(9, 0, 0))).await.unwrap();
    store.close().await;
    let again = Store::open(&settings_in(dir.path(), "recsched.db"))
        .await
        .unwrap();
    assert_eq!(again.open_rows().await.unwrap().rows.len(), 1);
}

#[tokio::test]
async fn an_existing_file_keeps_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), "r.db");
    std::fs::write(&settings.path, b"").unwrap();
    std::fs::set_permissions(&settings.path, std::fs::Permissions::from_mode(0o640)).unwrap();
    Store::open(&settings).await.unwrap();
    let mode = std::fs::metadata(&settings.path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o640);
}

#[tokio::test]
async fn a_missing_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(&dir.path().join("nope"), "r.db");
    let err = Store::open(&settings).await.unwrap_err();
    assert!(
        matches!(err, StoreError::DirectoryMissing { .. }),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&settings.path.display().to_string()), "{msg}");
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(!settings.path.exists());
}

#[tokio::test]
async fn a_read_only_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), "r.db");
    Store::open(&settings).await.unwrap().close().await;
    std::fs::set_permissions(&settings.path, std::fs::Permissions::from_mode(0o400)).unwrap();
    if std::fs::OpenOptions::new()
        .write(true)
        .open(&settings.path)
        .is_ok()
    {
        eprintln!(
            "skipped: file modes do not bind this user (root); see the read-only handle test"
        );
        return;
    }
    let err = Store::open(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains(&settings.path.display().to_string()),
        "{err}"
    );
}

#[tokio::test]
async fn a_read_only_handle_reads_and_refuses_writes_as_read_only() {
    let (dir, store) = temp_store().await;
    store.claim(&segment("u1", at(9, 0, 0))).await.unwrap();
    let reader = Store::open_read_only(&settings_in(dir.path(), "recsched.db"))
        .await
        .unwrap();
    assert_eq!(reader.open_rows().await.unwrap().rows.len(), 1);
    assert!(reader.policy_rows().await.unwrap().is_empty());
    assert_eq!(reader.policy_revision().await.unwrap(), 0);
    let err = reader.claim(&segment("u2", at(9, 0, 0))).await.unwrap_err();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("recsched.db"), "{err}");
}

#[tokio::test]
async fn read_only_open_needs_an_existing_migrated_file() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), "r.db");
    let err = Store::open_read_only(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::FileMissing { .. }), "{err:?}");
    assert!(
        !settings.path.exists(),
        "a read-only open must not create the file"
    );

    std::fs::write(&settings.path, b"").unwrap();
    let err = Store::open_read_only(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::NotMigrated { .. }), "{err:?}");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings_in(dir.path(), "r.db");
    std::fs::write(&settings.path, vec![b'x'; 4096]).unwrap();
    let err = Store::open(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("r.db"), "{err}");
}

#[tokio::test]
async fn a_schema_from_a_newer_build_is_refused() {
    let (dir, store) = temp_store().await;
    let mut conn = super::operator(store.path()).await;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES (99990101000000, 'from the future', TRUE, X'00', 0)",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let settings = settings_in(dir.path(), "recsched.db");
    let err = Store::open(&settings).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::NewerSchema {
                version: 99990101000000,
                ..
            }
        ),
        "{err:?}"
    );
    let err = Store::open_read_only(&settings).await.unwrap_err();
    assert!(matches!(err, StoreError::NewerSchema { .. }), "{err:?}");
}

#[tokio::test]
async fn a_read_only_directory_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let db_dir = dir.path().join("state");
    std::fs::create_dir(&db_dir).unwrap();
    let settings = settings_in(&db_dir, "r.db");
    Store::open(&settings).await.unwrap().close().await; // leaves no -wal/-shm behind
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o500)).unwrap();
    if std::fs::write(db_dir.join("probe"), b"").is_ok() {
        eprintln!("skipped: directory modes do not bind this user (root)");
        return;
    }
    let err = Store::open(&settings).await.unwrap_err();
    std::fs::set_permissions(&db_dir, std::fs::Permissions::from_mode(0o700)).unwrap();
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert!(err.to_string().contains("r.db"), "{err}");
}
