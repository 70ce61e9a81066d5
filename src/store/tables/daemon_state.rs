//! Small facts the daemon must remember across restarts (for example the
//! instant the loop was last seen), as text under a key.
//!
//! A table of its own rather than columns elsewhere, so a new fact needs
//! no migration; the daemon owns the keys and the meaning of the values.
//! With several instances on PostgreSQL the last writer wins: `last_seen`
//! then means "some instance was alive".

use crate::store::db::Db;
use crate::store::dialect::{Backend, Stmt};
use crate::store::StoreError;

impl<D: Backend> Db<D> {
    /// The value stored under `key`, if any.
    pub async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        let stmt = Stmt::new("SELECT value FROM daemon_state WHERE key = $1").arg(key);
        self.value(stmt, "reading daemon state").await
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
