//! The durable state of recsched: policy rows, recording rows and their
//! audit trail, behind one handle whatever the database.
//!
//! # Why a layer of its own
//! Every other module works with typed values; this one is the only place
//! that speaks SQL, knows the schemas (`migrations/sqlite/`,
//! `migrations/postgres/`) and turns database errors into a [`StoreError`]
//! an operator can act on. It converts rows to the vocabulary of `policy`
//! ([`PolicyRow`]) and `recording` ([`RecordingState`], `ContactId`, ...),
//! never the reverse.
//!
//! # One handle, one store contract, two backends
//! [`Store`] has the same methods whatever the backend, so the planner,
//! the daemon and the CLI never know which one they use. Behind it, every
//! query and every row decoder is written once, generic over a backend
//! (`tables/`), and each backend states only where it differs (`dialect`:
//! how an instant is kept, row locks and the fence, SQLite's stored-type
//! checks, the burst claim). No `sqlx::Any`: the dialects keep their own
//! types where it matters. The contract tests run on both backends.
//! - `sqlite`: the embedded default, one file, one active instance; rows
//!   have no owner and writes are not fenced.
//! - `postgres`: one database, several active instances; open rows carry
//!   an owner and a lease, a dead instance's rows are taken over, and
//!   writes are fenced (below).
//!
//! # Invariants (every backend)
//! - Exactly once: a recording row is claimed with
//!   `INSERT .. ON CONFLICT (user_id, segment_start) DO NOTHING` before any
//!   request is sent; whoever gets an id owns the segment, across tasks,
//!   handles, processes and hosts.
//! - A recording row only moves along [`RecordingState::can_move_to`], and
//!   the guard is in SQL (a row moves only from the state it was read in:
//!   `state = CASE WHEN state = <read> THEN <to> ..`), so a concurrent
//!   writer can never make a row go backwards.
//! - A batch of row writes ([`Store::write_batch`]) is three set-based
//!   statements whatever its size (`batch`), with one answer per write.
//! - The store never reads the daemon's clock.
//! - Values, states included, always travel as bind parameters.
//!
//! # The fence (PostgreSQL)
//! An instance writes a recording row only while it owns it with a live
//! lease: every write through [`Store::for_instance`] locks the row and
//! checks `owner = me AND lease_until > now()` (the server's clock, the one
//! takeovers use) before it changes anything. A row that fails the check
//! has been lost (its lease ran out; another instance has it or may take
//! it): the write changes nothing, not even the audit trail, and is
//! reported as [`StoreError::Lost`]; the daemon then drops the row and
//! sends nothing more for it. A renewal ([`Store::renew_leases_of`]) that
//! no longer finds a row tells the same. SQLite (one instance per file)
//! keeps no owner and does not fence.
//!
//! # Layout
//! - `error`: [`StoreError`] and the classification of database codes.
//! - `bad_row`: [`BadRow`], a row that does not read back, and [`Rows`],
//!   what a read of many rows returns: the good ones and the bad ones. A
//!   bad row costs only itself (the rule is in `bad_row`'s docs and the
//!   README); reads the daemon plans from never fail because of one.
//! - `policies`, `recordings`, `attempts`, `teams`, `exclusions`,
//!   `report`: the vocabulary of each table (and of the report's read).
//! - `retention`: how long history is kept (`[history]`), and what a
//!   batch of deletes of the rest did.
//! - `batch`: a batch of row writes folded into one edit per row and its
//!   audit rows (pure), so a batch is three set-based statements.
//! - `dialect`: the two traits the backends meet in (what differs, and
//!   what sqlx does alike), and the typed parameters of a statement.
//! - `db`: a handle on one database of either backend; `Cols`, which
//!   reads a row's columns and names the one that does not read back; and
//!   `Stored`, a column judged on SQLite's stored type.
//! - `tables/`: each table's queries and decoders, written once
//!   (policies with their users and teams, recordings, attempts, teams,
//!   exclusions, the report's read, daemon state).
//! - `sqlite/`, `postgres/`: opening each database, its dialect, its claim;
//!   PostgreSQL's leases and `LISTEN`.
//!
//! Depends on `policy` and `recording` only.

