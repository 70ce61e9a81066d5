//! Rows that do not read back, and what a read returns beside the good
//! ones.
//!
//! # Why
//! Operators edit every table by hand (sqlite3, psql), and sqlite3 checks
//! neither types nor foreign keys by default. One such row must cost only
//! itself: a read that meets one skips it and names it ([`BadRow`]: table,
//! row, column, what is wrong) instead of failing for every other row. The
//! rule, as the README states it:
//! - a `policies` row that does not read back: that policy is skipped;
//! - a `policy_users` row that does not read back or names no policy: that
//!   row is skipped (the policy goes on with its other users);
//! - a `policy_teams` row that does not read back or names no policy, or a
//!   `team_members` row whose user id is not one: that row is skipped (the
//!   policy goes on with its other teams, the team with its other members);
//! - an `exclusions` row that does not read back: it is not applied;
//! - a `recordings` row that does not read back: its user (when the user id
//!   itself reads) stays occupied, so nothing is started for that user,
//!   until an operator fixes or deletes the row ([`until_fixed`]); every
//!   other user goes on.
//!
//! The store only finds and names bad rows; the daemon and the CLI report
//! them (log, metric, `recsched check`, `recsched status`).

use std::fmt;

use chrono::{DateTime, TimeZone, Utc};

use crate::policy::PolicyError;
use crate::recording::UserId;

/// One stored row that does not read back into its type.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct BadRow {
    /// `policies`, `policy_users`, `policy_teams`, `team_members`,
    /// `exclusions` or `recordings` (others when read).
    pub table: &'static str,
    /// The column [`BadRow::id`] is a value of: `id`; for `policy_users`,
    /// which has no id column, `rowid` on SQLite and `policy_id` on
    /// PostgreSQL; for the team tables and `daemon_state`, `rowid` (on
    /// PostgreSQL a column of that name).
    pub key: &'static str,
    pub id: i64,
    /// The first column that does not read back.
    pub column: &'static str,
    /// What is wrong, with the stored value (control characters escaped).
    pub problem: String,
    /// A `recordings` row whose user id still reads: the user is left alone
    /// until the row is fixed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<UserId>,
}

impl BadRow {
    /// A bad row of `table`, found by its `id` column.
    pub fn new(
        table: &'static str,
        id: i64,
        column: &'static str,
        problem: impl fmt::Display,
    ) -> Self {
        Self {
            table,
            key: "id",
            id,
            column,
            problem: one_line(&problem.to_string()),
            user: None,
        }
    }

    /// A policy row the `policy` parser refuses (bad cron, zone, length,
    /// no users...), as a bad `policies` row: it is skipped the same way.
    pub fn from_policy(error: &PolicyError) -> Self {
        Self::new("policies", error.id.get(), error.column().as_str(), error)
    }

    /// The same row, found by another column than `id`.
    pub fn keyed_by(mut self, key: &'static str) -> Self {
        self.key = key;
        self
    }

    /// The same row, keeping `user` occupied until it is fixed.
    pub fn occupying(mut self, user: UserId) -> Self {
        self.user = Some(user);
        self
    }

    /// `table recordings, id 7` (or `table policy_users, rowid 3`): what
    /// identifies the row, in the words of a WHERE clause.
    pub fn subject(&self) -> String {
        format!("table {}, {} {}", self.table, self.key, self.id)
    }

    /// What the operator's edit costs until it is fixed.
    pub fn consequence(&self) -> String {
        match (self.table, &self.user) {
            ("policies", _) => "the policy is skipped".to_owned(),
            ("policy_users", _) => "it is skipped".to_owned(),
            ("exclusions", _) => "the exclusion is not applied (its time is recorded)".to_owned(),
            ("daemon_state", _) => "the daemon goes on without it".to_owned(),
            ("policy_teams", _) => "the policy goes on without that team".to_owned(),
            ("team_members", _) => {
                "that member is not recorded through the team (its other members are)".to_owned()
            }
            ("recordings", Some(user)) => {
                format!("nothing is started for user `{}`", Shown(user.as_str()))
            }
            _ => "it is skipped".to_owned(),
        }
    }
}

impl fmt::Display for BadRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, column {}: {}; {} until the row is fixed or deleted (sqlite3 or psql)",
            self.subject(),
            self.column,
            self.problem,
            self.consequence()
        )
    }
}

/// What a read found: the rows that read back, in the read's order, and
/// the ones that did not.
#[derive(Debug, Clone, PartialEq)]
pub struct Rows<T> {
    pub rows: Vec<T>,
    pub bad: Vec<BadRow>,
}

