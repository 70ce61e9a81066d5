//! The audit trail and the writes that follow an exchange, for both
//! backends. An exchange and its effect on the recording row commit
//! together ([`Db::write_batch`]: many of them in one transaction), so the
//! audit trail never disagrees with the row it explains.
//!
//! A batch is three set-based statements whatever its size (`batch`
//! folds it): the states of its rows, read once under the backend's locks
//! with the fence's answer (PostgreSQL: this instance still owns the row
//! with a live lease), so no statement fails half-way through; one UPDATE
//! of every row it changes; one INSERT of its audit rows.

use std::collections::HashMap;

use crate::recording::RecordingState;
use crate::store::batch::{self, Found};
use crate::store::db::{non_negative_u32, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, RecordingId, RowWrite, StoreError,
};

impl<D: Backend> Db<D> {
    /// Applies many row writes (each an optional audit row and its effect)
    /// in ONE transaction of three statements: one lock and one fsync for
    /// a whole burst. The outer error means nothing was written (busy,
    /// disk full, the database gone); the inner results are per write: an
    /// illegal move (its audit row is kept: the exchange happened), a
    /// missing or unreadable row, or a row this instance has lost (nothing
    /// of that write is kept). The rules are `batch`'s.
    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let context = "writing a batch of recording updates";
        if writes.is_empty() {
            return Ok(Vec::new());
        }
        let mut tx = self.begin_write(context).await?;
        let results = self.apply_batch(&mut tx, writes, context).await?;
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
        let write = RowWrite {
            recording_id: id,
            attempt: attempt.cloned(),
            outcome: outcome.owned(),
        };
        let mut results = self.write_batch(std::slice::from_ref(&write)).await?;
        results.pop().unwrap_or(Ok(false))
    }

    /// The batch's three statements on `conn`, inside its transaction.
    async fn apply_batch(
        &self,
        conn: &mut D::Connection,
        writes: &[RowWrite],
        context: &'static str,
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let ids = batch::rows_to_read(writes);
        let rows = D::lock_rows(conn, &self.site, &ids)
            .await
            .map_err(self.err(context))?;
        let found: HashMap<i64, Found> = rows.iter().filter_map(found::<D>).collect();
        let mut folded = batch::fold(writes, &found);
        if !folded.edits.is_empty() {
            let updated = D::update_rows(conn, &self.site, &folded.edits)
                .await
                .map_err(self.err(context))?;
            let states: HashMap<i64, Option<RecordingState>> =
                updated.iter().filter_map(updated_state::<D>).collect();
            // Under the locks every edit lands as planned; a row the
            // UPDATE did not find (its fence no longer held) or left in
            // another state is answered as such, never as written.
            let ids: Vec<(i64, RecordingState)> =
                folded.edits.iter().map(|e| (e.id, e.to)).collect();
            for (id, to) in ids {
                match states.get(&id) {
                    None => folded.lost(id),
                    Some(state) if *state != Some(to) => folded.not_moved(id),
                    Some(_) => {}
                }
            }
        }
        if !folded.audit.is_empty() {
            D::insert_attempts(conn, &folded.audit)
                .await
                .map_err(self.err(context))?;
        }
        Ok(folded.results)
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

/// A locked row as the batch's read found it: the fence's answer, then
/// its state; `None` for a row without a readable id (none: it was
/// selected by id).
fn found<D: Backend>(row: &D::Row) -> Option<(i64, Found)> {
    let c = Cols::<D>::new(row, "recordings").ok()?;
    let found = match c.get::<bool>("ours") {
        Err(bad) => Found::Bad(bad),
        Ok(false) => Found::Lost,
        Ok(true) => match c.map("state", |raw: String| raw.parse::<RecordingState>()) {
            Ok(state) => Found::State(state),
            Err(bad) => Found::Bad(bad),
        },
    };
    Some((c.id(), found))
}

/// A row the batch's UPDATE returned: its id and its state now (`None`
/// if it does not read back).
fn updated_state<D: Backend>(row: &D::Row) -> Option<(i64, Option<RecordingState>)> {
    let c = Cols::<D>::new(row, "recordings").ok()?;
    let state = c
        .map("state", |raw: String| raw.parse::<RecordingState>())
        .ok();
    Some((c.id(), state))
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
