//! Recording rows, for both backends: reading them back (judged column by
//! column, a bad one named), the planner's view of who is occupied, and
//! moving a row through its states under the guard of the state it was
//! read in and, on PostgreSQL, of its owner's lease (the fence).
//!
//! Claiming is the one write that differs in SQL (a multi-row `VALUES`
//! on SQLite, one `UNNEST` for a whole burst on PostgreSQL); each backend
//! has its own and both use [`claimed`] to answer in input order.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::recording::{ContactId, InteractionId, RecordingState, UserId};
use crate::store::db::{non_negative_u32, Cols, Db};
use crate::store::dialect::{Backend, Stmt};
use crate::store::recordings::{ends_after, occupancy};
use crate::store::{
    BadRow, EndMode, NewRecording, RecordingFilter, RecordingId, RecordingRow, Rows, StoreError,
};

/// The columns of a [`RecordingRow`], in SQL.
macro_rules! recording_columns {
    () => {
        "id, user_id, policy_id, segment_start, segment_end, requested_seconds, end_mode, \
         state, contact_id, interaction_id, attempts, last_error, late_seconds, ended_at, \
         created_at, updated_at"
    };
}
pub(crate) use recording_columns;

/// The states of an open row, as bound parameters.
pub(crate) const OPEN: [RecordingState; 3] = [
    RecordingState::Pending,
    RecordingState::Recording,
    RecordingState::Stopping,
];

impl<D: Backend> Db<D> {
    /// One row by id; [`StoreError::BadRow`] if it does not read back.
    pub async fn recording(&self, id: RecordingId) -> Result<Option<RecordingRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE id = $1"
        );
        let row = self
            .query_optional(Stmt::new(sql).arg(id.get()), "reading a recording")
            .await?;
        Ok(row.as_ref().map(judged::<D>).transpose()?)
    }

    /// Rows matching `filter`, newest segment first; a row that does not
    /// read back fails the call, named.
    pub async fn recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Vec<RecordingRow>, StoreError> {
        let read = self.read_recordings(filter).await?;
        match read.bad.into_iter().next() {
            Some(bad) => Err(bad.into()),
            None => Ok(read.rows),
        }
    }

    /// Rows matching `filter`, newest segment first, and the rows among
    /// them that do not read back.
    pub async fn read_recordings(
        &self,
        filter: &RecordingFilter,
    ) -> Result<Rows<RecordingRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings \
              WHERE ($1 IS NULL OR user_id = $1) \
                AND ($2 IS NULL OR state = $2) \
                AND ($3 IS NULL OR COALESCE(ended_at, segment_end) > $3) \
              ORDER BY segment_start DESC, id DESC \
              LIMIT $4"
        );
        let stmt = Stmt::new(sql)
            .arg(filter.user.as_ref().map(UserId::as_str))
            .arg(filter.state.map(RecordingState::as_str))
            .arg(filter.since)
            .arg(filter.limit.map_or(i64::MAX, i64::from));
        let rows = self.query(stmt, "listing recordings").await?;
        Ok(rows.iter().map(judged::<D>).collect())
    }

    /// Rows not yet final (`pending`, `recording`, `stopping`), oldest
    /// segment first: what the daemon must track again after a restart;
    /// and the open rows that do not read back, which it must leave alone.
    pub async fn open_rows(&self) -> Result<Rows<RecordingRow>, StoreError> {
        let sql = concat!(
            "SELECT ",
            recording_columns!(),
            " FROM recordings WHERE state IN ($1, $2, $3) ORDER BY segment_start, id"
        );
        let rows = self
            .query(open_states(Stmt::new(sql)), "reading open recordings")
            .await?;
        Ok(rows.iter().map(judged::<D>).collect())
    }

    /// Every segment, in any state, still occupying its user after `since`
    /// (effective end `COALESCE(ended_at, segment_end)` later than it) or
    /// not yet final, as `(user, segment_start, effective_end)`, by user
    /// then start. A failed or missed segment occupies its slot too, so the
    /// planner does not claim it again as a new row.
    ///
    /// Each row is judged on the columns that place it in time (user id,
    /// segment start and end, `ended_at`, state): one that does not read
    /// back is named in `bad`, and if its user id reads, that user is
    /// occupied [`until_fixed`]. (The other columns matter to the rows the
    /// daemon adopts, which [`Db::open_rows`] judges whole.)
    ///
    /// [`until_fixed`]: crate::store::until_fixed
    pub async fn occupied_since(
        &self,
        since: DateTime<Utc>,
    ) -> Result<Rows<(UserId, DateTime<Utc>, DateTime<Utc>)>, StoreError> {
        // Only what places the row in time is read: a pass reads every
        // row occupying a user, up to one per user of a burst.
        let sql = "SELECT id, user_id, segment_start, segment_end, ended_at, state \
                   FROM recordings \
                   WHERE state IN ($1, $2, $3) OR COALESCE(ended_at, segment_end) > $4 \
                   ORDER BY user_id, segment_start";
        let stmt = open_states(Stmt::new(sql)).arg(since);
        let rows = self.query(stmt, "reading occupied segments").await?;
        Ok(occupancy(rows.iter().map(|row| {
            occupying::<D>(row).map_err(|bad| with_user::<D>(row, bad))
        })))
    }
}

