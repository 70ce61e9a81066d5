//! A recording policy parsed from its database row.
//!
//! A [`PolicyRow`] is what the store reads (plain columns, nothing
//! checked); [`Policy`] is what the planner and daemon use (every field
//! already valid). A row that does not parse becomes [`PolicyError`]s
//! naming the policy, the column and what is wrong, and never stops the
//! other policies from loading ([`load`]).
//!
//! Files: `name` (1..200 printable characters), [`cron`](ZonedCron)
//! (expression and zone, the DST job kind), `timezone` (IANA names),
//! `window_length`, `end_mode`, `users`, `teams` (team ids and their
//! stored members), and `error` (the messages). This module depends on
//! `recording` only: no
//! clock, no I/O, no planner.

mod cron;
mod end_mode;
mod error;
pub mod exclusion;
mod name;
mod teams;
mod timezone;
mod users;
mod window_length;

use std::fmt;

pub use cron::{CronError, CronField, JobKind, ZonedCron, NICKNAMES};
pub use end_mode::{EndMode, EndModeError};
pub use error::{Column, PolicyError, Problem};
pub use exclusion::{Excluded, Exclusion, ExclusionError, ExclusionId, ExclusionRow};
pub use name::{check_name, NameError, NAME_MAX_CHARS};
pub use teams::{PolicyTeam, TeamId, TeamIdError, TEAM_ID_MAX_CHARS};
pub use timezone::{parse_timezone, TimezoneError};
pub use users::{UserSet, UserSetError};
pub use window_length::{WindowLength, WindowLengthError};

/// One `policies` row with its `policy_users` and `policy_teams` (and
/// each team's stored members), exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyRow {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub window_seconds: i64,
    pub end_mode: String,
    pub users: Vec<String>,
    /// The CXone teams the policy names, each with the members the store
    /// holds for it. In JSON: the team ids, left out when there are none.
    #[serde(
        serialize_with = "teams::serialize_ids",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub teams: Vec<PolicyTeam>,
}

/// The `policies.id` primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct PolicyId(i64);

impl PolicyId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl From<i64> for PolicyId {
    fn from(id: i64) -> Self {
        Self(id)
    }
}

impl fmt::Display for PolicyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A policy whose every field is valid. Disabled policies parse too (so
/// `recsched check` reports them) and keep `enabled: false`; the planner
/// ignores them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub id: PolicyId,
    pub name: String,
    pub enabled: bool,
    /// When windows open.
    pub cron: ZonedCron,
    /// How long each window stays open.
    pub window: WindowLength,
    pub end_mode: EndMode,
    /// Who is recorded: the policy's own users and its teams' members. It
    /// may be empty only when the policy names teams (whose members are not
    /// known yet, or who have none).
    pub users: UserSet,
    /// The CXone teams the policy names.
    pub teams: std::collections::BTreeSet<TeamId>,
    /// When it must not record, resolved in its zone, by start: empty
    /// from the row alone; [`exclusion::attach`] fills it in.
    pub exclusions: Vec<Excluded>,
}

impl Policy {
    /// Parses a row, or returns its first problem ([`problems`] lists all).
    ///
    /// ```
    /// use recsched::policy::{Column, Policy, PolicyRow};
    /// let mut row = PolicyRow {
    ///     id: 7,
    ///     name: "night-shift".into(),
    ///     enabled: true,
    ///     cron: "0 22 * * 1-5".into(),
    ///     timezone: "Europe/Amsterdam".into(),
    ///     window_seconds: 8 * 3600,
    ///     end_mode: "stop".into(),
    ///     users: vec!["agent-1".into()],
    ///     teams: vec![],
    /// };
    /// let policy = Policy::from_row(&row).unwrap();
    /// assert_eq!(policy.window.as_secs(), 28_800);
    ///
    /// row.cron = "61 * * * *".into();
    /// let err = Policy::from_row(&row).unwrap_err();
    /// assert_eq!(err.column(), Column::Cron);
    /// assert_eq!(
    ///     err.to_string(),
    ///     "policy `night-shift`: cron `61 * * * *`: minute 61 out of range 0-59"
    /// );
    /// ```
    pub fn from_row(row: &PolicyRow) -> Result<Policy, PolicyError> {
        parse(row).map_err(|mut errors| errors.swap_remove(0))
    }
}

/// Every problem of a row (empty when it parses), for `recsched check`.
pub fn problems(row: &PolicyRow) -> Vec<PolicyError> {
    parse(row).err().unwrap_or_default()
}

