//! Teams a policy names: CXone team ids from `policy_teams`, and the users
//! the directory last listed in each (`team_members`).
//!
//! A policy records the union of its own users and its teams' members.
//! Membership is whatever the store holds: the daemon's directory
//! refresher keeps it, and never empties it because the directory is
//! down. Depends on nothing outside `policy` and `recording`.

use std::fmt;

/// Why a string is not a [`TeamId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TeamIdError {
    #[error("team id is empty")]
    Empty,
    #[error("team id is {0} characters long; at most {TEAM_ID_MAX_CHARS} are allowed")]
    TooLong(usize),
    #[error("team id contains a control character at position {0}")]
    ControlCharacter(usize),
}

/// The longest team id accepted.
pub const TEAM_ID_MAX_CHARS: usize = 256;

/// A CXone team id: non-empty, at most 256 characters, no control
/// characters. It reaches the directory as one JSON string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct TeamId(String);

impl TeamId {
    pub fn parse(raw: impl Into<String>) -> Result<Self, TeamIdError> {
        let raw = raw.into();
        if raw.is_empty() {
            return Err(TeamIdError::Empty);
        }
        let chars = raw.chars().count();
        if chars > TEAM_ID_MAX_CHARS {
            return Err(TeamIdError::TooLong(chars));
        }
        if let Some(pos) = raw.chars().position(char::is_control) {
            return Err(TeamIdError::ControlCharacter(pos));
        }
        Ok(Self(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TeamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `policy_teams` row of a policy, with the members the store holds
/// for the team (empty until the directory has been read).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PolicyTeam {
    /// The team id, as stored.
    pub id: String,
    /// The users of `team_members` for this team, as stored.
    pub members: Vec<String>,
}

/// A policy's teams in JSON: their ids (members would make a policy
/// listing thousands of lines long; `recsched teams` shows them).
pub fn serialize_ids<S: serde::Serializer>(teams: &[PolicyTeam], s: S) -> Result<S::Ok, S::Error> {
    s.collect_seq(teams.iter().map(|t| t.id.as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn team_ids_follow_the_user_id_rules_with_their_own_words() {
        assert_eq!(TeamId::parse("1234").unwrap().as_str(), "1234");
        assert_eq!(
            TeamId::parse("back office").unwrap().to_string(),
            "back office"
        );
        assert_eq!(TeamId::parse(""), Err(TeamIdError::Empty));
        assert_eq!(
            TeamId::parse("t\u{7}").unwrap_err().to_string(),
            "team id contains a control character at position 1"
        );
        assert_eq!(
            TeamId::parse("x".repeat(257)),
            Err(TeamIdError::TooLong(257))
        );
    }
}
