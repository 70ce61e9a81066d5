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
//!   server's clock (one clock for every host, so a host whose clock is
//!   skewed or has stepped can neither make a live instance look dead nor
//!   keep a dead one's lease alive). The owner renews its leases; once a
//!   lease has run out, any instance takes the row over with one
//!   `UPDATE .. FROM (SELECT .. FOR UPDATE SKIP LOCKED)`, so each lost row
//!   goes to exactly one instance (`leases`).
//! - The fence: every write of such a handle to a recording row locks the
//!   row and checks `owner = me AND lease_until > now()` first; a row that
//!   fails it is [`StoreError::Lost`] and nothing of that write is kept.
//!   A takeover changes the owner under the same row lock, so a stalled
//!   instance that wakes after losing a row can no longer change it.
//! - Timestamps are `TIMESTAMPTZ`: PostgreSQL compares and does
//!   arithmetic on them natively (leases need `now() + interval`), and
//!   psql shows them in the operator's zone; they are UTC instants all the
//!   same.
//! - A statement that fails aborts a PostgreSQL transaction, so a batch
//!   checks what could fail (the row exists and is ours, the move is
//!   legal) before it writes, under the row lock, instead of catching the
//!   error afterwards.
//!
//! # Layout
//! - this file: the [`Dialect`] (`TIMESTAMPTZ`, `FOR UPDATE` and the
//!   fence, snapshot reads, the locks that keep two instances from
//!   refreshing one team or importing one calendar at once) and the claim.
//! - `batch`: a batch of row writes in three set-based statements.
//! - `open`: connecting (the URL's password never leaves it), migrating.
//! - `leases`: renewal, takeover and release of open rows.
//! - `listen`: `LISTEN recsched_policies`, fed by the policy triggers.

mod batch;
mod leases;
mod listen;
mod open;

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, DurationRound, Utc};
use futures::future::BoxFuture;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Postgres, Row};

use super::batch::RowEdit;
use super::db::{decode_problem, Db};
use super::dialect::Dialect;
use super::tables::recordings::claimed;
use super::{NewAttempt, NewRecording, RecordingId, StoreError};

pub use listen::PolicyListener;

/// A handle on a PostgreSQL database.
pub(crate) type PgStore = Db<Postgres>;

/// Where a PostgreSQL handle points, and as whom it writes.
#[derive(Debug, Clone)]
pub struct Site {
    /// The URL without its password: what errors and logs name.
    target: Arc<str>,
    /// The instance whose claims this handle writes and whose leases it
    /// checks before every write, if any.
    owner: Option<Arc<str>>,
    /// How long a claim or a renewal keeps a row this instance's.
    lease: Duration,
    /// How much of its lease an instance must have left before it sends
    /// a request for the row.
    margin: Duration,
}

/// Claims a burst in one statement. The rows go in (user, start) order so
/// that instances claiming the same burst lock the same keys in the same
/// order. The owner and the lease are written only for a handle made for
/// an instance.
const CLAIM_SQL: &str = "INSERT INTO recordings \
     (user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, state, \
      late_seconds, last_error, owner, lease_until) \
     SELECT u, p, s, e, r, m, st, l, le, $10::text, \
            CASE WHEN $10::text IS NULL THEN NULL \
                 ELSE now() + make_interval(secs => $11::float8) END \
     FROM UNNEST($1::text[], $2::bigint[], $3::timestamptz[], $4::timestamptz[], \
                 $5::bigint[], $6::text[], $7::text[], $8::float8[], $9::text[]) \
          AS t(u, p, s, e, r, m, st, l, le) \
     ORDER BY u, s \
     ON CONFLICT (user_id, segment_start) DO NOTHING \
     RETURNING id, user_id, segment_start";

impl Dialect for Postgres {
    type Time = DateTime<Utc>;

    fn encode_time(at: DateTime<Utc>) -> DateTime<Utc> {
        at
    }

    fn read_time(row: &PgRow, column: &str) -> Result<Option<DateTime<Utc>>, String> {
        row.try_get(column).map_err(decode_problem)
    }

    fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
        at.duration_trunc(chrono::Duration::microseconds(1))
            .unwrap_or(at)
    }

    type Site = Site;

    fn error(site: &Site, context: &'static str, source: sqlx::Error) -> StoreError {
        StoreError::from_pg(&site.target, context, source)
    }

    const BEGIN_WRITE: &'static str = "BEGIN";
    const SNAPSHOT: Option<&'static str> =
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const LOOSE_TYPES: bool = false;

    // The fence: an instance writes only rows it owns with a live lease,
    // by the server's clock (the one takeovers use).
    fn lock_rows<'c>(
        conn: &'c mut PgConnection,
        site: &'c Site,
        ids: &'c [i64],
    ) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
        batch::lock_rows(conn, site, ids)
    }

    fn update_rows<'c, 'e: 'c>(
        conn: &'c mut PgConnection,
        site: &'c Site,
        edits: &'c [RowEdit<'e>],
    ) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
        batch::update_rows(conn, site, edits)
    }

    fn insert_attempts<'c, 'a: 'c>(
        conn: &'c mut PgConnection,
        attempts: &'c [&'a NewAttempt],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>> {
        batch::insert_attempts(conn, attempts)
    }

    const POLICIES: &'static str =
        "SELECT id, name, enabled, cron, timezone, window_seconds, end_mode \
         FROM policies WHERE ($1::text IS NULL OR name = $1) ORDER BY id";

    // The foreign key is always enforced: `policy` is never NULL. The
    // table has no id column; a row is named by its policy.
    const POLICY_USERS: &'static str =
        "SELECT policy_id AS id, policy_id AS policy, user_id FROM policy_users \
         WHERE ($1::text IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1)) \
         ORDER BY policy_id, user_id";

    const USER_KEY: &'static str = "policy_id";

    // The foreign key is enforced: `policy` is never NULL. `rowid` is the
    // key migration 0004 gives the team tables, named as SQLite names its
    // own, so a bad row is found with the same WHERE on both.
    const POLICY_TEAMS: &'static str =
        "SELECT rowid AS id, policy_id AS policy, team_id FROM policy_teams \
         WHERE ($1::text IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1)) \
         ORDER BY policy_id, team_id";

    const TEAM_MEMBERS: &'static str = "SELECT rowid AS id, team_id, user_id FROM team_members \
         WHERE team_id IN (SELECT team_id FROM policy_teams \
             WHERE ($1::text IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1))) \
         ORDER BY team_id, user_id";

    // Instances refresh teams concurrently: one refresher per team.
    const LOCK_TEAM: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(hashtext('recsched_team:' || $1))");

    const DAEMON_STATE: &'static str = "SELECT rowid AS id, value FROM daemon_state WHERE key = $1";

    const EXCLUSIONS: &'static str = "SELECT e.id, p.id AS policy, \
        e.policy_id IS NULL AS every_policy, e.user_id, e.starts_at, e.ends_at, e.timezone, \
        e.reason \
        FROM exclusions e LEFT JOIN policies p ON p.id = e.policy_id ORDER BY e.id";

    const LOCK_EXCLUSIONS: Option<&'static str> =
        Some("LOCK TABLE exclusions IN SHARE ROW EXCLUSIVE MODE");
}

impl Db<Postgres> {
    /// The database, as errors name it (no password).
    pub fn target(&self) -> &str {
        &self.site.target
    }

    /// The same database, writing claims as instance `owner` and fencing
    /// every write to a recording row by its lease.
    pub fn for_instance(&self, owner: &str) -> Self {
        let mut site = self.site.clone();
        site.owner = Some(Arc::from(owner));
        Self {
            pool: self.pool.clone(),
            site,
        }
    }

    /// How long a lease lasts (`database.lease_seconds`).
    pub fn lease(&self) -> Duration {
        self.site.lease
    }

    /// How much of its lease an instance keeps in hand before a request
    /// (`database.lease_margin_seconds`).
    pub fn lease_margin(&self) -> Duration {
        self.site.margin
    }

    /// The lease length in seconds, as bound into `make_interval`.
    fn lease_secs(&self) -> f64 {
        self.site.lease.as_secs_f64()
    }

    /// Claims many segments in one statement (see the module docs). The
    /// answer is in input order.
    pub async fn claim_many(
        &self,
        new: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        if new.is_empty() {
            return Ok(Vec::new());
        }
        let column = |f: fn(&NewRecording) -> String| new.iter().map(f).collect::<Vec<_>>();
        let rows = sqlx::query(CLAIM_SQL)
            .bind(column(|n| n.user_id.as_str().to_owned()))
            .bind(new.iter().map(|n| n.policy_id).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.segment_start).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.segment_end).collect::<Vec<_>>())
            .bind(
                new.iter()
                    .map(|n| i64::from(n.requested_seconds))
                    .collect::<Vec<_>>(),
            )
            .bind(column(|n| n.end_mode.as_str().to_owned()))
            .bind(column(|n| n.state.as_str().to_owned()))
            .bind(new.iter().map(|n| n.late_seconds).collect::<Vec<_>>())
            .bind(new.iter().map(|n| n.last_error.clone()).collect::<Vec<_>>())
            .bind(self.site.owner.as_deref())
            .bind(self.lease_secs())
            .fetch_all(&self.pool)
            .await
            .map_err(self.err("claiming segments"))?;
        claimed::<Postgres>(new, &rows)
    }
}
