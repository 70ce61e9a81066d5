//! The audit trail's vocabulary: one `attempts` row per HTTP exchange with
//! the vendor (time, operation, status, latency, error, the start of the
//! body), and the row updates the daemon's writer hands to the store.
//!
//! Kept apart from `recordings` because it only ever grows and is read by
//! people, not by the scheduler. [`Store::write_batch`] writes the
//! exchange and its effect on the recording row in one transaction, so the
//! audit trail never disagrees with the row it explains.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};

use crate::recording::{ContactId, InteractionId, RecordingState};

use super::RecordingId;

#[cfg(doc)]
use super::Store;

/// At most this many bytes of a response body are kept (cut on a UTF-8
/// character boundary): enough to read an error, bounded for a bad day.
pub const RESPONSE_BODY_MAX_BYTES: usize = 2048;

/// Which request an attempt was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
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

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start" => Ok(Self::Start),
            "stop" => Ok(Self::Stop),
            other => Err(format!("operation `{other}` is not `start` or `stop`")),
        }
    }
}

/// One exchange to write to the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAttempt {
    pub recording_id: RecordingId,
    /// When the request was sent.
    pub at: DateTime<Utc>,
    pub operation: Operation,
    /// 1 for the first try of this operation.
    pub attempt: u32,
    /// The duration asked for; `None` for a stop.
    pub requested_seconds: Option<u32>,
    /// `None` when no answer came (transport error, timeout).
    pub http_status: Option<u16>,
    /// The transport error or the classification of the answer.
    pub error: Option<String>,
    pub latency_ms: Option<u64>,
    /// Cut to [`RESPONSE_BODY_MAX_BYTES`] when written.
    pub response_body: Option<String>,
}

/// One `attempts` row, read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AttemptRow {
    pub id: i64,
    pub recording_id: RecordingId,
    pub at: DateTime<Utc>,
    pub operation: Operation,
    pub attempt: u32,
    pub requested_seconds: Option<u32>,
    pub http_status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: Option<i64>,
    pub response_body: Option<String>,
}

/// One write of [`Store::write_batch`]: an exchange (if any) and what it
/// did to its recording row, owned so it can travel to a writer task.
#[derive(Debug, Clone, PartialEq)]
pub struct RowWrite {
    pub recording_id: RecordingId,
    pub attempt: Option<NewAttempt>,
    pub outcome: OwnedOutcome,
}

/// [`AttemptOutcome`], owned.
#[derive(Debug, Clone, PartialEq)]
pub enum OwnedOutcome {
    Retrying {
        last_error: String,
    },
    Started {
        contact_id: ContactId,
        interaction_id: Option<InteractionId>,
    },
    Moved {
        to: RecordingState,
        last_error: Option<String>,
        ended_at: Option<DateTime<Utc>>,
    },
    /// Only the audit row.
    Nothing,
}

impl OwnedOutcome {
    pub(crate) fn borrowed(&self) -> AttemptOutcome<'_> {
        match self {
            Self::Retrying { last_error } => AttemptOutcome::Retrying { last_error },
            Self::Started {
                contact_id,
                interaction_id,
            } => AttemptOutcome::Started {
                contact_id: *contact_id,
                interaction_id: interaction_id.as_ref(),
            },
            Self::Moved {
                to,
                last_error,
                ended_at,
            } => AttemptOutcome::Moved {
                to: *to,
                last_error: last_error.as_deref(),
                ended_at: *ended_at,
            },
            Self::Nothing => AttemptOutcome::Nothing,
        }
    }
}

/// What an exchange did to its recording row (a [`RowWrite`]'s outcome).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptOutcome<'a> {
    /// Nothing moved (a retryable answer); the row's last error is set.
    Retrying { last_error: &'a str },
    /// The start was answered: the row keeps the contact id and moves
    /// from `pending` to `recording`.
    Started {
        contact_id: ContactId,
        interaction_id: Option<&'a InteractionId>,
    },
    /// The row moves to `to`: as [`Store::set_state`].
    Moved {
        to: RecordingState,
        last_error: Option<&'a str>,
        ended_at: Option<DateTime<Utc>>,
    },
    /// Only the audit row.
    Nothing,
}

/// The longest prefix of `body` of at most [`RESPONSE_BODY_MAX_BYTES`]
/// that ends on a character boundary.
pub(crate) fn truncate_body(body: &str) -> &str {
    let mut end = body.len().min(RESPONSE_BODY_MAX_BYTES);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.get(..end).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_bodies_are_kept_whole() {
        assert_eq!(truncate_body(""), "");
        assert_eq!(truncate_body("{\"error\":\"x\"}"), "{\"error\":\"x\"}");
        let exact = "a".repeat(RESPONSE_BODY_MAX_BYTES);
        assert_eq!(truncate_body(&exact), exact);
    }

    #[test]
    fn long_bodies_are_cut_on_a_char_boundary() {
        // 2047 ASCII bytes then a 3-byte char straddling the limit.
        let body = format!("{}€tail", "a".repeat(RESPONSE_BODY_MAX_BYTES - 1));
        let cut = truncate_body(&body);
        assert_eq!(cut.len(), RESPONSE_BODY_MAX_BYTES - 1);
        assert!(cut.chars().all(|c| c == 'a'));

        let emoji = "😀".repeat(1000); // 4 bytes each
        let cut = truncate_body(&emoji);
        assert_eq!(cut.len(), RESPONSE_BODY_MAX_BYTES);
        assert_eq!(cut.chars().count(), RESPONSE_BODY_MAX_BYTES / 4);
    }

    #[test]
    fn operations_round_trip_through_text() {
        for op in [Operation::Start, Operation::Stop] {
            assert_eq!(op.as_str().parse::<Operation>(), Ok(op));
        }
        assert!("restart".parse::<Operation>().is_err());
    }
}
