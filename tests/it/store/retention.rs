//! Deleting old history, on both backends: old final recordings go with
//! their audit rows, old audit rows of final recordings go, and nothing
//! open, recent or kept by the other rule goes; batches take at most
//! their limit and move a cursor.

use chrono::{DateTime, Duration, TimeZone, Utc};
use recsched::recording::{ContactId, RecordingState};
use recsched::store::{
    Cutoffs, NewAttempt, Operation, OwnedOutcome, Prune, PruneCounts, RecordingId, RowWrite, Store,
};

use super::{on_both_backends, segment, TestDb};

/// Day `d` of March 2026 at 09:00 UTC.
fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, d, 9, 0, 0).unwrap()
}

/// Claims a one-hour segment of `user` on day `d`; returns its id.
async fn claim(store: &Store, user: &str, d: u32) -> RecordingId {
    store
        .claim_many(&[segment(user, day(d))])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap()
}

/// A start answered on day `d` (`at` 09:00:01): one audit row.
fn answered(id: RecordingId, d: u32) -> RowWrite {
    RowWrite {
        recording_id: id,
        attempt: Some(NewAttempt {
            recording_id: id,
            at: day(d) + Duration::seconds(1),
            operation: Operation::Start,
            attempt: 1,
            requested_seconds: Some(3600),
            http_status: Some(202),
            error: None,
            latency_ms: Some(20),
            response_body: None,
        }),
        outcome: OwnedOutcome::Started {
            contact_id: ContactId::new(id.get()).unwrap(),
            interaction_id: None,
        },
    }
}

/// A final row of `user` on day `d` with its start's audit row.
async fn finished(store: &Store, user: &str, d: u32) -> RecordingId {
    let id = claim(store, user, d).await;
    store.write_batch(&[answered(id, d)]).await.unwrap();
    store
        .set_state(id, RecordingState::Expired, None, None)
        .await
        .unwrap();
    id
}

async fn audit(store: &Store, id: RecordingId) -> usize {
    store.attempts_for(id).await.unwrap().len()
}

/// Runs `what` in batches of `limit` until nothing is found; returns the
/// batches' found counts and what they deleted `(recordings, attempts)`.
async fn drain(store: &Store, cutoffs: &Cutoffs, what: Prune, limit: u32) -> (Vec<u64>, u64, u64) {
    let (mut found, mut recordings, mut attempts, mut after) = (Vec::new(), 0, 0, 0);
    loop {
        let b = store
            .prune_batch(cutoffs, what, after, limit)
            .await
            .unwrap();
        if b.found == 0 {
            return (found, recordings, attempts);
        }
        assert!(b.last_id > after, "the cursor moves on");
        found.push(b.found);
        recordings += b.recordings;
        attempts += b.attempts;
        after = b.last_id;
    }
}

async fn old_finished_recordings_go_with_their_audit_rows_and_open_or_recent_ones_stay(db: TestDb) {
    let store = &db.store;
    let old: Vec<RecordingId> = finished_all(store, &["o1", "o2", "o3", "o4", "o5"], 1).await;
    // Open, however old: pending (never answered) and recording.
    let pending = claim(store, "p1", 1).await;
    let live = claim(store, "l1", 1).await;
    store.write_batch(&[answered(live, 1)]).await.unwrap();
    // Finished, but its segment ended after the cutoff.
    let recent = finished(store, "r1", 20).await;
    // Planned long ago, but it ended (ended_at) after the cutoff.
    let ended_late = claim(store, "e1", 1).await;
    store
        .set_state(ended_late, RecordingState::Failed, Some("x"), Some(day(20)))
        .await
        .unwrap();

    let cutoffs = Cutoffs {
        recordings: Some(day(10)),
        attempts: None,
    };
    let before = store.prune_counts(&cutoffs).await.unwrap();
    assert_eq!(
        before,
        PruneCounts {
            recordings: 5,
            attempts_of_recordings: 5,
            attempts: 0
        }
    );
    // Batches of 2: 2, 2, 1 rows, each with its audit rows.
    let (found, recordings, attempts) = drain(store, &cutoffs, Prune::Recordings, 2).await;
    assert_eq!(found, [2, 2, 1]);
    assert_eq!((recordings, attempts), (5, 5));
    for id in old {
        assert!(store.recording(id).await.unwrap().is_none(), "{id} kept");
    }
    for id in [pending, live, recent, ended_late] {
        assert!(store.recording(id).await.unwrap().is_some(), "{id} deleted");
    }
    assert_eq!(audit(store, live).await, 1);
    assert_eq!(
        audit(store, recent).await,
        1,
        "audit rows of a kept row stay"
    );
    assert_eq!(
        store.prune_counts(&cutoffs).await.unwrap(),
        PruneCounts::default()
    );
    // Attempts are kept forever here: nothing to do by age.
    let (found, ..) = drain(store, &cutoffs, Prune::Attempts, 100).await;
    assert!(found.is_empty());
    assert_eq!(db.number("SELECT COUNT(*) FROM attempts").await, 2);
}

