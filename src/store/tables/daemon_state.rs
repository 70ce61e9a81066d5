//! Small facts the daemon must remember across restarts (for example the
//! instant the loop was last seen), as text under a key.
//!
//! A table of its own rather than columns elsewhere, so a new fact needs
//! no migration; the daemon owns the keys and the meaning of the values.
//! With several instances on PostgreSQL the last writer wins: `last_seen`
//! then means "some instance was alive".

use crate::store::db::{stored, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{BadRow, StoreError};

impl<D: Backend> Db<D> {
    /// The value stored under `key`, if any; [`StoreError::BadRow`] (keyed
    /// by `rowid`) if it does not read back as text, which sqlite3 lets an
    /// operator store.
    pub async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let stmt = Stmt::new(D::DAEMON_STATE).arg(key);
        let Some(row) = self.query_optional(stmt, "reading daemon state").await? else {
            return Ok(None);
        };
        let keyed = |bad: BadRow| bad.keyed_by("rowid");
        let c = Cols::<D>::new(&row, "daemon_state").map_err(keyed)?;
        let value = stored(&c, "value").text().map_err(keyed)?;
        Ok(Some(value))
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub async fn set_state_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        let stmt = Stmt::new(
            "INSERT INTO daemon_state (key, value) VALUES ($1, $2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .arg(key)
        .arg(value);
        self.run(stmt, "writing daemon state").await?;
        Ok(())
    }
}
