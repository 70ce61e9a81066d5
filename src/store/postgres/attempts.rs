//! The audit trail in PostgreSQL. As in SQLite, an exchange and its effect
//! on the recording row commit together; a batch of them commits in one
//! transaction, each under its row's lock.

use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::row::{non_negative_u32, Cols};
use super::PgStore;
use crate::store::attempts::truncate_body;
use crate::store::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, RecordingId, RowWrite, StoreError,
};

impl PgStore {
    pub async fn record_attempt(&self, attempt: &NewAttempt) -> Result<i64, StoreError> {
        let context = "recording an attempt";
        let mut tx = self.begin(context).await?;
        // Checked first: a foreign-key failure would abort the transaction.
        self.lock_state(&mut tx, attempt.recording_id).await?;
        let id = self.insert_attempt(&mut tx, attempt).await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(id)
    }

    pub async fn finish_attempt(
        &self,
        attempt: &NewAttempt,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        let mut tx = self.begin(context).await?;
        let moved = self
            .apply_on(&mut tx, attempt.recording_id, Some(attempt), outcome)
            .await;
        if let Err(e) = &moved {
            if !matches!(e, StoreError::IllegalMove { .. }) {
                return moved;
            }
        }
        // An illegal move still keeps the audit row: the request happened.
        tx.commit().await.map_err(self.err(context))?;
        moved
    }

    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let context = "writing a batch of recording updates";
        let mut tx = self.begin(context).await?;
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
        tx: &mut PgConnection,
        id: RecordingId,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        // Lock the row first and learn that it exists: nothing below can
        // then fail on a missing row and abort the batch's transaction.
        self.lock_state(&mut *tx, id).await?;
        if let Some(attempt) = attempt {
            self.insert_attempt(&mut *tx, attempt).await?;
            if attempt.operation == Operation::Start {
                sqlx::query(
                    "UPDATE recordings SET attempts = GREATEST(attempts, $1) WHERE id = $2",
                )
                .bind(i64::from(attempt.attempt))
                .bind(id.get())
                .execute(&mut *tx)
                .await
                .map_err(self.err(context))?;
            }
        }
        match outcome {
            AttemptOutcome::Retrying { last_error } => {
                sqlx::query("UPDATE recordings SET last_error = $1 WHERE id = $2")
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
        conn: &mut PgConnection,
        attempt: &NewAttempt,
    ) -> Result<i64, StoreError> {
        let latency = attempt
            .latency_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        sqlx::query_scalar(
            "INSERT INTO attempts (recording_id, at, operation, attempt, requested_seconds, \
             http_status, error, latency_ms, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .bind(attempt.recording_id.get())
        .bind(attempt.at)
        .bind(attempt.operation.as_str())
        .bind(i64::from(attempt.attempt))
        .bind(attempt.requested_seconds.map(i64::from))
        .bind(attempt.http_status.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(latency)
        .bind(attempt.response_body.as_deref().map(truncate_body))
        .fetch_one(conn)
        .await
        .map_err(self.err("recording an attempt"))
    }

    pub async fn attempts_for(&self, id: RecordingId) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recording_id, at, operation, attempt, requested_seconds, http_status, \
             error, latency_ms, response_body FROM attempts WHERE recording_id = $1 \
             ORDER BY at, id",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading attempts"))?;
        rows.iter().map(attempt_row).collect()
    }
}

fn attempt_row(row: &PgRow) -> Result<AttemptRow, StoreError> {
    let c = Cols::new(row, "attempts")?;
    Ok(AttemptRow {
        id: c.id(),
        recording_id: RecordingId::new(c.get("recording_id")?),
        at: c.get("at")?,
        operation: c.map("operation", |raw: String| raw.parse::<Operation>())?,
        attempt: c.map("attempt", non_negative_u32)?,
        requested_seconds: c.map_opt("requested_seconds", non_negative_u32)?,
        http_status: c.map_opt("http_status", |raw: i64| u16::try_from(raw))?,
        error: c.get("error")?,
        latency_ms: c.get("latency_ms")?,
        response_body: c.get("response_body")?,
    })
}
