//! An iCalendar file (`.ics`, RFC 5545) read into exclusions to insert,
//! for `recsched exclusions import`.
//!
//! Public holiday calendars and leave calendars are published as .ics.
//! The `icalendar` crate parses the file (folding, escaping, parameters,
//! DATE against DATE-TIME); this module only decides what each VEVENT
//! means as an exclusion:
//! - an all-day event (`DTSTART;VALUE=DATE`) becomes local dates, first
//!   to last day inclusive (iCalendar's `DTEND` date is exclusive; with
//!   neither `DTEND` nor `DURATION` it is one day), read in `--tz` when
//!   given, else in each policy's zone;
//! - a timed event becomes UTC instants, `[DTSTART, DTEND)` (or
//!   `DTSTART + DURATION`): a UTC time as it is, a `TZID` time in that
//!   IANA zone, a floating time (or a `TZID` that is not an IANA name) in
//!   `--tz`;
//! - the reason is the `SUMMARY` (else the `UID`).
//!
//! An event it cannot place (cancelled, recurring, no start, a floating
//! time without `--tz`, an end not after its start) is skipped with the
//! reason, never guessed at. Pure: no I/O.

use chrono::{DateTime, Days, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use icalendar::{Calendar, CalendarDateTime, Component, DatePerhapsTime, Event, EventStatus};

use crate::clock::format_utc;
use crate::policy::exclusion::local_instant;
use crate::policy::{parse_timezone, Exclusion, ExclusionRow};
use crate::store::NewExclusion;

/// Who the imported exclusions are for, and the zone for local times.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub policy_id: Option<i64>,
    pub user_id: Option<String>,
    /// Dates are read in it (stored as the row's zone) and so are
    /// floating times; `None`: dates in each policy's zone, floating
    /// times refused.
    pub zone: Option<Tz>,
}

/// An event that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Skipped {
    /// The event's SUMMARY, else its UID, else its position.
    pub event: String,
    pub why: String,
}

/// What a file holds: the rows to insert, in file order, and what was left out.
#[derive(Debug, Default)]
pub struct Read {
    pub rows: Vec<NewExclusion>,
    pub skipped: Vec<Skipped>,
}

/// Reads every VEVENT of `text`. The error is the parser's, for a file
/// that is not iCalendar at all.
pub fn read(text: &str, options: &Options) -> Result<Read, String> {
    let calendar: Calendar = text.parse()?;
    let mut out = Read::default();
    let mut seen_any = false;
    for (index, event) in calendar.events().enumerate() {
        seen_any = true;
        let name = name(event, index);
        match exclusion(event, options) {
            Ok(row) => out.rows.push(row),
            Err(why) => out.skipped.push(Skipped { event: name, why }),
        }
    }
    if !seen_any && !text.contains("BEGIN:VCALENDAR") {
        return Err("no BEGIN:VCALENDAR: not an iCalendar file".to_owned());
    }
    Ok(out)
}

/// How messages name an event.
fn name(event: &Event, index: usize) -> String {
    event
        .get_summary()
        .or_else(|| event.get_uid())
        .map(|s| crate::cli::output::one_line(s.trim()))
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| format!("event {}", index + 1))
}

