//! Turns one HTTP answer into a typed outcome, as a pure function of
//! (operation, status, headers, body, now): a started recording, a stop,
//! "already ended", or a [`CxoneError`] whose [`Action`](super::Action)
//! says retry, re-authenticate or give up.
//!
//! Success bodies are parsed leniently (API.md): `contactId` as a JSON
//! number or a string of digits, `interactionId` as a string, extra fields
//! ignored. A 2xx start without a usable contact id is an error that keeps
//! the raw body for the audit trail; so is one whose body is longer than
//! [`MAX_BODY_BYTES`] or whose `interactionId` is longer than
//! [`MAX_INTERACTION_ID_CHARS`]. A 3xx is never followed: it is a final
//! error naming where it pointed.
//!
//! Whatever the bytes, classifying never panics (a property test and the
//! fuzz corpus in `tests/it/fuzz/` hold it to that).

use super::body::{is_oversized, MAX_BODY_BYTES};
use super::error::CxoneError;
use crate::recording::{truncate_body, ContactId, InteractionId, Operation};
use crate::retry::parse_retry_after;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};

/// The longest `interactionId` accepted, in characters; a longer one makes
/// the answer malformed (it is stored in every row and attempt).
pub const MAX_INTERACTION_ID_CHARS: usize = 256;

/// A successful start: what a later stop needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub contact_id: ContactId,
    pub interaction_id: Option<InteractionId>,
    /// `true` for 202 ("accepted, in progress"), `false` for 200.
    pub accepted: bool,
}

/// A successful stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// 200 or 202: our stop ended it (202: "in progress").
    Ended { accepted: bool },
    /// 404: nothing to stop; the recording had already ended by itself.
    AlreadyEnded,
}

/// The typed result of one answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Started(Started),
    Stopped(Stopped),
}

/// Classifies one HTTP answer.
pub fn classify(
    op: Operation,
    status: u16,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<Answer, CxoneError> {
    match (op, status) {
        (Operation::Start, 200 | 202) => parse_started(status, body).map(Answer::Started),
        (Operation::Stop, 200 | 202) => Ok(Answer::Stopped(Stopped::Ended {
            accepted: status == 202,
        })),
        (Operation::Stop, 404) => Ok(Answer::Stopped(Stopped::AlreadyEnded)),
        (_, 300..=399) => Err(CxoneError::Redirected {
            status,
            to: redirect_target(headers),
            setting: "cxone.api_base",
        }),
        _ => Err(CxoneError::Status {
            status,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now)),
            body: kept(body),
        }),
    }
}