mod attempts;
mod bad_row;
mod batch;
mod db;
mod dialect;
mod error;
mod exclusions;
mod migrations;
mod policies;
mod postgres;
mod recordings;
mod report;
mod retention;
mod sqlite;
mod tables;
mod teams;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use attempts::{
    AttemptOutcome, AttemptRow, NewAttempt, Operation, OwnedOutcome, RowWrite,
    RESPONSE_BODY_MAX_BYTES,
};
pub use bad_row::{until_fixed, BadRow, Rows};
pub use error::StoreError;
pub use exclusions::NewExclusion;
pub use policies::NewPolicy;
pub use postgres::PolicyListener;
pub use recordings::{
    Adopted, EndMode, NewRecording, RecordingFilter, RecordingId, RecordingRow, Renewal,
};
pub use report::ReportRow;
pub use retention::{Cutoffs, History, Prune, PruneBatch, PruneCounts};
pub use teams::{MembershipChange, TeamMember, TeamPolicy, TeamRefresh};

use sqlx::{Postgres, Sqlite};

use crate::config::{Range, RangeCheck};
use crate::policy::{ExclusionRow, PolicyRow};
#[cfg(feature = "test-support")]
use crate::recording::{ContactId, InteractionId};
use crate::recording::{RecordingState, UserId};
use crate::secret::Secret;
use db::Db;

/// Which database, and how it is used.
///
/// In TOML (section `[database]`): `path = "/var/lib/recsched/recsched.db"`,
/// `busy_timeout_seconds = 15` for SQLite (the default); or
/// `url = "postgres://recsched@db.example/recsched"` (or `url_file`) for
/// PostgreSQL, with `lease_seconds = 30` and `lease_margin_seconds = 2`.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// The SQLite file; created (mode 0600) if missing. Its directory must
    /// exist. Unused when `url` or `url_file` is set.
    pub path: PathBuf,
    /// How long a statement waits for another writer's lock (SQLite) or
    /// for a free pooled connection (PostgreSQL) before it fails with
    /// [`StoreError::Busy`] or [`StoreError::Conflict`].
    #[serde(rename = "busy_timeout_seconds", deserialize_with = "seconds")]
    pub busy_timeout: Duration,
    /// A PostgreSQL URL (`postgres://user:password@host:port/database?sslmode=verify-full`)
    /// selects the PostgreSQL backend. It may hold a password, so it is
    /// never printed; prefer `RECSCHED_DATABASE__URL` or `url_file` to
    /// keep it out of the config file.
    pub url: Option<Secret>,
    /// A file holding the PostgreSQL URL (trailing newline ignored); a
    /// relative name is looked up in systemd's `$CREDENTIALS_DIRECTORY`.
    pub url_file: Option<PathBuf>,
    /// PostgreSQL: how long an open recording row stays this instance's
    /// without renewal. Renewed every third of it; a dead instance's rows
    /// are taken over by another one after at most about this long.
    #[serde(rename = "lease_seconds", deserialize_with = "seconds")]
    pub lease: Duration,
    /// PostgreSQL: before each request for an open row, an instance checks
    /// that its lease on the row has at least this long left (by its own
    /// monotonic clock); if not, it renews the lease first, or, when the
    /// renewal finds the row no longer its own, gives the row up and sends
    /// nothing. Less than `lease_seconds`; unset means 2 s, or a third of
    /// the lease when that is shorter ([`Settings::lease_margin`]).
    #[serde(rename = "lease_margin_seconds", deserialize_with = "some_seconds")]
    pub lease_margin: Option<Duration>,
    /// PostgreSQL: connections in each instance's pool.
    pub max_connections: u32,
    /// Where `url_file` is looked up when relative: systemd's
    /// `$CREDENTIALS_DIRECTORY`, filled in by the CLI (never from the file).
    #[serde(skip)]
    pub credentials_dir: Option<PathBuf>,
}

