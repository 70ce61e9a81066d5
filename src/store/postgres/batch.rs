//! A batch of row writes on PostgreSQL: three statements whatever its
//! size. The rows are locked in id order with the fence's answer
//! (`SELECT .. WHERE id = ANY($1) ORDER BY id FOR UPDATE`), their edits
//! applied by one `UPDATE .. FROM UNNEST(..)` that checks the fence again
//! in its own WHERE, and the audit rows inserted by one
//! `INSERT .. SELECT FROM UNNEST(..)`. Each is one round trip to the
//! server; a batch used to cost three or four per write.

use futures::future::BoxFuture;
use sqlx::postgres::PgRow;
use sqlx::PgConnection;

use super::Site;
use crate::store::attempts::truncate_body;
use crate::store::batch::{attempt_columns, edit_columns, edit_set, latency, RowEdit};
use crate::store::NewAttempt;

/// The fence, for a handle made for an instance (`$1`): it owns the row
/// and its lease is live by the server's clock (the one takeovers use).
macro_rules! ours {
    ($owner:literal) => {
        concat!(
            "(",
            $owner,
            "::text IS NULL OR (owner = ",
            $owner,
            " AND lease_until > now()))"
        )
    };
}

pub(super) fn lock_rows<'c>(
    conn: &'c mut PgConnection,
    site: &'c Site,
    ids: &'c [i64],
) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
    Box::pin(async move {
        sqlx::query(concat!(
            "SELECT id, state, ",
            ours!("$2"),
            " AS ours FROM recordings WHERE id = ANY($1) ORDER BY id FOR UPDATE"
        ))
        .bind(ids)
        .bind(site.owner.as_deref())
        .fetch_all(conn)
        .await
    })
}

pub(super) fn update_rows<'c, 'e: 'c>(
    conn: &'c mut PgConnection,
    site: &'c Site,
    edits: &'c [RowEdit<'e>],
) -> BoxFuture<'c, Result<Vec<PgRow>, sqlx::Error>> {
    Box::pin(async move {
        let column = |f: fn(&RowEdit<'e>) -> Option<i64>| edits.iter().map(f).collect::<Vec<_>>();
        let text = |f: fn(&RowEdit<'e>) -> Option<&'e str>| edits.iter().map(f).collect::<Vec<_>>();
        sqlx::query(concat!(
            "UPDATE recordings SET ",
            edit_set!(),
            " FROM UNNEST($1::bigint[], $2::text[], $3::text[], $4::bigint[], $5::text[], \
                          $6::bigint[], $7::bool[], $8::text[], $9::timestamptz[]) \
                   AS w(",
            edit_columns!(),
            ") WHERE recordings.id = w.w_id AND ",
            ours!("$10"),
            " RETURNING recordings.id, recordings.state"
        ))
        .bind(edits.iter().map(|e| e.id).collect::<Vec<_>>())
        .bind(text(|e| Some(e.from.as_str())))
        .bind(text(|e| Some(e.to.as_str())))
        .bind(column(|e| e.contact_id))
        .bind(text(|e| e.interaction_id))
        .bind(column(|e| e.attempts_at_least))
        .bind(
            edits
                .iter()
                .map(|e| e.last_error.clears())
                .collect::<Vec<_>>(),
        )
        .bind(text(|e| e.last_error.text()))
        .bind(edits.iter().map(|e| e.ended_at).collect::<Vec<_>>())
        .bind(site.owner.as_deref())
        .fetch_all(conn)
        .await
    })
}

pub(super) fn insert_attempts<'c, 'a: 'c>(
    conn: &'c mut PgConnection,
    attempts: &'c [&'a NewAttempt],
) -> BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        let int =
            |f: fn(&NewAttempt) -> Option<i64>| attempts.iter().map(|a| f(a)).collect::<Vec<_>>();
        let text = |f: fn(&'a NewAttempt) -> Option<&'a str>| {
            attempts.iter().map(|a| f(a)).collect::<Vec<_>>()
        };
        sqlx::query(concat!(
            "INSERT INTO attempts (",
            attempt_columns!(),
            ") SELECT * FROM UNNEST($1::bigint[], $2::timestamptz[], $3::text[], $4::bigint[], \
                                   $5::bigint[], $6::bigint[], $7::text[], $8::bigint[], \
                                   $9::text[])"
        ))
        .bind(int(|a| Some(a.recording_id.get())))
        .bind(attempts.iter().map(|a| a.at).collect::<Vec<_>>())
        .bind(text(|a| Some(a.operation.as_str())))
        .bind(int(|a| Some(i64::from(a.attempt))))
        .bind(int(|a| a.requested_seconds.map(i64::from)))
        .bind(int(|a| a.http_status.map(i64::from)))
        .bind(text(|a| a.error.as_deref()))
        .bind(int(latency))
        .bind(text(|a| a.response_body.as_deref().map(truncate_body)))
        .execute(conn)
        .await?;
        Ok(())
    })
}
