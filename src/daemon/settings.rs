//! `[schedule]` in the config file: how the daemon paces and bounds its work.

use crate::config::{Range, RangeCheck};
use crate::cxone::Limits;
use crate::planner::SegmentLimit;
use crate::recording::RecordingDuration;
use std::time::Duration;

/// The longest span any `*_seconds` setting turns into (ten years): far
/// beyond any sensible value, and safe to add to or take from any instant.
const LONGEST: Duration = Duration::from_secs(10 * 366 * 24 * 3600);

/// `secs` as a span for instant arithmetic, capped at [`LONGEST`].
fn span(secs: u64) -> chrono::Duration {
    let capped = Duration::from_secs(secs).min(LONGEST);
    chrono::Duration::from_std(capped).unwrap_or(chrono::Duration::zero())
}

#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Longest single recording, seconds (default 12600 = 3 h 30 min;
    /// never above the API's 13200). Longer coverage is chained.
    pub segment_limit_seconds: u32,
    /// Most start/stop requests in flight at once (default 64; 1 to 10,000).
    pub max_concurrency: usize,
    /// Most requests started per second; 0 = unlimited (default), else
    /// 0.1 to 10,000.
    pub max_requests_per_second: f64,
    /// How often policy edits are looked for, milliseconds (default 500,
    /// 50 to 60,000; edits take effect within this plus one planning pass).
    pub reload_poll_ms: u64,
    /// On SIGTERM, how long requests in flight may take to finish, seconds
    /// (default 10, at most 600).
    pub shutdown_grace_seconds: u64,
    /// After a restart, how far back windows missed while the service was
    /// down are recorded as `missed` (default 7 days, at most 90 days).
    pub missed_lookback_seconds: u64,
    /// How long stops for ended windows keep being retried after the
    /// window's end, seconds (default 60, at most 3600).
    pub stop_grace_seconds: u64,
    /// A segment of an `end_mode = stop` policy asks the vendor for this
    /// many seconds more than the window, so that the stop sent at the
    /// window's end is what ends it (default 5, at most 300). If the stop
    /// is lost, the recording overruns by at most this much.
    pub stop_margin_seconds: u64,
    /// How long before a window opens its write-ahead rows are claimed
    /// (committed) and the token and the connections to the API host are
    /// made ready, seconds (default 5; 0 = claim at the instant; at most
    /// 60). The start requests still leave at the window's instant, never
    /// before.
    pub claim_ahead_seconds: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            segment_limit_seconds: RecordingDuration::DEFAULT_LIMIT_SECS,
            max_concurrency: 64,
            max_requests_per_second: 0.0,
            reload_poll_ms: 500,
            shutdown_grace_seconds: 10,
            missed_lookback_seconds: 7 * 24 * 3600,
            stop_grace_seconds: 60,
            stop_margin_seconds: 5,
            claim_ahead_seconds: 5,
        }
    }
}

impl Settings {
    pub const SEGMENT_LIMIT_SECONDS: Range<u32> = Range::new(
        "schedule.segment_limit_seconds",
        RecordingDuration::MIN_SECS,
        RecordingDuration::MAX_SECS,
    );
    pub const MAX_CONCURRENCY: Range<usize> = Range::new("schedule.max_concurrency", 1, 10_000);
    /// Below 0.1 the gap between two requests passes 10 s; above 10,000
    /// no vendor answers.
    pub const MAX_REQUESTS_PER_SECOND: Range<f64> =
        Range::or_zero("schedule.max_requests_per_second", 0.1, 10_000.0);
    pub const RELOAD_POLL_MS: Range<u64> = Range::new("schedule.reload_poll_ms", 50, 60_000);
    pub const SHUTDOWN_GRACE_SECONDS: Range<u64> =
        Range::new("schedule.shutdown_grace_seconds", 0, 600);
    pub const MISSED_LOOKBACK_SECONDS: Range<u64> =
        Range::new("schedule.missed_lookback_seconds", 0, 90 * 24 * 3600);
    pub const STOP_GRACE_SECONDS: Range<u64> = Range::new("schedule.stop_grace_seconds", 0, 3600);
    pub const STOP_MARGIN_SECONDS: Range<u64> = Range::new("schedule.stop_margin_seconds", 0, 300);
    /// Beyond a minute, a row claimed ahead holds its user's slot (and a
    /// lease) long before anything happens; a few seconds is all the
    /// claim and the warm-up need.
    pub const CLAIM_AHEAD_SECONDS: Range<u64> = Range::new("schedule.claim_ahead_seconds", 0, 60);