impl Settings {
    pub const DEFAULT_PATH: &'static str = "./recsched.db";
    pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(15);
    pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);
    pub const DEFAULT_LEASE_MARGIN: Duration = Duration::from_secs(2);
    pub const DEFAULT_MAX_CONNECTIONS: u32 = 10;
    pub const BUSY_TIMEOUT_SECONDS: Range<f64> =
        Range::new("database.busy_timeout_seconds", 0.1, 600.0);
    /// At least 1 s: the lease is renewed every third of it.
    pub const LEASE_SECONDS: Range<f64> = Range::new("database.lease_seconds", 1.0, 3600.0);
    pub const LEASE_MARGIN_SECONDS: Range<f64> =
        Range::new("database.lease_margin_seconds", 0.1, 3600.0);
    pub const MAX_CONNECTIONS: Range<u32> = Range::new("database.max_connections", 1, 1000);

    /// Checks every numeric key against its range.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::BUSY_TIMEOUT_SECONDS, self.busy_timeout.as_secs_f64());
        check.check(Self::LEASE_SECONDS, self.lease.as_secs_f64());
        let margin = self.lease_margin();
        check.check(Self::LEASE_MARGIN_SECONDS, margin.as_secs_f64());
        if margin >= self.lease {
            check.problem(format!(
                "database.lease_margin_seconds = {}: must be less than database.lease_seconds \
                 (= {}), or every request would wait for a renewal first",
                margin.as_secs_f64(),
                self.lease.as_secs_f64()
            ));
        }
        check.check(Self::MAX_CONNECTIONS, self.max_connections);
    }

    /// How much of its lease an instance keeps in hand before a request:
    /// `lease_margin_seconds`, by default 2 s or a third of the lease when
    /// that is shorter.
    pub fn lease_margin(&self) -> Duration {
        self.lease_margin
            .unwrap_or_else(|| Self::DEFAULT_LEASE_MARGIN.min(self.lease / 3))
    }

    /// The PostgreSQL URL, when one is configured: `url`, else the content
    /// of `url_file`. `None` means SQLite.
    pub fn postgres_url(&self) -> Result<Option<Secret>, StoreError> {
        let url = match (&self.url, &self.url_file) {
            (Some(_), Some(_)) => {
                return Err(StoreError::BadUrl(
                    "both database.url and database.url_file are set; keep one".into(),
                ))
            }
            (Some(url), None) => url.clone(),
            (None, Some(file)) => {
                let file = match &self.credentials_dir {
                    Some(dir) if file.is_relative() => dir.join(file),
                    _ => file.clone(),
                };
                let text = std::fs::read_to_string(&file).map_err(|e| {
                    StoreError::BadUrl(format!(
                        "cannot read database.url_file {}: {e}",
                        file.display()
                    ))
                })?;
                Secret::new(text.trim())
            }
            (None, None) => return Ok(None),
        };
        let text = url.expose();
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Err(StoreError::BadUrl(
                "must start with postgres:// (for SQLite, leave it unset and set database.path)"
                    .into(),
            ));
        }
        Ok(Some(url))
    }

    /// The database as an operator would name it: the SQLite file, or the
    /// PostgreSQL URL without its password.
    pub fn describe(&self) -> String {
        match self.postgres_url() {
            Ok(Some(url)) => redact_url(url.expose()),
            Ok(None) => self.path.display().to_string(),
            Err(_) => "the PostgreSQL database (database.url is not valid)".to_owned(),
        }
    }
}

fn some_seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    seconds(d).map(Some)
}

/// `scheme://user@host/db...` without the password or the query string.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return "postgres://...".to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let rest = match rest.rsplit_once('@') {
        Some((user, host)) => {
            let user = user.split(':').next().unwrap_or_default();
            format!("{user}@{host}")
        }
        None => rest.to_owned(),
    };
    format!("{scheme}://{rest}")
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            path: PathBuf::from(Self::DEFAULT_PATH),
            busy_timeout: Self::DEFAULT_BUSY_TIMEOUT,
            url: None,
            url_file: None,
            lease: Self::DEFAULT_LEASE,
            lease_margin: None,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            credentials_dir: None,
        }
    }
}

