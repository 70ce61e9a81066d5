//! A batch of row writes folded into what the database is asked to do:
//! one edit per recording row and the audit rows to insert, with each
//! write's answer. Pure: the rows' states come in (read once for the whole
//! batch, under the write lock or the rows' locks), statements go out.
//!
//! # Why fold
//! A burst answers thousands of starts at once. Applied one write at a
//! time, each cost a read of the row's state and two or three statements
//! (the audit row, the attempt count, the move), each a round trip to the
//! database; that was most of the writer's time (docs/benchmarks.md).
//! Folded, a batch is three set-based statements whatever its size: the
//! states of its rows, one UPDATE of every row it changes, one INSERT of
//! its audit rows.
//!
//! # The rules, as when writes were applied one by one, in order
//! - A write to a row that does not exist, that does not read back, or
//!   that this handle may not write (the fence, PostgreSQL) changes
//!   nothing, not even the audit trail, and is that write's error alone.
//! - Otherwise its audit row is kept (the exchange happened), a start's
//!   attempt number raises the row's count (never lowers it), and then:
//!   - `Retrying` notes the last error;
//!   - `Started` keeps the contact id (and the interaction id when
//!     given) in any state, since the vendor is recording and a stop needs
//!     it; a `pending` row moves to `recording` and its last error is
//!     cleared;
//!   - `Moved` to the state the row is in already is `Ok(false)` and
//!     writes nothing; a move the diagram forbids
//!     ([`RecordingState::can_move_to`]) is [`StoreError::IllegalMove`]
//!     (the audit row and the count stay); a legal one moves the row and
//!     writes `last_error` and `ended_at` when given.
//! - Later writes to the same row see what earlier ones did.
//!
//! The UPDATE moves a row only from the state it was read in (the guard,
//! in SQL), so a concurrent writer can never make a row go backwards.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::recording::RecordingState;

use super::{AttemptOutcome, BadRow, NewAttempt, Operation, RecordingId, RowWrite, StoreError};

/// What the batch's read learnt about one row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    /// The row, in this state, and this handle may write it.
    State(RecordingState),
    /// The fence: another instance's, or its lease ran out.
    Lost,
    /// It does not read back.
    Bad(BadRow),
}

/// The last error of a row after the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LastError<'a> {
    Keep,
    Clear,
    Set(&'a str),
}

impl<'a> LastError<'a> {
    /// Whether the column is set to NULL.
    pub fn clears(self) -> bool {
        self == Self::Clear
    }

    /// The text it is set to, if any.
    pub fn text(self) -> Option<&'a str> {
        match self {
            Self::Set(text) => Some(text),
            _ => None,
        }
    }
}

/// Everything a batch does to one row, as one UPDATE.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RowEdit<'a> {
    pub id: i64,
    /// The state the row was read in: the UPDATE moves it only from here.
    pub from: RecordingState,
    /// Its state after the batch (`from` when it does not move).
    pub to: RecordingState,
    pub contact_id: Option<i64>,
    /// Written when given; otherwise the stored one stays.
    pub interaction_id: Option<&'a str>,
    /// The attempt count is raised to this when lower.
    pub attempts_at_least: Option<i64>,
    pub last_error: LastError<'a>,
    /// Written when given.
    pub ended_at: Option<DateTime<Utc>>,
}

impl<'a> RowEdit<'a> {
    fn new(id: i64, state: RecordingState) -> Self {
        Self {
            id,
            from: state,
            to: state,
            contact_id: None,
            interaction_id: None,
            attempts_at_least: None,
            last_error: LastError::Keep,
            ended_at: None,
        }
    }

    /// Whether the UPDATE would change nothing.
    fn is_empty(&self) -> bool {
        self.from == self.to
            && self.contact_id.is_none()
            && self.interaction_id.is_none()
            && self.attempts_at_least.is_none()
            && self.last_error == LastError::Keep
            && self.ended_at.is_none()
    }
}

