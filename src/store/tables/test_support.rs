//! Writes only tests and the benchmark make (feature `test-support`): the
//! daemon writes through [`Db::write_batch`] alone. Each is one step of a
//! write on its own, with the same row lock and fence as a batch's.

use crate::recording::{ContactId, InteractionId, RecordingState};
use crate::store::attempts::truncate_body;
use crate::store::batch::latency;
use crate::store::db::{non_negative_u32, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{AttemptOutcome, NewAttempt, RecordingId, StoreError};

impl<D: Backend> Db<D> {
    /// Records the start's answer and sets the start attempt count: the
    /// contact id (and interaction id) is kept in any state, a `pending`
    /// row moves to `recording` and its last error is cleared.
    pub async fn mark_started(
        &self,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: u32,
    ) -> Result<bool, StoreError> {
        let context = "recording a start";
        let mut tx = self.begin_write(context).await?;
        let from = self.lock_state(&mut tx, id).await?;
        let to = match from {
            RecordingState::Pending => RecordingState::Recording,
            other => other,
        };
        let stmt = Stmt::new(
            "UPDATE recordings SET contact_id = $1, \
             interaction_id = COALESCE($2, interaction_id), attempts = $3, state = $4, \
             last_error = CASE WHEN $5 THEN NULL ELSE last_error END \
             WHERE id = $6",
        )
        .arg(contact_id.get())
        .arg(interaction_id.map(|i| i.0.as_str()))
        .arg(i64::from(attempts))
        .arg(to.as_str())
        .arg(to != from)
        .arg(id.get());
        self.execute(&mut tx, stmt, context).await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(to != from)
    }

    /// Counts one more start attempt; returns the new count.
    pub async fn bump_attempts(&self, id: RecordingId) -> Result<u32, StoreError> {
        let context = "counting an attempt";
        let mut tx = self.begin_write(context).await?;
        self.lock_state(&mut tx, id).await?;
        let stmt = Stmt::new(
            "UPDATE recordings SET attempts = attempts + 1 WHERE id = $1 RETURNING id, attempts",
        )
        .arg(id.get());
        let row = self
            .fetch_optional(&mut tx, stmt, context)
            .await?
            .ok_or(StoreError::RecordingNotFound(id))?;
        let count = Cols::<D>::new(&row, "recordings")?.map("attempts", non_negative_u32)?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(count)
    }

    /// Writes one exchange to the audit trail; returns its row id.
    pub async fn record_attempt(&self, attempt: &NewAttempt) -> Result<i64, StoreError> {
        let context = "recording an attempt";
        let mut tx = self.begin_write(context).await?;
        self.lock_state(&mut tx, attempt.recording_id).await?;
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
        .arg(latency(attempt))
        .arg(attempt.response_body.as_deref().map(truncate_body));
        let row = self.fetch_optional(&mut tx, stmt, context).await?;
        let row = row.ok_or_else(|| self.err(context)(sqlx::Error::RowNotFound))?;
        let id = Cols::<D>::new(&row, "attempts")?.id();
        tx.commit().await.map_err(self.err(context))?;
        Ok(id)
    }

    /// Writes one exchange and its effect on the recording row in one
    /// transaction; an illegal move keeps the audit row.
    pub async fn finish_attempt(
        &self,
        attempt: &NewAttempt,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        self.write_one(attempt.recording_id, Some(attempt), outcome)
            .await
    }

    /// The row's state, locked as a batch locks it, once this handle is
    /// known to be its writer.
    async fn lock_state(
        &self,
        conn: &mut D::Connection,
        id: RecordingId,
    ) -> Result<RecordingState, StoreError> {
        let rows = D::lock_rows(conn, &self.site, &[id.get()])
            .await
            .map_err(self.err("reading a recording's state"))?;
        let row = rows.first().ok_or(StoreError::RecordingNotFound(id))?;
        let c = Cols::<D>::new(row, "recordings")?;
        if !c.get::<bool>("ours")? {
            return Err(StoreError::Lost { id });
        }
        Ok(c.map("state", |raw: String| raw.parse::<RecordingState>())?)
    }
}