fn seconds<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let secs = <f64 as serde::Deserialize>::deserialize(d)?;
    Duration::try_from_secs_f64(secs).map_err(|_| {
        serde::de::Error::custom(format!(
            "{secs} is not a number of seconds (must be finite and not negative)"
        ))
    })
}

/// A cheap-to-clone handle on the database, whichever backend holds it.
///
/// Each method is the same contract on every backend (the contract tests
/// run on both); where a backend keeps it differently, its module says how.
#[derive(Debug, Clone)]
pub struct Store {
    db: Backends,
}

#[derive(Debug, Clone)]
enum Backends {
    /// The embedded default: one SQLite file.
    Sqlite(Db<Sqlite>),
    /// A PostgreSQL database, shared by several active instances.
    Postgres(Db<Postgres>),
}

/// Runs `$body` with `$s` bound to the backend's own handle.
macro_rules! each {
    ($self:expr, $s:ident => $body:expr) => {
        match &$self.db {
            Backends::Sqlite($s) => $body,
            Backends::Postgres($s) => $body,
        }
    };
}

impl Store {
    /// Opens the database for the daemon and the CLI's writing commands:
    /// PostgreSQL when `database.url` (or `url_file`) is set, else the
    /// SQLite file (created mode 0600 if missing); migrates either.
    pub async fn open(settings: &Settings) -> Result<Self, StoreError> {
        let db = match settings.postgres_url()? {
            Some(url) => Backends::Postgres(Db::<Postgres>::open(&url, settings).await?),
            None => Backends::Sqlite(Db::<Sqlite>::open(settings).await?),
        };
        Ok(Self { db })
    }

    /// Opens an existing, already migrated database without the right to
    /// write. Never creates or migrates anything.
    pub async fn open_read_only(settings: &Settings) -> Result<Self, StoreError> {
        let db = match settings.postgres_url()? {
            Some(url) => Backends::Postgres(Db::<Postgres>::open_read_only(&url, settings).await?),
            None => Backends::Sqlite(Db::<Sqlite>::open_read_only(settings).await?),
        };
        Ok(Self { db })
    }

    /// The SQLite file this handle writes to; empty for PostgreSQL (see
    /// [`Store::describe`]).
    pub fn path(&self) -> &Path {
        match &self.db {
            Backends::Sqlite(s) => s.path(),
            Backends::Postgres(_) => Path::new(""),
        }
    }

    /// The database as errors name it: the file, or the URL without its
    /// password.
    pub fn describe(&self) -> String {
        match &self.db {
            Backends::Sqlite(s) => s.path().display().to_string(),
            Backends::Postgres(s) => s.target().to_owned(),
        }
    }

    /// Whether several instances may share this database, all active.
    pub fn is_shared(&self) -> bool {
        matches!(self.db, Backends::Postgres(_))
    }

    /// Closes every connection; pending statements finish first. Further
    /// calls fail.
    pub async fn close(&self) {
        each!(self, s => s.close().await)
    }

    // ---- instances and leases ---------------------------------------

    /// The same database, writing as instance `owner`. On PostgreSQL its
    /// claims carry the owner and a lease, and every write to a recording
    /// row is fenced: it lands only while this instance owns the row with
    /// a live lease, else it is [`StoreError::Lost`]. SQLite keeps no
    /// owner (one instance per file) and does not fence.
    pub fn for_instance(&self, owner: &str) -> Self {
        let db = match &self.db {
            Backends::Sqlite(s) => Backends::Sqlite(s.clone()),
            Backends::Postgres(s) => Backends::Postgres(s.for_instance(owner)),
        };
        Self { db }
    }

    /// How long a lease lasts, where leases exist (PostgreSQL). The owner
    /// renews every third of it.
    pub fn lease(&self) -> Option<Duration> {
        match &self.db {
            Backends::Sqlite(_) => None,
            Backends::Postgres(s) => Some(s.lease()),
        }
    }

