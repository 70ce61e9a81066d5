//! Policy rows and their users in SQLite, plus the revision counter that
//! tells the daemon they changed.
//!
//! The store reads policies as plain [`PolicyRow`]s and never judges them:
//! parsing and reporting a bad cron, zone or length is the `policy`
//! module's job, and a bad row must not hide the good ones. So the policy
//! columns have no CHECK constraints, and a value of the wrong SQL type
//! (say `window_seconds = 'one hour'` typed into sqlite3) is read through
//! `CAST` (giving 0, which the parser rejects by name) with a warning
//! naming the policy and column, rather than failing the whole read.

use std::collections::HashMap;

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, SqliteConnection};

use crate::policy::PolicyRow;

use super::row::Cols;
use super::SqliteStore;
use crate::store::{NewPolicy, StoreError};

impl SqliteStore {
    /// Every policy with its users, by id. One snapshot, two queries.
    pub async fn policy_rows(&self) -> Result<Vec<PolicyRow>, StoreError> {
        let mut tx = self.begin_read("reading policies").await?;
        let rows = self.read_policies(&mut tx, None).await?;
        tx.commit().await.map_err(self.err("reading policies"))?;
        Ok(rows)
    }

    /// The policy named `name`, with its users.
    pub async fn policy_row(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        let mut tx = self.begin_read("reading a policy").await?;
        let rows = self.read_policies(&mut tx, Some(name)).await?;
        tx.commit().await.map_err(self.err("reading a policy"))?;
        Ok(rows.into_iter().next())
    }

    async fn read_policies(
        &self,
        conn: &mut SqliteConnection,
        name: Option<&str>,
    ) -> Result<Vec<PolicyRow>, StoreError> {
        let context = "reading policies";
        let policies = sqlx::query(
            "SELECT id, CAST(name AS TEXT) AS name, \
                    CAST(enabled AS INTEGER) AS enabled, typeof(enabled) AS enabled_type, \
                    CAST(cron AS TEXT) AS cron, CAST(timezone AS TEXT) AS timezone, \
                    CAST(window_seconds AS INTEGER) AS window_seconds, \
                    typeof(window_seconds) AS window_type, \
                    CAST(end_mode AS TEXT) AS end_mode \
             FROM policies WHERE (?1 IS NULL OR name = ?1) ORDER BY id",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(self.err(context))?;
        let users = sqlx::query(
            "SELECT policy_id, CAST(user_id AS TEXT) AS user_id FROM policy_users \
             WHERE (?1 IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = ?1)) \
             ORDER BY policy_id, user_id",
        )
        .bind(name)
        .fetch_all(&mut *conn)
        .await
        .map_err(self.err(context))?;

        let mut by_policy: HashMap<i64, Vec<String>> = HashMap::new();
        for row in &users {
            let policy_id: i64 = row
                .try_get("policy_id")
                .map_err(|e| StoreError::bad_row("policy_users", -1, "policy_id", e))?;
            let user: String = row
                .try_get("user_id")
                .map_err(|e| StoreError::bad_row("policy_users", policy_id, "user_id", e))?;
            by_policy.entry(policy_id).or_default().push(user);
        }
        policies
            .iter()
            .map(|row| policy_row(row, &mut by_policy))
            .collect()
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

fn policy_row(
    row: &SqliteRow,
    users: &mut HashMap<i64, Vec<String>>,
) -> Result<PolicyRow, StoreError> {
    let c = Cols::new(row, "policies")?;
    let name: String = c.get("name")?;
    let enabled: i64 = c.get("enabled")?;
    let window_seconds: i64 = c.get("window_seconds")?;
    for (column, type_column, read_as) in [
        ("enabled", "enabled_type", enabled),
        ("window_seconds", "window_type", window_seconds),
    ] {
        let stored: String = c.get(type_column)?;
        if stored != "integer" {
            tracing::warn!(
                policy = %name,
                policy_id = c.id(),
                column,
                stored_type = %stored,
                read_as,
                "policy column holds a {stored}, not an integer; fix it with sqlite3"
            );
        }
    }
    Ok(PolicyRow {
        id: c.id(),
        enabled: enabled != 0,
        cron: c.get("cron")?,
        timezone: c.get("timezone")?,
        window_seconds,
        end_mode: c.get("end_mode")?,
        users: users.remove(&c.id()).unwrap_or_default(),
        // Attached by `Store` (teams.rs), beside the backend's own read.
        teams: Vec::new(),
        name,
    })
}
