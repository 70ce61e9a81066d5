//! `PolicyError`: what is wrong with one policy row, in an operator's words.

use std::fmt;

use super::{NameError, PolicyId};
use crate::policy::{CronError, TeamIdError};
use crate::recording::UserIdError;

/// A column of the `policies` row (or its `policy_users`, `policy_teams`),
/// for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Column {
    Name,
    Cron,
    Timezone,
    WindowSeconds,
    EndMode,
    Users,
    /// `policy_teams`.
    Teams,
}

impl Column {
    /// The column's name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Name => "name",
            Self::Cron => "cron",
            Self::Timezone => "timezone",
            Self::WindowSeconds => "window_seconds",
            Self::EndMode => "end_mode",
            Self::Users => "users",
            Self::Teams => "teams",
        }
    }
}

impl fmt::Display for Column {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One thing wrong with one column, with the offending value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("name `{}`: {error}", Shown(.value))]
    Name { value: String, error: NameError },
    #[error("cron `{}`: {error}", Shown(.value))]
    Cron { value: String, error: CronError },
    #[error("timezone `{}`: not an IANA time zone name{}", Shown(.value), Suggestion(*.suggestion))]
    Timezone {
        value: String,
        suggestion: Option<&'static str>,
    },
    #[error("window_seconds {value}: must be between 5 and 604800")]
    WindowSeconds { value: i64 },
    #[error("end_mode `{}`: must be `expire` or `stop`", Shown(.value))]
    EndMode { value: String },
    /// `policy` is how the CLI names the policy in the suggested fix.
    #[error("users: no users; add one with `recsched policy add-user {policy} USER`")]
    NoUsers { policy: String },
    #[error("users: user id `{}`: {error}", Shown(.value))]
    User { value: String, error: UserIdError },
    #[error("teams: team id `{}`: {error}", Shown(.value))]
    Team { value: String, error: TeamIdError },
}

impl Problem {
    pub fn column(&self) -> Column {
        match self {
            Self::Name { .. } => Column::Name,
            Self::Cron { .. } => Column::Cron,
            Self::Timezone { .. } => Column::Timezone,
            Self::WindowSeconds { .. } => Column::WindowSeconds,
            Self::EndMode { .. } => Column::EndMode,
            Self::NoUsers { .. } | Self::User { .. } => Column::Users,
            Self::Team { .. } => Column::Teams,
        }
    }
}

/// A policy row that does not validate: which policy, which column, what
/// is wrong and with what value, e.g.
/// "policy `night-shift`: cron `61 * * * *`: minute 61 out of range 0-59".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("policy {}: {problem}", Subject(.id, .name))]
pub struct PolicyError {
    pub id: PolicyId,
    /// The row's name, as stored (may be empty).
    pub name: String,
    pub problem: Problem,
}

impl PolicyError {
    pub fn column(&self) -> Column {
        self.problem.column()
    }
}

/// The policy's name in backticks, or its id when it has no name.
struct Subject<'a>(&'a PolicyId, &'a str);

impl fmt::Display for Subject<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.1.is_empty() {
            write!(f, "{}", self.0)
        } else {
            write!(f, "`{}`", Shown(self.1))
        }
    }
}

/// A stored value shown on one log line: control characters escaped.
struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            if c.is_control() {
                write!(f, "{}", c.escape_default())?;
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        Ok(())
    }
}

struct Suggestion(Option<&'static str>);

impl fmt::Display for Suggestion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(name) => write!(f, "; did you mean `{name}`?"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error(name: &str, problem: Problem) -> String {
        PolicyError {
            id: PolicyId::new(12),
            name: name.to_owned(),
            problem,
        }
        .to_string()
    }

    #[test]
    fn policy_without_name_is_named_by_id() {
        let text = error("", Problem::WindowSeconds { value: 3 });
        assert_eq!(
            text,
            "policy 12: window_seconds 3: must be between 5 and 604800"
        );
    }

    #[test]
    fn control_characters_in_values_stay_on_one_line() {
        let text = error(
            "a\nb",
            Problem::EndMode {
                value: "st\top".into(),
            },
        );
        assert_eq!(
            text,
            "policy `a\\nb`: end_mode `st\\top`: must be `expire` or `stop`"
        );
    }

    #[test]
    fn timezone_problem_offers_the_right_case() {
        let text = error(
            "x",
            Problem::Timezone {
                value: "utc".into(),
                suggestion: Some("UTC"),
            },
        );
        assert_eq!(
            text,
            "policy `x`: timezone `utc`: not an IANA time zone name; did you mean `UTC`?"
        );
    }
}