    /// Checks every numeric key against its range.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::SEGMENT_LIMIT_SECONDS, self.segment_limit_seconds);
        check.check(Self::MAX_CONCURRENCY, self.max_concurrency);
        check.check(Self::MAX_REQUESTS_PER_SECOND, self.max_requests_per_second);
        check.check(Self::RELOAD_POLL_MS, self.reload_poll_ms);
        check.check(Self::SHUTDOWN_GRACE_SECONDS, self.shutdown_grace_seconds);
        check.check(Self::MISSED_LOOKBACK_SECONDS, self.missed_lookback_seconds);
        check.check(Self::STOP_GRACE_SECONDS, self.stop_grace_seconds);
        check.check(Self::STOP_MARGIN_SECONDS, self.stop_margin_seconds);
        check.check(Self::CLAIM_AHEAD_SECONDS, self.claim_ahead_seconds);
    }

    pub fn limits(&self) -> Limits {
        Limits {
            max_concurrency: Some(self.max_concurrency.max(1)),
            max_requests_per_second: (self.max_requests_per_second > 0.0)
                .then_some(self.max_requests_per_second),
        }
    }

    pub fn reload_poll(&self) -> Duration {
        Duration::from_millis(self.reload_poll_ms.clamp(50, 60_000))
    }

    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds).min(LONGEST)
    }

    /// The longest single recording; a value outside the API's 5 ..= 13200
    /// falls back to the default (`recsched check` names it).
    pub fn segment_limit(&self) -> SegmentLimit {
        SegmentLimit::from_secs(i64::from(self.segment_limit_seconds)).unwrap_or_default()
    }

    /// How far back a restart records missed windows.
    pub fn missed_lookback(&self) -> chrono::Duration {
        span(self.missed_lookback_seconds)
    }

    /// How long after a window's end its stop keeps being retried.
    pub fn stop_grace(&self) -> chrono::Duration {
        span(self.stop_grace_seconds)
    }

    /// How long before a window opens its rows are claimed; zero when
    /// claiming ahead is off. Capped at the range's top.
    pub fn claim_ahead(&self) -> chrono::Duration {
        span(self.claim_ahead_seconds.min(Self::CLAIM_AHEAD_SECONDS.max))
    }

    /// What a segment of an `end_mode = stop` policy asks for beyond its end.
    pub fn stop_margin(&self) -> chrono::Duration {
        span(self.stop_margin_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_come_typed_and_bounded() {
        let s = Settings {
            segment_limit_seconds: 3,
            missed_lookback_seconds: u64::MAX,
            stop_grace_seconds: 60,
            stop_margin_seconds: 5,
            shutdown_grace_seconds: u64::MAX,
            ..Settings::default()
        };
        assert_eq!(s.segment_limit(), SegmentLimit::default());
        assert_eq!(s.stop_grace(), chrono::Duration::seconds(60));
        assert_eq!(s.stop_margin(), chrono::Duration::seconds(5));
        assert_eq!(s.missed_lookback(), span(LONGEST.as_secs()));
        assert_eq!(s.shutdown_grace(), LONGEST);
        let far = chrono::DateTime::<chrono::Utc>::UNIX_EPOCH + chrono::Duration::days(20_000);
        assert!(far.checked_sub_signed(s.missed_lookback()).is_some());
    }
}
