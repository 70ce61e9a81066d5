//! [`Db`]: a handle on one database of either backend (a pool and where
//! it points), with the plumbing every shared query uses; and [`Cols`],
//! which reads a fetched row's columns into types and names the row,
//! table and column when one does not read back.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use sqlx::pool::PoolConnection;
use sqlx::{Pool, Transaction};

use super::bad_row::utf8;
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

    /// Hands every row `stmt` returns to `each`, one at a time as it
    /// arrives, so a read of many rows is never held whole.
    pub(super) async fn for_each_row(
        &self,
        conn: &mut D::Connection,
        stmt: Stmt<'_>,
        context: &'static str,
        mut each: impl FnMut(&D::Row),
    ) -> Result<(), StoreError> {
        let mut rows = D::fetch(conn, stmt);
        while let Some(row) = rows.try_next().await.map_err(self.err(context))? {
            each(&row);
        }
        Ok(())
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

/// A column an operator may have filled with a value of another type by
/// hand (see [`Dialect::LOOSE_TYPES`]): on such a backend the query
/// selects `<column>_type` and `<column>_quoted` beside it, and a value of
/// the wrong type is named with its stored type and value, never
/// converted. Elsewhere the database typed it already.
pub(crate) struct Stored<'c, 'r, D: Backend> {
    c: &'c Cols<'r, D>,
    column: &'static str,
}

/// `column` of `c`, judged on its stored type.
pub(crate) fn stored<'c, 'r, D: Backend>(
    c: &'c Cols<'r, D>,
    column: &'static str,
) -> Stored<'c, 'r, D> {
    Stored { c, column }
}

impl<D: Backend> Stored<'_, '_, D> {
    /// On a loose-typed backend, the stored type (`text`, `integer`,
    /// `null`...); `None` elsewhere.
    fn stored_type(&self) -> Result<Option<String>, BadRow> {
        if !D::LOOSE_TYPES {
            return Ok(None);
        }
        self.c.about(self.column, "_type").map(Some)
    }

    /// `Err` naming the stored type and value ("stored as real 3600.9,
    /// not an integer") when `stored` is not `expected`.
    fn refuse(&self, stored: &str, described: &str) -> BadRow {
        let quoted = match self.c.about(self.column, "_quoted") {
            Ok(q) => q,
            Err(bad) => return bad,
        };
        self.c.bad(
            self.column,
            format!("stored as {stored} {quoted}, not {described}; nothing is converted"),
        )
    }

    fn check(&self, expected: &str, described: &str) -> Result<(), BadRow> {
        match self.stored_type()? {
            Some(stored) if stored != expected => Err(self.refuse(&stored, described)),
            _ => Ok(()),
        }
    }

    /// Valid UTF-8 text.
    pub fn text(&self) -> Result<String, BadRow> {
        self.check("text", "text")?;
        self.read_text()
    }

    /// Valid UTF-8 text, or NULL.
    pub fn opt_text(&self) -> Result<Option<String>, BadRow> {
        match self.stored_type()?.as_deref() {
            None => self.c.get(self.column),
            Some("null") => Ok(None),
            Some("text") => self.read_text().map(Some),
            Some(other) => Err(self.refuse(other, "text or NULL")),
        }
    }

    fn read_text(&self) -> Result<String, BadRow> {
        if D::LOOSE_TYPES {
            // Selected as a BLOB: SQLite hands back whatever bytes it holds.
            let bytes: Vec<u8> = self.c.get(self.column)?;
            utf8(bytes).map_err(|e| self.c.bad(self.column, e))
        } else {
            self.c.get(self.column)
        }
    }

    /// An integer (not a real, not text).
    pub fn integer(&self) -> Result<i64, BadRow> {
        self.check("integer", "an integer")?;
        self.c.get(self.column)
    }

    /// On or off: a boolean, or on SQLite the integer 0 or 1.
    pub fn flag(&self) -> Result<bool, BadRow> {
        if !D::LOOSE_TYPES {
            return self.c.get(self.column);
        }
        match self.integer()? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self
                .c
                .bad(self.column, format!("{other}: must be 0 (off) or 1 (on)"))),
        }
    }
}

/// The value if it read back; else notes why not.
pub(crate) fn keep<T>(bad: &mut Vec<BadRow>, read: Result<T, BadRow>) -> Option<T> {
    read.map_err(|b| bad.push(b)).ok()
}
