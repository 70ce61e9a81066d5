//! `Retry-After` and the delay it leads to: whatever the header says, the
//! wait is between the normal backoff and the cap, and never past the
//! deadline.
//!
//! Input: the header value, as bytes.

use chrono::{TimeZone, Utc};
use recsched::retry::{parse_retry_after, Decision, RetryPolicy};

pub fn check(data: &[u8]) {
    let value = String::from_utf8_lossy(data);
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    let asked = parse_retry_after(&value, now);
    let policy = RetryPolicy::default();
    let deadline = now + chrono::Duration::hours(1);
    // The attempt number and jitter sample come from the input too.
    let attempt = u32::from(data.first().copied().unwrap_or(1));
    let jitter = f64::from(data.last().copied().unwrap_or(0)) / 256.0;
    let backoff = policy.ceiling(attempt).mul_f64(jitter);
    match policy.next_delay(attempt, asked, jitter, now, deadline) {
        Decision::Wait(d) => {
            assert!(d <= policy.cap(), "{d:?} past the cap for {value:?}");
            assert!(d >= backoff, "{d:?} under the backoff {backoff:?}");
            assert!(now + chrono::Duration::from_std(d).unwrap() <= deadline);
        }
        Decision::GiveUp => panic!("gave up an hour before the deadline for {value:?}"),
    }
}

super::fuzz_target!("retry_after", check);
