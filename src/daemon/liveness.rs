//! Is the daemon alive? Inside the process, [`Liveness`] is what
//! `/healthz` answers: is the scheduling loop turning, and can the
//! database be written? Updated by the loop and the heartbeat; read by the
//! metrics listener. From outside, `recsched status` judges the heartbeat
//! the daemon stores. Both apply the one rule here, [`is_stale`].

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;

/// How long the loop, the last successful database write or the stored
/// heartbeat may lag before the daemon counts as not alive. systemd's
/// watchdog (`WatchdogSec=30s` in the unit) restarts a daemon that stops
/// answering for this long; the heartbeat is written every 5 s, so a
/// healthy daemon never comes near it.
pub const STALE_AFTER: Duration = Duration::seconds(30);

/// Whether something last seen `age` ago is stale: the one staleness rule
/// of `/healthz` and `recsched status`. The limit itself is still fresh;
/// a negative age (seen "in the future": the clock stepped back) is fresh.
pub fn is_stale(age: Duration) -> bool {
    age > STALE_AFTER
}

#[derive(Debug, Default)]
pub struct Liveness {
    /// Unix ms by which the loop is due to turn again: the time of its last
    /// turn while it works, the end of its planned sleep while it sleeps;
    /// 0 before the first turn.
    loop_due: AtomicI64,
    /// Unix ms of the last successful heartbeat write.
    write_ok_at: AtomicI64,
    /// The last write error, if the last heartbeat write failed.
    write_error: Mutex<Option<String>>,
}

impl Liveness {
    pub fn loop_turned(&self, at: DateTime<Utc>) {
        self.loop_due
            .store(at.timestamp_millis(), Ordering::Relaxed);
    }

    /// The loop sleeps, as planned, until `until`.
    pub fn loop_sleeps_until(&self, until: DateTime<Utc>) {
        self.loop_due
            .store(until.timestamp_millis(), Ordering::Relaxed);
    }

    pub fn write_ok(&self, at: DateTime<Utc>) {
        self.write_ok_at
            .store(at.timestamp_millis(), Ordering::Relaxed);
        *self.write_error.lock().unwrap_or_else(|e| e.into_inner()) = None;
    }

    pub fn write_failed(&self, error: String) {
        *self.write_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// `Err` names what is wrong.
    pub fn check(&self, now: DateTime<Utc>) -> Result<(), String> {
        let now = now.timestamp_millis();
        let due = self.loop_due.load(Ordering::Relaxed);
        if due == 0 {
            return Err("starting: the scheduling loop has not run yet".into());
        }
        if is_stale(Duration::milliseconds(now - due)) {
            return Err(format!(
                "the scheduling loop is {} s overdue",
                (now - due) / 1000
            ));
        }
        if let Some(e) = self
            .write_error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Err(format!("the database is not writable: {e}"));
        }
        let wrote = self.write_ok_at.load(Ordering::Relaxed);
        if wrote != 0 && is_stale(Duration::milliseconds(now - wrote)) {
            return Err(format!(
                "no successful database write for {} s",
                (now - wrote) / 1000
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn stale_only_past_the_limit_and_never_in_the_future() {
        assert!(!is_stale(Duration::zero()));
        assert!(!is_stale(STALE_AFTER));
        assert!(is_stale(STALE_AFTER + Duration::milliseconds(1)));
        assert!(!is_stale(Duration::seconds(-3600)));
    }

    #[test]
    fn healthy_only_while_the_loop_turns_and_writes_succeed() {
        let t0 = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
        let l = Liveness::default();
        assert!(l.check(t0).unwrap_err().contains("not run yet"));
        l.loop_turned(t0);
        l.write_ok(t0);
        assert_eq!(l.check(t0 + chrono::Duration::seconds(10)), Ok(()));
        assert!(l
            .check(t0 + chrono::Duration::seconds(31))
            .unwrap_err()
            .contains("loop is 31 s overdue"));
        // A planned sleep is not a stall (the heartbeat goes on writing).
        l.loop_sleeps_until(t0 + chrono::Duration::seconds(3600));
        l.write_ok(t0 + chrono::Duration::seconds(595));
        assert_eq!(l.check(t0 + chrono::Duration::seconds(600)), Ok(()));
        l.loop_turned(t0 + chrono::Duration::seconds(40));
        l.write_failed("database /x.db: disk is full".into());
        assert!(l
            .check(t0 + chrono::Duration::seconds(41))
            .unwrap_err()
            .contains("disk is full"));
    }
}
