//! A cron expression bound to its IANA time zone: [`ZonedCron`].
//!
//! Croner 4 parses and matches; this module adds what the project needs
//! on top: crontab's field counts (5 fields, or 6 with seconds first),
//! the nicknames, Vixie cron's day rule, error messages that name the
//! field and the value, and the job's [`JobKind`] for the DST rule.
//!
//! It answers questions about *wall-clock* time only ("does 02:30 match",
//! "which wall-clock time matches next"). Turning wall-clock times into
//! instants across daylight-saving changes is the planner's job
//! (`planner::starts`), so that rule lives in one place.

use std::fmt;

use chrono::{NaiveDate, NaiveDateTime};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;

/// One field of a cron expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CronField {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl CronField {
    pub fn name(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::DayOfMonth => "day-of-month",
            Self::Month => "month",
            Self::DayOfWeek => "day-of-week",
        }
    }

    /// The numbers the field accepts (day-of-week 7 is Sunday, as 0).
    pub fn range(self) -> (u32, u32) {
        match self {
            Self::Second | Self::Minute => (0, 59),
            Self::Hour => (0, 23),
            Self::DayOfMonth => (1, 31),
            Self::Month => (1, 12),
            Self::DayOfWeek => (0, 7),
        }
    }
}

impl fmt::Display for CronField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

const FIVE_FIELDS: [CronField; 5] = [
    CronField::Minute,
    CronField::Hour,
    CronField::DayOfMonth,
    CronField::Month,
    CronField::DayOfWeek,
];
const SIX_FIELDS: [CronField; 6] = [
    CronField::Second,
    CronField::Minute,
    CronField::Hour,
    CronField::DayOfMonth,
    CronField::Month,
    CronField::DayOfWeek,
];

/// The nicknames we accept and what they stand for.
pub const NICKNAMES: [(&str, &str); 7] = [
    ("@hourly", "0 * * * *"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@weekly", "0 0 * * 0"),
    ("@monthly", "0 0 1 * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
];

/// How a job meets a daylight-saving change, by Vixie cron's rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum JobKind {
    /// The seconds, minute or hour field starts with `*`: the job follows
    /// the clock. No fire for a time skipped by a spring-forward gap; a
    /// fire in both passes of a repeated fall-back hour.
    Wildcard,
    /// Every other job: a time in a gap fires once at the first instant
    /// after the gap; a repeated time fires once, at its first occurrence.
    Fixed,
}

/// Why a string is not a cron expression we accept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CronError {
    #[error("empty expression")]
    Empty,
    #[error(
        "unknown nickname; use one of @hourly, @daily, @midnight, @weekly, @monthly, @yearly, @annually"
    )]
    UnknownNickname,
    #[error("{found} fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second first)")]
    FieldCount { found: usize },
    #[error("{field} {value} out of range {min}-{max}")]
    OutOfRange {
        field: CronField,
        value: String,
        min: u32,
        max: u32,
    },
    #[error("{field} `{text}`: {reason}")]
    Field {
        field: CronField,
        text: String,
        reason: String,
    },
    #[error("never fires: no date matches its day and month fields")]
    NeverFires,
    /// A problem croner found that no single field explains.
    #[error("{0}")]
    Other(String),
}

/// A cron expression and the IANA zone it is read in, validated together.
///
/// Five fields are crontab's (minute resolution); six put seconds first.
/// The nicknames in [`NICKNAMES`] are welcome. Day-of-month and
/// day-of-week follow Vixie cron: when both are restricted (neither starts
/// with `*`), a day matching either one matches; otherwise both must.
/// Croner's extensions (`L`, `W`, `#`, `?`, a leading `+` on day-of-week
/// to require both day fields) are accepted as croner defines them.
///
/// ```
/// use recsched::policy::{JobKind, ZonedCron};
/// let cron = ZonedCron::new("30 2 * * *", chrono_tz::Europe::Amsterdam).unwrap();
/// assert_eq!(cron.expression(), "30 2 * * *");
/// assert_eq!(cron.kind(), JobKind::Fixed);
/// assert_eq!(ZonedCron::new("@hourly", chrono_tz::UTC).unwrap().kind(), JobKind::Wildcard);
/// assert_eq!(
///     ZonedCron::new("61 * * * *", chrono_tz::UTC).unwrap_err().to_string(),
///     "minute 61 out of range 0-59"
/// );
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZonedCron {
    /// The expression exactly as written, for display.
    source: String,
    cron: Cron,
    tz: Tz,
    kind: JobKind,
}

