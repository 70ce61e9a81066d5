//! Policy rows and their users in PostgreSQL, plus the revision counter.
//!
//! The schema types the columns (`enabled` BOOLEAN, `window_seconds`
//! BIGINT) and the foreign key on `policy_users` is always enforced, so
//! PostgreSQL itself refuses a value of the wrong type or a user row with
//! no policy. What remains is judged as on SQLite: a row whose value does
//! not decode is skipped and named ([`BadRow`]), a `policy_users` row whose
//! user id is not a valid user id is skipped on its own (it has no id
//! column, so it is named by its `policy_id`), and the meaning of the rest
//! (cron, zone, range) is the `policy` parser's job.

use std::collections::HashMap;

use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};

use crate::policy::PolicyRow;
use crate::recording::UserId;
use crate::store::bad_row::Shown;
use crate::store::{BadRow, NewPolicy, Rows, StoreError};

use super::row::Cols;
use super::PgStore;

impl PgStore {
    pub async fn read_policies(&self) -> Result<Rows<PolicyRow>, StoreError> {
        self.read_policies_where(None).await
    }

    pub async fn policy_row(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        let rows = self.read_policies_where(Some(name)).await?;
        if let Some(bad) = rows.bad.into_iter().find(|b| b.table == "policies") {
            return Err(bad.into());
        }
        Ok(rows.rows.into_iter().next())
    }

    /// Policies and users from one snapshot (a REPEATABLE READ transaction).
    async fn read_policies_where(&self, name: Option<&str>) -> Result<Rows<PolicyRow>, StoreError> {
        let context = "reading policies";
        let mut tx = self.begin(context).await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        let policies = sqlx::query(
            "SELECT id, name, enabled, cron, timezone, window_seconds, end_mode \
             FROM policies WHERE ($1::text IS NULL OR name = $1) ORDER BY id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err(context))?;
        let users = sqlx::query(
            "SELECT policy_id, user_id FROM policy_users \
             WHERE ($1::text IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1)) \
             ORDER BY policy_id, user_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;

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
            out.push(policy_row(row, &mut by_policy));
        }
        out.bad.extend(bad_users);
        Ok(out)
    }

    pub async fn insert_policy(&self, new: &NewPolicy) -> Result<i64, StoreError> {
        let context = "inserting a policy";
        let mut tx = self.begin(context).await?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policies (name, enabled, cron, timezone, window_seconds, end_mode) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
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
                StoreError::from_pg(&self.target, context, e)
            }
        })?;
        let mut users = new.users.clone();
        users.sort();
        users.dedup();
        sqlx::query(
            "INSERT INTO policy_users (policy_id, user_id) \
             SELECT $1, u FROM UNNEST($2::text[]) AS u ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(&users)
        .execute(&mut *tx)
        .await
        .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(id)
    }

    pub async fn set_policy_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE policies SET enabled = $1 WHERE name = $2")
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

    pub async fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        let done = sqlx::query("DELETE FROM policies WHERE name = $1")
            .bind(name)
            .execute(&self.pool)
            .await
            .map_err(self.err("removing a policy"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::PolicyNotFound(name.to_owned()));
        }
        Ok(())
    }

    pub async fn add_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "adding a user to a policy";
        let mut tx = self.begin(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let done = sqlx::query(
            "INSERT INTO policy_users (policy_id, user_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .bind(user)
        .execute(&mut *tx)
        .await
        .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn remove_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "removing a user from a policy";
        let mut tx = self.begin(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let done = sqlx::query("DELETE FROM policy_users WHERE policy_id = $1 AND user_id = $2")
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
        conn: &mut PgConnection,
        name: &str,
        context: &'static str,
    ) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT id FROM policies WHERE name = $1")
            .bind(name)
            .fetch_optional(conn)
            .await
            .map_err(self.err(context))?
            .ok_or_else(|| StoreError::PolicyNotFound(name.to_owned()))
    }

    pub async fn policy_revision(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT revision FROM policy_revision WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("reading the policy revision"))
    }
}

fn policy_row(row: &PgRow, users: &mut HashMap<i64, Vec<String>>) -> Result<PolicyRow, BadRow> {
    let c = Cols::new(row, "policies")?;
    Ok(PolicyRow {
        id: c.id(),
        name: c.get("name")?,
        enabled: c.get("enabled")?,
        cron: c.get("cron")?,
        timezone: c.get("timezone")?,
        window_seconds: c.get("window_seconds")?,
        end_mode: c.get("end_mode")?,
        users: users.remove(&c.id()).unwrap_or_default(),
        // Attached by `Store` (teams.rs), beside the backend's own read.
        teams: Vec::new(),
    })
}

/// One `policy_users` row: its policy's id and a valid user id. The table
/// has no id column; a bad row is named by its `policy_id`.
fn policy_user(row: &PgRow) -> Result<(i64, String), BadRow> {
    let policy: i64 = row
        .try_get("policy_id")
        .map_err(|e| BadRow::new("policy_users", -1, "policy_id", e).keyed_by("policy_id"))?;
    let bad = |problem: String| {
        BadRow::new("policy_users", policy, "user_id", problem).keyed_by("policy_id")
    };
    let user: String = row.try_get("user_id").map_err(|e| bad(e.to_string()))?;
    UserId::parse(user.as_str()).map_err(|e| bad(format!("`{}`: {e}", Shown(&user))))?;
    Ok((policy, user))
}
