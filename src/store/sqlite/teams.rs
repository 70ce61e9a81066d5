//! The team tables in SQLite: a policy's teams with their members (for
//! the policy read), membership replaced by a complete directory read,
//! refresh records, and the listing of `recsched teams`.
//!
//! Values are read through `CAST`, and a row that still does not read
//! back (a timestamp typed by hand) is skipped with a warning: a bad row
//! of these tables costs only itself.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{Row, SqliteConnection};

use super::SqliteStore;
use crate::clock::{format_utc, parse_utc};
use crate::policy::PolicyTeam;
use crate::store::teams::{diff, MembershipChange, TeamMember, TeamPolicy, TeamRefresh};
use crate::store::StoreError;

impl SqliteStore {
    /// Every policy's teams (by policy id), each with its stored members;
    /// only `name`'s when given. One snapshot.
    pub async fn policy_teams(
        &self,
        name: Option<&str>,
    ) -> Result<HashMap<i64, Vec<PolicyTeam>>, StoreError> {
        let context = "reading policy teams";
        let mut tx = self.begin_read(context).await?;
        let named = sqlx::query(
            "SELECT policy_id, CAST(team_id AS TEXT) AS team_id FROM policy_teams \
             WHERE (?1 IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = ?1)) \
             ORDER BY policy_id, team_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err(context))?;
        let members = sqlx::query(
            "SELECT CAST(team_id AS TEXT) AS team_id, CAST(user_id AS TEXT) AS user_id \
             FROM team_members WHERE team_id IN (SELECT team_id FROM policy_teams) \
             ORDER BY team_id, user_id",
        )
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err(context))?;
        tx.commit().await.map_err(self.err(context))?;

        let mut by_team: HashMap<String, Vec<String>> = HashMap::new();
        for row in &members {
            match (
                row.try_get::<String, _>("team_id"),
                row.try_get::<String, _>("user_id"),
            ) {
                (Ok(team), Ok(user)) => by_team.entry(team).or_default().push(user),
                _ => tracing::warn!("a team_members row does not read back; skipped"),
            }
        }
        let mut by_policy: HashMap<i64, Vec<PolicyTeam>> = HashMap::new();
        for row in &named {
            match (
                row.try_get::<i64, _>("policy_id"),
                row.try_get::<String, _>("team_id"),
            ) {
                (Ok(policy), Ok(team)) => by_policy.entry(policy).or_default().push(PolicyTeam {
                    members: by_team.get(&team).cloned().unwrap_or_default(),
                    id: team,
                }),
                _ => tracing::warn!("a policy_teams row does not read back; skipped"),
            }
        }
        Ok(by_policy)
    }

