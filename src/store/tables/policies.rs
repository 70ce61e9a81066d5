//! Policy rows with their users and teams, for both backends, plus the
//! revision counter that tells the daemon they changed.
//!
//! The store reads policies as plain [`PolicyRow`]s and never judges what
//! they mean (that is the `policy` parser's job). It judges whether a row
//! reads back at all, and coerces nothing. SQLite keeps whatever type an
//! operator typed into sqlite3 (`window_seconds = 3600.9`,
//! `enabled = 'true'`, a name that is not UTF-8), so there each column's
//! stored type is checked (`typeof`, see `Dialect::LOOSE_TYPES`) and a
//! row holding a value of the wrong type is skipped and named with that
//! type and value, never rounded or read as 0. PostgreSQL types its
//! columns itself. A `policy_users` row is judged on its own: one that
//! names no policy (sqlite3 leaves foreign keys off by default) or whose
//! user id is not a valid user id is skipped, and its policy goes on; so
//! is a `policy_teams` or `team_members` row (`teams`).

use std::collections::HashMap;

use crate::policy::{PolicyRow, PolicyTeam};
use crate::recording::UserId;
use crate::store::bad_row::Shown;
use crate::store::db::{keep, stored, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::{BadRow, NewPolicy, Rows, StoreError};

impl<D: Backend> Db<D> {
    /// Every policy that reads back, with its users and its teams (with
    /// their stored members), by id; and every `policies`, `policy_users`,
    /// `policy_teams` or `team_members` row that does not. One snapshot.
    pub async fn read_policies(&self) -> Result<Rows<PolicyRow>, StoreError> {
        self.read_policies_named(None).await
    }

    /// The policy named `name`, with its users and teams. A `policies` row
    /// that does not read back is [`StoreError::BadRow`].
    pub async fn policy_row(&self, name: &str) -> Result<Option<PolicyRow>, StoreError> {
        let rows = self.read_policies_named(Some(name)).await?;
        if let Some(bad) = rows.bad.into_iter().find(|b| b.table == "policies") {
            return Err(bad.into());
        }
        Ok(rows.rows.into_iter().next())
    }

    async fn read_policies_named(&self, name: Option<&str>) -> Result<Rows<PolicyRow>, StoreError> {
        let context = "reading policies";
        let mut tx = self.begin_read(context).await?;
        let policies = self
            .fetch_all(&mut tx, Stmt::new(D::POLICIES).arg(name), context)
            .await?;
        // Streamed: 100,000 users are held once, as the strings the
        // policies keep, never also as the rows they were read from.
        let mut bad_users = Vec::new();
        let mut by_policy: HashMap<i64, Vec<String>> = HashMap::new();
        let users = Stmt::new(D::POLICY_USERS).arg(name);
        self.for_each_row(&mut tx, users, context, |row| match policy_user::<D>(row) {
            Ok((policy, user)) => by_policy.entry(policy).or_default().push(user),
            Err(bad) => bad_users.push(bad),
        })
        .await?;
        let teams = self.policy_teams_on(&mut tx, name, context).await?;
        tx.commit().await.map_err(self.err(context))?;

        let mut out = Rows::default();
        let mut teams_of: HashMap<i64, Vec<PolicyTeam>> = HashMap::new();
        for (policy, team) in teams.rows {
            teams_of.entry(policy).or_default().push(team);
        }
        for row in &policies {
            match policy_row::<D>(row, &mut by_policy) {
                Ok(mut policy) => {
                    policy.teams = teams_of.remove(&policy.id).unwrap_or_default();
                    out.rows.push(policy);
                }
                Err(bad) => out.bad.extend(bad),
            }
        }
        out.bad.extend(bad_users);
        out.bad.extend(teams.bad);
        Ok(out)
    }

    /// Inserts a policy and its users in one transaction; returns its id.
    pub async fn insert_policy(&self, new: &NewPolicy) -> Result<i64, StoreError> {
        let context = "inserting a policy";
        let mut tx = self.begin_write(context).await?;
        let stmt = Stmt::new(
            "INSERT INTO policies (name, enabled, cron, timezone, window_seconds, end_mode) \
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .arg(new.name.as_str())
        .arg(new.enabled)
        .arg(new.cron.as_str())
        .arg(new.timezone.as_str())
        .arg(new.window_seconds)
        .arg(new.end_mode.as_str());
        let row = D::fetch_optional(&mut tx, stmt).await.map_err(|e| {
            if e.as_database_error()
                .is_some_and(|d| d.is_unique_violation())
            {
                StoreError::DuplicatePolicy(new.name.clone())
            } else {
                self.err(context)(e)
            }
        })?;
        let row = row.ok_or_else(|| self.err(context)(sqlx::Error::RowNotFound))?;
        let id = Cols::<D>::new(&row, "policies")?.id();
        for user in &new.users {
            self.add_user(&mut tx, id, user, context).await?;
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(id)
    }

    /// Turns a policy on or off. Its users' open recordings are the
    /// daemon's business (it notices through [`Db::policy_revision`]).
    pub async fn set_policy_enabled(&self, name: &str, enabled: bool) -> Result<(), StoreError> {
        let stmt = Stmt::new("UPDATE policies SET enabled = $1 WHERE name = $2")
            .arg(enabled)
            .arg(name);
        let done = self.run(stmt, "enabling or disabling a policy").await?;
        if done == 0 {
            return Err(StoreError::PolicyNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Deletes a policy and its user list. Its `recordings` rows stay:
    /// history outlives the policy.
    pub async fn remove_policy(&self, name: &str) -> Result<(), StoreError> {
        let stmt = Stmt::new("DELETE FROM policies WHERE name = $1").arg(name);
        if self.run(stmt, "removing a policy").await? == 0 {
            return Err(StoreError::PolicyNotFound(name.to_owned()));
        }
        Ok(())
    }

    /// Adds `user` to a policy; `false` if it was already there.
    pub async fn add_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "adding a user to a policy";
        let mut tx = self.begin_write(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let added = self.add_user(&mut tx, id, user, context).await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(added)
    }

    /// Removes `user` from a policy; `false` if it was not there.
    pub async fn remove_policy_user(&self, name: &str, user: &str) -> Result<bool, StoreError> {
        let context = "removing a user from a policy";
        let mut tx = self.begin_write(context).await?;
        let id = self.policy_id(&mut tx, name, context).await?;
        let stmt = Stmt::new("DELETE FROM policy_users WHERE policy_id = $1 AND user_id = $2")
            .arg(id)
            .arg(user);
        let done = self.execute(&mut tx, stmt, context).await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(done == 1)
    }

    /// Adds `user` to policy `id`; `false` if it was already there.
    async fn add_user(
        &self,
        conn: &mut D::Connection,
        id: i64,
        user: &str,
        context: &'static str,
    ) -> Result<bool, StoreError> {
        let stmt = Stmt::new(
            "INSERT INTO policy_users (policy_id, user_id) VALUES ($1, $2) \
             ON CONFLICT DO NOTHING",
        )
        .arg(id)
        .arg(user);
        Ok(self.execute(conn, stmt, context).await? == 1)
    }

    async fn policy_id(
        &self,
        conn: &mut D::Connection,
        name: &str,
        context: &'static str,
    ) -> Result<i64, StoreError> {
        let stmt = Stmt::new("SELECT id FROM policies WHERE name = $1").arg(name);
        let row = self
            .fetch_optional(conn, stmt, context)
            .await?
            .ok_or_else(|| StoreError::PolicyNotFound(name.to_owned()))?;
        Ok(Cols::<D>::new(&row, "policies")?.id())
    }

    /// A number that moves whenever `policies` or `policy_users` change, by
    /// any writer (triggers keep it). Poll it; reload when it differs.
    ///
    /// The row is the triggers' counter, not an operator's: if it was
    /// deleted by hand (the triggers would then move nothing, and no edit
    /// would ever be noticed), it is put back at 0, which reads as a new
    /// revision; a value sqlite3 let in that is not an integer is read as
    /// SQLite casts it (the next edit makes it an integer again).
    pub async fn policy_revision(&self) -> Result<i64, StoreError> {
        let context = "reading the policy revision";
        let read = || {
            Stmt::new("SELECT CAST(revision AS BIGINT) AS value FROM policy_revision WHERE id = 1")
        };
        if let Some(revision) = self.value(read(), context).await? {
            return Ok(revision);
        }
        let stmt = Stmt::new(
            "INSERT INTO policy_revision (id, revision) VALUES (1, 0) ON CONFLICT (id) DO NOTHING",
        );
        self.run(stmt, "recreating the policy revision").await?;
        tracing::warn!(
            "the policy_revision row was missing (deleted by hand?); recreated, so edits are \
             noticed again"
        );
        self.value(read(), context)
            .await?
            .ok_or_else(|| self.err(context)(sqlx::Error::RowNotFound))
    }
}

/// One `policies` row, or every column of it that does not read back.
fn policy_row<D: Backend>(
    row: &D::Row,
    users: &mut HashMap<i64, Vec<String>>,
) -> Result<PolicyRow, Vec<BadRow>> {
    let c = Cols::<D>::new(row, "policies").map_err(|bad| vec![bad])?;
    let mut bad = Vec::new();
    let name = keep(&mut bad, stored(&c, "name").text());
    let enabled = keep(&mut bad, stored(&c, "enabled").flag());
    let cron = keep(&mut bad, stored(&c, "cron").text());
    let timezone = keep(&mut bad, stored(&c, "timezone").text());
    let window_seconds = keep(&mut bad, stored(&c, "window_seconds").integer());
    let end_mode = keep(&mut bad, stored(&c, "end_mode").text());
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
            // Attached by the caller, from the same snapshot.
            teams: Vec::new(),
        }),
        _ => Err(bad),
    }
}

/// One `policy_users` row: its policy's id and a valid user id.
fn policy_user<D: Backend>(row: &D::Row) -> Result<(i64, String), BadRow> {
    let keyed = |bad: BadRow| bad.keyed_by(D::USER_KEY);
    let c = Cols::<D>::new(row, "policy_users").map_err(keyed)?;
    let policy = named_policy(&c, "").map_err(keyed)?;
    let user = stored(&c, "user_id").text().map_err(keyed)?;
    UserId::parse(user.as_str())
        .map_err(|e| keyed(c.bad("user_id", format!("`{}`: {e}", Shown(&user)))))?;
    Ok((policy, user))
}

/// The id of the policy a row's `policy_id` names, selected as `policy`
/// (NULL when it names none, which only sqlite3 lets in): else the row is
/// bad, named with the stored `policy_id` and `note` on what NULL means.
pub(super) fn named_policy<D: Backend>(c: &Cols<'_, D>, note: &str) -> Result<i64, BadRow> {
    if let Some(policy) = c.get::<Option<i64>>("policy")? {
        return Ok(policy);
    }
    let named = c.about("policy_id", "_quoted")?;
    Err(c.bad(
        "policy_id",
        format!(
            "{named} names no policy ({note}sqlite3 checks foreign keys only after \
             `PRAGMA foreign_keys = ON`)"
        ),
    ))
}
