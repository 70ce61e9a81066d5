//! The token endpoint's answer, read into a token and a lifetime we can
//! trust, as a pure function of its bytes.
//!
//! The endpoint is outside our control, so every number in its answer is
//! checked: `expires_in` is clamped to [`MIN_LIFETIME`]..=[`MAX_LIFETIME`]
//! (an absurd one once overflowed the clock arithmetic and panicked a job;
//! a tiny one made every call fetch a token), and the renewal margin is at
//! most half the lifetime ([`renewal_margin`]). Whatever the bytes,
//! [`parse`] returns a value and never panics (a property test below and
//! the fuzz corpus in `tests/it/fuzz/` hold it to that).

use super::body::{is_oversized, MAX_BODY_BYTES};
use crate::secret::Secret;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// The shortest lifetime a token is given, whatever the endpoint says.
pub const MIN_LIFETIME: Duration = Duration::from_secs(60);
/// The longest lifetime a token is given, whatever the endpoint says.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The lifetime of a token whose answer has no `expires_in`.
pub const DEFAULT_LIFETIME: Duration = Duration::from_secs(3600);

/// A token answer that is usable.
#[derive(Debug)]
pub struct TokenAnswer {
    pub access: Secret,
    pub refresh: Option<Secret>,
    /// `expires_in`, clamped to `MIN_LIFETIME..=MAX_LIFETIME`.
    pub lifetime: Duration,
    /// Set when `expires_in` was not used as sent: what was sent and what
    /// is used instead, for a warning in the log.
    pub lifetime_note: Option<String>,
}

/// Reads a token answer; the error says why it is not one (it never
/// contains a token).
pub fn parse(body: &[u8]) -> Result<TokenAnswer, String> {
    if is_oversized(body) {
        return Err(format!("the answer is longer than {MAX_BODY_BYTES} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let access = match value.get("access_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => s,
        Some(_) => return Err("access_token is not a non-empty string".to_owned()),
        None => return Err("the answer has no access_token".to_owned()),
    };
    // RFC 6750's token68 is a subset of this; anything else cannot go in
    // an Authorization header.
    if !access.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("access_token has characters a bearer token cannot have".to_owned());
    }
    let refresh = match value.get("refresh_token") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(Secret::new(s.clone())),
        _ => None,
    };
    let (lifetime, lifetime_note) = lifetime(value.get("expires_in"));
    Ok(TokenAnswer {
        access: Secret::new(access.clone()),
        refresh,
        lifetime,
        lifetime_note,
    })
}

/// The lifetime to use for an `expires_in` value, and a note when it is
/// not the value as sent.
fn lifetime(expires_in: Option<&serde_json::Value>) -> (Duration, Option<String>) {
    let Some(raw) = expires_in else {
        return (DEFAULT_LIFETIME, None);
    };
    let seconds = match raw {
        serde_json::Value::Number(n) => n
            .as_u64()
            .map(Duration::from_secs)
            .or_else(|| n.as_f64().map(secs_f64)),
        serde_json::Value::String(s) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .map(Duration::from_secs)
                .or_else(|| s.parse::<f64>().ok().map(secs_f64))
        }
        _ => None,
    };
    let shown: String = raw.to_string().chars().take(40).collect();
    match seconds {
        Some(d) if (MIN_LIFETIME..=MAX_LIFETIME).contains(&d) => (d, None),
        Some(d) => {
            let used = d.clamp(MIN_LIFETIME, MAX_LIFETIME);
            let note = format!(
                "expires_in {shown} is outside {}..={} s; the token is used for {} s",
                MIN_LIFETIME.as_secs(),
                MAX_LIFETIME.as_secs(),
                used.as_secs()
            );
            (used, Some(note))
        }
        None => (
            MIN_LIFETIME,
            Some(format!(
                "expires_in {shown} is not a number of seconds; the token is used for {} s",
                MIN_LIFETIME.as_secs()
            )),
        ),
    }
}

/// Seconds as a float: negative or NaN is zero, too large is the most a
/// `Duration` holds (both are clamped afterwards).
fn secs_f64(secs: f64) -> Duration {
    if secs.is_nan() || secs <= 0.0 {
        return Duration::ZERO;
    }
    Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX)
}

/// How long before expiry a token is renewed: the configured margin, but
/// at most half the lifetime, so a short-lived token is still used for
/// half its life instead of being renewed before every call.
pub fn renewal_margin(configured: Duration, lifetime: Duration) -> Duration {
    configured.min(lifetime / 2)
}

