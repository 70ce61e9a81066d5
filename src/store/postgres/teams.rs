//! The team tables in PostgreSQL: the same contract as SQLite's
//! (`sqlite/teams.rs`), in PostgreSQL's types. Joiners and leavers are
//! written only when there are any, so a refresh that changes nobody
//! fires no statement trigger and wakes no daemon.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};

use super::PgStore;
use crate::policy::PolicyTeam;
use crate::store::teams::{diff, MembershipChange, TeamMember, TeamPolicy, TeamRefresh};
use crate::store::StoreError;

impl PgStore {
    pub async fn policy_teams(
        &self,
        name: Option<&str>,
    ) -> Result<HashMap<i64, Vec<PolicyTeam>>, StoreError> {
        let context = "reading policy teams";
        let mut tx = self.begin(context).await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        let named = sqlx::query(
            "SELECT policy_id, team_id FROM policy_teams \
             WHERE ($1::text IS NULL OR policy_id IN (SELECT id FROM policies WHERE name = $1)) \
             ORDER BY policy_id, team_id",
        )
        .bind(name)
        .fetch_all(&mut *tx)
        .await
        .map_err(self.err(context))?;
        let members = sqlx::query(
            "SELECT team_id, user_id FROM team_members \
             WHERE team_id IN (SELECT team_id FROM policy_teams) ORDER BY team_id, user_id",
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

    pub async fn replace_team_members(
        &self,
        team: &str,
        members: &[String],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError> {
        let context = "replacing a team's members";
        let mut tx = self.begin(context).await?;
        // One refresher at a time per team, across instances.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('recsched_team:' || $1))")
            .bind(team)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        let current: Vec<String> =
            sqlx::query_scalar("SELECT user_id FROM team_members WHERE team_id = $1")
                .bind(team)
                .fetch_all(&mut *tx)
                .await
                .map_err(self.err(context))?;
        let (joined, left) = diff(&current, members);
        if !joined.is_empty() {
            sqlx::query(
                "INSERT INTO team_members (team_id, user_id, first_seen, last_seen) \
                 SELECT $1, u, $3, $3 FROM UNNEST($2::text[]) AS u ON CONFLICT DO NOTHING",
            )
            .bind(team)
            .bind(&joined)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        }
        if !left.is_empty() {
            sqlx::query("DELETE FROM team_members WHERE team_id = $1 AND user_id = ANY($2)")
                .bind(team)
                .bind(&left)
                .execute(&mut *tx)
                .await
                .map_err(self.err(context))?;
        }
        sqlx::query("UPDATE team_members SET last_seen = $2 WHERE team_id = $1")
            .bind(team)
            .bind(at)
            .execute(&mut *tx)
            .await
            .map_err(self.err(context))?;
        self.note_refresh(&mut tx, team, at, Some(at), None, context)
            .await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(MembershipChange {
            members: current.len() + joined.len() - left.len(),
            joined,
            left,
        })
    }

    pub async fn team_refresh_failed(
        &self,
        team: &str,
        at: DateTime<Utc>,
        error: &str,
    ) -> Result<(), StoreError> {
        let context = "noting a failed team refresh";
        let mut tx = self.begin(context).await?;
        self.note_refresh(&mut tx, team, at, None, Some(error), context)
            .await?;
        tx.commit().await.map_err(self.err(context))
    }

    async fn note_refresh(
        &self,
        conn: &mut PgConnection,
        team: &str,
        attempted_at: DateTime<Utc>,
        refreshed_at: Option<DateTime<Utc>>,
        error: Option<&str>,
        context: &'static str,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO team_refreshes (team_id, refreshed_at, attempted_at, last_error) \
             VALUES ($1, $2, $3, $4) \
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

    pub async fn team_refreshes(&self) -> Result<Vec<TeamRefresh>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.team_id, r.refreshed_at, r.attempted_at, r.last_error, \
                    (SELECT COUNT(*) FROM team_members m WHERE m.team_id = r.team_id) AS members \
             FROM team_refreshes r ORDER BY r.team_id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading team refreshes"))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(TeamRefresh {
                    team_id: row.try_get("team_id").ok()?,
                    refreshed_at: row.try_get("refreshed_at").ok()?,
                    attempted_at: row.try_get("attempted_at").ok()?,
                    last_error: row.try_get("last_error").ok()?,
                    members: usize::try_from(row.try_get::<i64, _>("members").ok()?).ok()?,
                })
            })
            .collect())
    }

    pub async fn team_member_rows(&self, team: &str) -> Result<Vec<TeamMember>, StoreError> {
        let rows = sqlx::query(
            "SELECT user_id, first_seen, last_seen FROM team_members \
             WHERE team_id = $1 ORDER BY user_id",
        )
        .bind(team)
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading team members"))?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(TeamMember {
                    user_id: row.try_get("user_id").ok()?,
                    first_seen: row.try_get("first_seen").ok()?,
                    last_seen: row.try_get("last_seen").ok()?,
                })
            })
            .collect())
    }

    pub async fn team_policies(&self) -> Result<Vec<TeamPolicy>, StoreError> {
        let rows = sqlx::query(
            "SELECT t.team_id, p.id AS policy_id, p.name, p.enabled \
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
                    enabled: row.try_get("enabled").ok()?,
                })
            })
            .collect())
    }
}
