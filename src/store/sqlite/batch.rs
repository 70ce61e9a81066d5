//! A batch of row writes on SQLite: the rows' states in one SELECT (the
//! write lock is the transaction's), their edits in one
//! `WITH w AS (VALUES ..) UPDATE .. FROM w` per [`ROWS_PER_STATEMENT`]
//! rows, and the audit rows in one multi-row INSERT per as many. Every
//! value is a bound parameter.

use futures::future::BoxFuture;
use sqlx::sqlite::SqliteRow;
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::clock::format_utc;
use crate::store::attempts::truncate_body;
use crate::store::batch::{attempt_columns, edit_columns, edit_set, latency, RowEdit};
use crate::store::NewAttempt;

/// Rows per statement: 9 parameters each, well under SQLite's 32,766.
const ROWS_PER_STATEMENT: usize = 1000;

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
            q.push_values(chunk, |mut b, e| {
                b.push_bind(e.id)
                    .push_bind(e.from.as_str())
                    .push_bind(e.to.as_str())
                    .push_bind(e.contact_id)
                    .push_bind(e.interaction_id)
                    .push_bind(e.attempts_at_least)
                    .push_bind(e.last_error.clears())
                    .push_bind(e.last_error.text())
                    .push_bind(e.ended_at.map(format_utc));
            });
            q.push(concat!(
                ") UPDATE recordings SET ",
                edit_set!(),
                " FROM w WHERE recordings.id = w.w_id RETURNING id, state"
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
                ") "
            ));
            q.push_values(chunk, |mut b, a| {
                b.push_bind(a.recording_id.get())
                    .push_bind(format_utc(a.at))
                    .push_bind(a.operation.as_str())
                    .push_bind(i64::from(a.attempt))
                    .push_bind(a.requested_seconds.map(i64::from))
                    .push_bind(a.http_status.map(i64::from))
                    .push_bind(a.error.as_deref())
                    .push_bind(latency(a))
                    .push_bind(a.response_body.as_deref().map(truncate_body));
            });
            q.build().execute(&mut *conn).await?;
        }
        Ok(())
    })
}
