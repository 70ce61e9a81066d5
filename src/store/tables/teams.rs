//! The team tables, for both backends: a policy's teams with their stored
//! members (read with the policies, in their snapshot), membership
//! replaced by a complete directory read, refresh records, and what
//! `recsched teams` lists.
//!
//! Each row is judged like a `policy_users` row and costs only itself: a
//! `policy_teams` row that names no policy or whose team id does not read
//! as text, or a `team_members` row whose user id is not a valid user id,
//! is skipped and named as a [`BadRow`] keyed by `rowid` (SQLite's own; on
//! PostgreSQL a column of that name, migration 0004). Whether a team id is
//! a valid team id is the `policy` parser's to judge (it costs the policy).
//!
//! Joiners and leavers are written only when there are any, so a refresh
//! that changes nobody fires no PostgreSQL statement trigger and wakes no
//! daemon.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::policy::PolicyTeam;
use crate::recording::UserId;
use crate::store::bad_row::Shown;
use crate::store::db::{stored, Cols, Db};
use crate::store::dialect::{Arg, Backend, Stmt};
use crate::store::tables::policies::named_policy;
use crate::store::teams::{diff, MembershipChange, TeamMember, TeamPolicy, TeamRefresh};
use crate::store::{BadRow, Rows, StoreError};

/// Members per multi-row INSERT or DELETE (one parameter each, far under
/// either backend's limit).
const MEMBER_CHUNK: usize = 500;

/// The key a team row is named by in a [`BadRow`].
const KEY: &str = "rowid";

impl<D: Backend> Db<D> {
    /// The teams of every policy (or of policy `name`), by policy id, each
    /// with its stored members, read on `conn` (the caller's snapshot);
    /// and the `policy_teams` and `team_members` rows that do not read
    /// back.
    pub(super) async fn policy_teams_on(
        &self,
        conn: &mut D::Connection,
        name: Option<&str>,
        context: &'static str,
    ) -> Result<Rows<(i64, PolicyTeam)>, StoreError> {
        let named = self
            .fetch_all(conn, Stmt::new(D::POLICY_TEAMS).arg(name), context)
            .await?;
        // Streamed, as a policy's users are.
        let mut out = Rows::default();
        let mut by_team: HashMap<String, Vec<String>> = HashMap::new();
        let members = Stmt::new(D::TEAM_MEMBERS).arg(name);
        self.for_each_row(conn, members, context, |row| match team_member::<D>(row) {
            Ok((team, user)) => by_team.entry(team).or_default().push(user),
            Err(bad) => out.bad.push(bad),
        })
        .await?;
        for row in &named {
            out.push(policy_team::<D>(row).map(|(policy, id)| {
                let members = by_team.get(&id).cloned().unwrap_or_default();
                (policy, PolicyTeam { id, members })
            }));
        }
        Ok(out)
    }

