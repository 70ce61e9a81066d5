//! Reading PostgreSQL columns back into typed values.
//!
//! The schema's types already hold most values in shape, but text columns
//! (`state`, `end_mode`, `user_id`) can hold anything an operator typed
//! with psql; such a value becomes a [`BadRow`] naming the table, the row
//! id and the column.

use std::fmt::Display;

use sqlx::postgres::PgRow;
use sqlx::{Decode, Postgres, Row, Type};

use crate::store::BadRow;

/// One fetched row of `table`, identified by its `id` column in errors.
pub(crate) struct Cols<'r> {
    row: &'r PgRow,
    table: &'static str,
    id: i64,
}

impl<'r> Cols<'r> {
    pub(crate) fn new(row: &'r PgRow, table: &'static str) -> Result<Self, BadRow> {
        let id = row
            .try_get::<i64, _>("id")
            .map_err(|e| BadRow::new(table, -1, "id", e))?;
        Ok(Self { row, table, id })
    }

    pub(crate) fn id(&self) -> i64 {
        self.id
    }

    pub(crate) fn bad(&self, column: &'static str, problem: impl Display) -> BadRow {
        BadRow::new(self.table, self.id, column, problem)
    }

    pub(crate) fn get<T>(&self, column: &'static str) -> Result<T, BadRow>
    where
        T: Decode<'r, Postgres> + Type<Postgres>,
    {
        self.row.try_get::<T, _>(column).map_err(|e| {
            let problem = match e {
                sqlx::Error::ColumnDecode { source, .. } => source.to_string(),
                other => other.to_string(),
            };
            self.bad(column, problem)
        })
    }

    pub(crate) fn map<T, U, E>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<U, BadRow>
    where
        T: Decode<'r, Postgres> + Type<Postgres>,
        E: Display,
    {
        convert(self.get(column)?).map_err(|e| self.bad(column, e))
    }

    pub(crate) fn map_opt<T, U, E>(
        &self,
        column: &'static str,
        convert: impl FnOnce(T) -> Result<U, E>,
    ) -> Result<Option<U>, BadRow>
    where
        T: Decode<'r, Postgres> + Type<Postgres>,
        E: Display,
    {
        self.get::<Option<T>>(column)?
            .map(convert)
            .transpose()
            .map_err(|e| self.bad(column, e))
    }
}

/// Converts a count read as `i64`.
pub(crate) fn non_negative_u32(raw: i64) -> Result<u32, String> {
    u32::try_from(raw).map_err(|_| format!("{raw} is not a count between 0 and {}", u32::MAX))
}
