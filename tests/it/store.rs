//! The store against real SQLite files in temporary directories.
//!
//! Plain-SQL edits are made through a second, independent sqlx connection,
//! the way an operator's `sqlite3` session would make them.

mod attempts;
mod concurrency;
mod open;
mod policies;
mod recordings;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use recsched::recording::{RecordingState, UserId};
use recsched::store::{EndMode, NewPolicy, NewRecording, Settings, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;

/// Settings for `name` inside `dir`.
fn settings_in(dir: &Path, name: &str) -> Settings {
    Settings {
        path: dir.join(name),
        busy_timeout: Duration::from_secs(15),
        ..Settings::default()
    }
}

/// A fresh, migrated database in its own temporary directory.
async fn temp_store() -> (TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&settings_in(dir.path(), "recsched.db"))
        .await
        .unwrap();
    (dir, store)
}

/// A connection of its own, like an operator's sqlite3 session.
async fn operator(path: &Path) -> SqliteConnection {
    SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(path))
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
