//! Exclusions: time a policy must not record (a public holiday, a
//! shutdown, someone's leave), parsed from `exclusions` rows.
//!
//! # Why a module of its own
//! An exclusion row is edited by hand like a policy row, so it is parsed
//! at the edge into a typed [`Exclusion`] (or an [`ExclusionError`] naming
//! the row, the column and what is wrong), and the planner only ever sees
//! resolved UTC spans ([`Excluded`], attached to each [`Policy`] it
//! applies to by [`attach`]). A bad row costs only itself.
//!
//! # The two forms of `starts_at` / `ends_at`
//! - Local dates, `2026-12-24`: whole days, both ends inclusive, in the
//!   row's `timezone`, else the zone of each policy it applies to. A day
//!   runs from its first instant (midnight; after a daylight-saving gap
//!   at midnight, the first instant after the gap; in a repeated hour,
//!   the earlier one) to the first instant of the next day, so a day is
//!   23 or 25 hours long where the clocks change.
//! - UTC instants in the schema's timestamp form,
//!   `2026-12-24T12:00:00.000Z` (any RFC 3339 offset is read as the
//!   instant it names): half-open, `[starts_at, ends_at)`.
//!
//! Both ends must use the same form. Pure: no clock, no I/O; depends on
//! `policy` and `recording` only.

use std::fmt;

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use super::{parse_timezone, Policy, PolicyId};
use crate::recording::UserId;

/// One `exclusions` row, exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ExclusionRow {
    pub id: i64,
    /// `None`: every policy.
    pub policy_id: Option<i64>,
    /// `None`: every user (of the policy, or of every policy).
    pub user_id: Option<String>,
    pub starts_at: String,
    pub ends_at: String,
    /// `None`: the zone of each policy it applies to.
    pub timezone: Option<String>,
    pub reason: Option<String>,
}

/// The `exclusions.id` primary key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct ExclusionId(i64);

impl ExclusionId {
    pub const fn new(id: i64) -> Self {
        Self(id)
    }

    pub const fn get(self) -> i64 {
        self.0
    }
}

impl fmt::Display for ExclusionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// When an exclusion holds, in one of the two stored forms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Whole local days, `first..=last`.
    Days { first: NaiveDate, last: NaiveDate },
    /// `[start, end)` in UTC.
    Instants {
        start: DateTime<Utc>,
        end: DateTime<Utc>,
    },
}

/// A valid exclusion row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclusion {
    pub id: ExclusionId,
    /// `None`: every policy.
    pub policy: Option<PolicyId>,
    /// `None`: every user.
    pub user: Option<UserId>,
    pub span: Span,
    /// The zone local dates are read in; `None`: the policy's.
    pub timezone: Option<Tz>,
    pub reason: Option<String>,
}

/// An exclusion as one policy sees it: a resolved UTC span `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Excluded {
    pub id: ExclusionId,
    /// `None`: every user of the policy.
    pub user: Option<UserId>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: Option<String>,
}

impl Excluded {
    /// Whether it applies to `user`.
    pub fn applies_to(&self, user: &UserId) -> bool {
        self.user.as_ref().is_none_or(|u| u == user)
    }
}

/// A column of the `exclusions` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ExclusionColumn {
    UserId,
    StartsAt,
    EndsAt,
    Timezone,
}

impl ExclusionColumn {
    /// The column's name in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UserId => "user_id",
            Self::StartsAt => "starts_at",
            Self::EndsAt => "ends_at",
            Self::Timezone => "timezone",
        }
    }
}

/// An exclusion row that does not validate: which row, which column, what
/// is wrong (with the stored value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("exclusion {id}: {column} {problem}", column = .column.as_str())]
pub struct ExclusionError {
    pub id: i64,
    pub column: ExclusionColumn,
    pub problem: String,
}

