//! What the coverage report reads of each `recordings` row, the same for
//! every backend: the row's span, state and last error, and when the
//! vendor answered its start (from the `attempts` audit trail).

use chrono::{DateTime, Utc};

use crate::recording::{RecordingState, UserId};

use super::RecordingId;

/// One `recordings` row as the report sees it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ReportRow {
    pub id: RecordingId,
    pub user_id: UserId,
    pub policy_id: Option<i64>,
    pub segment_start: DateTime<Utc>,
    pub segment_end: DateTime<Utc>,
    pub state: RecordingState,
    pub last_error: Option<String>,
    pub late_seconds: Option<f64>,
    pub ended_at: Option<DateTime<Utc>>,
    /// When the vendor's answer to the start arrived: the last start
    /// attempt with a 2xx status, sent at `at` and answered `latency_ms`
    /// later. `None` when no start was answered.
    pub answered_at: Option<DateTime<Utc>>,
}

/// An answered attempt's send time plus its latency.
pub(crate) fn answered(
    at: Option<DateTime<Utc>>,
    latency_ms: Option<i64>,
) -> Option<DateTime<Utc>> {
    let at = at?;
    let latency = chrono::Duration::milliseconds(latency_ms.unwrap_or(0).max(0));
    Some(at.checked_add_signed(latency).unwrap_or(at))
}
