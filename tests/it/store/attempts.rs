//! The audit trail, on both backends: one row per exchange, bodies cut at
//! 2 KiB, and the exchange written together with its effect on the
//! recording row, one write or a batch at a time.

use recsched::recording::{ContactId, InteractionId, RecordingState};
use recsched::store::{
    AttemptOutcome, NewAttempt, Operation, OwnedOutcome, RecordingId, RowWrite, StoreError,
    RESPONSE_BODY_MAX_BYTES,
};

use super::{at, on_both_backends, segment, TestDb};

fn exchange(id: RecordingId, attempt: u32, status: Option<u16>) -> NewAttempt {
    NewAttempt {
        recording_id: id,
        at: at(9, 0, attempt),
        operation: Operation::Start,
        attempt,
        requested_seconds: Some(3600 - attempt),
        http_status: status,
        error: None,
        latency_ms: Some(120),
        response_body: None,
    }
}

async fn an_attempt_is_written_and_its_body_cut_on_a_char_boundary(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let body = format!(
        "{}é{}",
        "x".repeat(RESPONSE_BODY_MAX_BYTES - 1),
        "y".repeat(500)
    );
    let mut first = exchange(id, 1, None);
    first.error = Some("connect timeout".into());
    first.latency_ms = None;
    let mut second = exchange(id, 2, Some(425));
    second.response_body = Some(body);
    store.record_attempt(&first).await.unwrap();
    store.record_attempt(&second).await.unwrap();

    let rows = store.attempts_for(id).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].http_status, None);
    assert_eq!(rows[0].error.as_deref(), Some("connect timeout"));
    assert_eq!(rows[0].latency_ms, None);
    assert_eq!(rows[1].http_status, Some(425));
    assert_eq!(rows[1].operation, Operation::Start);
    assert_eq!(rows[1].requested_seconds, Some(3598));
    assert_eq!(rows[1].at, at(9, 0, 2));
    let kept = rows[1].response_body.as_deref().unwrap();
    assert_eq!(
        kept.len(),
        RESPONSE_BODY_MAX_BYTES - 1,
        "the 2-byte é does not fit"
    );
    assert!(kept.chars().all(|c| c == 'x'));
}

async fn an_attempt_for_a_missing_recording_is_refused(db: TestDb) {
    let store = &db.store;
    let err = store
        .record_attempt(&exchange(RecordingId::new(77), 1, Some(202)))
        .await
        .unwrap_err();
    assert!(
        matches!(err, StoreError::RecordingNotFound(id) if id.get() == 77),
        "{err:?}"
    );
}

async fn finishing_an_attempt_updates_the_row_with_it(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();

    let moved = store
        .finish_attempt(
            &exchange(id, 1, Some(504)),
            AttemptOutcome::Retrying {
                last_error: "504 gateway timeout; retrying",
            },
        )
        .await
        .unwrap();
    assert!(!moved);
    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!((row.state, row.attempts), (RecordingState::Pending, 1));
    assert_eq!(
        row.last_error.as_deref(),
        Some("504 gateway timeout; retrying")
    );

    let interaction = InteractionId("g-9".into());
    let moved = store
        .finish_attempt(
            &exchange(id, 2, Some(202)),
            AttemptOutcome::Started {
                contact_id: ContactId::new(9).unwrap(),
                interaction_id: Some(&interaction),
            },
        )
        .await
        .unwrap();
    assert!(moved);
    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!(row.state, RecordingState::Recording);
    assert_eq!(row.attempts, 2);
    assert_eq!(row.contact_id, Some(ContactId::new(9).unwrap()));
    assert_eq!(row.last_error, None, "a start clears the retry note");

    let mut stop = exchange(id, 1, Some(202));
    stop.operation = Operation::Stop;
    stop.requested_seconds = None;
    let moved = store
        .finish_attempt(
            &stop,
            AttemptOutcome::Moved {
                to: RecordingState::Stopped,
                last_error: None,
                ended_at: Some(at(9, 30, 0)),
            },
        )
        .await
        .unwrap();
    assert!(moved);
    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!(row.state, RecordingState::Stopped);
    assert_eq!(row.attempts, 2, "stops do not count as start attempts");
    assert_eq!(store.attempts_for(id).await.unwrap().len(), 3);
}

