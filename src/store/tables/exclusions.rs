//! Exclusion rows, for both backends.
//!
//! As with policies, nothing is coerced: on SQLite each column's stored
//! type is checked, and a value of the wrong type, text that is not UTF-8
//! or a `policy_id` naming no policy (sqlite3 leaves foreign keys off by
//! default) makes the row a [`BadRow`], skipped and named; the other rows
//! go on. PostgreSQL types the columns and enforces the foreign key. What
//! the values mean (dates, instants, zones) is the `policy` parser's job.

use crate::policy::ExclusionRow;
use crate::store::db::{stored, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::tables::policies::named_policy;
use crate::store::{BadRow, NewExclusion, Rows, StoreError};

impl<D: Backend> Db<D> {
    /// Every exclusion row that reads back, by id, and every one that
    /// does not.
    pub async fn read_exclusions(&self) -> Result<Rows<ExclusionRow>, StoreError> {
        let rows = self
            .query(Stmt::new(D::EXCLUSIONS), "reading exclusions")
            .await?;
        Ok(rows.iter().map(exclusion_row::<D>).collect())
    }

    /// Inserts the exclusions in one transaction, in order; `None` for one
    /// an identical row already holds (so importing a calendar twice adds
    /// nothing the second time).
    pub async fn insert_exclusions(
        &self,
        new: &[NewExclusion],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let context = "inserting exclusions";
        let mut tx = self.begin_write(context).await?;
        if let Some(lock) = D::LOCK_EXCLUSIONS {
            self.execute(&mut tx, Stmt::new(lock), context).await?;
        }
        let mut ids = Vec::with_capacity(new.len());
        for e in new {
            let stmt = Stmt::new(
                "INSERT INTO exclusions (policy_id, user_id, starts_at, ends_at, timezone, reason) \
                 SELECT $1, $2, $3, $4, $5, $6 WHERE NOT EXISTS ( \
                     SELECT 1 FROM exclusions WHERE policy_id IS NOT DISTINCT FROM $1 \
                     AND user_id IS NOT DISTINCT FROM $2 AND starts_at = $3 AND ends_at = $4 \
                     AND timezone IS NOT DISTINCT FROM $5 AND reason IS NOT DISTINCT FROM $6) \
                 RETURNING id",
            )
            .arg(e.policy_id)
            .arg(e.user_id.as_deref())
            .arg(e.starts_at.as_str())
            .arg(e.ends_at.as_str())
            .arg(e.timezone.as_deref())
            .arg(e.reason.as_deref());
            let id = match self.fetch_optional(&mut tx, stmt, context).await? {
                Some(row) => Some(Cols::<D>::new(&row, "exclusions")?.id()),
                None => None,
            };
            ids.push(id);
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(ids)
    }

    /// Deletes exclusion `id`; `false` if there was none.
    pub async fn remove_exclusion(&self, id: i64) -> Result<bool, StoreError> {
        let stmt = Stmt::new("DELETE FROM exclusions WHERE id = $1").arg(id);
        Ok(self.run(stmt, "removing an exclusion").await? == 1)
    }
}

/// One `exclusions` row, or the first column that does not read back.
fn exclusion_row<D: Backend>(row: &D::Row) -> Result<ExclusionRow, BadRow> {
    let c = Cols::<D>::new(row, "exclusions")?;
    let policy_id = if c.get::<bool>("every_policy")? {
        None
    } else {
        Some(named_policy(&c, "NULL means every policy; ")?)
    };
    Ok(ExclusionRow {
        id: c.id(),
        policy_id,
        user_id: stored(&c, "user_id").opt_text()?,
        starts_at: stored(&c, "starts_at").text()?,
        ends_at: stored(&c, "ends_at").text()?,
        timezone: stored(&c, "timezone").opt_text()?,
        reason: stored(&c, "reason").opt_text()?,
    })
}
