//! Exclusion rows in SQLite.
//!
//! As with policies, each column's stored type is checked (`typeof`) and
//! nothing is coerced: a value of the wrong type, text that is not UTF-8
//! or a `policy_id` naming no policy (sqlite3 leaves foreign keys off by
//! default) makes the row a [`BadRow`], skipped and named; the other rows
//! go on.

use sqlx::sqlite::SqliteRow;

use super::row::Cols;
use super::SqliteStore;
use crate::policy::ExclusionRow;
use crate::store::bad_row::utf8;
use crate::store::{BadRow, NewExclusion, Rows, StoreError};

impl SqliteStore {
    /// Every exclusion row that reads back, by id, and every one that
    /// does not.
    pub async fn read_exclusions(&self) -> Result<Rows<ExclusionRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT e.id, p.id AS policy, \
                    typeof(e.policy_id) AS policy_id_type, \
                    CAST(quote(e.policy_id) AS BLOB) AS policy_id_quoted, \
                    typeof(e.user_id) AS user_id_type, \
                    CAST(quote(e.user_id) AS BLOB) AS user_id_quoted, \
                    CAST(e.user_id AS BLOB) AS user_id, \
                    typeof(e.starts_at) AS starts_at_type, \
                    CAST(quote(e.starts_at) AS BLOB) AS starts_at_quoted, \
                    CAST(e.starts_at AS BLOB) AS starts_at, \
                    typeof(e.ends_at) AS ends_at_type, \
                    CAST(quote(e.ends_at) AS BLOB) AS ends_at_quoted, \
                    CAST(e.ends_at AS BLOB) AS ends_at, \
                    typeof(e.timezone) AS timezone_type, \
                    CAST(quote(e.timezone) AS BLOB) AS timezone_quoted, \
                    CAST(e.timezone AS BLOB) AS timezone, \
                    typeof(e.reason) AS reason_type, \
                    CAST(quote(e.reason) AS BLOB) AS reason_quoted, \
                    CAST(e.reason AS BLOB) AS reason \
             FROM exclusions e LEFT JOIN policies p ON p.id = e.policy_id ORDER BY e.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading exclusions"))?;
        Ok(rows.iter().map(exclusion_row).collect())
    }

    /// Inserts the exclusions in one transaction, in order; `None` for one
    /// an identical row already holds (so importing a calendar twice adds
    /// nothing the second time).
    pub async fn insert_exclusions(
        &self,
        new: &[NewExclusion],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        let context = "inserting exclusions";
        let mut tx = self.begin_immediate(context).await?;
        let mut ids = Vec::with_capacity(new.len());
        for e in new {
            let existing: Option<i64> = sqlx::query_scalar(
                "SELECT id FROM exclusions WHERE policy_id IS ? AND user_id IS ? \
                 AND starts_at = ? AND ends_at = ? AND timezone IS ? AND reason IS ? LIMIT 1",
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
            if existing.is_some() {
                ids.push(None);
                continue;
            }
            let id: i64 = sqlx::query_scalar(
                "INSERT INTO exclusions (policy_id, user_id, starts_at, ends_at, timezone, reason) \
                 VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
            )
            .bind(e.policy_id)
            .bind(&e.user_id)
            .bind(&e.starts_at)
            .bind(&e.ends_at)
            .bind(&e.timezone)
            .bind(&e.reason)
            .fetch_one(&mut *tx)
            .await
            .map_err(self.err(context))?;
            ids.push(Some(id));
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(ids)
    }

    /// Deletes exclusion `id`; `false` if there was none.
    pub async fn remove_exclusion(&self, id: i64) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM exclusions WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await
            .map_err(self.err("removing an exclusion"))?;
        Ok(done.rows_affected() == 1)
    }
}

/// A text column, `None` when NULL and `nullable`; any other stored type
/// is named with its value, never converted.
fn text(c: &Cols<'_>, column: &'static str, nullable: bool) -> Result<Option<String>, BadRow> {
    let (type_column, quoted_column) = match column {
        "user_id" => ("user_id_type", "user_id_quoted"),
        "starts_at" => ("starts_at_type", "starts_at_quoted"),
        "ends_at" => ("ends_at_type", "ends_at_quoted"),
        "timezone" => ("timezone_type", "timezone_quoted"),
        _ => ("reason_type", "reason_quoted"),
    };
    match c.get::<String>(type_column)?.as_str() {
        "text" => utf8(c.get(column)?).map(Some).map_err(|e| c.bad(column, e)),
        "null" if nullable => Ok(None),
        other => {
            let quoted = c
                .get::<Vec<u8>>(quoted_column)
                .map(|q| String::from_utf8_lossy(&q).into_owned())
                .unwrap_or_default();
            let expected = if nullable { "text or NULL" } else { "text" };
            Err(c.bad(
                column,
                format!("stored as {other} {quoted}, not {expected}; nothing is converted"),
            ))
        }
    }
}

/// One `exclusions` row, or the first column that does not read back.
fn exclusion_row(row: &SqliteRow) -> Result<ExclusionRow, BadRow> {
    let c = Cols::new(row, "exclusions")?;
    let policy_id = match c.get::<String>("policy_id_type")?.as_str() {
        "null" => None,
        _ => {
            let named: Option<i64> = c.get("policy")?;
            if named.is_none() {
                let stored = c
                    .get::<Vec<u8>>("policy_id_quoted")
                    .map(|q| String::from_utf8_lossy(&q).into_owned())
                    .unwrap_or_default();
                return Err(c.bad(
                    "policy_id",
                    format!(
                        "{stored} names no policy (NULL means every policy; sqlite3 checks \
                         foreign keys only after `PRAGMA foreign_keys = ON`)"
                    ),
                ));
            }
            named
        }
    };
    Ok(ExclusionRow {
        id: c.id(),
        policy_id,
        user_id: text(&c, "user_id", true)?,
        starts_at: text(&c, "starts_at", false)?.unwrap_or_default(),
        ends_at: text(&c, "ends_at", false)?.unwrap_or_default(),
        timezone: text(&c, "timezone", true)?,
        reason: text(&c, "reason", true)?,
    })
}
