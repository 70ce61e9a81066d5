//! Deleting old history, for both backends, one short batch at a time.
//!
//! A batch first finds its rows with a read that holds no write lock (the
//! next `limit` matching ids after a cursor, oldest id first), then
//! deletes them by id range in one short writing transaction, checking
//! the rule again there: a row that turned open or recent in between
//! stays. The caller chooses `limit` to keep that transaction short
//! (`daemon::retention` paces it) and pauses between batches, so the
//! daemon's own writes never wait long behind a sweep.

use std::time::Instant;

use crate::store::db::{Col, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::retention::{Cutoffs, Prune, PruneBatch, PruneCounts};
use crate::store::tables::recordings::open_states;
use crate::store::StoreError;

/// A final recording whose segment ended before `$4`, by plan and in
/// fact; the open states are `$1`..`$3`.
macro_rules! old_recording {
    ($r:literal) => {
        concat!(
            $r,
            ".state NOT IN ($1, $2, $3) AND ",
            $r,
            ".segment_end < $4 AND COALESCE(",
            $r,
            ".ended_at, ",
            $r,
            ".segment_end) < $4"
        )
    };
}

/// An audit row sent before `$4` whose recording is not open (`$1`..`$3`).
macro_rules! old_attempt {
    ($a:literal) => {
        concat!(
            $a,
            ".at < $4 AND NOT EXISTS (SELECT 1 FROM recordings o WHERE o.id = ",
            $a,
            ".recording_id AND o.state IN ($1, $2, $3))"
        )
    };
}

impl<D: Backend> Db<D> {
    /// How many rows [`Db::prune_batch`] would delete now under `cutoffs`.
    pub async fn prune_counts(&self, cutoffs: &Cutoffs) -> Result<PruneCounts, StoreError> {
        let context = "counting old history";
        let mut counts = PruneCounts::default();
        let rule = |sql, cutoff| open_states(Stmt::new(sql)).arg(cutoff);
        if let Some(cutoff) = cutoffs.recordings {
            counts.recordings = self
                .count(
                    rule(
                        concat!(
                            "SELECT COUNT(*) AS value FROM recordings r WHERE ",
                            old_recording!("r")
                        ),
                        cutoff,
                    ),
                    context,
                )
                .await?;
            counts.attempts_of_recordings = self
                .count(
                    rule(
                        concat!(
                            "SELECT COUNT(*) AS value FROM attempts a WHERE a.recording_id IN \
                             (SELECT r.id FROM recordings r WHERE ",
                            old_recording!("r"),
                            ")"
                        ),
                        cutoff,
                    ),
                    context,
                )
                .await?;
        }
        if let Some(cutoff) = cutoffs.attempts {
            // Those not already counted with their recording.
            let stmt = match cutoffs.recordings {
                None => rule(
                    concat!(
                        "SELECT COUNT(*) AS value FROM attempts a WHERE ",
                        old_attempt!("a")
                    ),
                    cutoff,
                ),
                Some(recordings) => rule(
                    concat!(
                        "SELECT COUNT(*) AS value FROM attempts a WHERE ",
                        old_attempt!("a"),
                        " AND a.recording_id NOT IN (SELECT r.id FROM recordings r WHERE \
                         r.state NOT IN ($1, $2, $3) AND r.segment_end < $5 \
                         AND COALESCE(r.ended_at, r.segment_end) < $5)"
                    ),
                    cutoff,
                )
                .arg(recordings),
            };
            counts.attempts = self.count(stmt, context).await?;
        }
        Ok(counts)
    }

    /// Deletes by rule `what` under `cutoffs` the next at most `limit`
    /// matching rows with an id above `after` (for [`Prune::Recordings`],
    /// with their audit rows), in one short transaction. A rule whose
    /// cutoff is `None` finds nothing.
    pub async fn prune_batch(
        &self,
        cutoffs: &Cutoffs,
        what: Prune,
        after: i64,
        limit: u32,
    ) -> Result<PruneBatch, StoreError> {
        let context = "deleting old history";
        let cutoff = match what {
            Prune::Recordings => cutoffs.recordings,
            Prune::Attempts => cutoffs.attempts,
        };
        let Some(cutoff) = cutoff else {
            return Ok(PruneBatch::default());
        };
        // The ids, read without holding the write lock.
        let find = match what {
            Prune::Recordings => concat!(
                "SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM \
                 (SELECT r.id FROM recordings r WHERE r.id > $5 AND ",
                old_recording!("r"),
                " ORDER BY r.id LIMIT $6) AS s"
            ),
            Prune::Attempts => concat!(
                "SELECT COUNT(*) AS n, MIN(id) AS lo, MAX(id) AS hi FROM \
                 (SELECT a.id FROM attempts a WHERE a.id > $5 AND ",
                old_attempt!("a"),
                " ORDER BY a.id LIMIT $6) AS s"
            ),
        };
        let stmt = open_states(Stmt::new(find))
            .arg(cutoff)
            .arg(after)
            .arg(i64::from(limit));
        let row = self
            .query_optional(stmt, context)
            .await?
            .ok_or_else(|| self.err(context)(sqlx::Error::RowNotFound))?;
        let read = |column| {
            <Option<i64> as Col>::read::<D>(&row, column)
                .map_err(|problem| self.err(context)(sqlx::Error::Decode(problem.into())))
        };
        let found = read("n")?.unwrap_or(0);
        let (Some(lo), Some(hi)) = (read("lo")?, read("hi")?) else {
            return Ok(PruneBatch::default());
        };
        let mut batch = PruneBatch {
            found: u64::try_from(found).unwrap_or(0),
            last_id: hi,
            ..PruneBatch::default()
        };
        let range = |sql| open_states(Stmt::new(sql)).arg(cutoff).arg(lo).arg(hi);
        let mut tx = self.begin_write(context).await?;
        let started = Instant::now();
        match what {
            Prune::Recordings => {
                let audit = range(concat!(
                    "DELETE FROM attempts WHERE recording_id IN (SELECT r.id FROM recordings r \
                     WHERE r.id >= $5 AND r.id <= $6 AND ",
                    old_recording!("r"),
                    ")"
                ));
                batch.attempts = self.execute(&mut tx, audit, context).await?;
                let rows = range(concat!(
                    "DELETE FROM recordings WHERE id >= $5 AND id <= $6 AND ",
                    old_recording!("recordings")
                ));
                batch.recordings = self.execute(&mut tx, rows, context).await?;
            }
            Prune::Attempts => {
                let rows = range(concat!(
                    "DELETE FROM attempts WHERE id >= $5 AND id <= $6 AND ",
                    old_attempt!("attempts")
                ));
                batch.attempts = self.execute(&mut tx, rows, context).await?;
            }
        }
        tx.commit().await.map_err(self.err(context))?;
        batch.held = started.elapsed();
        Ok(batch)
    }

    /// The count `stmt` selects as `value`.
    async fn count(&self, stmt: Stmt<'_>, context: &'static str) -> Result<u64, StoreError> {
        let n: Option<i64> = self.value(stmt, context).await?;
        Ok(n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))
    }
}
