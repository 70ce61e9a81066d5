//! [`Db`]: a handle on one database of either backend (a pool and where
//! it points), with the plumbing every shared query uses; and [`Cols`],
//! which reads a fetched row's columns into types and names the row,
//! table and column when one does not read back.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use super::dialect::{Backend, Dialect, Stmt};
use super::{BadRow, StoreError};

/// A cheap-to-clone handle on one database: sqlx's `Arc`'d pool, and the
/// backend's [`Dialect::Site`] (what errors name; on PostgreSQL, whose
/// rows it writes).
pub(crate) struct Db<D: Dialect> {
    pub(super) pool: Pool<D>,
    pub(super) site: D::Site,
}

impl<D: Dialect> Clone for Db<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            site: self.site.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for Db<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db").field("site", &self.site).finish()
    }
}

impl<D: Backend> Db<D> {
    /// Turns a sqlx error met while doing `context` into a [`StoreError`].
    pub(super) fn err(&self, context: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| D::error(&self.site, context, source)
    }

    /// Closes every connection; pending statements finish first. Further
    /// calls fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// A pooled connection, for statements that need no transaction.
    pub(super) async fn conn(
        &self,
        context: &'static str,
    ) -> Result<PoolConnection<D>, StoreError> {
        self.pool.acquire().await.map_err(self.err(context))
    }

