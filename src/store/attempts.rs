//! The audit trail: one `attempts` row per HTTP exchange with the vendor
//! (time, operation, status, latency, error, the start of the body).
//!
//! Kept apart from `recordings` because it only ever grows and is read by
//! people, not by the scheduler. [`Store::finish_attempt`] writes the
//! exchange and its effect on the recording row in one transaction, so the
//! audit trail never disagrees with the row it explains.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use sqlx::error::ErrorKind;
use sqlx::sqlite::SqliteRow;
use sqlx::SqliteConnection;

use crate::clock::format_utc;
use crate::recording::{ContactId, InteractionId, RecordingState};

use super::row::{non_negative_u32, Cols};
use super::{RecordingId, Store, StoreError};

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
    fn borrowed(&self) -> AttemptOutcome<'_> {
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

/// What an exchange did to its recording row, for [`Store::finish_attempt`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptOutcome<'a> {
    /// Nothing moved (a retryable answer); the row's last error is set.
    Retrying { last_error: &'a str },
    /// The start was answered: as [`Store::mark_started`].
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

impl Store {
    /// Writes one exchange to the audit trail; returns its row id.
    pub async fn record_attempt(&self, attempt: &NewAttempt) -> Result<i64, StoreError> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(self.err("recording an attempt"))?;
        self.insert_attempt(&mut conn, attempt).await
    }

    /// Writes one exchange and its effect on the recording row in one
    /// `BEGIN IMMEDIATE` transaction: the audit row, the row's start
    /// attempt count (for a start), then `outcome`. Returns whether the
    /// row's state moved.
    ///
    /// If `outcome` is a move the state diagram forbids (typically a race:
    /// the row already reached a final state), the audit row is still
    /// committed, because the exchange did happen, and the call returns
    /// [`StoreError::IllegalMove`]. Any other error writes nothing.
    pub async fn finish_attempt(
        &self,
        attempt: &NewAttempt,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        let mut tx = self.begin_immediate(context).await?;
        let moved = self
            .apply_on(&mut tx, attempt.recording_id, Some(attempt), outcome)
            .await;
        // An illegal move still keeps the audit row: the request happened.
        tx.commit().await.map_err(self.err(context))?;
        moved
    }

    /// Applies many row writes (each an optional audit row and its effect)
    /// in ONE `BEGIN IMMEDIATE` transaction: one lock and one fsync for a
    /// whole burst instead of one per start. The outer error means nothing
    /// was written (busy, disk full); the inner results are per write
    /// (e.g. an illegal move, which changes only that row's audit trail).
    pub async fn write_batch(
        &self,
        writes: &[RowWrite],
    ) -> Result<Vec<Result<bool, StoreError>>, StoreError> {
        let context = "writing a batch of recording updates";
        let mut tx = self.begin_immediate(context).await?;
        let mut results = Vec::with_capacity(writes.len());
        for w in writes {
            let r = self
                .apply_on(
                    &mut tx,
                    w.recording_id,
                    w.attempt.as_ref(),
                    w.outcome.borrowed(),
                )
                .await;
            // A database-level failure aborts the whole batch.
            match r {
                Err(e)
                    if !matches!(
                        e,
                        StoreError::IllegalMove { .. } | StoreError::RecordingNotFound(_)
                    ) =>
                {
                    return Err(e)
                }
                r => results.push(r),
            }
        }
        tx.commit().await.map_err(self.err(context))?;
        Ok(results)
    }

    async fn apply_on(
        &self,
        tx: &mut SqliteConnection,
        id: RecordingId,
        attempt: Option<&NewAttempt>,
        outcome: AttemptOutcome<'_>,
    ) -> Result<bool, StoreError> {
        let context = "recording an attempt and its outcome";
        if let Some(attempt) = attempt {
            self.insert_attempt(&mut *tx, attempt).await?;
            if attempt.operation == Operation::Start {
                sqlx::query("UPDATE recordings SET attempts = MAX(attempts, ?) WHERE id = ?")
                    .bind(i64::from(attempt.attempt))
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err(context))?;
            }
        }
        match outcome {
            AttemptOutcome::Retrying { last_error } => {
                sqlx::query("UPDATE recordings SET last_error = ? WHERE id = ?")
                    .bind(last_error)
                    .bind(id.get())
                    .execute(&mut *tx)
                    .await
                    .map_err(self.err(context))?;
                Ok(false)
            }
            AttemptOutcome::Started {
                contact_id,
                interaction_id,
            } => {
                self.started_on(&mut *tx, id, contact_id, interaction_id, None)
                    .await
            }
            AttemptOutcome::Moved {
                to,
                last_error,
                ended_at,
            } => self.move_on(&mut *tx, id, to, last_error, ended_at).await,
            AttemptOutcome::Nothing => Ok(false),
        }
    }

    async fn insert_attempt(
        &self,
        conn: &mut SqliteConnection,
        attempt: &NewAttempt,
    ) -> Result<i64, StoreError> {
        let latency = attempt
            .latency_ms
            .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX));
        sqlx::query_scalar(
            "INSERT INTO attempts (recording_id, at, operation, attempt, requested_seconds, \
             http_status, error, latency_ms, response_body) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(attempt.recording_id.get())
        .bind(format_utc(attempt.at))
        .bind(attempt.operation.as_str())
        .bind(i64::from(attempt.attempt))
        .bind(attempt.requested_seconds.map(i64::from))
        .bind(attempt.http_status.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(latency)
        .bind(attempt.response_body.as_deref().map(truncate_body))
        .fetch_one(conn)
        .await
        .map_err(|e| match e.as_database_error().map(|d| d.kind()) {
            Some(ErrorKind::ForeignKeyViolation) => {
                StoreError::RecordingNotFound(attempt.recording_id)
            }
            _ => StoreError::from_sqlx(&self.path, "recording an attempt", e),
        })
    }

    /// The audit trail of one recording, oldest first.
    pub async fn attempts_for(&self, id: RecordingId) -> Result<Vec<AttemptRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, recording_id, at, operation, attempt, requested_seconds, http_status, \
             error, latency_ms, response_body FROM attempts WHERE recording_id = ? \
             ORDER BY at, id",
        )
        .bind(id.get())
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading attempts"))?;
        rows.iter().map(attempt_row).collect()
    }
}

fn attempt_row(row: &SqliteRow) -> Result<AttemptRow, StoreError> {
    let c = Cols::new(row, "attempts")?;
    Ok(AttemptRow {
        id: c.id(),
        recording_id: RecordingId::new(c.get("recording_id")?),
        at: c.time("at")?,
        operation: c.map("operation", |raw: String| raw.parse::<Operation>())?,
        attempt: c.map("attempt", non_negative_u32)?,
        requested_seconds: c.map_opt("requested_seconds", non_negative_u32)?,
        http_status: c.map_opt("http_status", |raw: i64| u16::try_from(raw))?,
        error: c.get("error")?,
        latency_ms: c.get("latency_ms")?,
        response_body: c.get("response_body")?,
    })
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
