//! Who looks after an open row: renewing this instance's leases, taking
//! over rows whose lease ran out, and handing them back at shutdown.
//!
//! Every comparison uses the database server's `now()`, so the hosts'
//! clocks do not have to agree. A row goes to exactly one instance: the
//! takeover locks its candidates with `FOR UPDATE SKIP LOCKED` (a row
//! another instance is taking over right now is skipped, not waited for)
//! and rechecks the lease under the lock.

use super::recordings::{judged, recording_columns};
use super::{PgStore, OPEN_STATES};
use crate::store::{Adopted, RecordingId, Rows, StoreError};

/// Most rows one takeover adopts; the rest wait for the next round.
const TAKEOVER_BATCH: i64 = 10_000;

impl PgStore {
    fn me(&self) -> &str {
        self.owner.as_deref().unwrap_or("")
    }

    /// Extends the lease of every open row this instance owns; returns
    /// their ids. A row missing from the answer is no longer ours (final,
    /// or taken over after our lease ran out).
    pub async fn renew_leases(&self) -> Result<Vec<RecordingId>, StoreError> {
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE recordings SET lease_until = now() + make_interval(secs => $2::float8) \
             WHERE owner = $1 AND state IN {OPEN_STATES} RETURNING id"
        ))
        .bind(self.me())
        .bind(self.lease_secs())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("renewing leases"))?;
        Ok(ids.into_iter().map(RecordingId::new).collect())
    }

    /// Makes this instance the owner of every open row whose lease has run
    /// out (or that never had one), and returns them with their previous
    /// owners, oldest segment first.
    ///
    /// An open row that does not read back is in `bad` and given back (no
    /// owner), not kept.
    pub async fn take_over(&self) -> Result<Rows<Adopted>, StoreError> {
        let rows = sqlx::query(&format!(
            "WITH lost AS ( \
                 SELECT id, owner AS previous_owner FROM recordings \
                 WHERE state IN {OPEN_STATES} \
                   AND (lease_until IS NULL OR lease_until < now()) \
                   AND owner IS DISTINCT FROM $1 \
                 ORDER BY id LIMIT $3 \
                 FOR UPDATE SKIP LOCKED) \
             UPDATE recordings r \
             SET owner = $1, lease_until = now() + make_interval(secs => $2::float8) \
             FROM lost WHERE r.id = lost.id \
             RETURNING lost.previous_owner, {}",
            recording_columns!()
                .split(", ")
                .map(|c| format!("r.{}", c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ))
        .bind(self.me())
        .bind(self.lease_secs())
        .bind(TAKEOVER_BATCH)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("taking over open rows of lost instances"))?;
        let mut adopted = Rows::default();
        let mut unreadable = Vec::new();
        for row in &rows {
            let previous_owner: Option<String> = sqlx::Row::try_get(row, "previous_owner")
                .map_err(|e| StoreError::bad_row("recordings", -1, "owner", e.to_string()))?;
            match judged(row) {
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
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!(
            "UPDATE recordings SET lease_until = now() \
             WHERE owner = $1 AND state IN {OPEN_STATES}"
        ))
        .bind(self.me())
        .execute(&self.pool)
        .await
        .map_err(self.err("releasing leases"))?;
        Ok(done.rows_affected())
    }
}
