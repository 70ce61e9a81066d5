//! Policy rows and their users in SQLite, plus the revision counter that
//! tells the daemon they changed.
//!
//! The store reads policies as plain [`PolicyRow`]s and never judges what
//! they mean: parsing and reporting a bad cron, zone or length is the
//! `policy` module's job. What it does judge is whether a row reads back
//! at all, and it coerces nothing: SQLite keeps whatever type an operator
//! typed into sqlite3 (`window_seconds = 3600.9`, `enabled = 'true'`,
//! a name that is not UTF-8), so each column's stored type is checked
//! (`typeof`) and a row with a value of the wrong type is skipped and
//! named with that type and value ([`BadRow`]), never rounded or read as
//! 0. A `policy_users` row is judged on its own: one that names no policy
//! (sqlite3 leaves foreign keys off by default) or whose user id is not a
//! valid user id is skipped, and its policy goes on with its other users.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use crate::policy::PolicyRow;
use crate::recording::UserId;

use super::row::Cols;
use super::SqliteStore;
use crate::store::bad_row::utf8;
use crate::store::{BadRow, NewPolicy, Rows, StoreError};

impl SqliteStore {
    /// Every policy that reads back, with its users, by id; and every
    /// `policies` or `policy_users` row that does not. One snapshot.
    pub async fn read_policies(&self) -> Result<Rows<PolicyRow>, StoreError> {
        let mut tx = self.begin_read("reading policies").await?;
        let rows = self.read_policies_on(&mut tx, None).await?;
        tx.commit().await.map_err(self.err("reading policies"))?;
        Ok(rows)
    }

    /// The policy named `name`, with its users. A row that does not read
    /// back is [`StoreError::BadRow`].
    pub async fn policy_row(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        let mut tx = self.begin_read("reading a policy").await?;
        let rows = self.read_policies_on(&mut tx, Some(name)).await?;
        tx.commit().await.map_err(self.err("reading a policy"))?;
        if let Some(bad) = rows.bad.into_iter().find(|b| b.table == "policies") {
            return Err(bad.into());
        }
        Ok(rows.rows.into_iter().next())
    }