/// A batch, folded.
#[derive(Debug, Default)]
pub(crate) struct Folded<'a> {
    /// One per row the batch changes, by id.
    pub edits: Vec<RowEdit<'a>>,
    /// The audit rows to insert, in the batch's order.
    pub audit: Vec<&'a NewAttempt>,
    /// Each write's answer, in the batch's order.
    pub results: Vec<Result<bool, StoreError>>,
    /// The row of each write, in the batch's order.
    rows: Vec<RecordingId>,
    /// The row of each audit row's write, in the order of `audit`.
    audit_rows: Vec<RecordingId>,
}

impl Folded<'_> {
    /// The UPDATE left row `id` in another state than planned (its guard
    /// did not match: a writer the locks did not keep out): no write
    /// moved it.
    pub fn not_moved(&mut self, id: i64) {
        for (row, result) in self.rows.iter().zip(&mut self.results) {
            if row.get() == id && matches!(result, Ok(true)) {
                *result = Ok(false);
            }
        }
    }

    /// The UPDATE did not find row `id` writable (the fence, checked again
    /// in its own WHERE): every write to it is lost, audit rows included.
    pub fn lost(&mut self, id: i64) {
        for (row, result) in self.rows.iter().zip(&mut self.results) {
            if row.get() == id {
                *result = Err(StoreError::Lost { id: *row });
            }
        }
        let mut keep = self.audit_rows.iter().map(|row| row.get() != id);
        self.audit.retain(|_| keep.next().unwrap_or(true));
        self.audit_rows.retain(|row| row.get() != id);
    }
}

