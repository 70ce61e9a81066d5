//! The durable state of recsched: policy rows, recording rows and their
//! audit trail, in one SQLite file through sqlx.
//!
//! # Why a layer of its own
//! Every other module works with typed values; this one is the only place
//! that speaks SQL, knows the schema (`migrations/sqlite/`) and turns
//! SQLite's result codes into a [`StoreError`] an operator can act on. It
//! converts rows to the vocabulary of `policy` ([`PolicyRow`]) and
//! `recording` ([`RecordingState`], [`ContactId`], ...), never the reverse.
//!
//! # Invariants
//! - Exactly once: a recording row is claimed with
//!   `INSERT .. ON CONFLICT (user_id, segment_start) DO NOTHING` inside
//!   `BEGIN IMMEDIATE` before any request is sent; whoever gets an id owns
//!   the segment, across tasks, handles and processes.
//! - A recording row only moves along [`RecordingState::can_move_to`], and
//!   the guard is in SQL (`WHERE state = ?`), so a concurrent writer can
//!   never make a row go backwards.
//! - Timestamps are UTC text in the one canonical form of
//!   [`crate::clock::format_utc`]; the store never reads the clock (the
//!   `created_at`/`updated_at` columns are SQLite's own, so edits made with
//!   `sqlite3` are stamped too).
//! - Values always travel as bind parameters.
//!
//! # Layout
//! - `error`: [`StoreError`] and the classification of SQLite codes.
//! - `open`: creating the file (mode 0600), connecting, migrating.
//! - `policies`: policy rows and their users; the revision counter.
//! - `recordings`: claiming segments and moving rows through their states.
//! - `attempts`: the per-exchange audit trail.
//! - `daemon_state`: small key/value facts that survive a restart.
//! - `row`: reading columns back into types, naming the row on failure.
//!
//! Depends on `policy` and `recording` only.

mod attempts;
mod daemon_state;
mod error;
mod open;
mod policies;
mod recordings;
mod row;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Sqlite, SqlitePool, Transaction};

pub use attempts::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, OwnedOutcome, RowWrite,
    RESPONSE_BODY_MAX_BYTES,
};
pub use error::StoreError;
pub use policies::NewPolicy;
pub use recordings::{EndMode, NewRecording, RecordingFilter, RecordingId, RecordingRow};

#[cfg(doc)]
use crate::{policy::PolicyRow, recording::ContactId, recording::RecordingState};

/// Where the database lives and how long a write waits for a lock.
///
/// In TOML (section `[database]`): `path = "/var/lib/recsched/recsched.db"`,
/// `busy_timeout_seconds = 15`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The SQLite file; created (mode 0600) if missing. Its directory must
    /// exist.
    pub path: PathBuf,
    /// How long a statement waits for another writer's lock before it
    /// fails with [`StoreError::Busy`].
    #[serde(rename = "busy_timeout_seconds", deserialize_with = "seconds")]
    pub busy_timeout: Duration,
}

impl Settings {
    pub const DEFAULT_PATH: &'static str = "./recsched.db";
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            path: PathBuf::from(Self::DEFAULT_PATH),
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
        }
    }
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = <f64 as serde::Deserialize>::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(|_| {
        serde::de::Error::custom(format!(
            "{secs} is not a number of seconds (must be finite and not negative)"
        ))
    })
}

/// A cheap-to-clone handle on the database: an `Arc`'d sqlx pool plus the
/// file's path, which every error names.
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Kept only to name the file in errors.
    path: Arc<Path>,
}

impl Store {
    /// The database file this handle writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection; pending statements finish first. Further
    /// calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Turns a sqlx error on this database into a [`StoreError`].
    fn err(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::from_sqlx(&self.path, context, source)
    }

    /// A write transaction that holds the write lock from its first
    /// statement (`BEGIN IMMEDIATE`), so its reads cannot be overtaken by
    /// another writer and it never fails half-way with a lock upgrade
    /// error. Waits up to the busy timeout for the lock.
    async fn begin_immediate(
        &self,
        context: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(self.err(context))
    }

    /// A read transaction: several queries see one snapshot.
    async fn begin_read(
        &self,
        context: &'static str,
    ) -> Result<Transaction<'static, Sqlite>, StoreError> {
        self.pool.begin().await.map_err(self.err(context))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_default_and_read_seconds_from_toml() {
        let s: Settings = toml::from_str("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.busy_timeout, Duration::from_secs(15));
        assert_eq!(s.path, PathBuf::from("./recsched.db"));

        let s: Settings =
            toml::from_str("path = \"/var/lib/recsched/r.db\"\nbusy_timeout_seconds = 2.5")
                .unwrap();
        assert_eq!(s.busy_timeout, Duration::from_millis(2500));
        assert_eq!(s.path, PathBuf::from("/var/lib/recsched/r.db"));

        let s: Settings = toml::from_str("busy_timeout_seconds = 3").unwrap();
        assert_eq!(s.busy_timeout, Duration::from_secs(3));

        assert!(toml::from_str::<Settings>("busy_timeout_seconds = -1").is_err());
        assert!(toml::from_str::<Settings>("busy_timeout = 1").is_err());
    }
}
