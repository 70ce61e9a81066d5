//! The cron parser and the window starts it drives.
//!
//! Input: the expression on the first line; optionally an IANA zone on
//! the second (default Europe/Amsterdam) and a Unix time on the third to
//! start from (default 28 March 2026, the eve of a spring-forward gap).

use chrono::{DateTime, TimeZone, Utc};
use recsched::planner::window_starts;
use recsched::policy::{parse_timezone, ZonedCron};

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let expression = lines.next().unwrap_or_default();
    let tz = lines
        .next()
        .and_then(|l| parse_timezone(l.trim()).ok())
        .unwrap_or(chrono_tz::Europe::Amsterdam);
    let from = lines
        .next()
        .and_then(|l| l.trim().parse::<i64>().ok())
        .and_then(|secs| DateTime::from_timestamp(secs, 0))
        .unwrap_or_else(|| Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap());
    let Ok(cron) = ZonedCron::new(expression, tz) else {
        return;
    };
    let starts: Vec<DateTime<Utc>> = window_starts(&cron, from).take(3).collect();
    assert!(
        starts.iter().all(|s| *s >= from),
        "a start before {from}: {starts:?}"
    );
    assert!(
        starts.windows(2).all(|w| w[0] < w[1]),
        "starts not increasing: {starts:?}"
    );
}

super::fuzz_target!("cron", check);