/// The ids the batch's read must cover: every write's row and every
/// audit row's, each once, in ascending order (the order PostgreSQL locks
/// them in, so two batches never wait for each other in a cycle).
pub(crate) fn rows_to_read(writes: &[RowWrite]) -> Vec<i64> {
    let mut ids: Vec<i64> = writes
        .iter()
        .flat_map(|w| {
            let audit = w.attempt.as_ref().map(|a| a.recording_id.get());
            std::iter::once(w.recording_id.get()).chain(audit)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Folds `writes` given what the read `found` (a row missing from it does
/// not exist). See the module docs for the rules.
pub(crate) fn fold<'a>(writes: &'a [RowWrite], found: &HashMap<i64, Found>) -> Folded<'a> {
    let mut edits: HashMap<i64, RowEdit<'a>> = HashMap::new();
    let mut order: Vec<i64> = Vec::new();
    let mut folded = Folded {
        results: Vec::with_capacity(writes.len()),
        audit: Vec::with_capacity(writes.len()),
        rows: Vec::with_capacity(writes.len()),
        ..Folded::default()
    };
    for w in writes {
        let id = w.recording_id;
        folded.rows.push(id);
        let audit_id = w.attempt.as_ref().map(|a| a.recording_id);
        let writable = writable(id, found).and_then(|state| {
            // An audit row names its own recording: it must be writable too.
            match audit_id {
                Some(other) if other != id => writable(other, found).map(|_| state),
                _ => Ok(state),
            }
        });
        let state = match writable {
            Ok(state) => state,
            Err(e) => {
                folded.results.push(Err(e));
                continue;
            }
        };
        let edit = edits.entry(id.get()).or_insert_with(|| {
            order.push(id.get());
            RowEdit::new(id.get(), state)
        });
        if let Some(attempt) = &w.attempt {
            folded.audit.push(attempt);
            folded.audit_rows.push(id);
            if attempt.operation == Operation::Start {
                let n = i64::from(attempt.attempt);
                edit.attempts_at_least = Some(edit.attempts_at_least.map_or(n, |m| m.max(n)));
            }
        }
        let result = apply(edit, w.outcome.borrowed());
        folded
            .results
            .push(result.map_err(|(from, to)| StoreError::IllegalMove { id, from, to }));
    }
    folded.edits = order
        .into_iter()
        .filter_map(|id| edits.remove(&id))
        .filter(|e| !e.is_empty())
        .collect();
    folded
}

/// The state of row `id` if this handle may write it, else the error.
fn writable(id: RecordingId, found: &HashMap<i64, Found>) -> Result<RecordingState, StoreError> {
    match found.get(&id.get()) {
        None => Err(StoreError::RecordingNotFound(id)),
        Some(Found::Lost) => Err(StoreError::Lost { id }),
        Some(Found::Bad(bad)) => Err(StoreError::BadRow(bad.clone())),
        Some(Found::State(state)) => Ok(*state),
    }
}

/// One outcome on the row's edit: whether the row moved, or the illegal
/// move `(from, to)`.
fn apply<'a>(
    edit: &mut RowEdit<'a>,
    outcome: AttemptOutcome<'a>,
) -> Result<bool, (RecordingState, RecordingState)> {
    match outcome {
        AttemptOutcome::Retrying { last_error } => {
            edit.last_error = LastError::Set(last_error);
            Ok(false)
        }
        AttemptOutcome::Started {
            contact_id,
            interaction_id,
        } => {
            edit.contact_id = Some(contact_id.get());
            if let Some(interaction) = interaction_id {
                edit.interaction_id = Some(interaction.0.as_str());
            }
            if edit.to == RecordingState::Pending {
                edit.to = RecordingState::Recording;
                edit.last_error = LastError::Clear;
                Ok(true)
            } else {
                Ok(false)
            }
        }
        AttemptOutcome::Moved {
            to,
            last_error,
            ended_at,
        } => {
            let from = edit.to;
            if from == to {
                return Ok(false);
            }
            if !from.can_move_to(to) {
                return Err((from, to));
            }
            edit.to = to;
            if let Some(text) = last_error {
                edit.last_error = LastError::Set(text);
            }
            if ended_at.is_some() {
                edit.ended_at = ended_at;
            }
            Ok(true)
        }
        AttemptOutcome::Nothing => Ok(false),
    }
}

/// The columns of the set of edits `w` an UPDATE reads, in the order the
/// backends bind them.
macro_rules! edit_columns {
    () => {
        "w_id, w_from, w_to, w_contact, w_interaction, w_attempts, w_clear, w_error, w_ended"
    };
}
pub(crate) use edit_columns;

/// The SET clause of the UPDATE of a batch's rows, from the set of edits
/// `w` ([`edit_columns!`]): the same text on both backends. The state
/// moves only from the state the row was read in (the guard); the contact
/// id is kept whatever the state.
macro_rules! edit_set {
    () => {
        "state = CASE WHEN state = w.w_from THEN w.w_to ELSE state END, \
         contact_id = COALESCE(w.w_contact, contact_id), \
         interaction_id = COALESCE(w.w_interaction, interaction_id), \
         attempts = CASE WHEN w.w_attempts > attempts THEN w.w_attempts ELSE attempts END, \
         last_error = CASE WHEN w.w_clear THEN NULL ELSE COALESCE(w.w_error, last_error) END, \
         ended_at = COALESCE(w.w_ended, ended_at)"
    };
}
pub(crate) use edit_set;

/// The columns of an audit row, in the order the backends bind them.
macro_rules! attempt_columns {
    () => {
        "recording_id, at, operation, attempt, requested_seconds, http_status, error, \
         latency_ms, response_body"
    };
}
pub(crate) use attempt_columns;

/// `latency_ms` as stored (an `i64`; a latency that does not fit is kept
/// as the largest one).
pub(crate) fn latency(attempt: &NewAttempt) -> Option<i64> {
    attempt
        .latency_ms
        .map(|ms| i64::try_from(ms).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::recording::{ContactId, InteractionId};
    use crate::store::OwnedOutcome;
    use RecordingState::*;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 9, 0, s).unwrap()
    }

    fn exchange(id: i64, operation: Operation, attempt: u32) -> NewAttempt {
        NewAttempt {
            recording_id: RecordingId::new(id),
            at: at(attempt),
            operation,
            attempt,
            requested_seconds: None,
            http_status: Some(202),
            error: None,
            latency_ms: Some(20),
            response_body: None,
        }
    }

    fn write(id: i64, attempt: Option<NewAttempt>, outcome: OwnedOutcome) -> RowWrite {
        RowWrite {
            recording_id: RecordingId::new(id),
            attempt,
            outcome,
        }
    }

    fn started(contact: i64) -> OwnedOutcome {
        OwnedOutcome::Started {
            contact_id: ContactId::new(contact).unwrap(),
            interaction_id: None,
        }
    }

    fn moved(to: RecordingState) -> OwnedOutcome {
        OwnedOutcome::Moved {
            to,
            last_error: None,
            ended_at: None,
        }
    }

    fn found(rows: &[(i64, Found)]) -> HashMap<i64, Found> {
        rows.iter().cloned().collect()
    }

    fn answers(folded: &Folded<'_>) -> Vec<String> {
        folded
            .results
            .iter()
            .map(|r| match r {
                Ok(moved) => moved.to_string(),
                Err(StoreError::IllegalMove { from, to, .. }) => format!("illegal {from}->{to}"),
                Err(StoreError::Lost { id }) => format!("lost {id}"),
                Err(StoreError::RecordingNotFound(id)) => format!("missing {id}"),
                Err(StoreError::BadRow(bad)) => format!("bad {}", bad.column),
                Err(other) => format!("{other}"),
            })
            .collect()
    }

    #[test]
    fn later_writes_to_a_row_see_what_earlier_ones_did_and_fold_into_one_edit() {
        let writes = [
            write(1, Some(exchange(1, Operation::Start, 2)), started(7)),
            write(1, None, moved(Stopping)),
            // Illegal from where the row now stands (stopping), not from
            // where it was read (pending); its audit row stays.
            write(1, Some(exchange(1, Operation::Stop, 1)), moved(Pending)),
            write(1, Some(exchange(1, Operation::Stop, 2)), moved(Stopped)),
        ];
        let folded = fold(&writes, &found(&[(1, Found::State(Pending))]));
        assert_eq!(
            answers(&folded),
            ["true", "true", "illegal stopping->pending", "true"]
        );
        assert_eq!(folded.edits.len(), 1);
        let edit = &folded.edits[0];
        assert_eq!((edit.id, edit.from, edit.to), (1, Pending, Stopped));
        assert_eq!(edit.contact_id, Some(7));
        assert_eq!(edit.last_error, LastError::Clear);
        assert_eq!(edit.attempts_at_least, Some(2), "stops are not counted");
        assert_eq!(folded.audit.len(), 3);
    }

    #[test]
    fn a_missing_lost_or_unreadable_row_costs_only_its_writes_and_keeps_no_audit_row() {
        let bad = BadRow::new("recordings", 3, "state", "`paused` is not a state");
        let writes = [
            write(1, Some(exchange(1, Operation::Start, 1)), started(5)),
            write(2, Some(exchange(2, Operation::Start, 1)), started(6)),
            write(3, Some(exchange(3, Operation::Start, 1)), started(7)),
            write(4, Some(exchange(4, Operation::Start, 1)), started(8)),
            // The write's row is fine, the audit row names a missing one.
            write(
                1,
                Some(exchange(9, Operation::Start, 1)),
                OwnedOutcome::Nothing,
            ),
        ];
        let folded = fold(
            &writes,
            &found(&[
                (1, Found::State(Pending)),
                (2, Found::Lost),
                (3, Found::Bad(bad)),
            ]),
        );
        assert_eq!(
            answers(&folded),
            ["true", "lost 2", "bad state", "missing 4", "missing 9"]
        );
        assert_eq!(folded.edits.len(), 1);
        assert_eq!(folded.edits[0].id, 1);
        assert_eq!(folded.audit.len(), 1);
        assert_eq!(folded.audit[0].recording_id.get(), 1);
    }

    #[test]
    fn the_contact_id_is_kept_in_any_state_and_only_a_pending_row_moves() {
        let interaction = InteractionId("g-1".into());
        let writes = [
            write(
                1,
                None,
                OwnedOutcome::Retrying {
                    last_error: "HTTP 425".into(),
                },
            ),
            write(
                1,
                None,
                OwnedOutcome::Started {
                    contact_id: ContactId::new(9).unwrap(),
                    interaction_id: Some(interaction.clone()),
                },
            ),
        ];
        let folded = fold(&writes, &found(&[(1, Found::State(Failed))]));
        assert_eq!(answers(&folded), ["false", "false"]);
        let edit = &folded.edits[0];
        assert_eq!((edit.from, edit.to), (Failed, Failed));
        assert_eq!(edit.contact_id, Some(9));
        assert_eq!(edit.interaction_id, Some("g-1"));
        assert_eq!(edit.last_error, LastError::Set("HTTP 425"));
    }

    #[test]
    fn a_move_to_where_the_row_is_writes_nothing_but_its_audit_row() {
        let writes = [write(
            1,
            Some(exchange(1, Operation::Stop, 1)),
            OwnedOutcome::Moved {
                to: Expired,
                last_error: Some("late".into()),
                ended_at: Some(at(9)),
            },
        )];
        let folded = fold(&writes, &found(&[(1, Found::State(Expired))]));
        assert_eq!(answers(&folded), ["false"]);
        assert!(folded.edits.is_empty(), "{:?}", folded.edits);
        assert_eq!(folded.audit.len(), 1);
    }

    #[test]
    fn the_attempt_count_is_raised_never_lowered_and_a_legal_move_writes_its_notes() {
        let writes = [
            write(
                1,
                Some(exchange(1, Operation::Start, 3)),
                OwnedOutcome::Nothing,
            ),
            write(
                1,
                Some(exchange(1, Operation::Start, 2)),
                OwnedOutcome::Moved {
                    to: Failed,
                    last_error: Some("HTTP 400".into()),
                    ended_at: Some(at(5)),
                },
            ),
        ];
        let folded = fold(&writes, &found(&[(1, Found::State(Pending))]));
        assert_eq!(answers(&folded), ["false", "true"]);
        let edit = &folded.edits[0];
        assert_eq!(edit.attempts_at_least, Some(3));
        assert_eq!(edit.last_error, LastError::Set("HTTP 400"));
        assert_eq!(edit.ended_at, Some(at(5)));
    }

    #[test]
    fn a_row_the_update_did_not_find_loses_its_writes_and_audit_rows() {
        let writes = [
            write(1, Some(exchange(1, Operation::Start, 1)), started(5)),
            write(2, Some(exchange(2, Operation::Start, 1)), started(6)),
            write(2, None, moved(Stopping)),
        ];
        let mut folded = fold(
            &writes,
            &found(&[(1, Found::State(Pending)), (2, Found::State(Pending))]),
        );
        folded.lost(2);
        assert_eq!(answers(&folded), ["true", "lost 2", "lost 2"]);
        assert_eq!(folded.audit.len(), 1);
        assert_eq!(folded.audit[0].recording_id.get(), 1);
        folded.not_moved(1);
        assert_eq!(answers(&folded), ["false", "lost 2", "lost 2"]);
    }

    #[test]
    fn the_read_covers_every_row_and_audit_row_once_in_ascending_order() {
        let writes = [
            write(5, Some(exchange(5, Operation::Start, 1)), started(1)),
            write(2, Some(exchange(7, Operation::Start, 1)), started(1)),
            write(5, None, OwnedOutcome::Nothing),
        ];
        assert_eq!(rows_to_read(&writes), [2, 5, 7]);
    }
}
