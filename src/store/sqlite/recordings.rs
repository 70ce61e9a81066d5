//! Recording rows in SQLite: claiming a segment before its start request
//! is sent, then moving the row through its states as answers arrive.
//!
//! This is the store's half of "exactly once": [`SqliteStore::claim`] inserts
//! the write-ahead row under the `UNIQUE (user_id, segment_start)` key, and
//! only the caller that gets an id back may send the start. State moves
//! follow `RecordingState::can_move_to` and are guarded in SQL, so two
//! writers (tasks, processes) can race without a row going backwards.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use crate::clock::format_utc;
use crate::recording::{ContactId, InteractionId, RecordingState, UserId};

use super::row::{non_negative_u32, parse_time, Cols};
use super::SqliteStore;
use crate::store::recordings::{ends_after, occupancy};
use crate::store::{
    BadRow, EndMode, NewRecording, RecordingFilter, RecordingId, RecordingRow, Rows, StoreError,
};

/// The columns of a [`RecordingRow`], in SQL.
macro_rules! recording_columns {
    () => {
        "id, user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, \
         state, contact_id, interaction_id, attempts, last_error, late_seconds, ended_at, \
         created_at, updated_at"
    };
}

const CLAIM_SQL: &str = "INSERT INTO recordings \
     (user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, state, \
      late_seconds, last_error) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) \
     ON CONFLICT (user_id, segment_start) DO NOTHING \
     RETURNING id";

/// Rows per multi-row claim INSERT (9 parameters each, well under
/// SQLite's 32,766).
const CLAIM_CHUNK: usize = 1000;

impl SqliteStore {
    /// Claims one segment: inserts its row unless one already exists for
    /// the same user and segment start. `Some(id)` means the caller owns
    /// the segment and may send the start; `None` means someone else
    /// already has it (another task, process, or an earlier run).
    pub async fn claim(&self, new: &NewRecording) -> Result<Option<RecordingId>, StoreError> {
        let mut tx = self.begin_immediate("claiming a segment").await?;
        let id = self.insert_claim(&mut tx, new).await?;
        tx.commit().await.map_err(self.err("committing a claim"))?;
        Ok(id)
    }

    /// Claims many segments in one `BEGIN IMMEDIATE` transaction (one lock,
    /// one fsync), for the burst of thousands of users whose windows open
    /// at the same instant: multi-row INSERTs of [`CLAIM_CHUNK`] rows, not
    /// one statement per row. The answer is in input order.
    pub async fn claim_many(
        &self,
        new: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        let mut tx = self.begin_immediate("claiming segments").await?;
        let mut ids = Vec::with_capacity(new.len());
        for chunk in new.chunks(CLAIM_CHUNK) {
            ids.extend(self.insert_claims(&mut tx, chunk).await?);
        }
        tx.commit().await.map_err(self.err("committing claims"))?;
        Ok(ids)
    }

    async fn insert_claims(
        &self,
        conn: &mut SqliteConnection,
        chunk: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        let mut q = sqlx::QueryBuilder::<sqlx::Sqlite>::new(
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
            " ON CONFLICT (user_id, segment_start) DO NOTHING RETURNING id, user_id, segment_start",
        );
        let rows: Vec<(i64, String, String)> = q
            .build_query_as()
            .fetch_all(&mut *conn)
            .await
            .map_err(self.err("claiming segments"))?;
        // RETURNING lists only the rows inserted, in no promised order: map
        // them back by their key. A key given twice is claimed once.
        let mut won: std::collections::HashMap<(String, String), i64> = rows
            .into_iter()
            .map(|(id, user, start)| ((user, start), id))
            .collect();
        Ok(chunk
            .iter()
            .map(|new| {
                won.remove(&(
                    new.user_id.as_str().to_owned(),
                    format_utc(new.segment_start),
                ))
                .map(RecordingId::new)
            })
            .collect())
    }

    async fn insert_claim(
        &self,
        conn: &mut SqliteConnection,
        new: &NewRecording,
    ) -> Result<Option<RecordingId>, StoreError> {
        let id: Option<i64> = sqlx::query_scalar(CLAIM_SQL)
            .bind(new.user_id.as_str())
            .bind(new.policy_id)
            .bind(format_utc(new.segment_start))
            .bind(format_utc(new.segment_end))
            .bind(i64::from(new.requested_seconds))
            .bind(new.end_mode.as_str())
            .bind(new.state.as_str())
            .bind(new.late_seconds)
            .bind(new.last_error.as_deref())
            .fetch_optional(conn)
            .await
            .map_err(self.err("claiming a segment"))?;
        Ok(id.map(RecordingId::new))
    }

    /// Records the start's answer: keeps the contact id (and interaction
    /// id) and the number of start attempts, and moves the row from
    /// `pending` to `recording`, clearing the last error. Returns whether
    /// the state moved.
    ///
    /// The ids are kept even when the row is no longer `pending` (say it
    /// was marked `failed` while the answer was in flight): the vendor is
    /// recording, and a stop needs the contact id.
    pub async fn mark_started(
        &self,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: u32,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_immediate("recording a start").await?;
        let moved = self
            .started_on(&mut tx, id, contact_id, interaction_id, Some(attempts))
            .await?;
        tx.commit().await.map_err(self.err("committing a start"))?;
        Ok(moved)
    }

