//! What the two backends do the same way, and the few places they differ,
//! as two traits, so every query and every row decoder is written once.
//!
//! # Why two traits and no `sqlx::Any`
//! `sqlx::Any` would erase the types where the dialects really differ
//! (SQLite keeps instants as text and lets a column hold any type;
//! PostgreSQL has `TIMESTAMPTZ`, row locks and arrays). Code generic over
//! `sqlx::Database` keeps them, but every generic function would have to
//! repeat sqlx's bounds (`for<'c> &'c mut Connection: Executor<'c>`, one
//! `Encode`/`Decode` bound per type). So:
//! - [`Dialect`] is implemented by each backend by hand: how it keeps an
//!   instant, how it names itself in errors, the few SQL statements that
//!   cannot be the same text (row locks, the stored type checks of
//!   SQLite, the set-based statements of a batch of row writes: arrays
//!   on PostgreSQL, multi-row `VALUES` on SQLite), and whether rows carry
//!   owners.
//! - [`Sql`] is what sqlx does the same way for both: run a statement, bind
//!   its parameters, read a column as a plain type. It has one blanket
//!   implementation, for every dialect whose sqlx types fit, which states
//!   sqlx's bounds once; code generic over [`Backend`] needs none.
//!
//! Statements are [`Stmt`]s: SQL text with `$1`, `$2`... placeholders
//! (both backends read them) and typed [`Arg`]s; an instant is bound the
//! dialect's way ([`Dialect::encode_time`]). States and every other value
//! travel as parameters, never inside the SQL text.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::stream::BoxStream;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use super::batch::RowEdit;
use super::{NewAttempt, StoreError};

/// One bound parameter.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Arg<'a> {
    Int(Option<i64>),
    Real(Option<f64>),
    Text(Option<&'a str>),
    Flag(Option<bool>),
    /// Bound the dialect's way ([`Dialect::encode_time`]).
    Time(Option<DateTime<Utc>>),
}

macro_rules! arg_from {
    ($($t:ty => $variant:ident),* $(,)?) => {$(
        impl<'a> From<$t> for Arg<'a> {
            fn from(v: $t) -> Self {
                Arg::$variant(Some(v))
            }
        }
        impl<'a> From<Option<$t>> for Arg<'a> {
            fn from(v: Option<$t>) -> Self {
                Arg::$variant(v)
            }
        }
    )*};
}
arg_from!(i64 => Int, f64 => Real, &'a str => Text, bool => Flag, DateTime<Utc> => Time);

/// SQL text and its parameters, in order.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Stmt<'a> {
    pub sql: &'a str,
    pub args: Vec<Arg<'a>>,
}

impl<'a> Stmt<'a> {
    pub fn new(sql: &'a str) -> Self {
        Self {
            sql,
            args: Vec::new(),
        }
    }

    /// The next parameter (`$1`, then `$2`...).
    pub fn arg(mut self, value: impl Into<Arg<'a>>) -> Self {
        self.args.push(value.into());
        self
    }
}

/// Where the backends differ. Implemented by hand for SQLite and for
/// PostgreSQL; everything else is shared.
pub(crate) trait Dialect: Database {
    /// How an instant is bound: UTC text in one fixed-width form (SQLite)
    /// or `TIMESTAMPTZ` (PostgreSQL).
    type Time: Send + 'static;
    fn encode_time(at: DateTime<Utc>) -> Self::Time;
    /// An instant read back, or what is wrong with the stored value.
    fn read_time(row: &Self::Row, column: &str) -> Result<Option<DateTime<Utc>>, String>;
    /// `at` as the backend keeps it: to the millisecond (SQLite) or the
    /// microsecond (PostgreSQL).
    fn stored(at: DateTime<Utc>) -> DateTime<Utc>;