    /// Makes `members` the team's membership, as read at `at`, in one
    /// transaction: joiners inserted, leavers deleted, `last_seen` moved
    /// for the rest, the refresh recorded. A stored row that does not read
    /// back as a member is left as it is (the policy read names it).
    pub async fn replace_team_members(
        &self,
        team: &str,
        members: &[String],
        at: DateTime<Utc>,
    ) -> Result<MembershipChange, StoreError> {
        let context = "replacing a team's members";
        let mut tx = self.begin_write(context).await?;
        if let Some(lock) = D::LOCK_TEAM {
            self.execute(&mut tx, Stmt::new(lock).arg(team), context)
                .await?;
        }
        let stmt =
            Stmt::new("SELECT rowid AS id, team_id, user_id FROM team_members WHERE team_id = $1")
                .arg(team);
        let rows = self.fetch_all(&mut tx, stmt, context).await?;
        // Judged as the policy read judges them: a row that does not read
        // back is neither a member nor a leaver; it stays for the operator.
        let current: Vec<String> = rows
            .iter()
            .filter_map(|row| {
                let c = Cols::<D>::new(row, "team_members").ok()?;
                let user = c.get::<String>("user_id").ok()?;
                UserId::parse(user.as_str()).is_ok().then_some(user)
            })
            .collect();
        let (joined, left) = diff(&current, members);
        for chunk in joined.chunks(MEMBER_CHUNK) {
            // ($1 team, $2 at): ($1, $3, $2, $2), ($1, $4, $2, $2)...
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${}, $2, $2)", i + 3))
                .collect();
            let sql = format!(
                "INSERT INTO team_members (team_id, user_id, first_seen, last_seen) VALUES {} \
                 ON CONFLICT DO NOTHING",
                values.join(", ")
            );
            let stmt = with_users(Stmt::new(&sql).arg(team).arg(at), chunk);
            self.execute(&mut tx, stmt, context).await?;
        }
        for chunk in left.chunks(MEMBER_CHUNK) {
            let users: Vec<String> = (0..chunk.len()).map(|i| format!("${}", i + 2)).collect();
            let sql = format!(
                "DELETE FROM team_members WHERE team_id = $1 AND user_id IN ({})",
                users.join(", ")
            );
            let stmt = with_users(Stmt::new(&sql).arg(team), chunk);
            self.execute(&mut tx, stmt, context).await?;
        }
        let stmt = Stmt::new("UPDATE team_members SET last_seen = $1 WHERE team_id = $2")
            .arg(at)
            .arg(team);
        self.execute(&mut tx, stmt, context).await?;
        self.note_refresh(&mut tx, team, at, Some(at), None, context)
            .await?;
        tx.commit().await.map_err(self.err(context))?;
        Ok(MembershipChange {
            members: (current.len() + joined.len()).saturating_sub(left.len()),
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
        let mut tx = self.begin_write(context).await?;
        self.note_refresh(&mut tx, team, at, None, Some(error), context)
            .await?;
        tx.commit().await.map_err(self.err(context))
    }

    async fn note_refresh(
        &self,
        conn: &mut D::Connection,
        team: &str,
        attempted_at: DateTime<Utc>,
        refreshed_at: Option<DateTime<Utc>>,
        error: Option<&str>,
        context: &'static str,
    ) -> Result<(), StoreError> {
        let stmt = Stmt::new(
            "INSERT INTO team_refreshes (team_id, refreshed_at, attempted_at, last_error) \
             VALUES ($1, $2, $3, $4) \
             ON CONFLICT (team_id) DO UPDATE SET \
                refreshed_at = COALESCE(excluded.refreshed_at, team_refreshes.refreshed_at), \
                attempted_at = excluded.attempted_at, last_error = excluded.last_error",
        )
        .arg(team)
        .arg(refreshed_at)
        .arg(attempted_at)
        .arg(error);
        self.execute(conn, stmt, context).await?;
        Ok(())
    }

    /// Every team's refresh record, with its member count, by team id; and
    /// the records that do not read back.
    pub async fn team_refreshes(&self) -> Result<Rows<TeamRefresh>, StoreError> {
        let stmt = Stmt::new(
            "SELECT r.rowid AS id, r.team_id, r.refreshed_at, r.attempted_at, r.last_error, \
                    (SELECT COUNT(*) FROM team_members m WHERE m.team_id = r.team_id) AS members \
             FROM team_refreshes r ORDER BY r.team_id",
        );
        let rows = self.query(stmt, "reading team refreshes").await?;
        Ok(rows.iter().map(team_refresh::<D>).collect())
    }

    /// The members of `team`, by user id; and the rows that do not read
    /// back.
    pub async fn team_member_rows(&self, team: &str) -> Result<Rows<TeamMember>, StoreError> {
        let stmt = Stmt::new(
            "SELECT rowid AS id, user_id, first_seen, last_seen FROM team_members \
             WHERE team_id = $1 ORDER BY user_id",
        )
        .arg(team);
        let rows = self.query(stmt, "reading team members").await?;
        Ok(rows.iter().map(team_member_row::<D>).collect())
    }

    /// Every `policy_teams` row with its policy's name and state, by team
    /// then policy; and the rows that do not read back.
    pub async fn team_policies(&self) -> Result<Rows<TeamPolicy>, StoreError> {
        let stmt = Stmt::new(
            "SELECT t.rowid AS id, t.team_id, p.id AS policy_id, p.name, p.enabled \
             FROM policy_teams t JOIN policies p ON p.id = t.policy_id \
             ORDER BY t.team_id, p.id",
        );
        let rows = self.query(stmt, "reading the teams of policies").await?;
        Ok(rows.iter().map(team_policy::<D>).collect())
    }
}

/// `stmt` with each of `users` as its next parameter.
fn with_users<'a>(stmt: Stmt<'a>, users: &'a [String]) -> Stmt<'a> {
    users
        .iter()
        .fold(stmt, |s, user| s.arg(Arg::Text(Some(user.as_str()))))
}

/// A row of team table `table` read by `read`; a bad one is named by its
/// rowid.
fn by_rowid<D: Backend, T>(
    row: &D::Row,
    table: &'static str,
    read: impl FnOnce(&Cols<'_, D>) -> Result<T, BadRow>,
) -> Result<T, BadRow> {
    Cols::<D>::new(row, table)
        .and_then(|c| read(&c))
        .map_err(|bad| bad.keyed_by(KEY))
}

/// One `policy_teams` row: its policy's id and its team id.
fn policy_team<D: Backend>(row: &D::Row) -> Result<(i64, String), BadRow> {
    by_rowid::<D, _>(row, "policy_teams", |c| {
        Ok((named_policy(c, "")?, stored(c, "team_id").text()?))
    })
}

/// One `team_members` row of the policy read: its team and a valid user
/// id.
fn team_member<D: Backend>(row: &D::Row) -> Result<(String, String), BadRow> {
    by_rowid::<D, _>(row, "team_members", |c| {
        let team = stored(c, "team_id").text()?;
        let user = stored(c, "user_id").text()?;
        UserId::parse(user.as_str())
            .map_err(|e| c.bad("user_id", format!("`{}`: {e}", Shown(&user))))?;
        Ok((team, user))
    })
}

fn team_refresh<D: Backend>(row: &D::Row) -> Result<TeamRefresh, BadRow> {
    by_rowid::<D, _>(row, "team_refreshes", |c| {
        Ok(TeamRefresh {
            team_id: c.get("team_id")?,
            refreshed_at: c.get("refreshed_at")?,
            attempted_at: c.get("attempted_at")?,
            last_error: c.get("last_error")?,
            members: c.map("members", |n: i64| usize::try_from(n))?,
        })
    })
}

fn team_member_row<D: Backend>(row: &D::Row) -> Result<TeamMember, BadRow> {
    by_rowid::<D, _>(row, "team_members", |c| {
        Ok(TeamMember {
            user_id: c.get("user_id")?,
            first_seen: c.get("first_seen")?,
            last_seen: c.get("last_seen")?,
        })
    })
}

fn team_policy<D: Backend>(row: &D::Row) -> Result<TeamPolicy, BadRow> {
    by_rowid::<D, _>(row, "policy_teams", |c| {
        Ok(TeamPolicy {
            team_id: c.get("team_id")?,
            policy_id: c.get("policy_id")?,
            policy: c.get("name")?,
            enabled: c.get("enabled")?,
        })
    })
}