    pub(super) async fn started_on(
        &self,
        conn: &mut SqliteConnection,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: Option<u32>,
    ) -> Result<bool, StoreError> {
        let context = "recording a start";
        let from = self.state_on(conn, id).await?;
        sqlx::query(
            "UPDATE recordings SET contact_id = ?, interaction_id = COALESCE(?, interaction_id), \
             attempts = COALESCE(?, attempts) WHERE id = ?",
        )
        .bind(contact_id.get())
        .bind(interaction_id.map(|i| i.0.as_str()))
        .bind(attempts.map(i64::from))
        .bind(id.get())
        .execute(&mut *conn)
        .await
        .map_err(self.err(context))?;
        if from != RecordingState::Pending {
            return Ok(false);
        }
        let done = sqlx::query(
            "UPDATE recordings SET state = ?, last_error = NULL WHERE id = ? AND state = ?",
        )
        .bind(RecordingState::Recording.as_str())
        .bind(id.get())
        .bind(from.as_str())
        .execute(&mut *conn)
        .await
        .map_err(self.err(context))?;
        Ok(done.rows_affected() == 1)
    }

    /// Moves a row to `to`, if the state diagram allows it from where the
    /// row stands. `last_error` and `ended_at` are written when given and
    /// left alone when `None`. Returns whether the row moved: `false` if it
    /// was already in `to`. A move the diagram forbids (say `stopped` back
    /// to `recording`) is [`StoreError::IllegalMove`] and changes nothing.
    pub async fn set_state(
        &self,
        id: RecordingId,
        to: RecordingState,
        last_error: Option<&str>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.begin_immediate("changing a recording's state").await?;
        let moved = self.move_on(&mut tx, id, to, last_error, ended_at).await?;
        tx.commit()
            .await
            .map_err(self.err("committing a state change"))?;
        Ok(moved)
    }

    pub(super) async fn move_on(
        &self,
        conn: &mut SqliteConnection,
        id: RecordingId,
        to: RecordingState,
        last_error: Option<&str>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let from = self.state_on(conn, id).await?;
        if from == to {
            return Ok(false);
        }
        if !from.can_move_to(to) {
            return Err(StoreError::IllegalMove { id, from, to });
        }
        // The `state = ?` guard is what keeps a concurrent writer from
        // regressing the row, even outside a transaction.
        let done = sqlx::query(
            "UPDATE recordings SET state = ?, last_error = COALESCE(?, last_error), \
             ended_at = COALESCE(?, ended_at) WHERE id = ? AND state = ?",
        )
        .bind(to.as_str())
        .bind(last_error)
        .bind(ended_at.map(format_utc))
        .bind(id.get())
        .bind(from.as_str())
        .execute(&mut *conn)
        .await
        .map_err(self.err("changing a recording's state"))?;
        Ok(done.rows_affected() == 1)
    }

    /// Counts one more start attempt; returns the new count.
    pub async fn bump_attempts(&self, id: RecordingId) -> Result<u32, StoreError> {
        let count: Option<i64> = sqlx::query_scalar(
            "UPDATE recordings SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("counting an attempt"))?;
        let count = count.ok_or(StoreError::RecordingNotFound(id))?;
        non_negative_u32(count)
            .map_err(|e| StoreError::bad_row("recordings", id.get(), "attempts", e))
    }

    /// The row's current state.
    async fn state_on(
        &self,
        conn: &mut SqliteConnection,
        id: RecordingId,
    ) -> Result<RecordingState, StoreError> {
        let raw: Option<String> = sqlx::query_scalar("SELECT state FROM recordings WHERE id = ?")
            .bind(id.get())
            .fetch_optional(&mut *conn)
            .await
            .map_err(self.err("reading a recording's state"))?;
        let raw = raw.ok_or(StoreError::RecordingNotFound(id))?;
        raw.parse()
            .map_err(|e| StoreError::bad_row("recordings", id.get(), "state", e))
    }

    /// One row by id. A row that does not read back is
    /// [`StoreError::BadRow`].
    pub async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = ?"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("reading a recording"))?;
        Ok(row.as_ref().map(judged).transpose()?)
    }