    /// How much of its lease an instance must have left when it sends a
    /// request for a row (`database.lease_margin_seconds`), where leases
    /// exist.
    pub fn lease_margin(&self) -> Option<Duration> {
        match &self.db {
            Backends::Sqlite(_) => None,
            Backends::Postgres(s) => Some(s.lease_margin()),
        }
    }

    /// The open rows this instance should look after now. SQLite (one
    /// instance per file): every open row. PostgreSQL: the open rows whose
    /// lease has run out (this instance's own included), which this call
    /// makes this instance's.
    ///
    /// An open row that does not read back is in `bad`, not adopted: its
    /// user stays occupied ([`Store::occupied_since`]) until it is fixed.
    pub async fn adopt_open_rows(&self) -> Result<Rows<Adopted>, StoreError> {
        match &self.db {
            Backends::Sqlite(s) => Ok(s.open_rows().await?.map(|row| Adopted {
                row,
                previous_owner: None,
            })),
            Backends::Postgres(s) => s.take_over().await,
        }
    }

    /// Renews this instance's leases; returns the open rows it owns.
    /// Empty on SQLite, which keeps no leases.
    pub async fn renew_leases(&self) -> Result<Vec<RecordingId>, StoreError> {
        match &self.db {
            Backends::Sqlite(_) => Ok(Vec::new()),
            Backends::Postgres(s) => s.renew_leases().await,
        }
    }

    /// Renews the leases of those of `ids` this instance still owns and
    /// that are still open, and names those that are open but no longer
    /// its own (lost). SQLite keeps no leases: every id is renewed.
    pub async fn renew_leases_of(&self, ids: &[RecordingId]) -> Result<Renewal, StoreError> {
        match &self.db {
            Backends::Sqlite(_) => Ok(Renewal {
                renewed: ids.to_vec(),
                lost: Vec::new(),
            }),
            Backends::Postgres(s) => s.renew_leases_of(ids).await,
        }
    }

    /// Ends this instance's leases now, so another instance takes its open
    /// rows over without waiting (clean shutdown). Returns how many.
    pub async fn release_leases(&self) -> Result<u64, StoreError> {
        match &self.db {
            Backends::Sqlite(_) => Ok(0),
            Backends::Postgres(s) => s.release_leases().await,
        }
    }

    /// A listener woken on every policy change, where the database can
    /// push them (PostgreSQL `LISTEN`); `None` on SQLite.
    pub async fn listen_policies(&self) -> Result<Option<PolicyListener>, StoreError> {
        match &self.db {
            Backends::Sqlite(_) => Ok(None),
            Backends::Postgres(s) => s.listen_policies().await.map(Some),
        }
    }

    // ---- recordings -------------------------------------------------

    /// Claims many segments in one transaction, for the burst of thousands
    /// of users whose windows open at the same instant: inserts each row
    /// unless one already exists for the same user and segment start.
    /// `Some(id)` means the caller owns the segment and may send the
    /// start; `None` means someone else already has it (another task,
    /// process, instance or an earlier run). The answer is in input order.
    pub async fn claim_many(
        &self,
        new: &[NewRecording],
    ) -> Result<Vec<Option<RecordingId>>, StoreError> {
        each!(self, s => s.claim_many(new).await)
    }

    /// Deletes the rows among `ids` that are still `pending` with nothing
    /// sent for them (no contact id, no attempt) and, on PostgreSQL, still
    /// this instance's: rows claimed ahead of a window whose policy changed
    /// before it opened. Returns how many it deleted. Never touches a row
    /// anything was sent for: that one is history.
    pub async fn withdraw_pending(&self, ids: &[RecordingId]) -> Result<u64, StoreError> {
        if ids.is_empty() {
            return Ok(0);
        }
        each!(self, s => s.withdraw_pending(ids).await)
    }