/// Parses every row; a bad row adds its problems to the second list and
/// never stops the others. Disabled rows are parsed and kept.
pub fn load(rows: Vec<PolicyRow>) -> (Vec<Policy>, Vec<PolicyError>) {
    let mut policies = Vec::with_capacity(rows.len());
    let mut errors = Vec::new();
    for row in &rows {
        match parse(row) {
            Ok(policy) => policies.push(policy),
            Err(problems) => errors.extend(problems),
        }
    }
    (policies, errors)
}

/// Checks every column; the error list is never empty.
fn parse(row: &PolicyRow) -> Result<Policy, Vec<PolicyError>> {
    let mut found = Vec::new();

    if let Err(error) = check_name(&row.name) {
        found.push(Problem::Name {
            value: row.name.clone(),
            error,
        });
    }
    let tz = parse_timezone(&row.timezone)
        .map_err(|e| {
            found.push(Problem::Timezone {
                value: e.value,
                suggestion: e.suggestion,
            })
        })
        .ok();
    // Judge the expression even when the zone is bad, so both are reported.
    let cron = ZonedCron::new(&row.cron, tz.unwrap_or(chrono_tz::UTC))
        .map_err(|error| {
            found.push(Problem::Cron {
                value: row.cron.clone(),
                error,
            })
        })
        .ok();
    let window = WindowLength::from_secs(row.window_seconds)
        .map_err(|_| {
            found.push(Problem::WindowSeconds {
                value: row.window_seconds,
            })
        })
        .ok();
    let end_mode = row
        .end_mode
        .parse::<EndMode>()
        .map_err(|_| {
            found.push(Problem::EndMode {
                value: row.end_mode.clone(),
            })
        })
        .ok();
    let mut teams = std::collections::BTreeSet::new();
    for team in &row.teams {
        match TeamId::parse(team.id.as_str()) {
            Ok(id) => {
                teams.insert(id);
            }
            Err(error) => found.push(Problem::Team {
                value: team.id.clone(),
                error,
            }),
        }
    }
    // A policy naming teams may have no users of its own (and its teams
    // no members yet); one naming neither records nobody, by mistake.
    let users = match UserSet::parse(&row.users) {
        Ok(users) => Some(users),
        Err(errors) => {
            let only_empty = errors.iter().all(|e| *e == UserSetError::Empty);
            if only_empty && !row.teams.is_empty() {
                Some(UserSet::default())
            } else {
                found.extend(errors.into_iter().map(|e| match e {
                    UserSetError::Empty => Problem::NoUsers {
                        policy: cli_name(row),
                    },
                    UserSetError::BadUser { value, error } => Problem::User { value, error },
                }));
                None
            }
        }
    };
    // Members come from the directory, checked when they were stored; one
    // that does not read as a user id (edited by hand) is left out here
    // rather than costing the policy.
    let users = users.map(|own| {
        own.with(
            row.teams
                .iter()
                .flat_map(|t| &t.members)
                .filter_map(|m| crate::recording::UserId::parse(m.as_str()).ok()),
        )
    });

    match (tz, cron, window, end_mode, users) {
        (Some(_), Some(cron), Some(window), Some(end_mode), Some(users)) if found.is_empty() => {
            Ok(Policy {
                id: PolicyId(row.id),
                name: row.name.clone(),
                enabled: row.enabled,
                cron,
                window,
                end_mode,
                users,
                teams,
                exclusions: Vec::new(),
            })
        }
        _ => Err(found
            .into_iter()
            .map(|problem| PolicyError {
                id: PolicyId(row.id),
                name: row.name.clone(),
                problem,
            })
            .collect()),
    }
}

/// How to name the policy on a command line: its name when that needs no
/// quoting, else its id.
fn cli_name(row: &PolicyRow) -> String {
    let plain = !row.name.is_empty()
        && row
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if plain {
        row.name.clone()
    } else {
        row.id.to_string()
    }
}

/// Policies for the planner's and the daemon's unit tests.
#[cfg(test)]
pub(crate) mod fixtures {
    use super::{Policy, PolicyRow};

