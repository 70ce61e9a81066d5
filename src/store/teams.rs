//! The vocabulary of the team tables, the same for every backend:
//! `policy_teams` (which policies name which CXone teams), `team_members`
//! (who the directory last listed in each team) and `team_refreshes`
//! (when each team was last read, and what went wrong since).
//!
//! Membership is replaced only by a complete read of a team
//! ([`Store::replace_team_members`](super::Store::replace_team_members));
//! a failed read only notes its error
//! ([`Store::team_refresh_failed`](super::Store::team_refresh_failed)), so
//! the last good membership stays. A row of these tables that does not
//! read back (edited by hand) is skipped and named as a `BadRow`, like a
//! `policy_users` row: it costs only itself (`tables/teams.rs`).

use chrono::{DateTime, Utc};

/// What a refresh changed in one team.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MembershipChange {
    /// Users now in the team who were not before, sorted.
    pub joined: Vec<String>,
    /// Users no longer in the team, sorted.
    pub left: Vec<String>,
    /// Members after the refresh.
    pub members: usize,
}

/// One team's refresh record, with its member count.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeamRefresh {
    pub team_id: String,
    /// The last complete, successful read; `None`: never.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The last read, successful or not.
    pub attempted_at: DateTime<Utc>,
    /// Why the last read failed; `None` when it succeeded.
    pub last_error: Option<String>,
    pub members: usize,
}

/// One member of a team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeamMember {
    pub user_id: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// A policy naming a team.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TeamPolicy {
    pub team_id: String,
    pub policy_id: i64,
    pub policy: String,
    pub enabled: bool,
}

/// `current` and `now` as sets: who joined, who left (both sorted).
pub(crate) fn diff(current: &[String], now: &[String]) -> (Vec<String>, Vec<String>) {
    use std::collections::BTreeSet;
    let before: BTreeSet<&String> = current.iter().collect();
    let after: BTreeSet<&String> = now.iter().collect();
    let joined = after.difference(&before).map(|s| (*s).clone()).collect();
    let left = before.difference(&after).map(|s| (*s).clone()).collect();
    (joined, left)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_names_who_joined_and_who_left() {
        let s = |v: &[&str]| v.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let (joined, left) = diff(&s(&["a", "b", "c"]), &s(&["c", "d", "b", "d"]));
        assert_eq!(joined, ["d"]);
        assert_eq!(left, ["a"]);
        assert_eq!(diff(&[], &[]), (vec![], vec![]));
    }
}