    async fn read_policies_on(
        &self,
        conn: &mut SqliteConnection,
        name: Option<&str>,
    ) -> Result<Rows<PolicyRow>, StoreError> {
        let context = "reading policies";
        let policies = sqlx::query(
            "SELECT id, \
                    typeof(name) AS name_type, CAST(quote(name) AS BLOB) AS name_quoted, \
                    CAST(name AS BLOB) AS name, \
                    typeof(enabled) AS enabled_type, \
                    CAST(quote(enabled) AS BLOB) AS enabled_quoted, enabled, \
                    typeof(cron) AS cron_type, CAST(quote(cron) AS BLOB) AS cron_quoted, \
                    CAST(cron AS BLOB) AS cron, \
                    typeof(timezone) AS timezone_type, \
                    CAST(quote(timezone) AS BLOB) AS timezone_quoted, \
                    CAST(timezone AS BLOB) AS timezone, \
                    typeof(window_seconds) AS window_seconds_type, \
                    CAST(quote(window_seconds) AS BLOB) AS window_seconds_quoted, window_seconds, \
                    typeof(end_mode) AS end_mode_type, \
                    CAST(quote(end_mode) AS BLOB) AS end_mode_quoted, \
                    CAST(end_mode AS BLOB) AS end_mode \
             FROM policies WHERE (?1 IS NULL OR name = ?1) ORDER BY id",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(self.err(context))?;
        // `p.id` is NULL for a row that names no policy: an orphan.
        let users = sqlx::query(
            "SELECT u.rowid AS id, p.id AS policy, \
                    typeof(u.policy_id) AS policy_id_type, \
                    CAST(quote(u.policy_id) AS BLOB) AS policy_id_quoted, \
                    typeof(u.user_id) AS user_id_type, \
                    CAST(quote(u.user_id) AS BLOB) AS user_id_quoted, \
                    CAST(u.user_id AS BLOB) AS user_id \
             FROM policy_users u LEFT JOIN policies p ON p.id = u.policy_id \
             WHERE (?1 IS NULL OR u.policy_id IN (SELECT id FROM policies WHERE name = ?1)) \
             ORDER BY u.policy_id, u.user_id",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(self.err(context))?;

        let mut out = Rows::default();
        let mut bad_users = Vec::new();
        let mut by_policy: HashMap<i64, Vec<String>> = HashMap::new();
        for row in &users {
            match policy_user(row) {
                Ok((policy, user)) => by_policy.entry(policy).or_default().push(user),
                Err(bad) => bad_users.push(bad),
            }
        }
        for row in &policies {
            match policy_row(row, &mut by_policy) {
                Ok(policy) => out.rows.push(policy),
                Err(bad) => out.bad.extend(bad),
            }
        }
        out.bad.extend(bad_users);
        Ok(out)
    }

    /// Inserts a policy and its users in one transaction; returns its id.
    pub async fn insert_policy(&self, new: &NewPolicy) -> Result<i64, StoreError> {
        let context = "inserting a policy";
        let mut tx = self.begin_immediate(context).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policies (name, enabled, cron, timezone, window_seconds, end_mode) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(&new.name)
        .bind(new.enabled)
        .bind(&new.cron)
        .bind(&new.timezone)
        .bind(new.window_seconds)
        .bind(&new.end_mode)
        .fetch_one(&mut *tx)
        .await
        .map_err(|e| {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                StoreError::DuplicatePolicy(new.name.clone())
            } else {
                self.err(context)(e)
            }
        })?;
        for user in &new.users {
            sqlx::query(
                "INSERT INTO policy_users (policy_id, user_id) VALUES (?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(id)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(id)
    }

    /// Turns a policy on or off. Its users' open recordings are the
    /// daemon's business (it notices through [`Store::policy_revision`]).
    pub async fn set_policy_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE policies SET enabled = ? WHERE name = ?")
            .bind(enabled)
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(self.err("enabling or disabling a policy"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::PolicyNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes a policy and its user list. Its `recordings` rows stay:
    /// history outlives the policy.
    pub async fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM policies WHERE name = ?")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(self.err("removing a policy"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::PolicyNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Adds `user` to a policy; `false` if it was already there.
    pub async fn add_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "adding a user to a policy";
        let mut tx = self.begin_immediate(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let done = sqlx::query(
            "INSERT INTO policy_users (policy_id, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(done.rows_affected() == 1)
    }

    /// Removes `user` from a policy; `false` if it was not there.
    pub async fn remove_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "removing a user from a policy";
        let mut tx = self.begin_immediate(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let done = sqlx::query("DELETE FROM policy_users WHERE policy_id = ? AND user_id = ?")
            .bind(id)
            .bind(user)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(done.rows_affected() == 1)
    }

    async fn policy_id(
        &self,
        conn: &mut SqliteConnection,
        name: &str,
        context: &'static str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT id FROM policies WHERE name = ?")
            .bind(name)
            .fetch_optional(conn)
            .await
            .map_err(self.err(context))?
            .ok_or_else(|| StoreError::PolicyNotFound(name.to_owned()))
    }

    /// A number that moves whenever `policies` or `policy_users` change, by
    /// any writer (triggers keep it). Poll it; reload when it differs.
    pub async fn policy_revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT revision FROM policy_revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("reading the policy revision"))
    }
}

/// A column of `policies` or `policy_users` as the queries above select
/// it: the value, its SQL type (`<column>_type`) and the value quoted as
/// SQL (`<column>_quoted`, for messages).
#[derive(Clone, Copy)]
struct Stored {
    column: &'static str,
    type_column: &'static str,
    quoted_column: &'static str,
}

macro_rules! stored {
    ($column:literal) => {
        Stored {
            column: $column,
            type_column: concat!($column, "_type"),
            quoted_column: concat!($column, "_quoted"),
        }
    };
}

impl Stored {
    /// "stored as real 3600.9, not an integer".
    fn wrong_type(self, c: &Cols<'_>, stored: &str, expected: &str) -> BadRow {
        let quoted = c
            .get::<Vec<u8>>(self.quoted_column)
            .map(|q| String::from_utf8_lossy(&q).into_owned())
            .unwrap_or_default();
        c.bad(
            self.column,
            format!("stored as {stored} {quoted}, not {expected}; nothing is converted"),
        )
    }

    /// A TEXT column holding valid UTF-8 text.
    fn text(self, c: &Cols<'_>) -> Result<String, BadRow> {
        match c.get::<String>(self.type_column)?.as_str() {
            "text" => utf8(c.get(self.column)?).map_err(|e| c.bad(self.column, e)),
            other => Err(self.wrong_type(c, other, "text")),
        }
    }

    /// An INTEGER column holding an integer (not a real, not text).
    fn integer(self, c: &Cols<'_>) -> Result<i64, BadRow> {
        match c.get::<String>(self.type_column)?.as_str() {
            "integer" => c.get(self.column),
            other => Err(self.wrong_type(c, other, "an integer")),
        }
    }
}

/// One `policies` row, or every column of it that does not read back.
fn policy_row(
    row: &SqliteRow,
    users: &mut HashMap<i64, Vec<String>>,
) -> Result<PolicyRow, Vec<BadRow>> {
    let c = Cols::new(row, "policies").map_err(|bad| vec![bad])?;
    let mut bad = Vec::new();
    let name = keep(&mut bad, stored!("name").text(&c));
    let enabled = keep(
        &mut bad,
        stored!("enabled").integer(&c).and_then(|v| match v {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(c.bad("enabled", format!("{other}: must be 0 (off) or 1 (on)"))),
        }),
    );
    let cron = keep(&mut bad, stored!("cron").text(&c));
    let timezone = keep(&mut bad, stored!("timezone").text(&c));
    let window_seconds = keep(&mut bad, stored!("window_seconds").integer(&c));
    let end_mode = keep(&mut bad, stored!("end_mode").text(&c));
    let users = users.remove(&c.id()).unwrap_or_default();
    match (name, enabled, cron, timezone, window_seconds, end_mode) {
        (
            Some(name),
            Some(enabled),
            Some(cron),
            Some(timezone),
            Some(window_seconds),
            Some(end_mode),
        ) if bad.is_empty() => Ok(PolicyRow {
            id: c.id(),
            name,
            enabled,
            cron,
            timezone,
            window_seconds,
            end_mode,
            users,
            // Attached by `Store` (teams.rs), beside the backend's own read.
            teams: Vec::new(),
        }),
        _ => Err(bad),
    }
}

/// The value if it read back; else notes why not.
fn keep<T>(bad: &mut Vec<BadRow>, read: Result<T, BadRow>) -> Option<T> {
    read.map_err(|b| bad.push(b)).ok()
}

/// One `policy_users` row: its policy's id and a valid user id.
fn policy_user(row: &SqliteRow) -> Result<(i64, String), BadRow> {
    let c = Cols::new(row, "policy_users")?;
    let keyed = |bad: BadRow| bad.keyed_by("rowid");
    let policy: Option<i64> = c.get("policy").map_err(keyed)?;
    let Some(policy) = policy else {
        let stored = c
            .get::<Vec<u8>>("policy_id_quoted")
            .map(|q| String::from_utf8_lossy(&q).into_owned())
            .unwrap_or_default();
        return Err(keyed(c.bad(
            "policy_id",
            format!(
                "{stored} names no policy (sqlite3 checks foreign keys only after \
                 `PRAGMA foreign_keys = ON`)"
            ),
        )));
    };
    let user = stored!("user_id").text(&c).map_err(keyed)?;
    UserId::parse(user.as_str()).map_err(|e| {
        keyed(c.bad(
            "user_id",
            format!("`{}`: {e}", crate::store::bad_row::Shown(&user)),
        ))
    })?;
    Ok((policy, user))
}