    /// What a handle points at, as its errors name it (and, on
    /// PostgreSQL, the instance whose rows it writes).
    type Site: Clone + Debug + Send + Sync + 'static;
    /// A sqlx error met while doing `context`, in the store's terms.
    fn error(site: &Self::Site, context: &'static str, source: sqlx::Error) -> StoreError;

    /// Opens a transaction that writes (SQLite takes the write lock at
    /// once, so its reads are never overtaken by another writer).
    const BEGIN_WRITE: &'static str;
    /// Run first in a transaction that reads, so all its queries see one
    /// snapshot; `None` where that is the default.
    const SNAPSHOT: Option<&'static str>;
    /// Whether a column may hold a value of any type (SQLite): the policy
    /// queries then select `<column>_type` and `<column>_quoted` beside
    /// it, and the store checks the type itself.
    const LOOSE_TYPES: bool;

    /// The recording rows `ids` (ascending) as `id`, `state` and `ours`
    /// (whether this handle may write the row: the fence), locked until
    /// the transaction ends where rows can be locked (in id order).
    fn lock_rows<'c>(
        conn: &'c mut Self::Connection,
        site: &'c Self::Site,
        ids: &'c [i64],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
    /// Applies one [`RowEdit`] per row in as few statements as the
    /// backend allows (`UPDATE .. FROM` a set of edits, the SET clause of
    /// [`edit_set!`](super::batch::edit_set)), fenced where writes are;
    /// returns `id` and `state` of every row it updated.
    fn update_rows<'c, 'e: 'c>(
        conn: &'c mut Self::Connection,
        site: &'c Self::Site,
        edits: &'c [RowEdit<'e>],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
    /// Inserts the audit rows in as few multi-row statements as the
    /// backend allows, in order (bodies cut with `truncate_body`).
    fn insert_attempts<'c, 'a: 'c>(
        conn: &'c mut Self::Connection,
        attempts: &'c [&'a NewAttempt],
    ) -> BoxFuture<'c, Result<(), sqlx::Error>>;
    /// Every `policies` column, and on a loose-typed backend each one's
    /// type and quoted value; `$1` is a name or NULL for all.
    const POLICIES: &'static str;
    /// `policy_users` rows as `id` (their key), `policy` (the policy's id,
    /// NULL for a row naming no policy) and `user_id`; `$1` as above.
    const POLICY_USERS: &'static str;
    /// The column `policy_users` rows are named by in a [`BadRow`].
    ///
    /// [`BadRow`]: super::BadRow
    const USER_KEY: &'static str;

    /// `policy_teams` rows as `id` (their `rowid`), `policy` (the policy's
    /// id, NULL for a row naming no policy) and `team_id`; `$1` as above.
    const POLICY_TEAMS: &'static str;
    /// `team_members` rows (`id`, `team_id`, `user_id`) of the teams that
    /// `policy_teams` names, of policy `$1` or of all when NULL.
    const TEAM_MEMBERS: &'static str;
    /// Run first in a transaction that replaces a team's members, with the
    /// team as `$1`, so two instances never refresh one team at once;
    /// `None` where a writing transaction is alone anyway.
    const LOCK_TEAM: Option<&'static str>;

    /// The `daemon_state` row of key `$1`: `id` (its `rowid`) and `value`
    /// (with its type and quoted value on a loose-typed backend).
    const DAEMON_STATE: &'static str;

    /// Every `exclusions` column (with `every_policy`, whether `policy_id`
    /// is NULL, and `policy`, the id of the policy it names if any).
    const EXCLUSIONS: &'static str;
    /// Run first in a transaction that inserts exclusions, so two
    /// importers of one calendar never both insert a row; `None` where a
    /// writing transaction is alone anyway.
    const LOCK_EXCLUSIONS: Option<&'static str>;
}

/// What a `QueryResult` tells about the rows a statement touched.
pub(crate) trait RowsAffected {
    fn rows(&self) -> u64;
}

impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows(&self) -> u64 {
        self.rows_affected()
    }
}

/// What sqlx does the same way on both backends. See the module docs.
pub(crate) trait Sql: Dialect {
    /// Runs `stmt`; returns how many rows it changed.
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>>;
    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;
    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>>;
    /// The rows `stmt` returns, one at a time as they arrive.
    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;
    fn real(row: &Self::Row, column: &str) -> Result<Option<f64>, sqlx::Error>;
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    fn bytes(row: &Self::Row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
    fn flag(row: &Self::Row, column: &str) -> Result<Option<bool>, sqlx::Error>;
}

/// A backend the shared code runs on: both traits.
pub(crate) trait Backend: Sql {}

impl<D: Sql> Backend for D {}

impl<D> Sql for D
where
    D: Dialect,
    for<'c> &'c mut D::Connection: Executor<'c, Database = D>,
    for<'q> D::Arguments<'q>: IntoArguments<'q, D>,
    D::QueryResult: RowsAffected,
    for<'a> &'a str: ColumnIndex<D::Row>,
    for<'q> Option<i64>: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Option<f64>: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Option<bool>: Encode<'q, D> + Decode<'q, D> + Type<D>,
    for<'q> Option<&'q str>: Encode<'q, D> + Type<D>,
    for<'q> Option<String>: Decode<'q, D> + Type<D>,
    for<'q> Option<Vec<u8>>: Decode<'q, D> + Type<D>,
    for<'q> Option<D::Time>: Encode<'q, D> + Type<D>,
{
    fn execute<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<u64, sqlx::Error>> {
        let done = conn.execute(bound::<D>(stmt));
        Box::pin(async move { done.await.map(|r| r.rows()) })
    }

    fn fetch_all<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        conn.fetch_all(bound::<D>(stmt))
    }

    fn fetch_optional<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxFuture<'c, Result<Option<Self::Row>, sqlx::Error>> {
        conn.fetch_optional(bound::<D>(stmt))
    }

    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        stmt: Stmt<'c>,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>> {
        conn.fetch(bound::<D>(stmt))
    }

    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn real(row: &Self::Row, column: &str) -> Result<Option<f64>, sqlx::Error> {
        row.try_get(column)
    }

    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }

    fn bytes(row: &Self::Row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        row.try_get(column)
    }

    fn flag(row: &Self::Row, column: &str) -> Result<Option<bool>, sqlx::Error> {
        row.try_get(column)
    }
}

/// `stmt` as a sqlx query with its parameters bound.
fn bound<'q, D>(stmt: Stmt<'q>) -> sqlx::query::Query<'q, D, D::Arguments<'q>>
where
    D: Dialect,
    for<'a> Option<i64>: Encode<'a, D> + Type<D>,
    for<'a> Option<f64>: Encode<'a, D> + Type<D>,
    for<'a> Option<bool>: Encode<'a, D> + Type<D>,
    for<'a> Option<&'a str>: Encode<'a, D> + Type<D>,
    for<'a> Option<D::Time>: Encode<'a, D> + Type<D>,
{
    stmt.args
        .into_iter()
        .fold(sqlx::query::<D>(stmt.sql), |q, arg| match arg {
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Text(v) => q.bind(v),
            Arg::Flag(v) => q.bind(v),
            Arg::Time(v) => q.bind(v.map(D::encode_time)),
        })
}
