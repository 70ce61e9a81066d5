//! The coverage report's read of `recordings` and `attempts` in SQLite.

use chrono::{DateTime, Utc};
use sqlx::sqlite::SqliteRow;

use super::row::{parse_time, Cols};
use super::SqliteStore;
use crate::clock::format_utc;
use crate::recording::{RecordingState, UserId};
use crate::store::recordings::ends_after;
use crate::store::report::answered;
use crate::store::{BadRow, RecordingId, ReportRow, Rows, StoreError};

impl SqliteStore {
    /// Every `recordings` row whose segment meets `[from, to)`, by start
    /// then user, with its answered start; a row that does not read back
    /// is named in `bad`.
    pub async fn report_rows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rows<ReportRow>, StoreError> {
        let rows = sqlx::query(
            "SELECT r.id, r.user_id, r.policy_id, r.segment_start, r.segment_end, r.state, \
                    r.last_error, r.late_seconds, r.ended_at, \
                    a.at AS answer_at, a.latency_ms AS answer_latency_ms \
             FROM recordings r \
             LEFT JOIN attempts a ON a.id = ( \
                 SELECT max(s.id) FROM attempts s WHERE s.recording_id = r.id \
                 AND s.operation = 'start' AND s.http_status BETWEEN 200 AND 299) \
             WHERE r.segment_start < ?2 AND r.segment_end > ?1 \
             ORDER BY r.segment_start, r.user_id",
        )
        .bind(format_utc(from))
        .bind(format_utc(to))
        .fetch_all(&self.pool)
        .await
        .map_err(self.err("reading recordings for the report"))?;
        Ok(rows.iter().map(report_row).collect())
    }
}

fn report_row(row: &SqliteRow) -> Result<ReportRow, BadRow> {
    let c = Cols::new(row, "recordings")?;
    let segment_start = c.time("segment_start")?;
    let answer_at = c
        .get::<Option<String>>("answer_at")?
        .map(|raw| parse_time(&raw))
        .transpose()
        .map_err(|e| c.bad("attempts.at", e))?;
    Ok(ReportRow {
        id: RecordingId::new(c.id()),
        user_id: c.map("user_id", |raw: String| UserId::parse(raw))?,
        policy_id: c.get("policy_id")?,
        segment_start,
        segment_end: c.map("segment_end", |raw: String| {
            parse_time(&raw).and_then(|end| ends_after(end, segment_start))
        })?,
        state: c.map("state", |raw: String| raw.parse::<RecordingState>())?,
        last_error: c.get("last_error")?,
        late_seconds: c.get("late_seconds")?,
        ended_at: c.opt_time("ended_at")?,
        answered_at: answered(answer_at, c.get("answer_latency_ms")?),
    })
}
