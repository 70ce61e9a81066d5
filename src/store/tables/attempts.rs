//! The audit trail and the writes that follow an exchange, for both
//! backends. An exchange and its effect on the recording row commit
//! together ([`Db::write_batch`]: many of them in one transaction), so the
//! audit trail never disagrees with the row it explains.
//!
//! Each write first reads its row's state under the backend's row lock
//! ([`Db::lock_state`]): that learns that the row exists and, on
//! PostgreSQL, that this instance still owns it with a live lease, before
//! anything is written, so no statement fails half-way through a batch.

use crate::store::attempts::truncate_body;
use crate::store::db::{non_negative_u32, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, RecordingId, RowWrite, StoreError,
};

impl<D: Backend> Db<D> {
    /// Applies many row writes (each an optional audit row and its effect)
    /// in ONE transaction: one lock and one fsync for a whole burst. The
    /// outer error means nothing was written (busy, disk full, the
    /// database gone); the inner results are per write: an illegal move
    /// (its audit row is kept: the exchange happened), a missing or
    /// unreadable row, or a row this instance has lost (nothing of that
    /// write is kept).
    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let context = "writing a batch of recording updates";
        let mut tx = self.begin_write(context).await?;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let r = self
                .apply(
                    &mut tx,
                    w.recording_id,
                    w.attempt.as_ref(),
                    w.outcome.borrowed(),
                )
                .await;
            match r {
                Err(e) if !e.concerns_one_row() => return Err(e),
                r => results.push(r),
            }
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(results)
    }

    /// [`Db::write_batch`] of one write.
    pub(crate) async fn write_one(
        &self,
        id: RecordingId,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        let mut tx = self.begin_write(context).await?;
        let r = self.apply(&mut tx, id, attempt, outcome).await;
        match r {
            Err(e) if !e.concerns_one_row() => Err(e),
            r => {
                tx.commit().await.map_err(self.err(context))?;
                r
            }
        }
    }

    /// One write: the audit row (and, for a start, the row's attempt
    /// count), then `outcome`. Returns whether the row's state moved.
    async fn apply(
        &self,
        conn: &mut D::Connection,
        id: RecordingId,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        let from = self.lock_state(conn, id).await?;
        if let Some(attempt) = attempt {
            self.insert_attempt(conn, attempt).await?;
            if attempt.operation == Operation::Start {
                let stmt = Stmt::new(
                    "UPDATE recordings SET attempts = \
                     CASE WHEN attempts < $1 THEN $1 ELSE attempts END WHERE id = $2",
                )
                .arg(i64::from(attempt.attempt))
                .arg(id.get());
                self.execute(conn, stmt, context).await?;
            }
        }
        match outcome {
            AttemptOutcome::Retrying { last_error } => {
                let stmt = Stmt::new("UPDATE recordings SET last_error = $1 WHERE id = $2")
                    .arg(last_error)
                    .arg(id.get());
                self.execute(conn, stmt, context).await?;
                Ok(false)
            }
            AttemptOutcome::Started {
                contact_id,
                interaction_id,
            } => {
                self.started_on(conn, id, from, contact_id, interaction_id, None)
                    .await
            }
            AttemptOutcome::Moved {
                to,
                last_error,
                ended_at,
            } => self.move_on(conn, id, from, to, last_error, ended_at).await,
            AttemptOutcome::Nothing => Ok(false),
        }
    }

    /// Writes one exchange to the audit trail; returns its row id.
    pub(super) async fn insert_attempt(
        &self,
        conn: &mut D::Connection,
        attempt: &NewAttempt,
    ) -> Result<i64, StoreError> {
        let latency = attempt
            .latency_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        let stmt = Stmt::new(
            "INSERT INTO attempts (recording_id, at, operation, attempt, requested_seconds, \
             http_status, error, latency_ms, response_body) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING id",
        )
        .arg(attempt.recording_id.get())
        .arg(attempt.at)
        .arg(attempt.operation.as_str())
        .arg(i64::from(attempt.attempt))
        .arg(attempt.requested_seconds.map(i64::from))
        .arg(attempt.http_status.map(i64::from))
        .arg(attempt.error.as_deref())
        .arg(latency)
        .arg(attempt.response_body.as_deref().map(truncate_body));
        let context = "recording an attempt";
        let row = self.fetch_optional(conn, stmt, context).await?;
        let row = row.ok_or_else(|| self.err(context)(sqlx::Error::RowNotFound))?;
        Ok(Cols::<D>::new(&row, "attempts")?.id())
    }

    /// The audit trail of one recording, oldest first.
    pub async fn attempts_for(&self, id: RecordingId) -> Result<Vec<AttemptRow>, StoreError> {
        let stmt = Stmt::new(
            "SELECT id, recording_id, at, operation, attempt, requested_seconds, http_status, \
             error, latency_ms, response_body FROM attempts WHERE recording_id = $1 \
             ORDER BY at, id",
        )
        .arg(id.get());
        let rows = self.query(stmt, "reading attempts").await?;
        Ok(rows
            .iter()
            .map(attempt_row::<D>)
            .collect::<Result<_, _>>()?)
    }
}

fn attempt_row<D: Backend>(row: &D::Row) -> Result<AttemptRow, crate::store::BadRow> {
    let c = Cols::<D>::new(row, "attempts")?;
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