/// One event as an exclusion row, or why not.
fn exclusion(event: &Event, options: &Options) -> Result<NewExclusion, String> {
    if event.get_status() == Some(EventStatus::Cancelled) {
        return Err("cancelled (STATUS:CANCELLED)".to_owned());
    }
    if ["RRULE", "RDATE"]
        .iter()
        .any(|p| event.property_value(p).is_some() || event.multi_properties().contains_key(*p))
    {
        return Err(
            "recurring (RRULE/RDATE): repetitions are not expanded; import a calendar that \
             lists each date, or add them with `recsched exclusions add`"
                .to_owned(),
        );
    }
    let start = event
        .get_start()
        .ok_or("no DTSTART (or one that is not a date or date-time)")?;
    let duration = event
        .property_value("DURATION")
        .map(|raw| {
            iso8601::duration(raw)
                .ok()
                .and_then(|d| chrono::Duration::from_std(d.into()).ok())
                .ok_or_else(|| format!("DURATION `{raw}` is not an ISO 8601 duration"))
        })
        .transpose()?;
    let (starts_at, ends_at, timezone) = match start {
        DatePerhapsTime::Date(first) => {
            let last = match (event.get_end(), duration) {
                (Some(DatePerhapsTime::Date(end)), _) => day_before(end)?,
                (Some(DatePerhapsTime::DateTime(_)), _) => {
                    return Err("an all-day DTSTART with a timed DTEND".to_owned())
                }
                (None, Some(d)) => {
                    let days = u64::try_from(d.num_days()).unwrap_or(0).max(1);
                    first
                        .checked_add_days(Days::new(days - 1))
                        .ok_or("DURATION runs past the calendar")?
                }
                (None, None) => first,
            };
            if last < first {
                return Err(format!("DTEND {} is not after DTSTART {first}", day(last)));
            }
            (
                day(first),
                day(last),
                options.zone.map(|z| z.name().to_owned()),
            )
        }
        DatePerhapsTime::DateTime(at) => {
            let start = instant(&at, options, "DTSTART")?;
            let end = match (event.get_end(), duration) {
                (Some(DatePerhapsTime::DateTime(end)), _) => instant(&end, options, "DTEND")?,
                (Some(DatePerhapsTime::Date(_)), _) => {
                    return Err("a timed DTSTART with an all-day DTEND".to_owned())
                }
                (None, Some(d)) => start
                    .checked_add_signed(d)
                    .ok_or("DURATION runs past the calendar")?,
                (None, None) => return Err("a timed event with neither DTEND nor DURATION".into()),
            };
            if end <= start {
                return Err(format!(
                    "its end {} is not after its start {}",
                    format_utc(end),
                    format_utc(start)
                ));
            }
            (format_utc(start), format_utc(end), None)
        }
    };
    let reason = event
        .get_summary()
        .or_else(|| event.get_uid())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty());
    let row = NewExclusion {
        policy_id: options.policy_id,
        user_id: options.user_id.clone(),
        starts_at,
        ends_at,
        timezone,
        reason,
    };
    // What the daemon will make of it, checked before it is written.
    Exclusion::from_row(&ExclusionRow {
        id: 0,
        policy_id: row.policy_id,
        user_id: row.user_id.clone(),
        starts_at: row.starts_at.clone(),
        ends_at: row.ends_at.clone(),
        timezone: row.timezone.clone(),
        reason: row.reason.clone(),
    })
    .map_err(|e| format!("{} {}", e.column.as_str(), e.problem))?;
    Ok(row)
}

fn day(d: NaiveDate) -> String {
    d.format("%Y-%m-%d").to_string()
}

/// The last day of an all-day event whose exclusive end is `end`.
fn day_before(end: NaiveDate) -> Result<NaiveDate, String> {
    end.checked_sub_days(Days::new(1))
        .ok_or_else(|| "DTEND is the first day of the calendar".to_owned())
}

