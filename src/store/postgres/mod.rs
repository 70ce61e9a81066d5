//! The shared backend: PostgreSQL through sqlx, for several active
//! `recsched run` instances on one database.
//!
//! # Invariants
//! - Exactly once: a burst of segments is claimed with one
//!   `INSERT .. SELECT FROM UNNEST(..) ON CONFLICT (user_id, segment_start)
//!   DO NOTHING RETURNING ..`; PostgreSQL makes a second inserter of the
//!   same key wait for the first to commit, then skip it, so across
//!   instances exactly one gets the id. Rows are inserted in
//!   (user, segment start) order, so two instances claiming the same burst
//!   take their key locks in the same order and never deadlock.
//! - Ownership: a claim written through a handle made by
//!   [`PgStore::for_instance`] carries that instance's `owner` and a
//!   `lease_until` of now + `database.lease_seconds`, by the database
//!   server's clock (one clock for every host, so host clock skew cannot
//!   make a live instance look dead). The owner renews its leases
//!   ([`PgStore::renew_leases`]); once a lease has run out, any other
//!   instance takes the row over ([`PgStore::take_over`]) with one
//!   `UPDATE .. FROM (SELECT .. FOR UPDATE SKIP LOCKED)`, so each lost row
//!   goes to exactly one survivor.
//! - Timestamps are `TIMESTAMPTZ`: PostgreSQL compares and does
//!   arithmetic on them natively (leases need `now() + interval`), and
//!   psql shows them in the operator's zone; they are UTC instants all the
//!   same.
//! - A statement that fails aborts a PostgreSQL transaction, so a batch
//!   checks what could fail (the row exists, the move is legal) before it
//!   writes, under a row lock, instead of catching the error afterwards.
//!
//! # Layout
//! - `open`: connecting (the URL's password never leaves it), migrating.
//! - `policies`, `recordings`, `attempts`, `daemon_state`, `teams`: the
//!   queries.
//! - `leases`: renewal, takeover and release of open rows.
//! - `listen`: `LISTEN recsched_policies`, fed by the policy triggers.
//! - `row`: reading columns back into types, naming the row on failure.

mod attempts;
mod daemon_state;
mod exclusions;
mod leases;
mod listen;
mod open;
mod policies;
mod recordings;
mod report;
mod row;
mod teams;

use std::sync::Arc;
use std::time::Duration;

use sqlx::{PgPool, Postgres, Transaction};

use super::StoreError;

pub use listen::PolicyListener;

/// The states whose rows are open: a lease only matters for these.
const OPEN_STATES: &str = "('pending', 'recording', 'stopping')";

/// A cheap-to-clone handle on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// The URL without its password: what errors and logs name.
    target: Arc<str>,
    /// The instance whose claims this handle writes, if any.
    owner: Option<Arc<str>>,
    /// How long a claim or a renewal keeps a row this instance's.
    lease: Duration,
}

impl PgStore {
    /// The database, as errors name it (no password).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The same database, writing claims as instance `owner`.
    pub fn for_instance(&self, owner: &str) -> Self {
        Self {
            owner: Some(Arc::from(owner)),
            ..self.clone()
        }
    }

    /// How long a lease lasts (`database.lease_seconds`).
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// Closes every connection; pending statements finish first.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Turns a sqlx error on this database into a [`StoreError`].
    fn err(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| StoreError::from_pg(&self.target, context, source)
    }

    /// The lease length in seconds, as bound into `make_interval`.
    fn lease_secs(&self) -> f64 {
        self.lease.as_secs_f64()
    }

    async fn begin(
        &self,
        context: &'static str,
    ) -> Result<Transaction<'static, Postgres>, StoreError> {
        self.pool.begin().await.map_err(self.err(context))
    }
}
