//! The embedded backend: one SQLite file through sqlx, the default.
//!
//! # Invariants
//! - Exactly once: a burst is claimed with
//!   `INSERT .. ON CONFLICT (user_id, segment_start) DO NOTHING` inside
//!   `BEGIN IMMEDIATE` before any request is sent; whoever gets an id owns
//!   the segment, across tasks, handles and processes.
//! - Timestamps are UTC text in the one canonical form of
//!   [`crate::clock::format_utc`] (SQLite has no time type; fixed-width
//!   text sorts in time order); the `created_at`/`updated_at` columns are
//!   SQLite's own, so edits made with `sqlite3` are stamped too.
//! - A column may hold any type (an operator's `sqlite3` session does not
//!   check), so the queries of hand-edited tables select each column's
//!   `typeof` and its quoted value beside it, and the store refuses a
//!   wrong type itself.
//! - Single owner, unfenced: rows carry no owner and no lease, and writes
//!   are not fenced. One `recsched run` per file is the supported setup; a
//!   second one on the same file still never starts a segment twice (the
//!   claim decides), but each adopts every open row when it starts.
//!   Several active instances are what the PostgreSQL backend is for.
//!
//! # Layout
//! - this file: the [`Dialect`] (text instants, `BEGIN IMMEDIATE`, the
//!   queries of the tables operators edit by hand, with their type
//!   checks: policies, their users and teams, team members, exclusions,
//!   daemon state) and the claim.
//! - `batch`: a batch of row writes in a few multi-row statements.
//! - `open`: creating the file (mode 0600), connecting, migrating.

mod batch;
mod open;

use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqliteConnection};

use super::batch::RowEdit;
use super::db::{decode_problem, Db};
use super::dialect::Dialect;
use super::tables::recordings::claimed;
use super::{NewAttempt, NewRecording, RecordingId, StoreError};
use crate::clock::{format_utc, parse_utc};
use crate::recording::RecordingState;

/// A handle on a SQLite file.
pub type SqliteStore = Db<Sqlite>;

/// Where a SQLite handle points: the file, which every error names.
#[derive(Debug, Clone)]
pub struct Site {
    path: Arc<Path>,
    /// Shared with the pool, which retires connections that may be stuck
    /// read-only; [`Dialect::error`] fills it in.
    read_only_seen: Arc<open::ReadOnlySeen>,
}

/// Rows per multi-row claim INSERT (9 parameters each, well under
/// SQLite's 32,766).
const CLAIM_CHUNK: usize = 1000;

impl Dialect for Sqlite {
    type Time = String;

    fn encode_time(at: DateTime<Utc>) -> String {
        format_utc(at)
    }

    fn read_time(row: &SqliteRow, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        let raw: Option<String> = row.try_get(column).map_err(decode_problem)?;
        raw.map(|raw| {
            parse_utc(&raw).map_err(|e| {
                format!("`{raw}` is not a UTC timestamp like 2026-03-29T01:00:00.000Z ({e})")
            })
        })
        .transpose()
    }

    fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
        parse_utc(&format_utc(at)).unwrap_or(at)
    }

    type Site = Site;

    fn error(site: &Site, context: &'static str, source: sqlx::Error) -> StoreError {
        let error = StoreError::from_sqlx(&site.path, context, source);
        if matches!(error, StoreError::ReadOnly { .. }) {
            site.read_only_seen.note();
        }
        error
    }

    const BEGIN_WRITE: &'static str = "BEGIN IMMEDIATE";
    const SNAPSHOT: Option<&'static str> = None;
    const LOOSE_TYPES: bool = true;

    // The write lock is the transaction's (BEGIN IMMEDIATE); no owner.
    fn lock_rows<'c>(
        conn: &'c mut SqliteConnection,
        _: &'c Site,
        ids: &'c [i64],
    ) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
        batch::lock_rows(conn, ids)
    }

    fn update_rows<'c, 'e: 'c>(
        conn: &'c mut SqliteConnection,
        _: &'c Site,
        edits: &'c [RowEdit<'e>],
    ) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
        batch::update_rows(conn, edits)
    }

    fn insert_attempts<'c, 'a: 'c>(
        conn: &'c mut SqliteConnection,
        attempts: &'c [&'a NewAttempt],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        batch::insert_attempts(conn, attempts)
    }

    const POLICIES: &'static str = "SELECT id, \
        typeof(name) AS name_type, CAST(quote(name) AS BLOB) AS name_quoted, \
        CAST(name AS BLOB) AS name, \
        typeof(enabled) AS enabled_type, CAST(quote(enabled) AS BLOB) AS enabled_quoted, \
        enabled, \
        typeof(cron) AS cron_type, CAST(quote(cron) AS BLOB) AS cron_quoted, \
        CAST(cron AS BLOB) AS cron, \
        typeof(timezone) AS timezone_type, CAST(quote(timezone) AS BLOB) AS timezone_quoted, \
        CAST(timezone AS BLOB) AS timezone, \
        typeof(window_seconds) AS window_seconds_type, \
        CAST(quote(window_seconds) AS BLOB) AS window_seconds_quoted, window_seconds, \
        typeof(end_mode) AS end_mode_type, CAST(quote(end_mode) AS BLOB) AS end_mode_quoted, \
        CAST(end_mode AS BLOB) AS end_mode \
        FROM policies WHERE ($1 IS NULL OR name = $1) ORDER BY id";

    // `p.id` is NULL for a row that names no policy: an orphan.
    const POLICY_USERS: &'static str = "SELECT u.rowid AS id, p.id AS policy, \
        CAST(quote(u.policy_id) AS BLOB) AS policy_id_quoted, \
        typeof(u.user_id) AS user_id_type, CAST(quote(u.user_id) AS BLOB) AS user_id_quoted, \
        CAST(u.user_id AS BLOB) AS user_id \
        FROM policy_users u LEFT JOIN policies p ON p.id = u.policy_id \
        WHERE ($1 IS NULL OR u.policy_id IN (SELECT id FROM policies WHERE name = $1)) \
        ORDER BY u.policy_id, u.user_id";

    const USER_KEY: &'static str = "rowid";

    const POLICY_TEAMS: &'static str = "SELECT t.rowid AS id, p.id AS policy, \
        CAST(quote(t.policy_id) AS BLOB) AS policy_id_quoted, \
        typeof(t.team_id) AS team_id_type, CAST(quote(t.team_id) AS BLOB) AS team_id_quoted, \
        CAST(t.team_id AS BLOB) AS team_id \
        FROM policy_teams t LEFT JOIN policies p ON p.id = t.policy_id \
        WHERE ($1 IS NULL OR t.policy_id IN (SELECT id FROM policies WHERE name = $1)) \
        ORDER BY t.policy_id, t.team_id";

    const TEAM_MEMBERS: &'static str = "SELECT m.rowid AS id, \
        typeof(m.team_id) AS team_id_type, CAST(quote(m.team_id) AS BLOB) AS team_id_quoted, \
        CAST(m.team_id AS BLOB) AS team_id, \
        typeof(m.user_id) AS user_id_type, CAST(quote(m.user_id) AS BLOB) AS user_id_quoted, \
        CAST(m.user_id AS BLOB) AS user_id \
        FROM team_members m WHERE m.team_id IN (SELECT team_id FROM policy_teams \
            WHERE ($1 IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1))) \
        ORDER BY m.team_id, m.user_id";

    // BEGIN IMMEDIATE: one writer at a time.
    const LOCK_TEAM: Option<&'static str> = None;

    const DAEMON_STATE: &'static str = "SELECT rowid AS id, typeof(value) AS value_type, \
        CAST(quote(value) AS BLOB) AS value_quoted, CAST(value AS BLOB) AS value \
        FROM daemon_state WHERE key = $1";

    const EXCLUSIONS: &'static str = "SELECT e.id, p.id AS policy, \
        e.policy_id IS NULL AS every_policy, \
        CAST(quote(e.policy_id) AS BLOB) AS policy_id_quoted, \
        typeof(e.user_id) AS user_id_type, CAST(quote(e.user_id) AS BLOB) AS user_id_quoted, \
        CAST(e.user_id AS BLOB) AS user_id, \
        typeof(e.starts_at) AS starts_at_type, \
        CAST(quote(e.starts_at) AS BLOB) AS starts_at_quoted, \
        CAST(e.starts_at AS BLOB) AS starts_at, \
        typeof(e.ends_at) AS ends_at_type, CAST(quote(e.ends_at) AS BLOB) AS ends_at_quoted, \
        CAST(e.ends_at AS BLOB) AS ends_at, \
        typeof(e.timezone) AS timezone_type, \
        CAST(quote(e.timezone) AS BLOB) AS timezone_quoted, \
        CAST(e.timezone AS BLOB) AS timezone, \
        typeof(e.reason) AS reason_type, CAST(quote(e.reason) AS BLOB) AS reason_quoted, \
        CAST(e.reason AS BLOB) AS reason \
        FROM exclusions e LEFT JOIN policies p ON p.id = e.policy_id ORDER BY e.id";

    const LOCK_EXCLUSIONS: Option<&'static str> = None;
}