    /// Rows matching `filter`, newest segment first.
    ///
    /// A row that does not read back (an operator's edit) fails the whole
    /// call with [`StoreError::BadRow`] naming it; [`Self::read_recordings`]
    /// skips and names it instead.
    pub async fn recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let read = self.read_recordings(filter).await?;
        match read.bad.into_iter().next() {
            Some(bad) => Err(bad.into()),
            None => Ok(read.rows),
        }
    }

    /// Rows matching `filter`, newest segment first, and the rows among
    /// them that do not read back.
    pub async fn read_recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Rows<RecordingRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings \
              WHERE (?1 IS NULL OR user_id = ?1) \
                AND (?2 IS NULL OR state = ?2) \
                AND (?3 IS NULL OR COALESCE(ended_at, segment_end) > ?3) \
              ORDER BY segment_start DESC, id DESC \
              LIMIT ?4"
        ))
        .bind(filter.user.as_ref().map(UserId::as_str))
        .bind(filter.state.map(RecordingState::as_str))
        .bind(filter.since.map(format_utc))
        .bind(filter.limit.map_or(-1, i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("listing recordings"))?;
        Ok(rows.iter().map(judged).collect())
    }

    /// Rows not yet final (`pending`, `recording`, `stopping`), oldest
    /// segment first: what the daemon must track again after a restart;
    /// and the open rows that do not read back, which it must leave alone.
    pub async fn open_rows(&self) -> Result<Rows<RecordingRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state IN (?, ?, ?) ORDER BY segment_start, id"
        ))
        .bind(RecordingState::Pending.as_str())
        .bind(RecordingState::Recording.as_str())
        .bind(RecordingState::Stopping.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading open recordings"))?;
        Ok(rows.iter().map(judged).collect())
    }

    /// Every segment, in any state, still occupying its user after `since`
    /// (effective end `COALESCE(ended_at, segment_end)` later than it) or
    /// not yet final, as `(user, segment_start, effective_end)`, by user
    /// then start. A failed or missed segment occupies its slot too, so the
    /// planner does not claim it again as a new row.
    ///
    /// Each row is judged on the columns that place it in time (user id,
    /// segment start and end, `ended_at`, state): one that does not read
    /// back is named in `bad`, and if its user id reads, that user is
    /// occupied [`until_fixed`]: nothing is planned for the user while the
    /// row is broken. (The other columns matter to the rows the daemon
    /// adopts, which [`Self::open_rows`] judges whole.)
    ///
    /// [`until_fixed`]: crate::store::until_fixed
    pub async fn occupied_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Rows<(UserId, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        // Only what places the row in time is read (and judged): a pass
        // reads every row occupying a user, up to one per user of a burst.
        let rows = sqlx::query(
            "SELECT id, user_id, segment_start, segment_end, ended_at, state FROM recordings \
             WHERE COALESCE(ended_at, segment_end) > ?1 OR state IN (?2, ?3, ?4) \
             ORDER BY user_id, segment_start",
        )
        .bind(format_utc(since))
        .bind(RecordingState::Pending.as_str())
        .bind(RecordingState::Recording.as_str())
        .bind(RecordingState::Stopping.as_str())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading occupied segments"))?;
        Ok(occupancy(rows.iter().map(|row| {
            occupying(row).map_err(|bad| with_user(row, bad))
        })))
    }
}

/// The span a row keeps its user occupied: its user, start and effective
/// end, judged with its state (the columns that place it in time).
fn occupying(row: &SqliteRow) -> Result<(UserId, DateTime<Utc>, DateTime<Utc>), BadRow> {
    let c = Cols::new(row, "recordings")?;
    let user = c.map("user_id", |raw: String| UserId::parse(raw))?;
    let start = c.time("segment_start")?;
    let end = c.map("segment_end", |raw: String| {
        parse_time(&raw).and_then(|end| ends_after(end, start))
    })?;
    let ended_at = c.opt_time("ended_at")?;
    c.map("state", |raw: String| raw.parse::<RecordingState>())?;
    Ok((user, start, ended_at.unwrap_or(end)))
}

/// `bad`, with the user it keeps occupied when the row's user id reads.
fn with_user(row: &SqliteRow, bad: BadRow) -> BadRow {
    let user = Cols::new(row, "recordings")
        .and_then(|c| c.map("user_id", |raw: String| UserId::parse(raw)));
    match user {
        Ok(user) => bad.occupying(user),
        Err(_) => bad,
    }
}

/// A row read back, or named with the user it keeps occupied (when the
/// user id itself reads).
fn judged(row: &SqliteRow) -> Result<RecordingRow, BadRow> {
    recording_row(row).map_err(|bad| with_user(row, bad))
}

fn recording_row(row: &SqliteRow) -> Result<RecordingRow, BadRow> {
    let c = Cols::new(row, "recordings")?;
    let segment_start = c.time("segment_start")?;
    Ok(RecordingRow {
        id: RecordingId::new(c.id()),
        user_id: c.map("user_id", |raw: String| UserId::parse(raw))?,
        policy_id: c.get("policy_id")?,
        segment_start,
        segment_end: c.map("segment_end", |raw: String| {
            parse_time(&raw).and_then(|end| ends_after(end, segment_start))
        })?,
        requested_seconds: c.map("requested_seconds", non_negative_u32)?,
        end_mode: c.map("end_mode", |raw: String| raw.parse::<EndMode>())?,
        state: c.map("state", |raw: String| raw.parse::<RecordingState>())?,
        contact_id: c.map_opt("contact_id", ContactId::new)?,
        interaction_id: c
            .get::<Option<String>>("interaction_id")?
            .map(InteractionId),
        attempts: c.map("attempts", non_negative_u32)?,
        last_error: c.get("last_error")?,
        late_seconds: c.get("late_seconds")?,
        ended_at: c.opt_time("ended_at")?,
        created_at: c.time("created_at")?,
        updated_at: c.time("updated_at")?,
    })
}
