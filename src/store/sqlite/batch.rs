//! A batch of row writes on SQLite: the rows' states in one SELECT (the
//! write lock is the transaction's), their edits in one
//! `WITH w AS (VALUES ..) UPDATE .. FROM w` per [`ROWS_PER_STATEMENT`]
//! rows, and the audit rows in one multi-row INSERT per as many. Every
//! value is a bound parameter.
//!
//! # Statement sizes
//! A statement's text depends on its number of rows, and a text sqlx has
//! not seen on this connection is parsed and planned again: with a
//! burst's batches of every size, that was 5 % of the daemon's CPU
//! (docs/benchmarks.md, issue 15). So a statement has one of a few sizes
//! ([`rows_for`]), its VALUES padded with rows of NULLs, which match no
//! recording (UPDATE) and are filtered out (INSERT); its prepared form is
//! then reused from sqlx's statement cache.

use futures::future::BoxFuture;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::clock::format_utc;
use crate::store::attempts::truncate_body;
use crate::store::batch::{attempt_columns, edit_columns, edit_set, latency, RowEdit};
use crate::store::NewAttempt;

/// Rows per statement: 9 parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1000;

/// The sizes a statement comes in, smallest first; the last is
/// [`ROWS_PER_STATEMENT`].
const SIZES: [usize; 6] = [1, 4, 16, 64, 256, ROWS_PER_STATEMENT];

/// The rows of the statement for `n` rows (at most [`ROWS_PER_STATEMENT`]):
/// the smallest size that holds them.
fn rows_for(n: usize) -> usize {
    SIZES
        .into_iter()
        .find(|&size| size >= n)
        .unwrap_or(ROWS_PER_STATEMENT)
}

/// `chunk`'s rows, then `None`s up to its statement's size.
fn padded<T>(chunk: &[T]) -> impl Iterator<Item = Option<&T>> {
    let pad = rows_for(chunk.len()) - chunk.len();
    chunk.iter().map(Some).chain(std::iter::repeat_n(None, pad))
}

pub(super) fn lock_rows<'c>(
    conn: &'c mut SqliteConnection,
    ids: &'c [i64],
) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
    Box::pin(async move {
        // One parameter whatever the batch: a JSON array of integers.
        let ids = serde_json::to_string(ids).map_err(|e| sqlx::Error::Encode(e.into()))?;
        sqlx::query(
            "SELECT id, state, 1 AS ours FROM recordings \
             WHERE id IN (SELECT value FROM json_each($1)) ORDER BY id",
        )
        .bind(ids)
        .fetch_all(conn)
        .await
    })
}

pub(super) fn update_rows<'c, 'e: 'c>(
    conn: &'c mut SqliteConnection,
    edits: &'c [RowEdit<'e>],
) -> BoxFuture<'c, Result<Vec<SqliteRow>, sqlx::Error>> {
    Box::pin(async move {
        let mut updated = Vec::with_capacity(edits.len());
        for chunk in edits.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(concat!("WITH w(", edit_columns!(), ") AS ("));
            // A padding row's NULL id matches no recording.
            q.push_values(padded(chunk), |mut b, e| {
                b.push_bind(e.map(|e| e.id))
                    .push_bind(e.map(|e| e.from.as_str()))
                    .push_bind(e.map(|e| e.to.as_str()))
                    .push_bind(e.and_then(|e| e.contact_id))
                    .push_bind(e.and_then(|e| e.interaction_id))
                    .push_bind(e.and_then(|e| e.attempts_at_least))
                    .push_bind(e.map(|e| e.last_error.clears()))
                    .push_bind(e.and_then(|e| e.last_error.text()))
                    .push_bind(e.and_then(|e| e.ended_at.map(format_utc)));
            });
            // `updated_at` as the `recordings_updated_at` trigger would set
            // it: set here, the trigger's WHEN is false and it does not run
            // a second UPDATE of every row.
            q.push(concat!(
                ") UPDATE recordings SET ",
                edit_set!(),
                ", updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
                 FROM w WHERE recordings.id = w.w_id RETURNING id, state"
            ));
            updated.extend(q.build().fetch_all(&mut *conn).await?);
        }
        Ok(updated)
    })
}

pub(super) fn insert_attempts<'c, 'a: 'c>(
    conn: &'c mut SqliteConnection,
    attempts: &'c [&'a NewAttempt],
) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        for chunk in attempts.chunks(ROWS_PER_STATEMENT) {
            let mut q = QueryBuilder::<Sqlite>::new(concat!(
                "INSERT INTO attempts (",
                attempt_columns!(),
                ") SELECT * FROM ("
            ));
            q.push_values(padded(chunk), |mut b, a| {
                b.push_bind(a.map(|a| a.recording_id.get()))
                    .push_bind(a.map(|a| format_utc(a.at)))
                    .push_bind(a.map(|a| a.operation.as_str()))
                    .push_bind(a.map(|a| i64::from(a.attempt)))
                    .push_bind(a.and_then(|a| a.requested_seconds.map(i64::from)))
                    .push_bind(a.and_then(|a| a.http_status.map(i64::from)))
                    .push_bind(a.and_then(|a| a.error.as_deref()))
                    .push_bind(a.and_then(|a| latency(a)))
                    .push_bind(a.and_then(|a| a.response_body.as_deref().map(truncate_body)));
            });
            // Padding rows have no recording: they are not inserted.
            q.push(") WHERE column1 IS NOT NULL");
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_statement_has_the_smallest_size_that_holds_its_rows() {
        let sizes: Vec<usize> = [1, 2, 4, 5, 16, 17, 64, 65, 256, 257, 999, 1000]
            .into_iter()
            .map(rows_for)
            .collect();
        assert_eq!(sizes, [1, 4, 4, 16, 16, 64, 64, 256, 256, 1000, 1000, 1000]);
    }

    #[test]
    fn padding_follows_the_rows_in_order() {
        let rows = [7, 8, 9, 10, 11];
        let padded: Vec<Option<&i32>> = padded(&rows).collect();
        assert_eq!(padded.len(), 16);
        assert_eq!(
            padded[..5],
            [Some(&7), Some(&8), Some(&9), Some(&10), Some(&11)]
        );
        assert!(padded[5..].iter().all(Option::is_none));
        // Every chunk the statements cut holds at most the largest size.
        for n in 1..=ROWS_PER_STATEMENT {
            assert!(rows_for(n) >= n && SIZES.contains(&rows_for(n)));
        }
    }
}
