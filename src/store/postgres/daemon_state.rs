//! Small facts the daemon must remember across restarts, as text under a
//! key. With several instances, the last writer wins: `last_seen` is then
//! "some instance was alive".

use super::PgStore;
use crate::store::StoreError;

impl PgStore {
    pub async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        sqlx::query_scalar("SELECT value FROM daemon_state WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await
            .map_err(self.err("reading daemon state"))
    }

    pub async fn set_state_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO daemon_state (key, value) VALUES ($1, $2) \
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
