//! Writes only tests and the benchmark make (feature `test-support`): the
//! daemon writes through [`Db::write_batch`] alone. Each is one of its
//! steps on its own, with the same row lock and fence.

use crate::recording::{ContactId, InteractionId};
use crate::store::db::{non_negative_u32, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{AttemptOutcome, NewAttempt, RecordingId, StoreError};

impl<D: Backend> Db<D> {
    /// Records the start's answer and sets the start attempt count.
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
        let moved = self
            .started_on(
                &mut tx,
                id,
                from,
                contact_id,
                interaction_id,
                Some(attempts),
            )
            .await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(moved)
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
        let id = self.insert_attempt(&mut tx, attempt).await?;
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
}