/// `n` finished rows on day `d`, one per user.
async fn finished_all(store: &Store, users: &[&str], d: u32) -> Vec<RecordingId> {
    let mut ids = Vec::new();
    for user in users {
        ids.push(finished(store, user, d).await);
    }
    ids
}

async fn old_audit_rows_of_finished_recordings_go_and_those_of_open_ones_stay(db: TestDb) {
    let store = &db.store;
    let done = finished(store, "d1", 1).await;
    let live = claim(store, "l1", 1).await;
    store.write_batch(&[answered(live, 1)]).await.unwrap();
    let fresh = finished(store, "f1", 20).await;
    let cutoffs = Cutoffs {
        recordings: None,
        attempts: Some(day(10)),
    };
    assert_eq!(
        store.prune_counts(&cutoffs).await.unwrap(),
        PruneCounts {
            recordings: 0,
            attempts_of_recordings: 0,
            attempts: 1
        }
    );
    let (found, recordings, attempts) = drain(store, &cutoffs, Prune::Attempts, 10).await;
    assert_eq!((found, recordings, attempts), (vec![1], 0, 1));
    // The recordings themselves all stay.
    for id in [done, live, fresh] {
        assert!(store.recording(id).await.unwrap().is_some());
    }
    assert_eq!(audit(store, done).await, 0);
    assert_eq!(
        audit(store, live).await,
        1,
        "an open row keeps its audit trail"
    );
    assert_eq!(audit(store, fresh).await, 1);
    // Recordings are kept forever here: the other rule finds nothing.
    let (found, ..) = drain(store, &cutoffs, Prune::Recordings, 10).await;
    assert!(found.is_empty());
}

async fn both_rules_count_each_audit_row_once(db: TestDb) {
    let store = &db.store;
    // An old finished row (goes, with its audit row), a finished row
    // that stays (its old audit row goes by age).
    finished(store, "a1", 1).await;
    let kept = claim(store, "k1", 5).await;
    store.write_batch(&[answered(kept, 5)]).await.unwrap();
    store
        .set_state(kept, RecordingState::Failed, None, Some(day(25)))
        .await
        .unwrap();
    let cutoffs = Cutoffs {
        recordings: Some(day(10)),
        attempts: Some(day(10)),
    };
    assert_eq!(
        store.prune_counts(&cutoffs).await.unwrap(),
        PruneCounts {
            recordings: 1,
            attempts_of_recordings: 1,
            attempts: 1
        }
    );
    let (_, r, a) = drain(store, &cutoffs, Prune::Recordings, 10).await;
    assert_eq!((r, a), (1, 1));
    let (_, r, a) = drain(store, &cutoffs, Prune::Attempts, 10).await;
    assert_eq!((r, a), (0, 1));
    assert!(store.recording(kept).await.unwrap().is_some());
    assert_eq!(db.number("SELECT COUNT(*) FROM attempts").await, 0);
    assert_eq!(db.number("SELECT COUNT(*) FROM recordings").await, 1);
}

on_both_backends!(
    old_finished_recordings_go_with_their_audit_rows_and_open_or_recent_ones_stay,
    old_audit_rows_of_finished_recordings_go_and_those_of_open_ones_stay,
    both_rules_count_each_audit_row_once,
);