impl ZonedCron {
    pub fn new(expression: &str, tz: Tz) -> Result<Self, CronError> {
        let text = expression.trim();
        if text.is_empty() {
            return Err(CronError::Empty);
        }
        let text = if text.starts_with('@') {
            NICKNAMES
                .iter()
                .find(|(nick, _)| nick.eq_ignore_ascii_case(text))
                .map(|(_, long)| *long)
                .ok_or(CronError::UnknownNickname)?
        } else {
            text
        };

        let fields: Vec<&str> = text.split_whitespace().collect();
        let names: &[CronField] = match fields.len() {
            5 => &FIVE_FIELDS,
            6 => &SIX_FIELDS,
            found => return Err(CronError::FieldCount { found }),
        };
        for (&field, &text) in names.iter().zip(&fields) {
            check_field(field, text)?;
        }

        let starts_with_star = |i: usize| fields[i].starts_with(['*', '?']);
        let dom = fields.len() - 3;
        let dow = fields.len() - 1;
        // Vixie cron: if either day field starts with `*`, a day must match
        // both (a bare `*` matches every day); otherwise either. Croner
        // alone would OR `*/2` with a day of week.
        let both_days =
            starts_with_star(dom) || fields[dow].trim_start_matches('+').starts_with(['*', '?']);
        let time_fields = fields.len() - 3;
        let kind = if (0..time_fields).any(starts_with_star) {
            JobKind::Wildcard
        } else {
            JobKind::Fixed
        };

        let parser = CronParser::builder()
            .seconds(Seconds::Optional)
            .year(Year::Disallowed)
            .dom_and_dow(both_days)
            .build();
        let cron = parser
            .parse(text)
            .map_err(|whole| locate(&parser, names, &fields, &whole))?;

        // A year field is not allowed, so a pattern that matches once
        // matches again; one that never matches (30 February) is useless.
        let probe = NaiveDate::from_ymd_opt(2000, 1, 1)
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .ok_or(CronError::NeverFires)?;
        if cron.find_next_occurrence(&probe.and_utc(), true).is_err() {
            return Err(CronError::NeverFires);
        }

        Ok(Self {
            source: expression.to_owned(),
            cron,
            tz,
            kind,
        })
    }

    /// The expression as written.
    pub fn expression(&self) -> &str {
        &self.source
    }

    pub fn timezone(&self) -> Tz {
        self.tz
    }

    pub fn kind(&self) -> JobKind {
        self.kind
    }

    /// Whether a wall-clock time (in this cron's zone) matches the fields.
    pub fn matches_local(&self, wall: NaiveDateTime) -> bool {
        self.cron.is_time_matching(&wall.and_utc()).unwrap_or(false)
    }

    /// The first wall-clock time at or after `wall` that matches the
    /// fields, on a clock without daylight saving; `None` past year 5000.
    pub fn next_local_match(&self, wall: NaiveDateTime) -> Option<NaiveDateTime> {
        self.cron
            .find_next_occurrence(&wall.and_utc(), true)
            .ok()
            .map(|t| t.naive_utc())
    }
}

impl fmt::Display for ZonedCron {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.source, self.tz)
    }
}

/// Catches the common mistakes with a message that names the field and
/// the value; croner judges everything else.
fn check_field(field: CronField, text: &str) -> Result<(), CronError> {
    let (min, max) = field.range();
    let body = match field {
        CronField::DayOfWeek => text.strip_prefix('+').unwrap_or(text),
        _ => text,
    };
    let fail = |reason: String| CronError::Field {
        field,
        text: text.to_owned(),
        reason,
    };
    let number = |s: &str| -> Result<Option<u32>, CronError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Ok(None); // a name, `L`, `15W`, `5#2`: croner's to judge
        }
        match s.parse::<u32>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(CronError::OutOfRange {
                field,
                value: s.to_owned(),
                min,
                max,
            }),
        }
    };
    for item in body.split(',') {
        if item.is_empty() {
            return Err(fail("empty item in a list".to_owned()));
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (item, None),
        };
        if let Some(step) = step {
            match step.parse::<u32>() {
                Ok(0) => return Err(fail("step 0; a step must be at least 1".to_owned())),
                Ok(_) => {}
                Err(_) => return Err(fail(format!("step `{step}` is not a whole number"))),
            }
        }
        if range == "*" || range == "?" {
            continue;
        }
        match range.split_once('-') {
            Some((low, high)) => {
                if let (Some(low), Some(high)) = (number(low)?, number(high)?) {
                    if low > high {
                        return Err(fail(format!("range {low}-{high} runs backwards")));
                    }
                }
            }
            None => {
                number(range)?;
            }
        }
    }
    Ok(())
}

