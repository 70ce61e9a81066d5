//! Small facts the daemon must remember across restarts (for example the
//! instant the planner has planned through), as text under a key.
//!
//! A table of its own rather than columns elsewhere, so a new fact needs
//! no migration; the daemon owns the keys and the meaning of the values.

use super::SqliteStore;
use crate::store::StoreError;

impl SqliteStore {
    /// The value stored under `key`, if any.
    pub async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM daemon_state WHERE key = ?")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("reading daemon state"))
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub async fn set_state_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO daemon_state (key, value) VALUES (?, ?) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(key)
        .bind(value)
        .execute(&self.pool)
        .await
        .map_err(self.err("writing daemon state"))?;
        Ok(())
    }
}
