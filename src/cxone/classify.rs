//! Turns one HTTP answer into a typed outcome, as a pure function of
//! (operation, status, headers, body, now): a started recording, a stop,
//! "already ended", or a [`CxoneError`] whose [`Action`](super::Action)
//! says retry, re-authenticate or give up.
//!
//! Success bodies are parsed leniently (API.md): `contactId` as a JSON
//! number or a string of digits, `interactionId` as a string, extra fields
//! ignored. A 2xx start without a usable contact id is an error that keeps
//! the raw body for the audit trail.

use super::error::CxoneError;
use crate::recording::{ContactId, InteractionId};
use crate::retry::parse_retry_after;
use chrono::{DateTime, Utc};
use reqwest::header::{HeaderMap, RETRY_AFTER};

/// Bodies kept for the audit trail are cut to this many bytes.
pub const BODY_KEEP_BYTES: usize = 2048;

/// Which call an answer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Start,
    Stop,
}

impl Operation {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Stop => "stop",
        }
    }
}

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
        _ => Err(CxoneError::Status {
            status,
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| parse_retry_after(v, now)),
            body: truncate_body(body),
        }),
    }
}

fn parse_started(status: u16, body: &[u8]) -> Result<Started, CxoneError> {
    let malformed = |reason: &str| CxoneError::MalformedBody {
        status,
        reason: reason.to_owned(),
        body: truncate_body(body),
    };
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
        Some(serde_json::Value::String(s)) if !s.is_empty() => Some(InteractionId(s.clone())),
        Some(serde_json::Value::Number(n)) => Some(InteractionId(n.to_string())),
        _ => None,
    };
    Ok(Started {
        contact_id,
        interaction_id,
        accepted: status == 202,
    })
}

/// The body as text, cut to at most [`BODY_KEEP_BYTES`] on a character
/// boundary (lossy for invalid UTF-8).
pub fn truncate_body(body: &[u8]) -> String {
    let cut = &body[..body.len().min(BODY_KEEP_BYTES)];
    let mut text = String::from_utf8_lossy(cut).into_owned();
    // A multi-byte character cut in half shows as U+FFFD at the very end;
    // drop it rather than keep a half character.
    if body.len() > BODY_KEEP_BYTES && text.ends_with('\u{fffd}') {
        text.pop();
    }
    text
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
    fn bodies_are_cut_to_2_kib_on_a_char_boundary() {
        let body = "é".repeat(2000); // 4000 bytes
        let kept = truncate_body(body.as_bytes());
        assert!(kept.len() <= BODY_KEEP_BYTES);
        assert_eq!(kept, "é".repeat(1024));
        assert_eq!(truncate_body(b"short"), "short");
    }
}
