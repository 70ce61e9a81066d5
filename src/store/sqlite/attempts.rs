//! The audit trail in SQLite. [`SqliteStore::finish_attempt`] writes the
//! exchange and its effect on the recording row in one transaction, so the
//! audit trail never disagrees with the row it explains.

use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use crate::clock::format_utc;

use super::row::{non_negative_u32, Cols};
use super::SqliteStore;
use crate::store::attempts::truncate_body;
use crate::store::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, RecordingId, RowWrite, StoreError,
};

impl SqliteStore {
    /// Writes one exchange to the audit trail; returns its row id.
    pub async fn record_attempt(&self, attempt: &NewAttempt) -> Result<i64, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.err("recording an attempt"))?;
        self.insert_attempt(&mut conn, attempt).await
    }

    /// Writes one exchange and its effect on the recording row in one
    /// `BEGIN IMMEDIATE` transaction: the audit row, the row's start
    /// attempt count (for a start), then `outcome`. Returns whether the
    /// row's state moved.
    ///
    /// If `outcome` is a move the state diagram forbids (typically a race:
    /// the row already reached a final state), the audit row is still
    /// committed, because the exchange did happen, and the call returns
    /// [`StoreError::IllegalMove`]. Any other error writes nothing.
    pub async fn finish_attempt(
        &self,
        attempt: &NewAttempt,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        let mut tx = self.begin_immediate(context).await?;
        let moved = self
            .apply_on(&mut tx, attempt.recording_id, Some(attempt), outcome)
            .await;
        // An illegal move still keeps the audit row: the request happened.
        tx.commit().await.map_err(self.err(context))?;
        moved
    }

    /// Applies many row writes (each an optional audit row and its effect)
    /// in ONE `BEGIN IMMEDIATE` transaction: one lock and one fsync for a
    /// whole burst instead of one per start. The outer error means nothing
    /// was written (busy, disk full); the inner results are per write
    /// (e.g. an illegal move, which changes only that row's audit trail).
    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let context = "writing a batch of recording updates";
        let mut tx = self.begin_immediate(context).await?;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let r = self
                .apply_on(
                    &mut tx,
                    w.recording_id,
                    w.attempt.as_ref(),
                    w.outcome.borrowed(),
                )
                .await;
            // A database-level failure aborts the whole batch.
            match r {
                Err(e)
                    if !matches!(
                        e,
                        StoreError::IllegalMove { .. } | StoreError::RecordingNotFound(_)
                    ) =>
                {
                    return Err(e)
                }
                r => results.push(r),
            }
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(results)
    }

    async fn apply_on(
        &self,
        tx: &mut SqliteConnection,
        id: RecordingId,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        if let Some(attempt) = attempt {
            self.insert_attempt(&mut *tx, attempt).await?;
            if attempt.operation == Operation::Start {
                sqlx::query("UPDATE recordings SET attempts = MAX(attempts, ?) WHERE id = ?")
                    .bind(i64::from(attempt.attempt))
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err(context))?;
            }
        }
        match outcome {
            AttemptOutcome::Retrying { last_error } => {
                sqlx::query("UPDATE recordings SET last_error = ? WHERE id = ?")
                    .bind(last_error)
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err(context))?;
                Ok(false)
            }
            AttemptOutcome::Started {
                contact_id,
                interaction_id,
            } => {
                self.started_on(&mut *tx, id, contact_id, interaction_id, None)
                    .await
            }
            AttemptOutcome::Moved {
                to,
                last_error,
                ended_at,
            } => self.move_on(&mut *tx, id, to, last_error, ended_at).await,
            AttemptOutcome::Nothing => Ok(false),
        }
    }

    async fn insert_attempt(
        &self,
        conn: &mut SqliteConnection,
        attempt: &NewAttempt,
    ) -> Result<i64, StoreError> {
        let latency = attempt
            .latency_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        sqlx::query_scalar(
            "INSERT INTO attempts (recording_id, at, operation, attempt, requested_seconds, \
             http_status, error, latency_ms, response_body) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(attempt.recording_id.get())
        .bind(format_utc(attempt.at))
        .bind(attempt.operation.as_str())
        .bind(i64::from(attempt.attempt))
        .bind(attempt.requested_seconds.map(i64::from))
        .bind(attempt.http_status.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(latency)
        .bind(attempt.response_body.as_deref().map(truncate_body))
        .fetch_one(conn)
        .await
        .map_err(|e| match e.as_database_error().map(|d| d.kind()) {
            Some(ErrorKind::ForeignKeyViolation) => {
                StoreError::RecordingNotFound(attempt.recording_id)
            }
            _ => self.err("recording an attempt")(e),
        })
    }

    /// The audit trail of one recording, oldest first.
    pub async fn attempts_for(&self, id: RecordingId) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recording_id, at, operation, attempt, requested_seconds, http_status, \
             error, latency_ms, response_body FROM attempts WHERE recording_id = ? \
             ORDER BY at, id",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading attempts"))?;
        rows.iter().map(attempt_row).collect()
    }
}

fn attempt_row(row: &SqliteRow) -> Result<AttemptRow, StoreError> {
    let c = Cols::new(row, "attempts")?;
    Ok(AttemptRow {
        id: c.id(),
        recording_id: RecordingId::new(c.get("recording_id")?),
        at: c.time("at")?,
        operation: c.map("operation", |raw: String| raw.parse::<Operation>())?,
        attempt: c.map("attempt", non_negative_u32)?,
        requested_seconds: c.map_opt("requested_seconds", non_negative_u32)?,
        http_status: c.map_opt("http_status", |raw: i64| u16::try_from(raw))?,
        error: c.get("error")?,
        latency_ms: c.get("latency_ms")?,
        response_body: c.get("response_body")?,
    })
}