async fn an_illegal_move_still_leaves_the_exchange_in_the_audit_trail(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .set_state(id, RecordingState::Expired, None, None)
        .await
        .unwrap();
    let err = store
        .finish_attempt(
            &exchange(id, 1, Some(202)),
            AttemptOutcome::Moved {
                to: RecordingState::Stopped,
                last_error: None,
                ended_at: None,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::IllegalMove { .. }), "{err:?}");
    assert_eq!(store.attempts_for(id).await.unwrap().len(), 1);
    assert_eq!(
        store.recording(id).await.unwrap().unwrap().state,
        RecordingState::Expired
    );
}

async fn a_batch_commits_many_writes_at_once_and_reports_each(db: TestDb) {
    let store = &db.store;
    let a = store
        .claim(&segment("b1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let b = store
        .claim(&segment("b2", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let writes = vec![
        recsched::store::RowWrite {
            recording_id: a,
            attempt: Some(exchange(a, 1, Some(200))),
            outcome: recsched::store::OwnedOutcome::Started {
                contact_id: ContactId::new(77).unwrap(),
                interaction_id: Some(InteractionId("i-77".into())),
            },
        },
        // Illegal: pending -> stopped. Reported, and the others still land.
        recsched::store::RowWrite {
            recording_id: b,
            attempt: None,
            outcome: recsched::store::OwnedOutcome::Moved {
                to: RecordingState::Stopped,
                last_error: None,
                ended_at: None,
            },
        },
        recsched::store::RowWrite {
            recording_id: b,
            attempt: Some(exchange(b, 1, Some(425))),
            outcome: recsched::store::OwnedOutcome::Retrying {
                last_error: "HTTP 425".into(),
            },
        },
        // No such row: reported, nothing written for it.
        recsched::store::RowWrite {
            recording_id: RecordingId::new(999_999),
            attempt: Some(exchange(RecordingId::new(999_999), 1, Some(200))),
            outcome: recsched::store::OwnedOutcome::Nothing,
        },
    ];
    let results = store.write_batch(&writes).await.unwrap();
    assert_eq!(results.len(), 4);
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    assert!(matches!(results[1], Err(StoreError::IllegalMove { .. })));
    assert!(matches!(results[2], Ok(false)));
    assert!(
        matches!(results[3], Err(StoreError::RecordingNotFound(_))),
        "{results:?}"
    );
    let ra = store.recording(a).await.unwrap().unwrap();
    assert_eq!(ra.state, RecordingState::Recording);
    assert_eq!(ra.contact_id, Some(ContactId::new(77).unwrap()));
    let rb = store.recording(b).await.unwrap().unwrap();
    assert_eq!(rb.state, RecordingState::Pending);
    assert_eq!(rb.last_error.as_deref(), Some("HTTP 425"));
    let audit = store.attempts_for(a).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(
        (audit[0].http_status, audit[0].at),
        (Some(200), at(9, 0, 1))
    );
    assert_eq!(store.attempts_for(b).await.unwrap().len(), 1);
}

fn row_write(id: RecordingId, attempt: Option<NewAttempt>, outcome: OwnedOutcome) -> RowWrite {
    RowWrite {
        recording_id: id,
        attempt,
        outcome,
    }
}

fn moved(to: RecordingState) -> OwnedOutcome {
    OwnedOutcome::Moved {
        to,
        last_error: None,
        ended_at: None,
    }
}

fn answered(contact: i64) -> OwnedOutcome {
    OwnedOutcome::Started {
        contact_id: ContactId::new(contact).unwrap(),
        interaction_id: None,
    }
}

/// `(state, contact id, attempts, last error, audit rows)` of row `id`.
async fn stored(
    store: &recsched::store::Store,
    id: RecordingId,
) -> (RecordingState, Option<i64>, u32, Option<String>, usize) {
    let row = store.recording(id).await.unwrap().unwrap();
    let audit = store.attempts_for(id).await.unwrap().len();
    (
        row.state,
        row.contact_id.map(|c| c.get()),
        row.attempts,
        row.last_error,
        audit,
    )
}

async fn a_mixed_batch_lands_its_legal_writes_and_answers_each_one_in_order(db: TestDb) {
    let store = &db.store;
    let burst: Vec<_> = ["m1", "m2", "m3", "m4"]
        .iter()
        .map(|u| segment(u, at(9, 0, 0)))
        .collect();
    let ids: Vec<RecordingId> = store
        .claim_many(&burst)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let (a, b, c, d) = (ids[0], ids[1], ids[2], ids[3]);
    store
        .set_state(c, RecordingState::Expired, None, None)
        .await
        .unwrap();
    store
        .set_state(d, RecordingState::Recording, None, None)
        .await
        .unwrap();
    let missing = RecordingId::new(999_999);
    let mut stop = exchange(b, 1, Some(202));
    stop.operation = Operation::Stop;
    let writes = vec![
        row_write(a, Some(exchange(a, 1, Some(202))), answered(11)),
        // Illegal (pending -> stopped): its audit row stays.
        row_write(b, Some(stop), moved(RecordingState::Stopped)),
        // A late answer: the contact id is kept, the row stays expired.
        row_write(c, None, answered(33)),
        row_write(missing, Some(exchange(missing, 1, Some(202))), answered(1)),
        // Sees the first write: recording -> stopping is legal.
        row_write(a, None, moved(RecordingState::Stopping)),
        row_write(d, None, moved(RecordingState::Recording)),
        row_write(
            b,
            Some(exchange(b, 2, Some(425))),
            OwnedOutcome::Retrying {
                last_error: "HTTP 425".into(),
            },
        ),
    ];
    let results = store.write_batch(&writes).await.unwrap();
    let shown: Vec<String> = results
        .iter()
        .map(|r| match r {
            Ok(moved) => moved.to_string(),
            Err(StoreError::IllegalMove { from, to, .. }) => format!("illegal {from}->{to}"),
            Err(StoreError::RecordingNotFound(id)) => format!("missing {id}"),
            Err(e) => e.to_string(),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "true",
            "illegal pending->stopped",
            "false",
            "missing 999999",
            "true",
            "false",
            "false"
        ]
    );
    use RecordingState::*;
    assert_eq!(stored(store, a).await, (Stopping, Some(11), 1, None, 1));
    assert_eq!(
        stored(store, b).await,
        (Pending, None, 2, Some("HTTP 425".into()), 2)
    );
    assert_eq!(stored(store, c).await, (Expired, Some(33), 0, None, 0));
    assert_eq!(stored(store, d).await, (Recording, None, 0, None, 0));
    assert_eq!(db.number("SELECT COUNT(*) FROM attempts").await, 3);
}

async fn a_batch_larger_than_one_statement_lands_every_write(db: TestDb) {
    let store = &db.store;
    // More rows than one multi-row statement takes (1,000 on SQLite).
    let n = 2_500;
    let burst: Vec<_> = (0..n)
        .map(|i| segment(&format!("big-{i:04}"), at(9, 0, 0)))
        .collect();
    let ids: Vec<RecordingId> = store
        .claim_many(&burst)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let writes: Vec<RowWrite> = ids
        .iter()
        .map(|id| {
            row_write(
                *id,
                Some(exchange(*id, 1, Some(202))),
                answered(100_000 + id.get()),
            )
        })
        .collect();
    let results = store.write_batch(&writes).await.unwrap();
    assert_eq!(results.len(), n);
    assert!(results.iter().all(|r| matches!(r, Ok(true))));
    assert_eq!(
        db.number(
            "SELECT COUNT(*) FROM recordings \
             WHERE state = 'recording' AND contact_id = 100000 + id AND attempts = 1"
        )
        .await,
        n as i64
    );
    assert_eq!(
        db.number("SELECT COUNT(DISTINCT recording_id) FROM attempts")
            .await,
        n as i64
    );
    assert_eq!(store.write_batch(&[]).await.unwrap().len(), 0);
}

on_both_backends!(
    a_mixed_batch_lands_its_legal_writes_and_answers_each_one_in_order,
    a_batch_larger_than_one_statement_lands_every_write,
    an_attempt_is_written_and_its_body_cut_on_a_char_boundary,
    an_attempt_for_a_missing_recording_is_refused,
    finishing_an_attempt_updates_the_row_with_it,
    an_illegal_move_still_leaves_the_exchange_in_the_audit_trail,
    a_batch_commits_many_writes_at_once_and_reports_each,
);