impl Exclusion {
    /// Parses a row, or returns its first problem ([`exclusion_problems`]
    /// lists all).
    ///
    /// ```
    /// use recsched::policy::exclusion::{Exclusion, ExclusionRow, Span};
    /// let row = ExclusionRow {
    ///     id: 3,
    ///     policy_id: None,
    ///     user_id: None,
    ///     starts_at: "2026-12-24".into(),
    ///     ends_at: "2026-12-26".into(),
    ///     timezone: Some("Europe/Amsterdam".into()),
    ///     reason: Some("Christmas".into()),
    /// };
    /// let e = Exclusion::from_row(&row).unwrap();
    /// assert!(matches!(e.span, Span::Days { .. }));
    ///
    /// let bad = ExclusionRow { ends_at: "2026-12-23".into(), ..row };
    /// assert_eq!(
    ///     Exclusion::from_row(&bad).unwrap_err().to_string(),
    ///     "exclusion 3: ends_at `2026-12-23`: is before starts_at `2026-12-24`"
    /// );
    /// ```
    pub fn from_row(row: &ExclusionRow) -> Result<Self, ExclusionError> {
        parse(row).map_err(|mut errors| errors.swap_remove(0))
    }

    /// The span in UTC, local dates read in the row's zone, else in
    /// `policy_zone`.
    pub fn resolve(&self, policy_zone: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
        match self.span {
            Span::Instants { start, end } => (start, end),
            Span::Days { first, last } => {
                let tz = self.timezone.unwrap_or(policy_zone);
                (start_of_day(first, tz), end_of_day(last, tz))
            }
        }
    }

    /// Whether it applies to the policy `id`.
    pub fn applies_to_policy(&self, id: PolicyId) -> bool {
        self.policy.is_none_or(|p| p == id)
    }
}

/// Every problem of a row (empty when it parses), for `recsched check`.
pub fn exclusion_problems(row: &ExclusionRow) -> Vec<ExclusionError> {
    parse(row).err().unwrap_or_default()
}

/// Parses every row; a bad row adds its problems to the second list and
/// never stops the others.
pub fn load_exclusions(rows: &[ExclusionRow]) -> (Vec<Exclusion>, Vec<ExclusionError>) {
    let mut good = Vec::with_capacity(rows.len());
    let mut bad = Vec::new();
    for row in rows {
        match parse(row) {
            Ok(e) => good.push(e),
            Err(problems) => bad.extend(problems),
        }
    }
    (good, bad)
}

/// Gives each policy the exclusions that apply to it, resolved in its
/// zone (replacing what it had). An exclusion for a user the policy does
/// not name is left out.
pub fn attach(policies: &mut [Policy], exclusions: &[Exclusion]) {
    for policy in policies {
        let zone = policy.cron.timezone();
        policy.exclusions = exclusions
            .iter()
            .filter(|e| e.applies_to_policy(policy.id))
            .filter(|e| e.user.as_ref().is_none_or(|u| policy.users.contains(u)))
            .map(|e| {
                let (start, end) = e.resolve(zone);
                Excluded {
                    id: e.id,
                    user: e.user.clone(),
                    start,
                    end,
                    reason: e.reason.clone(),
                }
            })
            .filter(|e| e.start < e.end)
            .collect();
        policy.exclusions.sort_by_key(|e| (e.start, e.id));
    }
}

/// The instant a local wall-clock time names in `tz`: the earlier one in
/// a repeated (fall-back) hour, the first instant after the gap for a
/// time a spring-forward gap skips.
pub fn local_instant(wall: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(earlier, _) => earlier.to_utc(),
        LocalResult::None => GapInfo::new(&wall, &tz)
            .and_then(|gap| gap.end)
            .map(|t| t.to_utc())
            // No gap found (cannot happen for a time with no instant):
            // read it as UTC rather than fail.
            .unwrap_or_else(|| wall.and_utc()),
    }
}

/// The first instant of local day `day` in `tz`.
pub fn start_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    local_instant(day.and_time(chrono::NaiveTime::MIN), tz)
}

/// The first instant after local day `day` in `tz`.
pub fn end_of_day(day: NaiveDate, tz: Tz) -> DateTime<Utc> {
    match day.checked_add_days(Days::new(1)) {
        Some(next) => start_of_day(next, tz),
        None => DateTime::<Utc>::MAX_UTC,
    }
}

