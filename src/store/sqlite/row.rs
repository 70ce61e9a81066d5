//! Reading stored columns back into typed values.
//!
//! Operators can edit every table with `sqlite3`, so a stored value may
//! not fit its type (a timestamp in another format, a state text from an
//! older build). This module turns such a value into a [`BadRow`] naming
//! the table, the row id and the column, instead of a bare decode error,
//! so the operator knows what to fix. Nothing is coerced: a value of
//! another SQL type than its column's is refused, not converted.

use std::fmt::Display;

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;
use sqlx::{Decode, Row, Sqlite, Type};

use crate::clock::parse_utc;

use crate::store::BadRow;

/// One fetched row of `table`, identified by its `id` column in errors.
pub(crate) struct Cols<'r> {
    row: &'r SqliteRow,
    table: &'static str,
    id: i64,
}

impl<'r> Cols<'r> {
    /// Wraps a row whose `id` column is its integer primary key.
    pub(crate) fn new(row: &'r SqliteRow, table: &'static str) -> Result<Self, BadRow> {
        let id = row
            .try_get::<i64, _>("id")
            .map_err(|e| BadRow::new(table, -1, "id", decode_problem(e)))?;
        Ok(Self { row, table, id })
    }

    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    pub(crate) fn bad(&self, column: &'static str, problem: impl Display) -> BadRow {
        BadRow::new(self.table, self.id, column, problem)
    }

    /// A column read as its SQL type.
    pub(crate) fn get<T>(&self, column: &'static str) -> Result<T, BadRow>
    where
        T: Decode<'r, Sqlite> + Type<Sqlite>,
    {
        self.row
            .try_get::<T, _>(column)
            .map_err(|e| self.bad(column, decode_problem(e)))
    }

    /// A column read as `T`, then converted with `convert`.
    pub(crate) fn map<T, U, E>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<U, BadRow>
    where
        T: Decode<'r, Sqlite> + Type<Sqlite>,
        E: Display,
    {
        convert(self.get(column)?).map_err(|e| self.bad(column, e))
    }

    /// A nullable column read as `T`, then converted with `convert`.
    pub(crate) fn map_opt<T, U, E>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Option<U>, BadRow>
    where
        T: Decode<'r, Sqlite> + Type<Sqlite>,
        E: Display,
    {
        self.get::<Option<T>>(column)?
            .map(convert)
            .transpose()
            .map_err(|e| self.bad(column, e))
    }

    /// A UTC timestamp column.
    pub(crate) fn time(&self, column: &'static str) -> Result<DateTime<Utc>, BadRow> {
        self.map(column, |raw: String| parse_time(&raw))
    }

    /// A nullable UTC timestamp column.
    pub(crate) fn opt_time(&self, column: &'static str) -> Result<Option<DateTime<Utc>>, BadRow> {
        self.map_opt(column, |raw: String| parse_time(&raw))
    }
}

pub(crate) fn parse_time(raw: &str) -> Result<DateTime<Utc>, String> {
    parse_utc(raw)
        .map_err(|e| format!("`{raw}` is not a UTC timestamp like 2026-03-29T01:00:00.000Z ({e})"))
}

/// The useful part of a sqlx decode error (its column name is ours already).
pub(crate) fn decode_problem(e: sqlx::Error) -> String {
    match e {
        sqlx::Error::ColumnDecode { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

/// Converts an unsigned count read as `i64`.
pub(crate) fn non_negative_u32(raw: i64) -> Result<u32, String> {
    u32::try_from(raw).map_err(|_| format!("{raw} is not a count between 0 and {}", u32::MAX))
}
