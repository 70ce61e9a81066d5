//! The coverage report's read, on both backends: the rows whose segment
//! meets the period, each with when the vendor answered its start (the
//! last 2xx start attempt plus its latency), and a row that does not read
//! back named rather than failing the report.

use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::store::{NewAttempt, Operation, RecordingId};

use super::{at, on_both_backends, segment, TestDb};

fn start(id: RecordingId, second: u32, status: u16, latency_ms: u64) -> NewAttempt {
    NewAttempt {
        recording_id: id,
        at: at(9, 0, second),
        operation: Operation::Start,
        attempt: 1,
        requested_seconds: Some(3600),
        http_status: Some(status),
        error: None,
        latency_ms: Some(latency_ms),
        response_body: None,
    }
}

async fn report_rows_carry_the_answered_start(db: TestDb) {
    let store = &db.store;
    let answered = store
        .claim(&segment("ann", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let refused = store
        .claim(&segment("bob", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store.claim(&segment("cat", at(12, 0, 0))).await.unwrap();
    store.claim(&segment("dan", at(7, 0, 0))).await.unwrap();
    store
        .record_attempt(&start(answered, 1, 503, 40))
        .await
        .unwrap();
    store
        .record_attempt(&start(answered, 3, 202, 250))
        .await
        .unwrap();
    store
        .record_attempt(&start(refused, 1, 404, 10))
        .await
        .unwrap();
    store
        .set_state(refused, RecordingState::Failed, Some("no such user"), None)
        .await
        .unwrap();

    // 08:30 to 11:00: ann's and bob's segments; dan's ended at 08:00 and
    // cat's starts at noon.
    let read = store.report_rows(at(8, 30, 0), at(11, 0, 0)).await.unwrap();
    assert!(read.bad.is_empty(), "{:?}", read.bad);
    let users: Vec<&str> = read.rows.iter().map(|r| r.user_id.as_str()).collect();
    assert_eq!(users, ["ann", "bob"]);
    let ann = &read.rows[0];
    assert_eq!(ann.id, answered);
    assert_eq!(ann.segment_start, at(9, 0, 0));
    assert_eq!(ann.segment_end, at(10, 0, 0));
    assert_eq!(ann.state, RecordingState::Pending);
    assert_eq!(
        ann.answered_at,
        Some(at(9, 0, 3) + Duration::milliseconds(250))
    );
    let bob = &read.rows[1];
    assert_eq!(bob.state, RecordingState::Failed);
    assert_eq!(bob.last_error.as_deref(), Some("no such user"));
    assert_eq!(bob.answered_at, None, "a 404 answers no start");

    // A row edited into something no segment can be: named, not fatal.
    db.sql("UPDATE recordings SET user_id = '' WHERE user_id = 'bob'")
        .await;
    let read = store.report_rows(at(8, 30, 0), at(11, 0, 0)).await.unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(
        (read.bad[0].table, read.bad[0].id, read.bad[0].column),
        ("recordings", refused.get(), "user_id")
    );
}

on_both_backends!(report_rows_carry_the_answered_start);
