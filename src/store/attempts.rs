//! The audit trail's vocabulary: one `attempts` row per HTTP exchange with
//! the vendor (time, operation, status, latency, error, the start of the
//! body), and the row updates the daemon's writer hands to the store.
//!
//! Kept apart from `recordings` because it only ever grows and is read by
//! people, not by the scheduler. [`Store::write_batch`] writes the
//! exchange and its effect on the recording row in one transaction, so the
//! audit trail never disagrees with the row it explains.

use chrono::{DateTime, Utc};

use crate::recording::{ContactId, InteractionId, RecordingState};

use super::RecordingId;

#[cfg(doc)]
use super::Store;

// The vocabulary's: one definition each, shared with the client.
pub(crate) use crate::recording::truncate_body;
pub use crate::recording::{Operation, BODY_KEEP_BYTES as RESPONSE_BODY_MAX_BYTES};

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

impl AttemptOutcome<'_> {
    pub(crate) fn owned(self) -> OwnedOutcome {
        match self {
            Self::Retrying { last_error } => OwnedOutcome::Retrying {
                last_error: last_error.to_owned(),
            },
            Self::Started {
                contact_id,
                interaction_id,
            } => OwnedOutcome::Started {
                contact_id,
                interaction_id: interaction_id.cloned(),
            },
            Self::Moved {
                to,
                last_error,
                ended_at,
            } => OwnedOutcome::Moved {
                to,
                last_error: last_error.map(str::to_owned),
                ended_at,
            },
            Self::Nothing => OwnedOutcome::Nothing,
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
