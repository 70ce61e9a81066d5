//! Recording rows in PostgreSQL: claiming segments (one statement for a
//! whole burst) and moving rows through their states under a row lock.

use std::collections::HashMap;

use chrono::{DateTime, DurationRound, Utc};
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use crate::recording::{ContactId, InteractionId, RecordingState, UserId};
use crate::store::recordings::{ends_after, occupancy};
use crate::store::{
    BadRow, EndMode, NewRecording, RecordingFilter, RecordingId, RecordingRow, Rows, StoreError,
};

use super::row::{non_negative_u32, Cols};
use super::{PgStore, OPEN_STATES};

/// The columns of a [`RecordingRow`], in SQL.
macro_rules! recording_columns {
    () => {
        "id, user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, \
         state, contact_id, interaction_id, attempts, last_error, late_seconds, ended_at, \
         created_at, updated_at"
    };
}
pub(super) use recording_columns;

/// Claims a burst in one statement. The rows go in (user, start) order so
/// that instances claiming the same burst lock the same keys in the same
/// order. The owner and the lease are written only for a handle made for
/// an instance.
const CLAIM_SQL: &str = "INSERT INTO recordings \
     (user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, state, \
      late_seconds, last_error, owner, lease_until) \
     SELECT u, p, s, e, r, m, st, l, le, $10::text, \
            CASE WHEN $10::text IS NULL THEN NULL \
                 ELSE now() + make_interval(secs => $11::float8) END \
     FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], \
                 $5::bigint[], $6::text[], $7::text[], $8::float8[], $9::text[]) \
          AS t(u, p, s, e, r, m, st, l, le) \
     ORDER BY u, s \
     ON CONFLICT (user_id, segment_start) DO NOTHING \
     RETURNING id, user_id, segment_start";

/// The key of a claim as PostgreSQL keeps it (microsecond precision).
fn key(user: &str, start: DateTime<Utc>) -> (String, DateTime<Utc>) {
    let start = start
        .duration_trunc(chrono::Duration::microseconds(1))
        .unwrap_or(start);
    (user.to_owned(), start)
}

impl PgStore {
    pub async fn claim(&self, new: &NewRecording) -> Result<Option<RecordingId>, StoreError> {
        let ids = self.claim_many(std::slice::from_ref(new)).await?;
        Ok(ids.into_iter().next().flatten())
    }

