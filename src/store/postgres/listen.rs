//! `LISTEN recsched_policies`: the policy triggers `pg_notify` this
//! channel (at commit) whenever `policies` or `policy_users` change, so a
//! daemon reloads at once instead of at its next poll. Polling the
//! revision stays as the fallback: a notification sent while the
//! listening connection was down is lost.

use sqlx::postgres::PgListener;

use super::PgStore;
use crate::store::StoreError;

/// The channel the migration's trigger notifies.
const CHANNEL: &str = "recsched_policies";

/// A connection of its own, listening for policy changes.
pub struct PolicyListener {
    listener: PgListener,
    target: String,
}

impl std::fmt::Debug for PolicyListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyListener")
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

impl PolicyListener {
    /// Waits for the next change. An error means the connection broke;
    /// the next call reconnects (changes in between are lost, which is why
    /// the caller also polls).
    pub async fn changed(&mut self) -> Result<(), StoreError> {
        self.listener
            .recv()
            .await
            .map(|_| ())
            .map_err(|e| StoreError::from_pg(&self.target, "listening for policy changes", e))
    }
}

impl PgStore {
    pub async fn listen_policies(&self) -> Result<PolicyListener, StoreError> {
        let context = "listening for policy changes";
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(self.err(context))?;
        listener.listen(CHANNEL).await.map_err(self.err(context))?;
        Ok(PolicyListener {
            listener,
            target: self.target().to_owned(),
        })
    }
}