    /// Moves a row to `to`, if the state diagram allows it from where the
    /// row stands; `Ok(false)` if it was already there, and
    /// [`StoreError::IllegalMove`] for a move the diagram forbids.
    pub async fn set_state(
        &self,
        id: RecordingId,
        to: RecordingState,
        last_error: Option<&str>,
        ended_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError> {
        let outcome = AttemptOutcome::Moved {
            to,
            last_error,
            ended_at,
        };
        each!(self, s => s.write_one(id, None, outcome).await)
    }

    /// One row by id.
    pub async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, StoreError> {
        each!(self, s => s.recording(id).await)
    }

    /// Rows matching `filter`, newest segment first. A row that does not
    /// read back fails the call with [`StoreError::BadRow`] naming it.
    pub async fn recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        each!(self, s => s.recordings(filter).await)
    }

    /// Rows matching `filter`, newest segment first; a row that does not
    /// read back is skipped and named in `bad`.
    pub async fn read_recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Rows<RecordingRow>, StoreError> {
        each!(self, s => s.read_recordings(filter).await)
    }

    /// Rows not yet final (`pending`, `recording`, `stopping`), oldest
    /// segment first; an open row that does not read back is named in
    /// `bad`.
    pub async fn open_rows(&self) -> Result<Rows<RecordingRow>, StoreError> {
        each!(self, s => s.open_rows().await)
    }

    /// Every segment, in any state, still occupying its user after `since`
    /// or not yet final, as `(user, segment_start, effective_end)`, by user
    /// then start. Each row is judged on the columns that place it in
    /// time (user, start, end, `ended_at`, state); one that does not read
    /// back is named in `bad`, and its user (if the user id reads) is
    /// occupied [`until_fixed`]: nothing is planned for that user until an
    /// operator fixes the row; every other user goes on. Cheap enough for
    /// every pass: six columns, one row per occupied user.
    pub async fn occupied_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Rows<(UserId, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        each!(self, s => s.occupied_since(since).await)
    }

    // ---- attempts ---------------------------------------------------