impl Db<Sqlite> {
    /// The database file this handle writes to.
    pub fn path(&self) -> &Path {
        &self.site.path
    }

    /// Deletes those of `ids` still pending with nothing sent (no contact
    /// id, no attempt), in one transaction; how many it deleted.
    pub async fn withdraw_pending(&self, ids: &[RecordingId]) -> Result<u64, StoreError> {
        let context = "withdrawing rows claimed ahead";
        let mut tx = self.begin_write(context).await?;
        let mut deleted = 0;
        for id in ids {
            deleted += sqlx::query(
                "DELETE FROM recordings WHERE id = ?1 AND state = ?2 AND contact_id IS NULL \
                   AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.recording_id = ?1)",
            )
            .bind(id.get())
            .bind(RecordingState::Pending.as_str())
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?
            .rows_affected();
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(deleted)
    }

    /// Claims many segments in one `BEGIN IMMEDIATE` transaction (one lock,
    /// one fsync), for the burst of thousands of users whose windows open
    /// at the same instant: multi-row INSERTs of [`CLAIM_CHUNK`] rows, not
    /// one statement per row. The answer is in input order.
    pub async fn claim_many(
        &self,
        new: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        let context = "claiming segments";
        let mut tx = self.begin_write(context).await?;
        let mut ids = Vec::with_capacity(new.len());
        for chunk in new.chunks(CLAIM_CHUNK) {
            let mut q = sqlx::QueryBuilder::<Sqlite>::new(
                "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
                 requested_seconds, end_mode, state, late_seconds, last_error) ",
            );
            q.push_values(chunk, |mut b, new| {
                b.push_bind(new.user_id.as_str())
                    .push_bind(new.policy_id)
                    .push_bind(format_utc(new.segment_start))
                    .push_bind(format_utc(new.segment_end))
                    .push_bind(i64::from(new.requested_seconds))
                    .push_bind(new.end_mode.as_str())
                    .push_bind(new.state.as_str())
                    .push_bind(new.late_seconds)
                    .push_bind(new.last_error.as_deref());
            });
            q.push(
                " ON CONFLICT (user_id, segment_start) DO NOTHING \
                 RETURNING id, user_id, segment_start",
            );
            let rows = q
                .build()
                .fetch_all(&mut *tx)
                .await
                .map_err(self.err(context))?;
            ids.extend(claimed::<Sqlite>(chunk, &rows)?);
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(ids)
    }
}