/// One end, as written.
#[derive(Debug, Clone, Copy)]
enum End {
    Day(NaiveDate),
    Instant(DateTime<Utc>),
}

/// Reads `2026-12-24` as a date, or an RFC 3339 instant.
fn parse_end(raw: &str) -> Result<End, String> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        // `%Y` takes any number of digits; keep dates the schema can hold.
        if raw.len() == 10 {
            return Ok(End::Day(day));
        }
    }
    crate::clock::parse_utc(raw).map(End::Instant).map_err(|_| {
        format!(
            "`{}`: is neither a local date like 2026-12-24 nor a UTC instant like \
             2026-12-24T00:00:00.000Z",
            Shown(raw)
        )
    })
}

/// Checks every column; the error list is never empty.
fn parse(row: &ExclusionRow) -> Result<Exclusion, Vec<ExclusionError>> {
    let mut found = Vec::new();
    let mut problem = |column, problem: String| {
        found.push(ExclusionError {
            id: row.id,
            column,
            problem,
        })
    };
    let user = match row.user_id.as_deref().map(UserId::parse).transpose() {
        Ok(user) => user,
        Err(e) => {
            let raw = row.user_id.as_deref().unwrap_or_default();
            problem(ExclusionColumn::UserId, format!("`{}`: {e}", Shown(raw)));
            None
        }
    };
    let starts = parse_end(&row.starts_at)
        .map_err(|e| problem(ExclusionColumn::StartsAt, e))
        .ok();
    let ends = parse_end(&row.ends_at)
        .map_err(|e| problem(ExclusionColumn::EndsAt, e))
        .ok();
    let timezone = match row.timezone.as_deref().map(parse_timezone).transpose() {
        Ok(tz) => tz,
        Err(e) => {
            let hint = e
                .suggestion
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            problem(
                ExclusionColumn::Timezone,
                format!("`{}`: not an IANA time zone name{hint}", Shown(&e.value)),
            );
            None
        }
    };
    let span = match (starts, ends) {
        (Some(End::Day(first)), Some(End::Day(last))) if last < first => {
            problem(
                ExclusionColumn::EndsAt,
                format!("`{}`: is before starts_at `{}`", row.ends_at, row.starts_at),
            );
            None
        }
        (Some(End::Day(first)), Some(End::Day(last))) => Some(Span::Days { first, last }),
        (Some(End::Instant(start)), Some(End::Instant(end))) if end <= start => {
            problem(
                ExclusionColumn::EndsAt,
                format!(
                    "`{}`: is not after starts_at `{}` (instants are half-open: \
                     [starts_at, ends_at))",
                    Shown(&row.ends_at),
                    Shown(&row.starts_at)
                ),
            );
            None
        }
        (Some(End::Instant(start)), Some(End::Instant(end))) => {
            if timezone.is_some() {
                problem(
                    ExclusionColumn::Timezone,
                    format!(
                        "`{}`: a zone is only for local dates, and starts_at and ends_at \
                         are UTC instants; set it to NULL, or use dates",
                        Shown(row.timezone.as_deref().unwrap_or_default())
                    ),
                );
            }
            Some(Span::Instants { start, end })
        }
        (Some(_), Some(_)) => {
            problem(
                ExclusionColumn::EndsAt,
                format!(
                    "`{}`: starts_at `{}` is in the other form; use two local dates or two \
                     UTC instants",
                    Shown(&row.ends_at),
                    Shown(&row.starts_at)
                ),
            );
            None
        }
        _ => None,
    };
    match span {
        Some(span) if found.is_empty() => Ok(Exclusion {
            id: ExclusionId(row.id),
            policy: row.policy_id.map(PolicyId::new),
            user,
            span,
            timezone,
            reason: row.reason.clone(),
        }),
        _ => Err(found),
    }
}

/// A stored value with its control characters escaped.
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

#[cfg(test)]
mod tests;