/// `stmt` with the open states bound as its next three parameters.
pub(crate) fn open_states(stmt: Stmt<'_>) -> Stmt<'_> {
    OPEN.iter().fold(stmt, |s, state| s.arg(state.as_str()))
}

/// The answer to a claim of `new`, in input order: the id of each segment
/// this claim inserted, from what the INSERT returned as
/// `(id, user_id, segment_start)` (in no promised order). A key given
/// twice is won once, by its first asker.
pub(crate) fn claimed<D: Backend>(
    new: &[NewRecording],
    inserted: &[D::Row],
) -> Result<Vec<Option<RecordingId>>, StoreError> {
    let mut won: HashMap<(String, DateTime<Utc>), i64> = HashMap::with_capacity(inserted.len());
    for row in inserted {
        let c = Cols::<D>::new(row, "recordings")?;
        won.insert((c.get("user_id")?, c.get("segment_start")?), c.id());
    }
    Ok(new
        .iter()
        .map(|n| {
            let key = (n.user_id.as_str().to_owned(), D::stored(n.segment_start));
            won.remove(&key).map(RecordingId::new)
        })
        .collect())
}

/// The span a row keeps its user occupied: its user, start and effective
/// end, judged with its state (the columns that place it in time).
fn occupying<D: Backend>(row: &D::Row) -> Result<(UserId, DateTime<Utc>, DateTime<Utc>), BadRow> {
    let c = Cols::<D>::new(row, "recordings")?;
    let user = c.map("user_id", |raw: String| UserId::parse(raw))?;
    let start = c.get("segment_start")?;
    let end = c.map("segment_end", |end| ends_after(end, start))?;
    let ended_at: Option<DateTime<Utc>> = c.get("ended_at")?;
    c.map("state", |raw: String| raw.parse::<RecordingState>())?;
    Ok((user, start, ended_at.unwrap_or(end)))
}

/// `bad`, with the user it keeps occupied when the row's user id reads.
fn with_user<D: Backend>(row: &D::Row, bad: BadRow) -> BadRow {
    let user = Cols::<D>::new(row, "recordings")
        .and_then(|c| c.map("user_id", |raw: String| UserId::parse(raw)));
    match user {
        Ok(user) => bad.occupying(user),
        Err(_) => bad,
    }
}

/// A row read back, or named with the user it keeps occupied (when the
/// user id itself reads).
pub(crate) fn judged<D: Backend>(row: &D::Row) -> Result<RecordingRow, BadRow> {
    recording_row::<D>(row).map_err(|bad| with_user::<D>(row, bad))
}

fn recording_row<D: Backend>(row: &D::Row) -> Result<RecordingRow, BadRow> {
    let c = Cols::<D>::new(row, "recordings")?;
    let segment_start = c.get("segment_start")?;
    Ok(RecordingRow {
        id: RecordingId::new(c.id()),
        user_id: c.map("user_id", |raw: String| UserId::parse(raw))?,
        policy_id: c.get("policy_id")?,
        segment_start,
        segment_end: c.map("segment_end", |end| ends_after(end, segment_start))?,
        requested_seconds: c.map("requested_seconds", non_negative_u32)?,
        end_mode: c.map("end_mode", |raw: String| raw.parse::<EndMode>())?,
        state: c.map("state", |raw: String| raw.parse::<RecordingState>())?,
        contact_id: c.map_opt("contact_id", ContactId::new)?,
        interaction_id: c
            .get::<Option<String>>("interaction_id")?
            .map(InteractionId),
        attempts: c.map("attempts", non_negative_u32)?,
        last_error: c.get("last_error")?,
        late_seconds: c.get("late_seconds")?,
        ended_at: c.get("ended_at")?,
        created_at: c.get("created_at")?,
        updated_at: c.get("updated_at")?,
    })
}