    /// A transaction that writes ([`Dialect::BEGIN_WRITE`]); waits up to
    /// the busy timeout for the lock (SQLite) or a connection.
    pub(super) async fn begin_write(
        &self,
        context: &'static str,
    ) -> Result<Transaction<'static, D>, StoreError> {
        self.pool
            .begin_with(D::BEGIN_WRITE)
            .await
            .map_err(self.err(context))
    }

    /// A transaction whose reads all see one snapshot.
    pub(super) async fn begin_read(
        &self,
        context: &'static str,
    ) -> Result<Transaction<'static, D>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(self.err(context))?;
        if let Some(snapshot) = D::SNAPSHOT {
            D::execute(&mut tx, Stmt::new(snapshot))
                .await
                .map_err(self.err(context))?;
        }
        Ok(tx)
    }

    /// Runs `stmt` on `conn`; how many rows it changed.
    pub(super) async fn execute(
        &self,
        conn: &mut D::Connection,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<u64, StoreError> {
        D::execute(conn, stmt).await.map_err(self.err(context))
    }

    /// Every row `stmt` returns.
    pub(super) async fn fetch_all(
        &self,
        conn: &mut D::Connection,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<Vec<D::Row>, StoreError> {
        D::fetch_all(conn, stmt).await.map_err(self.err(context))
    }

    /// The row `stmt` returns, if any.
    pub(super) async fn fetch_optional(
        &self,
        conn: &mut D::Connection,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<Option<D::Row>, StoreError> {
        D::fetch_optional(conn, stmt)
            .await
            .map_err(self.err(context))
    }

    /// [`Db::fetch_all`] on a pooled connection of its own.
    pub(super) async fn query(
        &self,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<Vec<D::Row>, StoreError> {
        let mut conn = self.conn(context).await?;
        self.fetch_all(&mut conn, stmt, context).await
    }

    /// [`Db::fetch_optional`] on a pooled connection of its own.
    pub(super) async fn query_optional(
        &self,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<Option<D::Row>, StoreError> {
        let mut conn = self.conn(context).await?;
        self.fetch_optional(&mut conn, stmt, context).await
    }

    /// [`Db::execute`] on a pooled connection of its own.
    pub(super) async fn run(
        &self,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<u64, StoreError> {
        let mut conn = self.conn(context).await?;
        self.execute(&mut conn, stmt, context).await
    }

    /// Column `value` of the row `stmt` returns, if any, as `T`.
    pub(super) async fn value<T: Col>(
        &self,
        stmt: Stmt<'_>,
        context: &'static str,
    ) -> Result<Option<T>, StoreError> {
        let Some(row) = self.query_optional(stmt, context).await? else {
            return Ok(None);
        };
        T::read::<D>(&row, "value")
            .map(Some)
            .map_err(|problem| self.err(context)(sqlx::Error::Decode(problem.into())))
    }
}

/// A type one column reads back into, nullable or not.
pub(crate) trait Col: Sized {
    /// The column's value, or what is wrong with it.
    fn read<D: Backend>(row: &D::Row, column: &str) -> Result<Self, String>;
}

/// A type whose NULL is read as `None`.
pub(crate) trait Nullable: Sized {
    fn read_nullable<D: Backend>(row: &D::Row, column: &str) -> Result<Option<Self>, String>;
}

impl<T: Nullable> Col for Option<T> {
    fn read<D: Backend>(row: &D::Row, column: &str) -> Result<Self, String> {
        T::read_nullable::<D>(row, column)
    }
}

impl<T: Nullable> Col for T {
    fn read<D: Backend>(row: &D::Row, column: &str) -> Result<Self, String> {
        T::read_nullable::<D>(row, column)?.ok_or_else(|| "is empty (NULL)".to_owned())
    }
}

macro_rules! nullable {
    ($($t:ty => $read:ident),* $(,)?) => {$(
        impl Nullable for $t {
            fn read_nullable<D: Backend>(
                row: &D::Row,
                column: &str,
            ) -> Result<Option<Self>, String> {
                D::$read(row, column).map_err(decode_problem)
            }
        }
    )*};
}
nullable!(i64 => int, f64 => real, String => text, Vec<u8> => bytes, bool => flag);

impl Nullable for DateTime<Utc> {
    fn read_nullable<D: Backend>(row: &D::Row, column: &str) -> Result<Option<Self>, String> {
        D::read_time(row, column)
    }
}

/// The useful part of a sqlx decode error (its column name is ours already).
pub(crate) fn decode_problem(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// One fetched row of `table`, identified in errors by its `id` column.
pub(crate) struct Cols<'r, D: Backend> {
    row: &'r D::Row,
    table: &'static str,
    id: i64,
}

impl<'r, D: Backend> Cols<'r, D> {
    /// Wraps a row whose `id` column is its key (an alias for tables
    /// without one, see [`Dialect::POLICY_USERS`]).
    pub fn new(row: &'r D::Row, table: &'static str) -> Result<Self, BadRow> {
        let id = <i64 as Col>::read::<D>(row, "id").map_err(|e| BadRow::new(table, -1, "id", e))?;
        Ok(Self { row, table, id })
    }

    pub fn id(&self) -> i64 {
        self.id
    }

    pub fn bad(&self, column: &'static str, problem: impl Display) -> BadRow {
        BadRow::new(self.table, self.id, column, problem)
    }

    /// A column as `T` (an `Option` for a nullable one).
    pub fn get<T: Col>(&self, column: &'static str) -> Result<T, BadRow> {
        T::read::<D>(self.row, column).map_err(|e| self.bad(column, e))
    }

    /// A column read as `T`, then converted with `convert`.
    pub fn map<T: Col, U, E: Display>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<U, BadRow> {
        convert(self.get(column)?).map_err(|e| self.bad(column, e))
    }

    /// A nullable column read as `T`, then converted with `convert`.
    pub fn map_opt<T: Nullable, U, E: Display>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Option<U>, BadRow> {
        self.get::<Option<T>>(column)?
            .map(convert)
            .transpose()
            .map_err(|e| self.bad(column, e))
    }

    /// A column beside `column`, such as `<column>_type`, that a query
    /// selects to describe it; never NULL.
    pub fn about(&self, column: &'static str, suffix: &str) -> Result<String, BadRow> {
        let name = format!("{column}{suffix}");
        let raw = if suffix == "_type" {
            D::text(self.row, &name).map_err(decode_problem)
        } else {
            D::bytes(self.row, &name)
                .map(|b| b.map(|b| String::from_utf8_lossy(&b).into_owned()))
                .map_err(decode_problem)
        };
        raw.map(Option::unwrap_or_default)
            .map_err(|e| self.bad(column, e))
    }
}

/// Converts an unsigned count read as `i64`.
pub(crate) fn non_negative_u32(raw: i64) -> Result<u32, String> {
    u32::try_from(raw).map_err(|_| format!("{raw} is not a count between 0 and {}", u32::MAX))
}
