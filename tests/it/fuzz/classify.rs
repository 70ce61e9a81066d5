//! The vendor answer classifier: any status, headers and body, for a
//! start and for a stop.
//!
//! Input: the status on the first line, then `Name: value` header lines,
//! a blank line, and the body (everything after, bytes as they are).

use chrono::{TimeZone, Utc};
use recsched::cxone::{classify, Action, Answer, Operation, MAX_INTERACTION_ID_CHARS};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};

pub fn check(data: &[u8]) {
    let split = data
        .windows(2)
        .position(|w| w == b"\n\n")
        .map_or((data, &b""[..]), |at| (&data[..at], &data[at + 2..]));
    let (head, body) = split;
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n');
    let status = lines
        .next()
        .and_then(|l| l.trim().parse::<u16>().ok())
        .unwrap_or(200);
    let mut headers = HeaderMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.trim().as_bytes()),
            HeaderValue::from_str(value.trim()),
        ) {
            headers.append(n, v);
        }
    }
    let now = Utc.with_ymd_and_hms(2026, 11, 25, 9, 0, 0).unwrap();
    for op in [Operation::Start, Operation::Stop] {
        match classify(op, status, &headers, body, now) {
            Ok(Answer::Started(s)) => {
                assert_eq!(op, Operation::Start);
                assert!(s.contact_id.get() >= 0);
                if let Some(id) = &s.interaction_id {
                    assert!(id.0.chars().count() <= MAX_INTERACTION_ID_CHARS);
                }
            }
            Ok(Answer::Stopped(_)) => assert_eq!(op, Operation::Stop),
            Err(e) => {
                let action = e.action();
                let _ = e.to_string();
                if (300..400).contains(&status) {
                    assert_eq!(action, Action::Final, "{status}: {e}");
                }
                if let Action::Retry {
                    retry_after: Some(d),
                    ..
                } = action
                {
                    let _ = d.as_secs();
                }
            }
        }
    }
}

super::fuzz_target!("classify", check);