    /// Applies many row writes in ONE transaction. The outer error means
    /// nothing was written; the inner results are per write.
    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        each!(self, s => s.write_batch(writes).await)
    }

    /// The audit trail of one recording, oldest first.
    pub async fn attempts_for(&self, id: RecordingId) -> Result<Vec<AttemptRow>, StoreError> {
        each!(self, s => s.attempts_for(id).await)
    }

    // ---- daemon state -----------------------------------------------

    /// The value stored under `key`, if any.
    pub async fn get_state(&self, key: &str) -> Result<Option<String>, StoreError> {
        each!(self, s => s.get_state(key).await)
    }

    /// Stores `value` under `key`, replacing any earlier value.
    pub async fn set_state_value(&self, key: &str, value: &str) -> Result<(), StoreError> {
        each!(self, s => s.set_state_value(key, value).await)
    }

    // ---- policies ---------------------------------------------------

    /// Every policy that reads back, with its users and its teams (with
    /// their stored members) that read back, by id; and every `policies`,
    /// `policy_users`, `policy_teams` and `team_members` row that does not
    /// (skipped). One snapshot.
    pub async fn read_policies(&self) -> Result<Rows<PolicyRow>, StoreError> {
        each!(self, s => s.read_policies().await)
    }

    /// [`Store::read_policies`] without the rows that do not read back.
    pub async fn policy_rows(&self) -> Result<Vec<PolicyRow>, StoreError> {
        Ok(self.read_policies().await?.rows)
    }

    /// The policy named `name`, with its users and teams;
    /// [`StoreError::BadRow`] if its row does not read back.
    pub async fn policy_row(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        each!(self, s => s.policy_row(name).await)
    }

    /// Inserts a policy and its users in one transaction; returns its id.
    pub async fn insert_policy(&self, new: &NewPolicy) -> Result<i64, StoreError> {
        each!(self, s => s.insert_policy(new).await)
    }

    /// Turns a policy on or off.
    pub async fn set_policy_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        each!(self, s => s.set_policy_enabled(name, enabled).await)
    }

    /// Deletes a policy and its user list; its `recordings` rows stay.
    pub async fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        each!(self, s => s.remove_policy(name).await)
    }

    /// Adds `user` to a policy; `false` if it was already there.
    pub async fn add_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        each!(self, s => s.add_policy_user(name, user).await)
    }

    /// Removes `user` from a policy; `false` if it was not there.
    pub async fn remove_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        each!(self, s => s.remove_policy_user(name, user).await)
    }

    /// A number that moves whenever `policies` or `policy_users` change, by
    /// any writer (triggers keep it). Poll it; reload when it differs.
    /// `policy_teams` and who is in `team_members` move it too.
    pub async fn policy_revision(&self) -> Result<i64, StoreError> {
        each!(self, s => s.policy_revision().await)
    }

    // ---- teams ------------------------------------------------------

    /// Makes `members` the membership of `team`, as the directory listed
    /// it (completely) at `at`: joiners get `first_seen`, leavers are
    /// deleted, everyone's `last_seen` moves, the refresh is recorded, in
    /// one transaction. Only who joined or left moves the revision.
    pub async fn replace_team_members(
        &self,
        team: &str,
        members: &[String],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError> {
        each!(self, s => s.replace_team_members(team, members, at).await)
    }

    /// Notes that reading `team` failed at `at`; its membership stays.
    pub async fn team_refresh_failed(
        &self,
        team: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        each!(self, s => s.team_refresh_failed(team, at, error).await)
    }

    /// Every team's refresh record and member count, by team id; a record
    /// that does not read back is named in `bad`.
    pub async fn team_refreshes(&self) -> Result<Rows<TeamRefresh>, StoreError> {
        each!(self, s => s.team_refreshes().await)
    }

    /// The stored members of `team`, by user id; a row that does not read
    /// back is named in `bad`.
    pub async fn team_member_rows(&self, team: &str) -> Result<Rows<TeamMember>, StoreError> {
        each!(self, s => s.team_member_rows(team).await)
    }

    /// Which policies name which teams, by team then policy id; a
    /// `policy_teams` row that does not read back is named in `bad`.
    pub async fn team_policies(&self) -> Result<Rows<TeamPolicy>, StoreError> {
        each!(self, s => s.team_policies().await)
    }

    // ---- retention --------------------------------------------------

    /// How many rows [`Store::prune_batch`] would delete now under
    /// `cutoffs`: old final recordings, their audit rows, and old audit
    /// rows of final recordings that stay.
    pub async fn prune_counts(&self, cutoffs: &Cutoffs) -> Result<PruneCounts, StoreError> {
        each!(self, s => s.prune_counts(cutoffs).await)
    }

    /// Deletes by rule `what` the next at most `limit` old rows with an id
    /// above `after` (old final recordings with their audit rows, or old
    /// audit rows of final recordings), in one short transaction; never an
    /// open row, nor the audit rows of one. `found == 0` in the answer
    /// means nothing is left after `after`.
    pub async fn prune_batch(
        &self,
        cutoffs: &Cutoffs,
        what: Prune,
        after: i64,
        limit: u32,
    ) -> Result<PruneBatch, StoreError> {
        each!(self, s => s.prune_batch(cutoffs, what, after, limit).await)
    }

    // ---- the coverage report ---------------------------------------

    /// Every `recordings` row whose segment meets `[from, to)`, with when
    /// the vendor answered its start; a row that does not read back is
    /// named in `bad` (the report says it left it out).
    pub async fn report_rows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rows<ReportRow>, StoreError> {
        each!(self, s => s.report_rows(from, to).await)
    }

    // ---- exclusions -------------------------------------------------

    /// Every `exclusions` row that reads back, by id, and every one that
    /// does not (skipped). Edits move [`Store::policy_revision`].
    pub async fn read_exclusions(&self) -> Result<Rows<ExclusionRow>, StoreError> {
        each!(self, s => s.read_exclusions().await)
    }

    /// Inserts exclusions in one transaction, in order; `None` where an
    /// identical row already exists.
    pub async fn insert_exclusions(
        &self,
        new: &[NewExclusion],
    ) -> Result<Vec<Option<i64>>, StoreError> {
        each!(self, s => s.insert_exclusions(new).await)
    }

    /// Deletes exclusion `id`; `false` if there was none.
    pub async fn remove_exclusion(&self, id: i64) -> Result<bool, StoreError> {
        each!(self, s => s.remove_exclusion(id).await)
    }
}