impl<T> Default for Rows<T> {
    fn default() -> Self {
        Self {
            rows: Vec::new(),
            bad: Vec::new(),
        }
    }
}

impl<T> Rows<T> {
    /// Keeps `row` if it read back, else names it.
    pub(crate) fn push(&mut self, row: Result<T, BadRow>) {
        match row {
            Ok(row) => self.rows.push(row),
            Err(bad) => self.bad.push(bad),
        }
    }

    /// The rows that read back; the others are added to `bad`.
    pub fn rows_and_bad(self, bad: &mut Vec<BadRow>) -> Vec<T> {
        bad.extend(self.bad);
        self.rows
    }

    /// The same read with each good row converted.
    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Rows<U> {
        Rows {
            rows: self.rows.into_iter().map(f).collect(),
            bad: self.bad,
        }
    }
}

impl<T> FromIterator<Result<T, BadRow>> for Rows<T> {
    fn from_iter<I: IntoIterator<Item = Result<T, BadRow>>>(iter: I) -> Self {
        let mut rows = Self::default();
        for row in iter {
            rows.push(row);
        }
        rows
    }
}

/// The time a `recordings` row that does not read back keeps its user
/// occupied: all of it, from the epoch to the end of year 9999, so no
/// segment is planned for the user while the row is broken. The next read
/// after the fix frees the user.
pub fn until_fixed() -> (DateTime<Utc>, DateTime<Utc>) {
    let end = Utc
        .with_ymd_and_hms(9999, 12, 31, 23, 59, 59)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    (DateTime::<Utc>::UNIX_EPOCH, end)
}

/// A stored value on one line: control characters escaped, so a row can
/// never add a line to the log or a field to systemd's status.
pub(crate) fn one_line(raw: &str) -> String {
    Shown(raw).to_string()
}

/// A stored value shown with its control characters escaped.
pub(crate) struct Shown<'a>(pub &'a str);

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

/// Raw bytes read as UTF-8 text, or why not (with where the bad byte is).
pub(crate) fn utf8(bytes: Vec<u8>) -> Result<String, String> {
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let bytes = e.as_bytes();
        let shown: Vec<String> = bytes.iter().take(16).map(|b| format!("{b:02x}")).collect();
        format!(
            "not valid UTF-8 text (byte {at} of {}; starts {}{})",
            bytes.len(),
            shown.join(" "),
            if bytes.len() > 16 { " ..." } else { "" }
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_row_names_table_id_column_and_what_it_costs() {
        let row = BadRow::new("recordings", 7, "segment_end", "`zzz` is not a time")
            .occupying(UserId::parse("ann").unwrap());
        assert_eq!(
            row.to_string(),
            "table recordings, id 7, column segment_end: `zzz` is not a time; nothing is started \
             for user `ann` until the row is fixed or deleted (sqlite3 or psql)"
        );
        let orphan =
            BadRow::new("policy_users", 3, "policy_id", "names no policy").keyed_by("rowid");
        assert!(orphan.to_string().starts_with(
            "table policy_users, rowid 3, column policy_id: names no policy; it is skipped"
        ));
    }

    #[test]
    fn problems_stay_on_one_line() {
        let row = BadRow::new("policies", 1, "name", "`a\nWATCHDOG=trigger`");
        assert!(!row.to_string().contains('\n'), "{row}");
        assert!(row.to_string().contains("`a\\nWATCHDOG=trigger`"));
    }

    #[test]
    fn non_utf8_bytes_are_named_by_position() {
        assert_eq!(utf8(b"name".to_vec()).unwrap(), "name");
        let err = utf8(vec![0xff, b'n', b'a']).unwrap_err();
        assert_eq!(err, "not valid UTF-8 text (byte 0 of 3; starts ff 6e 61)");
    }

    #[test]
    fn a_read_keeps_the_good_rows_in_order() {
        let rows: Rows<i32> = [Ok(1), Err(BadRow::new("t", 2, "c", "x")), Ok(3)]
            .into_iter()
            .collect();
        assert_eq!(rows.rows, [1, 3]);
        assert_eq!(rows.bad.len(), 1);
        assert_eq!(rows.map(|r| r * 10).rows, [10, 30]);
    }

    #[test]
    fn until_fixed_covers_any_plausible_time() {
        let (start, end) = until_fixed();
        assert!(start < Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0).unwrap());
        assert!(end > Utc.with_ymd_and_hms(9000, 1, 1, 0, 0, 0).unwrap());
    }
}
