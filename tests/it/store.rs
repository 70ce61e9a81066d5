//! The store's contract, on both backends: each contract test is one
//! generic `async fn name(db: TestDb)`, and [`on_both_backends!`] runs it
//! as `<module>::sqlite::name` on a SQLite file in a temporary directory
//! and as `<module>::postgres::name` on a database of its own on the
//! harness's PostgreSQL server (`common::pg`). Beside them, the tests of
//! what only SQLite has: files, busy locks, columns without types.
//!
//! Plain-SQL edits go through a connection of their own, the way an
//! operator's `sqlite3` or `psql` session would make them.

mod attempts;
mod concurrency;
mod exclusions;
mod open;
mod policies;
mod recordings;
mod report;
mod retention;
mod teams;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use recsched::recording::{RecordingState, UserId};
use recsched::store::{EndMode, NewPolicy, NewRecording, Settings, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;

use crate::common::pg::{pg, PgDb};

/// Runs each generic contract test `name(db: TestDb)` of the calling
/// module once per backend: `sqlite::name`, and `postgres::name`, which
/// passes after saying why when PostgreSQL is not installed (as every
/// PostgreSQL test does, see `common::pg`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(crate::store::TestDb::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = crate::store::TestDb::postgres().await else {
                        return;
                    };
                    super::$name(db).await;
                }
            )*
        }
    };
}
use on_both_backends;

/// A fresh, migrated database of one backend, for one test.
pub struct TestDb {
    pub store: Store,
    place: Place,
}

enum Place {
    Sqlite { _dir: TempDir, path: PathBuf },
    Postgres(PgDb),
}

impl TestDb {
    pub async fn sqlite() -> Self {
        let (dir, store) = temp_store().await;
        let path = store.path().to_path_buf();
        Self {
            store,
            place: Place::Sqlite { _dir: dir, path },
        }
    }

    /// `None` without PostgreSQL binaries (see `common::pg`).
    pub async fn postgres() -> Option<Self> {
        let db = pg().await?;
        let store = db.store().await;
        Some(Self {
            store,
            place: Place::Postgres(db),
        })
    }

    /// Another handle (a pool of its own) on the same database.
    pub async fn another(&self) -> Store {
        match &self.place {
            Place::Sqlite { path, .. } => Store::open(&settings_in(
                path.parent().unwrap(),
                path.file_name().unwrap().to_str().unwrap(),
            ))
            .await
            .unwrap(),
            Place::Postgres(db) => db.store().await,
        }
    }

    /// Runs plain SQL that both dialects read, as an operator would.
    pub async fn sql(&self, statements: &str) {
        match &self.place {
            Place::Sqlite { path, .. } => {
                let mut conn = operator(path).await;
                sqlx::raw_sql(statements)
                    .execute(&mut conn)
                    .await
                    .unwrap_or_else(|e| panic!("{statements}: {e}"));
            }
            Place::Postgres(db) => db.sql(statements).await,
        }
    }

    /// The one integer `query` returns (a count, say).
    pub async fn number(&self, query: &str) -> i64 {
        match &self.place {
            Place::Sqlite { path, .. } => sqlx::query_scalar(query)
                .fetch_one(&mut operator(path).await)
                .await
                .unwrap(),
            Place::Postgres(db) => sqlx::query_scalar(query)
                .fetch_one(&mut db.conn().await)
                .await
                .unwrap(),
        }
    }
}

/// Settings for `name` inside `dir`.
fn settings_in(dir: &Path, name: &str) -> Settings {
    Settings {
        path: dir.join(name),
        busy_timeout: Duration::from_secs(15),
        ..Settings::default()
    }
}

/// A fresh, migrated SQLite database in its own temporary directory.
async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&settings_in(dir.path(), "recsched.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A connection of its own, like an operator's sqlite3 session.
async fn operator(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(Duration::from_secs(15)),
    )
    .await
    .unwrap()
}

/// 2026-03-29 at h:m:s UTC.
fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap()
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

/// A pending one-hour segment for `user_id` starting at `start`.
fn segment(user_id: &str, start: DateTime<Utc>) -> NewRecording {
    NewRecording {
        user_id: user(user_id),
        policy_id: 1,
        segment_start: start,
        segment_end: start + chrono::Duration::hours(1),
        requested_seconds: 3600,
        end_mode: EndMode::Expire,
        state: RecordingState::Pending,
        late_seconds: None,
        last_error: None,
    }
}

fn policy(name: &str, users: &[&str]) -> NewPolicy {
    NewPolicy {
        name: name.to_owned(),
        enabled: true,
        cron: "0 9 * * MON-FRI".to_owned(),
        timezone: "Europe/Amsterdam".to_owned(),
        window_seconds: 3600,
        end_mode: "expire".to_owned(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
    }
}
