//! Who looks after an open row: renewing this instance's leases, taking
//! over rows whose lease ran out, and handing them back at shutdown.
//!
//! Every comparison uses the database server's `now()`, so the hosts'
//! clocks do not have to agree. A row goes to exactly one instance: the
//! takeover locks its candidates with `FOR UPDATE SKIP LOCKED` (a row
//! another instance is taking over right now is skipped, not waited for)
//! and rechecks the lease under the lock. A renewal and a takeover of the
//! same row serialize on its row lock: the renewal either comes first (the
//! lease is live again, the takeover skips the row) or finds another
//! owner and renews nothing, which tells its instance the row is lost.

use sqlx::Postgres;

use super::PgStore;
use crate::recording::RecordingState;
use crate::store::db::Cols;
use crate::store::dialect::Stmt;
use crate::store::tables::recordings::{judged, open_states, recording_columns, OPEN};
use crate::store::{Adopted, RecordingId, Renewal, Rows, StoreError};

/// Most rows one takeover adopts; the rest wait for the next round.
const TAKEOVER_BATCH: i64 = 10_000;

impl PgStore {
    fn me(&self) -> &str {
        self.site.owner.as_deref().unwrap_or("")
    }

    /// Extends the lease of every open row this instance owns; returns
    /// their ids.
    pub async fn renew_leases(&self) -> Result<Vec<RecordingId>, StoreError> {
        let sql = "UPDATE recordings SET lease_until = now() + make_interval(secs => $2) \
                   WHERE owner = $1 AND state IN ($3, $4, $5) RETURNING id";
        self.renewed(Stmt::new(sql).arg(self.me()).arg(self.lease_secs()))
            .await
    }

    /// Extends the lease of those of `ids` this instance still owns and
    /// that are still open, and names those that are open but owned by
    /// another instance (or by none): lost, taken over after their lease
    /// ran out. An id in neither list is final, or gone. A lease that ran
    /// out but that nobody took over is renewed: nobody else can have
    /// written the row.
    pub async fn renew_leases_of(&self, ids: &[RecordingId]) -> Result<Renewal, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        // The outer SELECT sees the rows as they were before the UPDATE
        // (one snapshot): a row it did not renew and that is open is lost.
        let rows: Vec<(i64, bool)> = sqlx::query_as(
            "WITH renewed AS ( \
                 UPDATE recordings SET lease_until = now() + make_interval(secs => $2) \
                 WHERE owner = $1 AND id = ANY($3) AND state = ANY($4) RETURNING id) \
             SELECT r.id, r.id IN (SELECT id FROM renewed) AS ours FROM recordings r \
             WHERE r.id = ANY($3) AND (r.id IN (SELECT id FROM renewed) OR r.state = ANY($4))",
        )
        .bind(self.me())
        .bind(self.lease_secs())
        .bind(&ids)
        .bind(OPEN.map(RecordingState::as_str))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("renewing leases"))?;
        let mut renewal = Renewal::default();
        for (id, ours) in rows {
            let id = RecordingId::new(id);
            if ours {
                renewal.renewed.push(id);
            } else {
                renewal.lost.push(id);
            }
        }
        Ok(renewal)
    }

    async fn renewed(&self, stmt: Stmt<'_>) -> Result<Vec<RecordingId>, StoreError> {
        let context = "renewing leases";
        let rows = self.query(open_states(stmt), context).await?;
        rows.iter()
            .map(|row| {
                Ok(RecordingId::new(
                    Cols::<Postgres>::new(row, "recordings")?.id(),
                ))
            })
            .collect()
    }

    /// Makes this instance the owner of every open row whose lease has run
    /// out (or that never had one), its own included (a row it gave up
    /// when it could not renew in time), and returns them with their
    /// previous owners, oldest segment first.
    ///
    /// An open row that does not read back is in `bad` and given back (no
    /// owner), not kept.
    pub async fn take_over(&self) -> Result<Rows<Adopted>, StoreError> {
        let columns = recording_columns!()
            .split(", ")
            .map(|c| format!("r.{}", c.trim()))
            .collect::<Vec<_>>()
            .join(", ");
        let sql = format!(
            "WITH lost AS ( \
                 SELECT id, owner AS previous_owner FROM recordings \
                 WHERE state IN ($4, $5, $6) \
                   AND (lease_until IS NULL OR lease_until < now()) \
                 ORDER BY id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE recordings r \
             SET owner = $1, lease_until = now() + make_interval(secs => $2) \
             FROM lost WHERE r.id = lost.id \
             RETURNING lost.previous_owner, {columns}"
        );
        let stmt = Stmt::new(&sql)
            .arg(self.me())
            .arg(self.lease_secs())
            .arg(TAKEOVER_BATCH);
        let rows = self
            .query(open_states(stmt), "taking over open rows of lost instances")
            .await?;
        let mut adopted = Rows::default();
        let mut unreadable = Vec::new();
        for row in &rows {
            let previous_owner: Option<String> = sqlx::Row::try_get(row, "previous_owner")
                .map_err(|e| StoreError::bad_row("recordings", -1, "owner", e.to_string()))?;
            match judged::<Postgres>(row) {
                Ok(row) => adopted.rows.push(Adopted {
                    row,
                    previous_owner,
                }),
                Err(bad) => {
                    unreadable.push(bad.id);
                    adopted.bad.push(bad);
                }
            }
        }
        // A row that does not read back cannot be looked after: give it
        // back (no owner, no lease), so whichever instance next finds it
        // readable, once an operator has fixed it, takes it over. Until
        // then its user stays occupied (`occupied_since`).
        if !unreadable.is_empty() {
            sqlx::query(
                "UPDATE recordings SET owner = NULL, lease_until = NULL \
                 WHERE id = ANY($1) AND owner = $2",
            )
            .bind(&unreadable)
            .bind(self.me())
            .execute(&self.pool)
            .await
            .map_err(self.err("giving back rows that do not read back"))?;
        }
        adopted
            .rows
            .sort_by_key(|a| (a.row.segment_start, a.row.id));
        Ok(adopted)
    }

    /// Lets every open row of this instance be taken over at once (a clean
    /// shutdown: nobody has to wait for the lease to run out).
    pub async fn withdraw_pending(&self, ids: &[RecordingId]) -> Result<u64, StoreError> {
        let ids: Vec<i64> = ids.iter().map(|id| id.get()).collect();
        let done = sqlx::query(
            "DELETE FROM recordings r WHERE r.id = ANY($1) AND r.owner = $2 \
               AND r.state = $3 AND r.contact_id IS NULL \
               AND NOT EXISTS (SELECT 1 FROM attempts a WHERE a.recording_id = r.id)",
        )
        .bind(&ids)
        .bind(self.me())
        .bind(RecordingState::Pending.as_str())
        .execute(&self.pool)
        .await
        .map_err(self.err("withdrawing rows claimed ahead"))?;
        Ok(done.rows_affected())
    }

    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let sql = "UPDATE recordings SET lease_until = now() \
                   WHERE owner = $1 AND state IN ($2, $3, $4)";
        self.run(
            open_states(Stmt::new(sql).arg(self.me())),
            "releasing leases",
        )
        .await
    }
}