/// A DATE-TIME as an instant, or why it cannot be placed.
fn instant(at: &CalendarDateTime, options: &Options, what: &str) -> Result<DateTime<Utc>, String> {
    let local = |wall: &NaiveDateTime, zone: Option<Tz>, why: String| {
        zone.map(|tz| local_instant(*wall, tz)).ok_or(why)
    };
    match at {
        CalendarDateTime::Utc(t) => Ok(*t),
        CalendarDateTime::WithTimezone { date_time, tzid } => match parse_timezone(tzid) {
            Ok(tz) => Ok(local_instant(*date_time, tz)),
            Err(_) => local(
                date_time,
                options.zone,
                format!(
                    "{what} has TZID `{}`, which is not an IANA zone name; give --tz to read \
                     it in a zone",
                    crate::cli::output::one_line(tzid)
                ),
            ),
        },
        CalendarDateTime::Floating(wall) => local(
            wall,
            options.zone,
            format!(
                "{what} is a floating local time (no Z, no TZID); give --tz to read it in a zone"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn calendar(events: &str) -> String {
        format!("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\n{events}END:VCALENDAR\r\n")
    }

    fn event(lines: &str) -> String {
        format!("BEGIN:VEVENT\r\nUID:x@test\r\nDTSTAMP:20260101T000000Z\r\n{lines}END:VEVENT\r\n")
    }

    fn one(lines: &str, options: &Options) -> Result<NewExclusion, String> {
        let read = read(&calendar(&event(lines)), options).unwrap();
        match (read.rows.first(), read.skipped.first()) {
            (Some(row), None) => Ok(row.clone()),
            (None, Some(s)) => Err(s.why.clone()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_all_day_event_becomes_inclusive_local_dates() {
        let row = one(
            "SUMMARY:Christmas\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261227\r\n",
            &Options::default(),
        )
        .unwrap();
        assert_eq!(
            (row.starts_at.as_str(), row.ends_at.as_str()),
            ("2026-12-25", "2026-12-26")
        );
        assert_eq!(row.timezone, None);
        assert_eq!(row.reason.as_deref(), Some("Christmas"));
        // No DTEND: one day; --tz sets the row's zone.
        let row = one(
            "SUMMARY:Kingsday\r\nDTSTART;VALUE=DATE:20260427\r\n",
            &Options {
                zone: Some(chrono_tz::Europe::Amsterdam),
                policy_id: Some(3),
                user_id: None,
            },
        )
        .unwrap();
        assert_eq!(row.ends_at, "2026-04-27");
        assert_eq!(row.timezone.as_deref(), Some("Europe/Amsterdam"));
        assert_eq!(row.policy_id, Some(3));
        // DURATION in days.
        let row = one(
            "SUMMARY:Shutdown\r\nDTSTART;VALUE=DATE:20261228\r\nDURATION:P3D\r\n",
            &Options::default(),
        )
        .unwrap();
        assert_eq!(row.ends_at, "2026-12-30");
    }

    #[test]
    fn a_timed_event_becomes_utc_instants() {
        let row = one(
            "SUMMARY:Team day\r\nDTSTART;TZID=Europe/Amsterdam:20260701T130000\r\n\
             DTEND;TZID=Europe/Amsterdam:20260701T170000\r\n",
            &Options::default(),
        )
        .unwrap();
        assert_eq!(row.starts_at, "2026-07-01T11:00:00.000Z");
        assert_eq!(row.ends_at, "2026-07-01T15:00:00.000Z");
        let row = one(
            "SUMMARY:Outage\r\nDTSTART:20260701T100000Z\r\nDURATION:PT90M\r\n",
            &Options::default(),
        )
        .unwrap();
        assert_eq!(row.ends_at, "2026-07-01T11:30:00.000Z");
    }

    #[test]
    fn floating_times_need_a_zone() {
        let lines = "SUMMARY:Leave\r\nDTSTART:20260701T090000\r\nDTEND:20260701T120000\r\n";
        let why = one(lines, &Options::default()).unwrap_err();
        assert!(why.contains("give --tz"), "{why}");
        let row = one(
            lines,
            &Options {
                zone: Some(chrono_tz::America::New_York),
                ..Options::default()
            },
        )
        .unwrap();
        assert_eq!(row.starts_at, "2026-07-01T13:00:00.000Z");
    }

    #[test]
    fn what_cannot_be_placed_is_skipped_with_the_reason() {
        for (lines, expected) in [
            (
                "SUMMARY:x\r\nSTATUS:CANCELLED\r\nDTSTART;VALUE=DATE:20261225\r\n",
                "cancelled",
            ),
            (
                "SUMMARY:x\r\nRRULE:FREQ=YEARLY\r\nDTSTART;VALUE=DATE:20261225\r\n",
                "recurring",
            ),
            ("SUMMARY:x\r\n", "no DTSTART"),
            ("SUMMARY:x\r\nDTSTART:20260701T100000Z\r\n", "neither DTEND"),
            (
                "SUMMARY:x\r\nDTSTART:20260701T100000Z\r\nDTEND:20260701T090000Z\r\n",
                "not after",
            ),
            (
                "SUMMARY:x\r\nDTSTART;VALUE=DATE:20261225\r\nDTEND;VALUE=DATE:20261225\r\n",
                "not after",
            ),
            (
                "SUMMARY:x\r\nDTSTART;TZID=W. Europe Standard Time:20260701T100000\r\n\
                 DTEND;TZID=W. Europe Standard Time:20260701T110000\r\n",
                "not an IANA zone name",
            ),
        ] {
            let why = one(lines, &Options::default()).unwrap_err();
            assert!(why.contains(expected), "{lines:?}: {why}");
        }
    }

    #[test]
    fn text_that_is_not_icalendar_is_an_error() {
        assert!(read("hello", &Options::default()).is_err());
        let empty = read(&calendar(""), &Options::default()).unwrap();
        assert!(empty.rows.is_empty() && empty.skipped.is_empty());
    }
}