    pub async fn claim_many(
        &self,
        new: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let context = "claiming segments";
        let rows: Vec<(i64, String, DateTime<Utc>)> = sqlx::query_as(CLAIM_SQL)
            .bind(new.iter().map(|n| n.user_id.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.policy_id).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.segment_start).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.segment_end).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|n| i64::from(n.requested_seconds))
                    .collect::<Vec<_>>(),
            )
            .bind(new.iter().map(|n| n.end_mode.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.state.as_str()).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.late_seconds).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|n| n.last_error.as_deref())
                    .collect::<Vec<_>>(),
            )
            .bind(self.owner.as_deref())
            .bind(self.lease_secs())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err(context))?;
        let mut won: HashMap<(String, DateTime<Utc>), i64> = rows
            .into_iter()
            .map(|(id, user, start)| ((user, start), id))
            .collect();
        // A key given twice is won once: the first asker gets the id.
        Ok(new
            .iter()
            .map(|n| {
                won.remove(&key(n.user_id.as_str(), n.segment_start))
                    .map(RecordingId::new)
            })
            .collect())
    }

    pub async fn mark_started(
        &self,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: u32,
    ) -> Result<bool, StoreError> {
        let context = "recording a start";
        let mut tx = self.begin(context).await?;
        let moved = self
            .started_on(&mut tx, id, contact_id, interaction_id, Some(attempts))
            .await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(moved)
    }

    pub(super) async fn started_on(
        &self,
        conn: &mut PgConnection,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: Option<u32>,
    ) -> Result<bool, StoreError> {
        let context = "recording a start";
        let from = self.lock_state(conn, id).await?;
        let to = if from == RecordingState::Pending {
            RecordingState::Recording
        } else {
            from
        };
        sqlx::query(
            "UPDATE recordings SET contact_id = $1, \
             interaction_id = COALESCE($2, interaction_id), \
             attempts = COALESCE($3, attempts), state = $4, \
             last_error = CASE WHEN $5 THEN NULL ELSE last_error END \
             WHERE id = $6",
        )
        .bind(contact_id.get())
        .bind(interaction_id.map(|i| i.0.as_str()))
        .bind(attempts.map(i64::from))
        .bind(to.as_str())
        .bind(to != from)
        .bind(id.get())
        .execute(&mut *conn)
        .await
        .map_err(self.err(context))?;
        Ok(to != from)
    }

    pub async fn set_state(
        &self,
        id: RecordingId,
        to: RecordingState,
        last_error: Option<&str>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let context = "changing a recording's state";
        let mut tx = self.begin(context).await?;
        let moved = self.move_on(&mut tx, id, to, last_error, ended_at).await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(moved)
    }

    /// Moves the row under its row lock; checks legality before writing
    /// (a failed statement would abort the caller's whole transaction).
    pub(super) async fn move_on(
        &self,
        conn: &mut PgConnection,
        id: RecordingId,
        to: RecordingState,
        last_error: Option<&str>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let from = self.lock_state(conn, id).await?;
        if from == to {
            return Ok(false);
        }
        if !from.can_move_to(to) {
            return Err(StoreError::IllegalMove { id, from, to });
        }
        let done = sqlx::query(
            "UPDATE recordings SET state = $1, last_error = COALESCE($2, last_error), \
             ended_at = COALESCE($3, ended_at) WHERE id = $4 AND state = $5",
        )
        .bind(to.as_str())
        .bind(last_error)
        .bind(ended_at)
        .bind(id.get())
        .bind(from.as_str())
        .execute(&mut *conn)
        .await
        .map_err(self.err("changing a recording's state"))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn bump_attempts(&self, id: RecordingId) -> Result<u32, StoreError> {
        let count: Option<i64> = sqlx::query_scalar(
            "UPDATE recordings SET attempts = attempts + 1 WHERE id = $1 RETURNING attempts",
        )
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("counting an attempt"))?;
        let count = count.ok_or(StoreError::RecordingNotFound(id))?;
        non_negative_u32(count)
            .map_err(|e| StoreError::bad_row("recordings", id.get(), "attempts", e))
    }

    /// The row's current state, locking the row until the transaction ends.
    pub(super) async fn lock_state(
        &self,
        conn: &mut PgConnection,
        id: RecordingId,
    ) -> Result<RecordingState, StoreError> {
        let raw: Option<String> =
            sqlx::query_scalar("SELECT state FROM recordings WHERE id = $1 FOR UPDATE")
                .bind(id.get())
                .fetch_optional(&mut *conn)
                .await
                .map_err(self.err("reading a recording's state"))?;
        let raw = raw.ok_or(StoreError::RecordingNotFound(id))?;
        raw.parse()
            .map_err(|e| StoreError::bad_row("recordings", id.get(), "state", e))
    }

    pub async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = $1"
        ))
        .bind(id.get())
        .fetch_optional(&self.pool)
        .await
        .map_err(self.err("reading a recording"))?;
        Ok(row.as_ref().map(judged).transpose()?)
    }

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

    pub async fn read_recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Rows<RecordingRow>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings \
              WHERE ($1::text IS NULL OR user_id = $1) \
                AND ($2::text IS NULL OR state = $2) \
                AND ($3::timestamptz IS NULL OR COALESCE(ended_at, segment_end) > $3) \
              ORDER BY segment_start DESC, id DESC \
              LIMIT $4"
        ))
        .bind(filter.user.as_ref().map(UserId::as_str))
        .bind(filter.state.map(RecordingState::as_str))
        .bind(filter.since)
        .bind(filter.limit.map(i64::from))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("listing recordings"))?;
        Ok(rows.iter().map(judged).collect())
    }

    pub async fn open_rows(&self) -> Result<Rows<RecordingRow>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {} FROM recordings WHERE state IN {OPEN_STATES} ORDER BY segment_start, id",
            recording_columns!()
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading open recordings"))?;
        Ok(rows.iter().map(judged).collect())
    }

    /// As on SQLite: rows still occupying their user after `since` or not
    /// yet final; a bad one occupies its user [`until_fixed`].
    ///
    /// [`until_fixed`]: crate::store::until_fixed
    pub async fn occupied_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Rows<(UserId, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        // Only what places the row in time is read (and judged).
        let rows = sqlx::query(&format!(
            "SELECT id, user_id, segment_start, segment_end, ended_at, state FROM recordings \
             WHERE COALESCE(ended_at, segment_end) > $1 OR state IN {OPEN_STATES} \
             ORDER BY user_id, segment_start"
        ))
        .bind(since)
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
fn occupying(row: &PgRow) -> Result<(UserId, DateTime<Utc>, DateTime<Utc>), BadRow> {
    let c = Cols::new(row, "recordings")?;
    let user = c.map("user_id", |raw: String| UserId::parse(raw))?;
    let start = c.get("segment_start")?;
    let end = c.map("segment_end", |end| ends_after(end, start))?;
    let ended_at: Option<DateTime<Utc>> = c.get("ended_at")?;
    c.map("state", |raw: String| raw.parse::<RecordingState>())?;
    Ok((user, start, ended_at.unwrap_or(end)))
}

/// `bad`, with the user it keeps occupied when the row's user id reads.
fn with_user(row: &PgRow, bad: BadRow) -> BadRow {
    let user = Cols::new(row, "recordings")
        .and_then(|c| c.map("user_id", |raw: String| UserId::parse(raw)));
    match user {
        Ok(user) => bad.occupying(user),
        Err(_) => bad,
    }
}

/// A row read back, or named with the user it keeps occupied (when the
/// user id itself reads).
pub(super) fn judged(row: &PgRow) -> Result<RecordingRow, BadRow> {
    recording_row(row).map_err(|bad| with_user(row, bad))
}

fn recording_row(row: &PgRow) -> Result<RecordingRow, BadRow> {
    let c = Cols::new(row, "recordings")?;
    let segment_start = c.get("segment_start")?;
    Ok(RecordingRow {
        id: RecordingId::new(c.id()),
        user_id: c.map("user_id", |raw: String| UserId::parse(raw))?,
        policy_id: c.get("policy_id")?,
        segment_start,
        segment_end: c.map("segment_end", |end| ends_after(end, segment_start))?,
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
        ended_at: c.get("ended_at")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
    })
}
