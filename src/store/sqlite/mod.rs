//! The embedded backend: one SQLite file through sqlx, the default.
//!
//! # Invariants
//! - Exactly once: a recording row is claimed with
//!   `INSERT .. ON CONFLICT (user_id, segment_start) DO NOTHING` inside
//!   `BEGIN IMMEDIATE` before any request is sent; whoever gets an id owns
//!   the segment, across tasks, handles and processes.
//! - Timestamps are UTC text in the one canonical form of
//!   [`crate::clock::format_utc`] (SQLite has no time type; fixed-width
//!   text sorts in time order); the `created_at`/`updated_at` columns are
//!   SQLite's own, so edits made with `sqlite3` are stamped too.
//! - Single owner: rows carry no lease. One `recsched run` per file is the
//!   supported setup; a second one on the same file still never starts a
//!   segment twice (the claim decides), but each adopts every open row
//!   when it starts. Several active instances are what the PostgreSQL
//!   backend is for.
//!
//! # Layout
//! - `open`: creating the file (mode 0600), connecting, migrating.
//! - `policies`, `recordings`, `attempts`, `daemon_state`, `teams`: the
//!   queries.
//! - `row`: reading columns back into types, naming the row on failure.

mod attempts;
mod daemon_state;
mod exclusions;
mod open;
mod policies;
mod recordings;
mod report;
mod row;
mod teams;

use std::path::Path;
use std::sync::Arc;

use sqlx::{Sqlite, SqlitePool, Transaction};

use super::StoreError;

/// A cheap-to-clone handle on a SQLite file: an `Arc`'d sqlx pool plus the
/// file's path, which every error names.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// Kept only to name the file in errors.
    path: Arc<Path>,
    /// Shared with the pool, which retires connections that may be stuck
    /// read-only; [`SqliteStore::err`] fills it in.
    read_only_seen: Arc<open::ReadOnlySeen>,
}

impl SqliteStore {
    /// The database file this handle writes to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes every connection; pending statements finish first. Further
    /// calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Turns a sqlx error on this database into a [`StoreError`]. Every
    /// error of this backend goes through here, so that a read-only answer
    /// retires the pool's connections that may be stuck in that state.
    fn err(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| {
            let error = StoreError::from_sqlx(&self.path, context, source);
            if matches!(error, StoreError::ReadOnly { .. }) {
                self.read_only_seen.note();
            }
            error
        }
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
