//! Exclusion rows in PostgreSQL.
//!
//! The schema types the columns and always enforces the foreign key, so
//! what is left to judge is what decodes; the meaning of the values is
//! the `policy` parser's job, as on SQLite.

use sqlx::postgres::PgRow;

use super::row::Cols;
use super::PgStore;
use crate::policy::ExclusionRow;
use crate::store::{BadRow, NewExclusion, Rows, StoreError};

impl PgStore {
    /// Every exclusion row that reads back, by id, and every one that
    /// does not.
    pub async fn read_exclusions(&self) -> Result<Rows<ExclusionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, policy_id, user_id, starts_at, ends_at, timezone, reason \
             FROM exclusions ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading exclusions"))?;
        Ok(rows.iter().map(exclusion_row).collect())
    }

    /// Inserts the exclusions in one transaction, in order; `None` for one
    /// an identical row already holds.
    pub async fn insert_exclusions(
        &self,
        new: &[NewExclusion],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let context = "inserting exclusions";
        let mut tx = self.begin(context).await?;
        // Two importers of the same file must not both insert a row.
        sqlx::query("LOCK TABLE exclusions IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        let mut ids = Vec::with_capacity(new.len());
        for e in new {
            let id: Option<i64> = sqlx::query_scalar(
                "INSERT INTO exclusions (policy_id, user_id, starts_at, ends_at, timezone, reason) \
                 SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS ( \
                     SELECT 1 FROM exclusions WHERE policy_id IS NOT DISTINCT FROM $1 \
                     AND user_id IS NOT DISTINCT FROM $2 AND starts_at = $3 AND ends_at = $4 \
                     AND timezone IS NOT DISTINCT FROM $5 AND reason IS NOT DISTINCT FROM $6) \
                 RETURNING id",
            )
            .bind(e.policy_id)
            .bind(&e.user_id)
            .bind(&e.starts_at)
            .bind(&e.ends_at)
            .bind(&e.timezone)
            .bind(&e.reason)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.err(context))?;
            ids.push(id);
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(ids)
    }

    /// Deletes exclusion `id`; `false` if there was none.
    pub async fn remove_exclusion(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM exclusions WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.err("removing an exclusion"))?;
        Ok(done.rows_affected() == 1)
    }
}

/// One `exclusions` row, or the first column that does not read back.
fn exclusion_row(row: &PgRow) -> Result<ExclusionRow, BadRow> {
    let c = Cols::new(row, "exclusions")?;
    Ok(ExclusionRow {
        id: c.id(),
        policy_id: c.get("policy_id")?,
        user_id: c.get("user_id")?,
        starts_at: c.get("starts_at")?,
        ends_at: c.get("ends_at")?,
        timezone: c.get("timezone")?,
        reason: c.get("reason")?,
    })
}
