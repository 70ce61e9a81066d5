//! The token endpoint's answer and the renewal instant computed from it
//! (where an absurd `expires_in` once overflowed and panicked).
//!
//! Input: the answer body, as bytes.

use chrono::{DateTime, TimeZone, Utc};
use recsched::cxone::token_answer::{parse, renew_at, MAX_LIFETIME, MIN_LIFETIME};
use std::time::Duration;

pub fn check(data: &[u8]) {
    let Ok(answer) = parse(data) else {
        return;
    };
    assert!(
        (MIN_LIFETIME..=MAX_LIFETIME).contains(&answer.lifetime),
        "lifetime {:?}",
        answer.lifetime
    );
    assert!(answer.access.expose().bytes().all(|b| b.is_ascii_graphic()));
    let nows = [
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap(),
        DateTime::<Utc>::MAX_UTC,
        DateTime::<Utc>::MIN_UTC,
    ];
    for now in nows {
        for margin in [Duration::ZERO, Duration::from_secs(60), Duration::MAX] {
            let at = renew_at(now, answer.lifetime, margin);
            assert!(at >= now, "renewal {at} before {now}");
            let latest = now
                .checked_add_signed(chrono::Duration::from_std(answer.lifetime).unwrap())
                .unwrap_or(DateTime::<Utc>::MAX_UTC);
            assert!(at <= latest, "renewal {at} after expiry");
        }
    }
}

super::fuzz_target!("token_answer", check);