/// When a token of `lifetime`, received at `now`, is to be renewed: its
/// expiry less [`renewal_margin`]. Never panics: if the instant would not
/// fit (only a broken clock is that close to the end of time), it is
/// `now`, so the token is renewed at its next use.
pub fn renew_at(
    now: DateTime<Utc>,
    lifetime: Duration,
    configured_margin: Duration,
) -> DateTime<Utc> {
    let margin = renewal_margin(configured_margin, lifetime);
    chrono::Duration::from_std(lifetime.saturating_sub(margin))
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn life(expires_in: &str) -> (u64, bool) {
        let body = format!(r#"{{"access_token":"a.b-c","expires_in":{expires_in}}}"#);
        let a = parse(body.as_bytes()).unwrap();
        (a.lifetime.as_secs(), a.lifetime_note.is_some())
    }

    #[test]
    fn expires_in_is_used_within_range_and_clamped_outside_it() {
        assert_eq!(life("3600"), (3600, false));
        assert_eq!(life("\"1800\""), (1800, false));
        assert_eq!(life("600.9"), (600, false));
        assert_eq!(life("60"), (60, false));
        assert_eq!(life("86400"), (86400, false));
        assert_eq!(life("9999999999999"), (86400, true));
        assert_eq!(life("1e300"), (86400, true));
        assert_eq!(life("18446744073709551616"), (86400, true));
        assert_eq!(life("\"9999999999999999999999\""), (86400, true));
        assert_eq!(life("1"), (60, true));
        assert_eq!(life("0"), (60, true));
        assert_eq!(life("-5"), (60, true));
        assert_eq!(life("-1e300"), (60, true));
        assert_eq!(life("\"soon\""), (60, true));
        assert_eq!(life("null"), (60, true));
        assert_eq!(life("[3600]"), (60, true));
    }

    #[test]
    fn the_note_names_the_value_sent() {
        let a = parse(br#"{"access_token":"t","expires_in":9999999999999}"#).unwrap();
        let note = a.lifetime_note.unwrap();
        assert!(note.contains("expires_in 9999999999999"), "{note}");
        assert!(note.contains("86400 s"), "{note}");
    }

    #[test]
    fn a_missing_expires_in_means_an_hour() {
        let a = parse(br#"{"access_token":"t","refresh_token":"r"}"#).unwrap();
        assert_eq!(a.lifetime, DEFAULT_LIFETIME);
        assert_eq!(a.lifetime_note, None);
        assert_eq!(a.refresh.unwrap().expose(), "r");
        assert_eq!(a.access.expose(), "t");
    }

    #[test]
    fn answers_that_are_not_tokens_say_why_without_the_token() {
        for (body, why) in [
            (&b"<html>"[..], "not JSON"),
            (br#"{"token":"x"}"#, "no access_token"),
            (br#"{"access_token":""}"#, "not a non-empty string"),
            (br#"{"access_token":42}"#, "not a non-empty string"),
            (
                b"{\"access_token\":\"zq\\nzq\"}",
                "characters a bearer token cannot have",
            ),
            (
                "{\"access_token\":\"caf\u{e9}\"}".as_bytes(),
                "characters a bearer token cannot have",
            ),
        ] {
            let e = parse(body).unwrap_err();
            assert!(e.contains(why), "{e}");
            assert!(!e.contains("zq"), "{e}");
        }
        let mut long = br#"{"access_token":""#.to_vec();
        long.resize(MAX_BODY_BYTES + 1, b'a');
        assert!(parse(&long).unwrap_err().contains("longer than 65536"));
    }

    #[test]
    fn an_empty_or_odd_refresh_token_is_ignored() {
        let a = parse(br#"{"access_token":"t","refresh_token":""}"#).unwrap();
        assert!(a.refresh.is_none());
        let a = parse(br#"{"access_token":"t","refresh_token":7}"#).unwrap();
        assert!(a.refresh.is_none());
    }

    #[test]
    fn the_margin_is_at_most_half_the_lifetime() {
        let m = |c, l| renewal_margin(Duration::from_secs(c), Duration::from_secs(l)).as_secs();
        assert_eq!(m(60, 3600), 60);
        assert_eq!(m(60, 60), 30);
        assert_eq!(m(600, 900), 450);
        assert_eq!(m(0, 60), 0);
        assert_eq!(m(u64::MAX, 86400), 43200);
    }

    #[test]
    fn renewal_is_half_way_for_short_tokens_and_a_margin_early_for_long_ones() {
        use chrono::TimeZone;
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let at = |life, margin| {
            (renew_at(t0, Duration::from_secs(life), Duration::from_secs(margin)) - t0)
                .num_seconds()
        };
        assert_eq!(at(3600, 60), 3540);
        assert_eq!(at(60, 60), 30);
        assert_eq!(at(86_400, 600), 85_800);
        // At the end of time the token is renewed at its next use.
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(renew_at(end, MAX_LIFETIME, Duration::ZERO), end);
    }

    proptest::proptest! {
        /// Whatever the token endpoint sends back, reading it returns.
        #[test]
        fn any_bytes_read_as_a_token_answer_without_panic(
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
        ) {
            let _ = parse(&body);
        }

        /// Any expires_in gives a lifetime inside the clamp.
        #[test]
        fn any_expires_in_gives_a_lifetime_inside_the_clamp(
            expires_in in "-?[0-9]{0,30}(\\.[0-9]{0,5})?(e-?[0-9]{1,3})?|\"[ -~]{0,20}\"|true|null|\\{\\}",
        ) {
            let body = format!(r#"{{"access_token":"t","expires_in":{expires_in}}}"#);
            if let Ok(a) = parse(body.as_bytes()) {
                proptest::prop_assert!((MIN_LIFETIME..=MAX_LIFETIME).contains(&a.lifetime));
            }
        }
    }
}
