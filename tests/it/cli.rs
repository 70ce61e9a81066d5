//! The operator CLI, run as the real binary against temporary databases.
//!
//! Rows are written with plain SQL through a connection of the test's
//! own (as an operator's sqlite3 session would), and read back through
//! the commands' text and `--json` output.

mod check;
mod config;
mod help;
mod migrate;
mod next;
mod policy;
mod prune;
mod recordings;

use sqlx::SqliteConnection;

pub use crate::common::bin::Recsched;

/// Inserts a policy row and its users with plain SQL; returns its id.
pub async fn insert_policy(
    conn: &mut SqliteConnection,
    name: &str,
    cron: &str,
    timezone: &str,
    window_seconds: i64,
    users: &[&str],
) -> i64 {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO policies (name, cron, timezone, window_seconds) VALUES (?, ?, ?, ?) \
         RETURNING id",
    )
    .bind(name)
    .bind(cron)
    .bind(timezone)
    .bind(window_seconds)
    .fetch_one(&mut *conn)
    .await
    .unwrap();
    for user in users {
        sqlx::query("INSERT INTO policy_users (policy_id, user_id) VALUES (?, ?)")
            .bind(id)
            .bind(user)
            .execute(&mut *conn)
            .await
            .unwrap();
    }
    id
}

/// The number of rows in `table`.
pub async fn count(conn: &mut SqliteConnection, table: &str) -> i64 {
    sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(conn)
        .await
        .unwrap()
}