/// Finds the field croner objects to by parsing each field alone.
fn locate(
    parser: &CronParser,
    names: &[CronField],
    fields: &[&str],
    whole: &croner::errors::CronError,
) -> CronError {
    for (i, (&field, &text)) in names.iter().zip(fields).enumerate() {
        let probe: Vec<&str> = (0..fields.len())
            .map(|j| if j == i { text } else { "*" })
            .collect();
        if let Err(err) = parser.parse(&probe.join(" ")) {
            return CronError::Field {
                field,
                text: text.to_owned(),
                reason: plain_words(&err, text),
            };
        }
    }
    CronError::Other(plain_words(whole, ""))
}

/// Croner's message, without its prefixes and in the case we write in.
fn plain_words(err: &croner::errors::CronError, field_text: &str) -> String {
    use croner::errors::CronError as E;
    let message = match err {
        E::IllegalCharacters(msg) => {
            // Croner upper-cases the pattern: show the character as written.
            let shown = msg.split('\'').nth(1).and_then(|s| s.chars().next());
            return match shown {
                Some(c) => {
                    let written = field_text
                        .chars()
                        .find(|w| w.to_ascii_uppercase() == c)
                        .unwrap_or(c);
                    format!("character `{written}` is not allowed here")
                }
                None => "contains a character that is not allowed".to_owned(),
            };
        }
        E::ComponentError(msg) | E::InvalidPattern(msg) => msg.clone(),
        E::EmptyPattern => "empty expression".to_owned(),
        other => other.to_string(),
    };
    let message = message.trim().trim_end_matches('.');
    let mut chars = message.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::{Europe::Amsterdam, UTC};

    fn err(expr: &str) -> String {
        ZonedCron::new(expr, UTC).unwrap_err().to_string()
    }

    fn wall(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S").unwrap()
    }

    #[test]
    fn five_fields_match_on_the_minute() {
        let cron = ZonedCron::new("30 2 * * *", Amsterdam).unwrap();
        assert!(cron.matches_local(wall("2026-03-01 02:30:00")));
        assert!(!cron.matches_local(wall("2026-03-01 02:30:01")));
    }

    #[test]
    fn six_fields_put_seconds_first() {
        let cron = ZonedCron::new("15 30 2 * * *", UTC).unwrap();
        assert!(cron.matches_local(wall("2026-03-01 02:30:15")));
        assert!(!cron.matches_local(wall("2026-03-01 02:30:00")));
    }

    #[test]
    fn nicknames_expand_and_keep_their_source_text() {
        let cases = [
            ("@hourly", "2026-03-01 05:00:00", JobKind::Wildcard),
            ("@daily", "2026-03-01 00:00:00", JobKind::Fixed),
            ("@midnight", "2026-03-01 00:00:00", JobKind::Fixed),
            ("@weekly", "2026-03-01 00:00:00", JobKind::Fixed), // a Sunday
            ("@monthly", "2026-03-01 00:00:00", JobKind::Fixed),
            ("@yearly", "2026-01-01 00:00:00", JobKind::Fixed),
            ("@ANNUALLY", "2026-01-01 00:00:00", JobKind::Fixed),
        ];
        for (nick, at, kind) in cases {
            let cron = ZonedCron::new(nick, UTC).unwrap();
            assert_eq!(cron.expression(), nick);
            assert_eq!(cron.kind(), kind, "{nick}");
            assert!(cron.matches_local(wall(at)), "{nick}");
        }
        assert!(!ZonedCron::new("@weekly", UTC)
            .unwrap()
            .matches_local(wall("2026-03-02 00:00:00")));
    }

    #[test]
    fn job_kind_follows_vixie_stars_not_value_counts() {
        let cases = [
            ("30 2 * * *", JobKind::Fixed),
            ("0,30 2 * * *", JobKind::Fixed),
            ("0 1-3 * * *", JobKind::Fixed),
            ("5-55/10 2 * * *", JobKind::Fixed),
            ("0 * * * *", JobKind::Wildcard),
            ("*/15 * * * *", JobKind::Wildcard),
            ("0 */2 * * *", JobKind::Wildcard),
            ("0 30 2 * * *", JobKind::Fixed),
            ("*/10 30 2 * * *", JobKind::Wildcard),
        ];
        for (expr, kind) in cases {
            assert_eq!(ZonedCron::new(expr, UTC).unwrap().kind(), kind, "{expr}");
        }
    }

    #[test]
    fn restricted_day_fields_match_either_day() {
        // 1st and 15th, or any Monday (crontab's OR).
        let cron = ZonedCron::new("0 0 1,15 * 1", UTC).unwrap();
        assert!(cron.matches_local(wall("2026-01-15 00:00:00"))); // Thursday
        assert!(cron.matches_local(wall("2026-01-05 00:00:00"))); // Monday
        assert!(!cron.matches_local(wall("2026-01-06 00:00:00")));
    }

    #[test]
    fn starred_day_of_month_step_must_match_the_weekday_too() {
        // Vixie: `*/2` starts with `*`, so odd days AND Mondays.
        let cron = ZonedCron::new("0 0 */2 * 1", UTC).unwrap();
        assert!(!cron.matches_local(wall("2026-01-01 00:00:00"))); // odd Thursday
        assert!(!cron.matches_local(wall("2026-01-12 00:00:00"))); // even Monday
        assert!(cron.matches_local(wall("2026-01-05 00:00:00"))); // odd Monday
    }

    #[test]
    fn star_day_of_month_with_weekday_means_that_weekday() {
        let cron = ZonedCron::new("0 9 * * 1-5", UTC).unwrap();
        assert!(cron.matches_local(wall("2026-01-05 09:00:00")));
        assert!(!cron.matches_local(wall("2026-01-04 09:00:00"))); // Sunday
    }

    #[test]
    fn names_and_sunday_as_seven_are_accepted() {
        let cron = ZonedCron::new("0 0 * jan sun", UTC).unwrap();
        assert!(cron.matches_local(wall("2026-01-04 00:00:00")));
        let seven = ZonedCron::new("0 0 * * 7", UTC).unwrap();
        assert!(seven.matches_local(wall("2026-01-04 00:00:00")));
    }

    #[test]
    fn next_local_match_is_inclusive() {
        let cron = ZonedCron::new("*/15 * * * *", UTC).unwrap();
        let at = wall("2026-01-01 10:15:00");
        assert_eq!(cron.next_local_match(at), Some(at));
        assert_eq!(
            cron.next_local_match(wall("2026-01-01 10:15:01")),
            Some(wall("2026-01-01 10:30:00"))
        );
    }

    #[test]
    fn out_of_range_numbers_name_field_and_value() {
        assert_eq!(err("61 * * * *"), "minute 61 out of range 0-59");
        assert_eq!(err("0 24 * * *"), "hour 24 out of range 0-23");
        assert_eq!(err("0 0 0 * *"), "day-of-month 0 out of range 1-31");
        assert_eq!(err("0 0 * 13 *"), "month 13 out of range 1-12");
        assert_eq!(err("0 0 * * 8"), "day-of-week 8 out of range 0-7");
        assert_eq!(err("60 0 0 * * *"), "second 60 out of range 0-59");
        assert_eq!(err("1-70 * * * *"), "minute 70 out of range 0-59");
        assert_eq!(
            err("99999999999 * * * *"),
            "minute 99999999999 out of range 0-59"
        );
    }

    #[test]
    fn wrong_field_count_is_named() {
        assert_eq!(
            err("* * * *"),
            "4 fields; expected 5 (minute hour day-of-month month day-of-week) or 6 (second first)"
        );
        assert!(err("* * * * * * *").starts_with("7 fields;"));
    }

    #[test]
    fn empty_and_unknown_nickname_are_rejected() {
        assert_eq!(err("   "), "empty expression");
        assert!(err("@reboot").starts_with("unknown nickname"));
    }

    #[test]
    fn bad_steps_and_ranges_are_explained() {
        assert_eq!(
            err("*/0 * * * *"),
            "minute `*/0`: step 0; a step must be at least 1"
        );
        assert_eq!(
            err("*/x * * * *"),
            "minute `*/x`: step `x` is not a whole number"
        );
        assert_eq!(err("0 5-1 * * *"), "hour `5-1`: range 5-1 runs backwards");
        assert_eq!(err("0 1,,2 * * *"), "hour `1,,2`: empty item in a list");
    }

    #[test]
    fn croner_errors_are_pinned_to_their_field() {
        assert_eq!(
            err("0 a * * *"),
            "hour `a`: character `a` is not allowed here"
        );
        let single_step = err("5/2 * * * *");
        assert!(
            single_step.starts_with("minute `5/2`: invalid step syntax"),
            "{single_step}"
        );
    }

    #[test]
    fn an_expression_that_never_fires_is_rejected() {
        assert_eq!(
            err("0 0 30 2 *"),
            "never fires: no date matches its day and month fields"
        );
        // 29 February fires in leap years.
        assert!(ZonedCron::new("0 0 29 2 *", UTC).is_ok());
    }

    #[test]
    fn display_shows_source_and_zone() {
        let cron = ZonedCron::new("30 2 * * *", Amsterdam).unwrap();
        assert_eq!(cron.to_string(), "30 2 * * * (Europe/Amsterdam)");
    }
}
