//! The coverage report's read of `recordings` and `attempts`, for both
//! backends: each row whose segment meets the period, with when the
//! vendor answered its start (the last start attempt with a 2xx status).

use chrono::{DateTime, Utc};

use crate::recording::{RecordingState, UserId};
use crate::store::db::{Col, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::recordings::ends_after;
use crate::store::report::answered;
use crate::store::{BadRow, Operation, RecordingId, ReportRow, Rows, StoreError};

impl<D: Backend> Db<D> {
    /// Every `recordings` row whose segment meets `[from, to)`, by start
    /// then user, with its answered start; a row that does not read back
    /// is named in `bad`.
    pub async fn report_rows(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Rows<ReportRow>, StoreError> {
        let stmt = Stmt::new(
            "SELECT r.id, r.user_id, r.policy_id, r.segment_start, r.segment_end, r.state, \
                    r.last_error, r.late_seconds, r.ended_at, \
                    a.at AS answer_at, a.latency_ms AS answer_latency_ms \
             FROM recordings r \
             LEFT JOIN attempts a ON a.id = ( \
                 SELECT max(s.id) FROM attempts s WHERE s.recording_id = r.id \
                 AND s.operation = $3 AND s.http_status BETWEEN 200 AND 299) \
             WHERE r.segment_start < $2 AND r.segment_end > $1 \
             ORDER BY r.segment_start, r.user_id",
        )
        .arg(from)
        .arg(to)
        .arg(Operation::Start.as_str());
        let rows = self
            .query(stmt, "reading recordings for the report")
            .await?;
        Ok(rows.iter().map(report_row::<D>).collect())
    }
}

fn report_row<D: Backend>(row: &D::Row) -> Result<ReportRow, BadRow> {
    let c = Cols::<D>::new(row, "recordings")?;
    let segment_start = c.get("segment_start")?;
    let answer_at = <Option<DateTime<Utc>> as Col>::read::<D>(row, "answer_at")
        .map_err(|e| c.bad("attempts.at", e))?;
    Ok(ReportRow {
        id: RecordingId::new(c.id()),
        user_id: c.map("user_id", |raw: String| UserId::parse(raw))?,
        policy_id: c.get("policy_id")?,
        segment_start,
        segment_end: c.map("segment_end", |end| ends_after(end, segment_start))?,
        state: c.map("state", |raw: String| raw.parse::<RecordingState>())?,
        last_error: c.get("last_error")?,
        late_seconds: c.get("late_seconds")?,
        ended_at: c.get("ended_at")?,
        answered_at: answered(answer_at, c.get("answer_latency_ms")?),
    })
}