    /// A policy `p{id}` in UTC, as its row would be stored.
    pub(crate) fn policy(id: i64, cron: &str, secs: i64, end_mode: &str, users: &[&str]) -> Policy {
        Policy::from_row(&PolicyRow {
            id,
            name: format!("p{id}"),
            enabled: true,
            cron: cron.into(),
            timezone: "UTC".into(),
            window_seconds: secs,
            end_mode: end_mode.into(),
            users: users.iter().map(|u| u.to_string()).collect(),
            teams: Vec::new(),
        })
        .expect("a test policy parses")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::UserIdError;

    fn row() -> PolicyRow {
        PolicyRow {
            id: 1,
            name: "x".into(),
            enabled: true,
            cron: "30 2 * * *".into(),
            timezone: "Europe/Amsterdam".into(),
            window_seconds: 3600,
            end_mode: "expire".into(),
            users: vec!["u1".into(), "u2".into()],
            teams: vec![],
        }
    }

    fn only_problem(row: &PolicyRow) -> String {
        let all = problems(row);
        assert_eq!(all.len(), 1, "{all:?}");
        all[0].to_string()
    }

    #[test]
    fn a_good_row_parses_into_typed_fields() {
        let policy = Policy::from_row(&row()).unwrap();
        assert_eq!(policy.id, PolicyId::new(1));
        assert_eq!(policy.cron.expression(), "30 2 * * *");
        assert_eq!(policy.cron.timezone(), chrono_tz::Europe::Amsterdam);
        assert_eq!(policy.window.as_secs(), 3600);
        assert_eq!(policy.end_mode, EndMode::Expire);
        assert_eq!(policy.users.len(), 2);
        assert!(problems(&row()).is_empty());
    }

    #[test]
    fn a_disabled_row_still_parses_and_stays_disabled() {
        let policy = Policy::from_row(&PolicyRow {
            enabled: false,
            ..row()
        })
        .unwrap();
        assert!(!policy.enabled);
    }

    #[test]
    fn bad_cron_names_policy_column_and_value() {
        let bad = PolicyRow {
            name: "night-shift".into(),
            cron: "61 * * * *".into(),
            ..row()
        };
        assert_eq!(
            only_problem(&bad),
            "policy `night-shift`: cron `61 * * * *`: minute 61 out of range 0-59"
        );
        assert_eq!(Policy::from_row(&bad).unwrap_err().column(), Column::Cron);
    }

    #[test]
    fn unknown_timezone_is_named() {
        let bad = PolicyRow {
            timezone: "Europe/Amsterdm".into(),
            ..row()
        };
        assert_eq!(
            only_problem(&bad),
            "policy `x`: timezone `Europe/Amsterdm`: not an IANA time zone name"
        );
        assert_eq!(
            Policy::from_row(&bad).unwrap_err().column(),
            Column::Timezone
        );
    }

    #[test]
    fn window_out_of_range_is_named() {
        for secs in [3, 604_801, -1] {
            let bad = PolicyRow {
                window_seconds: secs,
                ..row()
            };
            assert_eq!(
                only_problem(&bad),
                format!("policy `x`: window_seconds {secs}: must be between 5 and 604800")
            );
        }
    }

    #[test]
    fn window_bounds_are_accepted() {
        for secs in [5, 604_800] {
            assert!(Policy::from_row(&PolicyRow {
                window_seconds: secs,
                ..row()
            })
            .is_ok());
        }
    }

    #[test]
    fn empty_user_set_says_how_to_fix_it() {
        let bad = PolicyRow {
            users: vec![],
            ..row()
        };
        assert_eq!(
            only_problem(&bad),
            "policy `x`: users: no users; add one with `recsched policy add-user x USER`"
        );
        let unnamed = PolicyRow {
            id: 9,
            name: "night shift".into(),
            users: vec![],
            ..row()
        };
        assert!(only_problem(&unnamed).ends_with("`recsched policy add-user 9 USER`"));
    }

    #[test]
    fn bad_user_id_is_named() {
        let bad = PolicyRow {
            users: vec!["ok".into(), "a\u{7}b".into()],
            ..row()
        };
        let err = Policy::from_row(&bad).unwrap_err();
        assert_eq!(
            err.problem,
            Problem::User {
                value: "a\u{7}b".into(),
                error: UserIdError::ControlCharacter(1)
            }
        );
        assert_eq!(
            err.to_string(),
            "policy `x`: users: user id `a\\u{7}b`: user id contains a control character at position 1"
        );
    }

    #[test]
    fn a_name_that_could_break_a_line_is_refused_by_the_parser() {
        let bad = PolicyRow {
            name: "x\nWATCHDOG=trigger".into(),
            ..row()
        };
        let err = Policy::from_row(&bad).unwrap_err();
        assert_eq!(err.column(), Column::Name);
        assert_eq!(
            err.to_string(),
            "policy `x\\nWATCHDOG=trigger`: name `x\\nWATCHDOG=trigger`: has a character that \
             is not printable (U+000A) at position 1; use printable characters only"
        );
        for name in [String::new(), "n".repeat(201)] {
            let bad = PolicyRow { name, ..row() };
            assert_eq!(Policy::from_row(&bad).unwrap_err().column(), Column::Name);
        }
        let long = PolicyRow {
            name: "n".repeat(200),
            ..row()
        };
        assert!(Policy::from_row(&long).is_ok());
    }

    #[test]
    fn bad_end_mode_is_named() {
        let bad = PolicyRow {
            end_mode: "halt".into(),
            ..row()
        };
        assert_eq!(
            only_problem(&bad),
            "policy `x`: end_mode `halt`: must be `expire` or `stop`"
        );
    }

    #[test]
    fn every_problem_of_a_row_is_reported_in_column_order() {
        let bad = PolicyRow {
            cron: "* * *".into(),
            timezone: "Mars/Olympus".into(),
            window_seconds: 0,
            end_mode: "".into(),
            users: vec![],
            ..row()
        };
        let columns: Vec<Column> = problems(&bad).iter().map(PolicyError::column).collect();
        assert_eq!(
            columns,
            [
                Column::Timezone,
                Column::Cron,
                Column::WindowSeconds,
                Column::EndMode,
                Column::Users
            ]
        );
    }

    #[test]
    fn load_keeps_good_rows_when_others_are_bad() {
        let rows = vec![
            row(),
            PolicyRow {
                id: 2,
                name: "bad".into(),
                cron: "nonsense".into(),
                ..row()
            },
            PolicyRow {
                id: 3,
                enabled: false,
                ..row()
            },
        ];
        let (policies, errors) = load(rows);
        let ids: Vec<i64> = policies.iter().map(|p| p.id.get()).collect();
        assert_eq!(ids, [1, 3]);
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0].id, PolicyId::new(2));
    }

    fn team(id: &str, members: &[&str]) -> PolicyTeam {
        PolicyTeam {
            id: id.into(),
            members: members.iter().map(|m| (*m).into()).collect(),
        }
    }

    #[test]
    fn a_policy_records_its_users_and_its_teams_members() {
        let p = Policy::from_row(&PolicyRow {
            users: vec!["u1".into(), "m2".into()],
            teams: vec![team("t1", &["m1", "m2"]), team("t2", &["m3"])],
            ..row()
        })
        .unwrap();
        let users: Vec<&str> = p.users.iter().map(|u| u.as_str()).collect();
        assert_eq!(users, ["m1", "m2", "m3", "u1"]);
        let teams: Vec<&str> = p.teams.iter().map(|t| t.as_str()).collect();
        assert_eq!(teams, ["t1", "t2"]);
    }

    #[test]
    fn a_policy_of_teams_alone_is_valid_before_its_members_are_known() {
        let p = Policy::from_row(&PolicyRow {
            users: vec![],
            teams: vec![team("t1", &[])],
            ..row()
        })
        .unwrap();
        assert!(p.users.is_empty());
        assert_eq!(p.teams.len(), 1);
        // Still, a bad user id of its own is reported.
        let bad = PolicyRow {
            users: vec!["a\u{7}".into()],
            teams: vec![team("t1", &[])],
            ..row()
        };
        assert_eq!(only_problem(&bad).split(':').nth(1), Some(" users"));
    }

    #[test]
    fn a_bad_team_id_is_named_and_a_bad_member_costs_only_itself() {
        let bad = PolicyRow {
            teams: vec![team("", &[])],
            ..row()
        };
        assert_eq!(
            only_problem(&bad),
            "policy `x`: teams: team id ``: team id is empty"
        );
        assert_eq!(Policy::from_row(&bad).unwrap_err().column(), Column::Teams);
        let p = Policy::from_row(&PolicyRow {
            users: vec![],
            teams: vec![team("t1", &["ok", "b\u{0}d"])],
            ..row()
        })
        .unwrap();
        let users: Vec<&str> = p.users.iter().map(|u| u.as_str()).collect();
        assert_eq!(users, ["ok"]);
    }

    #[test]
    fn teams_show_in_json_as_their_ids_and_not_at_all_when_none() {
        let plain = serde_json::to_value(row()).unwrap();
        assert!(plain.get("teams").is_none(), "{plain}");
        let named = serde_json::to_value(PolicyRow {
            teams: vec![team("t1", &["m1"])],
            ..row()
        })
        .unwrap();
        assert_eq!(named["teams"], serde_json::json!(["t1"]));
    }

    #[test]
    fn policy_id_displays_and_serializes_as_the_number() {
        assert_eq!(PolicyId::new(42).to_string(), "42");
        assert_eq!(serde_json::to_string(&PolicyId::new(42)).unwrap(), "42");
    }
}
