//! The only reader of wall-clock time.
//!
//! Everything that needs "now" takes a [`Clock`], so time-dependent logic
//! can run against a [`ManualClock`] in tests. Pure code (planner, retry)
//! takes instants as arguments and never sees a clock at all.

use chrono::{DateTime, Utc};
use std::sync::{Arc, Mutex};

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told to; for tests.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<DateTime<Utc>>>);

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Mutex::new(at)))
    }

    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = at;
    }

    pub fn advance(&self, by: chrono::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|e| e.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Canonical text form of an instant, as stored in the database and
/// printed: RFC 3339, UTC, whole or fractional seconds with `Z`
/// (`2026-03-29T01:00:00Z`, `2026-03-29T01:00:00.250Z`). One form, so that
/// `sqlite3` users can compare stored values as text.
pub fn format_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 instant into UTC.
pub fn parse_utc(raw: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let t0 = Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(chrono::Duration::seconds(90));
        assert_eq!(c.now(), t0 + chrono::Duration::seconds(90));
    }

    #[test]
    fn utc_text_is_fixed_width_and_sorts_as_time() {
        let a = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let b = a + chrono::Duration::milliseconds(250);
        assert_eq!(format_utc(a), "2026-03-29T01:00:00.000Z");
        assert_eq!(format_utc(b), "2026-03-29T01:00:00.250Z");
        assert!(format_utc(a) < format_utc(b));
        assert_eq!(parse_utc("2026-03-29T03:00:00+02:00").unwrap(), a);
    }
}