fn parse_started(status: u16, body: &[u8]) -> Result<Started, CxoneError> {
    let malformed = |reason: &str| CxoneError::MalformedBody {
        status,
        reason: reason.to_owned(),
        body: kept(body),
    };
    if is_oversized(body) {
        return Err(malformed(&format!(
            "the body is longer than {MAX_BODY_BYTES} bytes"
        )));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| malformed("not JSON"))?;
    let contact_id = match value.get("contactId") {
        Some(serde_json::Value::Number(n)) => n
            .as_i64()
            .and_then(|n| ContactId::new(n).ok())
            .ok_or_else(|| malformed("contactId is not a non-negative 64-bit integer"))?,
        Some(serde_json::Value::String(s)) => ContactId::parse_digits(s.trim())
            .map_err(|_| malformed("contactId is a string but not of digits"))?,
        Some(_) => return Err(malformed("contactId is neither a number nor a string")),
        None => return Err(malformed("contactId is missing")),
    };
    let interaction_id = match value.get("interactionId") {
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(s.clone()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    };
    if let Some(id) = &interaction_id {
        let chars = id.chars().count();
        if chars > MAX_INTERACTION_ID_CHARS {
            return Err(malformed(&format!(
                "interactionId is {chars} characters long; at most {MAX_INTERACTION_ID_CHARS} \
                 are accepted"
            )));
        }
    }
    let interaction_id = interaction_id.map(InteractionId);
    Ok(Started {
        contact_id,
        interaction_id,
        accepted: status == 202,
    })
}

/// Where a 3xx pointed, for an error message: the `Location`'s host, or
/// why there is none.
pub(crate) fn redirect_target(headers: &HeaderMap) -> String {
    let Some(value) = headers.get(LOCATION) else {
        return "nowhere (no Location header)".to_owned();
    };
    let Ok(location) = value.to_str() else {
        return "a Location that is not text".to_owned();
    };
    let shown: String = location.chars().take(200).collect();
    match reqwest::Url::parse(location) {
        Ok(url) => match url.host_str() {
            Some(host) => format!("host `{host}` (Location `{shown}`)"),
            None => format!("a Location without a host (`{shown}`)"),
        },
        Err(_) => format!("`{shown}` (a relative Location, on the same host)"),
    }
}

/// What an error or the audit trail keeps of a body: the text (lossy for
/// invalid UTF-8) cut by [`truncate_body`]. The body read is itself capped
/// (`body::read_capped`), so the whole of it is decoded.
pub(super) fn kept(body: &[u8]) -> String {
    truncate_body(&String::from_utf8_lossy(body)).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cxone::Action;
    use chrono::TimeZone;
    use reqwest::header::HeaderValue;
    use std::time::Duration;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap()
    }

    fn start(status: u16, body: &str) -> Result<Answer, CxoneError> {
        classify(
            Operation::Start,
            status,
            &HeaderMap::new(),
            body.as_bytes(),
            now(),
        )
    }

    fn action(status: u16, op: Operation) -> Action {
        match classify(op, status, &HeaderMap::new(), b"", now()) {
            Ok(a) => panic!("{status} classified as success {a:?}"),
            Err(e) => e.action(),
        }
    }

    #[test]
    fn start_200_and_202_carry_the_contact_id() {
        let a = start(
            200,
            r#"{"description":"ok","contactId":123,"interactionId":"ab-1","httpStatus":"OK","extra":[1]}"#,
        );
        assert_eq!(
            a.unwrap(),
            Answer::Started(Started {
                contact_id: ContactId::new(123).unwrap(),
                interaction_id: Some(InteractionId("ab-1".into())),
                accepted: false
            })
        );
        let Answer::Started(s) = start(202, r#"{"contactId":"9223372036854775807"}"#).unwrap()
        else {
            panic!("not started")
        };
        assert_eq!(s.contact_id.get(), i64::MAX);
        assert!(s.accepted);
        assert_eq!(s.interaction_id, None);
    }

    #[test]
    fn malformed_success_bodies_are_final_and_keep_the_body() {
        for body in [
            "<html>oops</html>",
            r#"{"interactionId":"x"}"#,
            r#"{"contactId":-4}"#,
            r#"{"contactId":"12a"}"#,
            r#"{"contactId":1.5}"#,
            r#"{"contactId":[1]}"#,
        ] {
            let err = start(200, body).unwrap_err();
            assert!(
                matches!(err, CxoneError::MalformedBody { .. }),
                "{body}: {err:?}"
            );
            assert_eq!(err.action(), Action::Final, "{body}");
            assert!(err.to_string().contains(body), "{err}");
        }
    }

    #[test]
    fn statuses_map_to_actions() {
        use Operation::*;
        let retry = Action::Retry {
            retry_after: None,
            server_error: false,
        };
        assert_eq!(action(425, Start), retry);
        assert_eq!(action(504, Start), retry);
        assert_eq!(action(504, Stop), retry);
        assert_eq!(
            action(500, Start),
            Action::Retry {
                retry_after: None,
                server_error: true
            }
        );
        assert_eq!(action(401, Start), Action::Reauthenticate);
        assert_eq!(action(401, Stop), Action::Reauthenticate);
        for s in [400, 403, 404] {
            assert_eq!(action(s, Start), Action::Final, "{s}");
        }
        assert_eq!(action(400, Stop), Action::Final);
        assert_eq!(action(403, Stop), Action::Final);
    }

    #[test]
    fn stop_404_means_already_ended() {
        let a = classify(
            Operation::Stop,
            404,
            &HeaderMap::new(),
            b"no interactive interactions found",
            now(),
        );
        assert_eq!(a.unwrap(), Answer::Stopped(Stopped::AlreadyEnded));
        let a = classify(Operation::Stop, 202, &HeaderMap::new(), b"", now());
        assert_eq!(
            a.unwrap(),
            Answer::Stopped(Stopped::Ended { accepted: true })
        );
    }

    #[test]
    fn retry_after_header_is_read_in_both_forms() {
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("4"));
        let e = classify(Operation::Start, 425, &h, b"", now()).unwrap_err();
        assert_eq!(
            e.action(),
            Action::Retry {
                retry_after: Some(Duration::from_secs(4)),
                server_error: false
            }
        );
        h.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 25 Nov 2026 09:00:30 GMT"),
        );
        let e = classify(Operation::Start, 504, &h, b"", now()).unwrap_err();
        assert_eq!(
            e.action(),
            Action::Retry {
                retry_after: Some(Duration::from_secs(30)),
                server_error: false
            }
        );
    }

    #[test]
    fn a_redirect_is_final_and_names_where_it_pointed() {
        let mut h = HeaderMap::new();
        h.insert(
            LOCATION,
            HeaderValue::from_static("https://elsewhere.example:8443/steal?x=1"),
        );
        for op in [Operation::Start, Operation::Stop] {
            for status in [301, 302, 303, 307, 308] {
                let e = classify(op, status, &h, b"", now()).unwrap_err();
                assert_eq!(e.action(), Action::Final, "{status}");
                assert_eq!(e.status(), Some(status));
                let text = e.to_string();
                assert!(text.contains("host `elsewhere.example`"), "{text}");
                assert!(text.contains("cxone.api_base"), "{text}");
            }
        }
        h.insert(LOCATION, HeaderValue::from_static("/v2/start"));
        let e = classify(Operation::Start, 307, &h, b"", now()).unwrap_err();
        assert!(e.to_string().contains("relative Location"), "{e}");
        let e = classify(Operation::Start, 302, &HeaderMap::new(), b"", now()).unwrap_err();
        assert!(e.to_string().contains("no Location"), "{e}");
    }

    #[test]
    fn an_oversized_success_body_is_malformed() {
        let mut body = br#"{"contactId":1,"description":""#.to_vec();
        body.resize(MAX_BODY_BYTES + 1, b'x');
        let e = classify(Operation::Start, 200, &HeaderMap::new(), &body, now()).unwrap_err();
        assert!(matches!(e, CxoneError::MalformedBody { .. }), "{e:?}");
        assert!(e.to_string().contains("longer than 65536 bytes"), "{e}");
        // The audit copy stays cut to 2 KiB.
        let CxoneError::MalformedBody { body: kept, .. } = e else {
            unreachable!()
        };
        assert!(kept.len() <= crate::recording::BODY_KEEP_BYTES);
        // An error status with a long body is still classified by status.
        let e = classify(Operation::Start, 504, &HeaderMap::new(), &body, now()).unwrap_err();
        assert_eq!(e.status(), Some(504));
        assert!(matches!(e.action(), Action::Retry { .. }));
    }

    #[test]
    fn an_interaction_id_longer_than_256_characters_is_malformed() {
        let ok = format!(r#"{{"contactId":7,"interactionId":"{}"}}"#, "é".repeat(256));
        let Answer::Started(s) = start(200, &ok).unwrap() else {
            panic!("not started")
        };
        assert_eq!(s.interaction_id.unwrap().0.chars().count(), 256);
        let long = format!(r#"{{"contactId":7,"interactionId":"{}"}}"#, "a".repeat(257));
        let e = start(200, &long).unwrap_err();
        assert!(matches!(e, CxoneError::MalformedBody { .. }), "{e:?}");
        assert!(
            e.to_string().contains("interactionId is 257 characters"),
            "{e}"
        );
        assert_eq!(e.action(), Action::Final);
    }

    proptest::proptest! {
        /// Whatever the vendor sends back, classifying it returns a value.
        #[test]
        fn any_answer_bytes_classify_without_panic(
            status in 0u16..1000,
            body in proptest::collection::vec(proptest::num::u8::ANY, 0..512),
            retry_after in proptest::collection::vec(32u8..127, 0..40),
            start_op in proptest::bool::ANY,
        ) {
            let op = if start_op { Operation::Start } else { Operation::Stop };
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&retry_after) {
                h.insert(RETRY_AFTER, v.clone());
                h.insert(LOCATION, v);
            }
            let _ = classify(op, status, &h, &body, now());
        }

        /// JSON-shaped start answers with odd values never panic either.
        #[test]
        fn json_shaped_start_answers_classify_without_panic(
            contact in r#"[-+0-9a-z.eE"\\ \[\]{}]{0,30}"#,
            interaction in "[ -~]{0,300}",
        ) {
            for body in [
                format!(r#"{{"contactId":{contact},"interactionId":{interaction}}}"#),
                format!(r#"{{"contactId":"{contact}","interactionId":"{interaction}"}}"#),
            ] {
                let _ = classify(Operation::Start, 200, &HeaderMap::new(), body.as_bytes(), now());
            }
        }
    }

    #[test]
    fn bodies_are_cut_to_2_kib_on_a_char_boundary() {
        use crate::recording::BODY_KEEP_BYTES;
        let body = "é".repeat(2000); // 4000 bytes
        let cut = kept(body.as_bytes());
        assert!(cut.len() <= BODY_KEEP_BYTES);
        assert_eq!(cut, "é".repeat(1024));
        assert_eq!(kept(b"short"), "short");
        // Invalid bytes become U+FFFD (3 bytes each) and are still cut.
        let cut = kept(&[0xff; 4000]);
        assert!(cut.len() <= BODY_KEEP_BYTES, "{}", cut.len());
        assert_eq!(cut, "\u{fffd}".repeat(BODY_KEEP_BYTES / 3));
    }
}