/// Writes the daemon never makes (it writes through
/// [`Store::write_batch`] alone), for tests and the benchmark.
#[cfg(feature = "test-support")]
impl Store {
    /// Claims one segment: [`Store::claim_many`] of one.
    pub async fn claim(&self, new: &NewRecording) -> Result<Option<RecordingId>, StoreError> {
        let ids = self.claim_many(std::slice::from_ref(new)).await?;
        Ok(ids.into_iter().next().flatten())
    }

    /// Records the start's answer: keeps the contact id (and interaction
    /// id) and the number of start attempts, and moves the row from
    /// `pending` to `recording`. Returns whether the state moved.
    pub async fn mark_started(
        &self,
        id: RecordingId,
        contact_id: ContactId,
        interaction_id: Option<&InteractionId>,
        attempts: u32,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.mark_started(id, contact_id, interaction_id, attempts).await)
    }

    /// Counts one more start attempt; returns the new count.
    pub async fn bump_attempts(&self, id: RecordingId) -> Result<u32, StoreError> {
        each!(self, s => s.bump_attempts(id).await)
    }

    /// Writes one exchange to the audit trail; returns its row id.
    pub async fn record_attempt(&self, attempt: &NewAttempt) -> Result<i64, StoreError> {
        each!(self, s => s.record_attempt(attempt).await)
    }

    /// Writes one exchange and its effect on the recording row in one
    /// transaction. An illegal move still keeps the audit row.
    pub async fn finish_attempt(
        &self,
        attempt: &NewAttempt,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        each!(self, s => s.finish_attempt(attempt, outcome).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lease_margin_must_be_less_than_the_lease() {
        let ok = |s: &Settings| {
            let mut check = RangeCheck::default();
            s.check_ranges(&mut check);
            check.problems
        };
        assert!(ok(&Settings::default()).is_empty());
        let tight: Settings =
            toml::from_str("lease_seconds = 2\nlease_margin_seconds = 2").unwrap();
        let problems = ok(&tight);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(
                "database.lease_margin_seconds = 2: must be less than database.lease_seconds"
            ),
            "{problems:?}"
        );
        let nan: Settings = toml::from_str("lease_margin_seconds = 0.01").unwrap();
        assert!(
            ok(&nan)[0].contains("between 0.1 and 3600"),
            "{:?}",
            ok(&nan)
        );
    }

    #[test]
    fn settings_default_and_read_seconds_from_toml() {
        let s: Settings = toml::from_str("").unwrap();
        assert_eq!(s, Settings::default());
        assert_eq!(s.busy_timeout, Duration::from_secs(15));
        assert_eq!(s.path, PathBuf::from("./recsched.db"));

        let s: Settings =
            toml::from_str("path = \"/var/lib/recsched/r.db\"\nbusy_timeout_seconds = 2.5")
                .unwrap();
        assert_eq!(s.busy_timeout, Duration::from_millis(2500));
        assert_eq!(s.path, PathBuf::from("/var/lib/recsched/r.db"));

        let s: Settings = toml::from_str("busy_timeout_seconds = 3").unwrap();
        assert_eq!(s.busy_timeout, Duration::from_secs(3));

        assert!(toml::from_str::<Settings>("busy_timeout_seconds = -1").is_err());

        let s: Settings = toml::from_str("lease_margin_seconds = 0.5").unwrap();
        assert_eq!(s.lease_margin(), Duration::from_millis(500));
        assert_eq!(Settings::default().lease_margin(), Duration::from_secs(2));
        let short: Settings = toml::from_str("lease_seconds = 3").unwrap();
        assert_eq!(short.lease_margin(), Duration::from_secs(1));
        assert!(toml::from_str::<Settings>("busy_timeout = 1").is_err());
    }
}