    /// Makes `members` the team's membership, as read at `at`, in one
    /// transaction: joiners inserted, leavers deleted, `last_seen` moved
    /// for the rest, the refresh recorded.
    pub async fn replace_team_members(
        &self,
        team: &str,
        members: &[String],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError> {
        let context = "replacing a team's members";
        let at = format_utc(at);
        let mut tx = self.begin_immediate(context).await?;
        let current: Vec<String> =
            sqlx::query_scalar("SELECT CAST(user_id AS TEXT) FROM team_members WHERE team_id = ?")
                .bind(team)
                .fetch_all(&mut *tx)
                .await
                .map_err(self.err(context))?;
        let (joined, left) = diff(&current, members);
        for user in &joined {
            sqlx::query(
                "INSERT INTO team_members (team_id, user_id, first_seen, last_seen) \
                 VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            )
            .bind(team)
            .bind(user)
            .bind(&at)
            .bind(&at)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        }
        for user in &left {
            sqlx::query("DELETE FROM team_members WHERE team_id = ? AND user_id = ?")
                .bind(team)
                .bind(user)
                .execute(&mut *tx)
                .await
                .map_err(self.err(context))?;
        }
        sqlx::query("UPDATE team_members SET last_seen = ? WHERE team_id = ?")
            .bind(&at)
            .bind(team)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        self.note_refresh(&mut tx, team, &at, Some(&at), None, context)
            .await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(MembershipChange {
            members: current.len() + joined.len() - left.len(),
            joined,
            left,
        })
    }

    /// Notes a failed read of `team` at `at`; the membership stays.
    pub async fn team_refresh_failed(
        &self,
        team: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let context = "noting a failed team refresh";
        let at = format_utc(at);
        let mut tx = self.begin_immediate(context).await?;
        self.note_refresh(&mut tx, team, &at, None, Some(error), context)
            .await?;
        tx.commit().await.map_err(self.err(context))
    }

    async fn note_refresh(
        &self,
        conn: &mut SqliteConnection,
        team: &str,
        attempted_at: &str,
        refreshed_at: Option<&str>,
        error: Option<&str>,
        context: &'static str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO team_refreshes (team_id, refreshed_at, attempted_at, last_error) \
             VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (team_id) DO UPDATE SET \
                refreshed_at = COALESCE(excluded.refreshed_at, team_refreshes.refreshed_at), \
                attempted_at = excluded.attempted_at, last_error = excluded.last_error",
        )
        .bind(team)
        .bind(refreshed_at)
        .bind(attempted_at)
        .bind(error)
        .execute(conn)
        .await
        .map_err(self.err(context))?;
        Ok(())
    }

    /// Every team's refresh record, with its member count, by team id.
    pub async fn team_refreshes(&self) -> Result<Vec<TeamRefresh>, StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(r.team_id AS TEXT) AS team_id, \
                    CAST(r.refreshed_at AS TEXT) AS refreshed_at, \
                    CAST(r.attempted_at AS TEXT) AS attempted_at, \
                    CAST(r.last_error AS TEXT) AS last_error, \
                    (SELECT COUNT(*) FROM team_members m WHERE m.team_id = r.team_id) AS members \
             FROM team_refreshes r ORDER BY r.team_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading team refreshes"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let team_id: String = row.try_get("team_id").unwrap_or_default();
            let refreshed: Option<String> = row.try_get("refreshed_at").unwrap_or_default();
            let attempted: Option<String> = row.try_get("attempted_at").unwrap_or_default();
            let refreshed_at = match refreshed.map(|t| parse_utc(&t)).transpose() {
                Ok(t) => t,
                Err(_) => {
                    tracing::warn!(team = %team_id, "team_refreshes.refreshed_at does not read as a time; taken as never");
                    None
                }
            };
            let Some(attempted_at) = attempted.and_then(|t| parse_utc(&t).ok()) else {
                tracing::warn!(team = %team_id, "team_refreshes.attempted_at does not read as a time; row skipped");
                continue;
            };
            out.push(TeamRefresh {
                members: usize::try_from(row.try_get::<i64, _>("members").unwrap_or(0))
                    .unwrap_or(0),
                last_error: row.try_get("last_error").unwrap_or_default(),
                team_id,
                refreshed_at,
                attempted_at,
            });
        }
        Ok(out)
    }

    /// The members of `team`, by user id.
    pub async fn team_member_rows(&self, team: &str) -> Result<Vec<TeamMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(user_id AS TEXT) AS user_id, CAST(first_seen AS TEXT) AS first_seen, \
                    CAST(last_seen AS TEXT) AS last_seen \
             FROM team_members WHERE team_id = ? ORDER BY user_id",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading team members"))?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let user: Option<String> = row.try_get("user_id").ok();
            let first: Option<DateTime<Utc>> = row
                .try_get::<String, _>("first_seen")
                .ok()
                .and_then(|t| parse_utc(&t).ok());
            let last: Option<DateTime<Utc>> = row
                .try_get::<String, _>("last_seen")
                .ok()
                .and_then(|t| parse_utc(&t).ok());
            match (user, first, last) {
                (Some(user_id), Some(first_seen), Some(last_seen)) => out.push(TeamMember {
                    user_id,
                    first_seen,
                    last_seen,
                }),
                _ => tracing::warn!(team, "a team_members row does not read back; skipped"),
            }
        }
        Ok(out)
    }

    /// Every `policy_teams` row with its policy's name and state.
    pub async fn team_policies(&self) -> Result<Vec<TeamPolicy>, StoreError> {
        let rows = sqlx::query(
            "SELECT CAST(t.team_id AS TEXT) AS team_id, p.id AS policy_id, \
                    CAST(p.name AS TEXT) AS name, CAST(p.enabled AS INTEGER) AS enabled \
             FROM policy_teams t JOIN policies p ON p.id = t.policy_id \
             ORDER BY t.team_id, p.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading the teams of policies"))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(TeamPolicy {
                    team_id: row.try_get("team_id").ok()?,
                    policy_id: row.try_get("policy_id").ok()?,
                    policy: row.try_get("name").ok()?,
                    enabled: row.try_get::<i64, _>("enabled").ok()? != 0,
                })
            })
            .collect())
    }
}
