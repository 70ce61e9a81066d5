//! Recording rows: claims, state moves, listings and occupancy on both
//! backends; rows that do not read back, as sqlite3 can leave them.

use recsched::recording::{ContactId, InteractionId, RecordingState};
use recsched::store::{RecordingFilter, StoreError};

use super::{at, on_both_backends, operator, segment, temp_store, user, TestDb};

use RecordingState::*;

async fn a_segment_is_claimed_once(db: TestDb) {
    let store = &db.store;
    let seg = segment("u1", at(9, 0, 0));
    let id = store.claim(&seg).await.unwrap();
    assert!(id.is_some());
    assert_eq!(store.claim(&seg).await.unwrap(), None);

    // Same start, other user; same user, other start: both new.
    assert!(store
        .claim(&segment("u2", at(9, 0, 0)))
        .await
        .unwrap()
        .is_some());
    assert!(store
        .claim(&segment("u1", at(10, 0, 0)))
        .await
        .unwrap()
        .is_some());

    let row = store.recording(id.unwrap()).await.unwrap().unwrap();
    assert_eq!(row.user_id, user("u1"));
    assert_eq!(row.segment_start, at(9, 0, 0));
    assert_eq!(row.segment_end, at(10, 0, 0));
    assert_eq!(row.requested_seconds, 3600);
    assert_eq!(row.state, Pending);
    assert_eq!(row.attempts, 0);
    assert_eq!(row.contact_id, None);
    assert_eq!(row.late_seconds, None);

    let mut late = segment("u3", at(9, 0, 0));
    late.late_seconds = Some(12.5);
    late.requested_seconds = 3587;
    late.end_mode = recsched::store::EndMode::Stop;
    let id = store.claim(&late).await.unwrap().unwrap();
    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!(row.late_seconds, Some(12.5));
    assert_eq!(row.requested_seconds, 3587);
    assert_eq!(row.end_mode, recsched::store::EndMode::Stop);
}

async fn claim_many_takes_five_thousand_rows_in_one_transaction(db: TestDb) {
    let store = &db.store;
    let batch: Vec<_> = (0..5_000)
        .map(|i| segment(&format!("user-{i}"), at(9, 0, 0)))
        .collect();
    let started = std::time::Instant::now();
    let ids = store.claim_many(&batch).await.unwrap();
    let took = started.elapsed();
    assert_eq!(ids.len(), 5_000);
    assert!(ids.iter().all(Option::is_some));
    eprintln!("claim_many of 5000 rows took {took:?}");

    // A second burst over the same segments, plus one new: only the new one.
    let mut again = batch.clone();
    again.push(segment("late-joiner", at(9, 0, 0)));
    let ids = store.claim_many(&again).await.unwrap();
    assert_eq!(ids.iter().filter(|id| id.is_some()).count(), 1);
    assert!(ids[5_000].is_some());
}

async fn state_moves_follow_the_diagram(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();

    let err = store.set_state(id, Stopped, None, None).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::IllegalMove {
                from: Pending,
                to: Stopped,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.recording(id).await.unwrap().unwrap().state, Pending);

    assert!(store
        .mark_started(
            id,
            ContactId::new(42).unwrap(),
            Some(&InteractionId("g-1".into())),
            2
        )
        .await
        .unwrap());
    assert!(
        !store.set_state(id, Recording, None, None).await.unwrap(),
        "already there"
    );
    assert!(store.set_state(id, Stopping, None, None).await.unwrap());
    assert!(store
        .set_state(id, Stopped, Some("policy disabled"), Some(at(9, 30, 0)))
        .await
        .unwrap());

    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!(row.state, Stopped);
    assert_eq!(row.contact_id, Some(ContactId::new(42).unwrap()));
    assert_eq!(row.interaction_id, Some(InteractionId("g-1".into())));
    assert_eq!(row.attempts, 2);
    assert_eq!(row.last_error.as_deref(), Some("policy disabled"));
    assert_eq!(row.ended_at, Some(at(9, 30, 0)));
    assert_eq!(row.effective_end(), at(9, 30, 0));

    for to in RecordingState::ALL.into_iter().filter(|s| *s != Stopped) {
        let err = store.set_state(id, to, None, None).await.unwrap_err();
        assert!(
            matches!(err, StoreError::IllegalMove { .. }),
            "{to}: {err:?}"
        );
    }

    let ghost = recsched::store::RecordingId::new(9_999);
    let err = store
        .set_state(ghost, Failed, None, None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RecordingNotFound(_)), "{err:?}");
}

async fn a_late_start_answer_keeps_its_contact_id_without_reviving_the_row(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .set_state(id, Failed, Some("window ended"), None)
        .await
        .unwrap();
    let moved = store
        .mark_started(id, ContactId::new(7).unwrap(), None, 3)
        .await
        .unwrap();
    assert!(!moved);
    let row = store.recording(id).await.unwrap().unwrap();
    assert_eq!(row.state, Failed);
    assert_eq!(row.contact_id, Some(ContactId::new(7).unwrap()));
    assert_eq!(row.last_error.as_deref(), Some("window ended"));
}

async fn attempts_are_counted(db: TestDb) {
    let store = &db.store;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(store.bump_attempts(id).await.unwrap(), 1);
    assert_eq!(store.bump_attempts(id).await.unwrap(), 2);
    let err = store
        .bump_attempts(recsched::store::RecordingId::new(404))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::RecordingNotFound(_)), "{err:?}");
}

async fn listings_filter_by_user_state_time_and_count(db: TestDb) {
    let store = &db.store;
    let a = store
        .claim(&segment("u1", at(8, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let b = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let c = store
        .claim(&segment("u2", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let mut missed = segment("u3", at(6, 0, 0));
    missed.state = Missed;
    missed.last_error = Some("service was down".into());
    store.claim(&missed).await.unwrap().unwrap();
    store.set_state(a, Expired, None, None).await.unwrap();
    store
        .mark_started(b, ContactId::new(1).unwrap(), None, 1)
        .await
        .unwrap();
    store.set_state(b, Stopping, None, None).await.unwrap();

    let ids = |rows: Vec<recsched::store::RecordingRow>| {
        rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };

    let all = store.recordings(&RecordingFilter::default()).await.unwrap();
    assert_eq!(all.len(), 4);
    assert_eq!(all[0].segment_start, at(9, 0, 0), "newest first");

    let u1 = RecordingFilter {
        user: Some(user("u1")),
        ..Default::default()
    };
    assert_eq!(ids(store.recordings(&u1).await.unwrap()), [b, a]);

    let expired = RecordingFilter {
        state: Some(Expired),
        ..Default::default()
    };
    assert_eq!(ids(store.recordings(&expired).await.unwrap()), [a]);

    let recent = RecordingFilter {
        since: Some(at(9, 30, 0)),
        ..Default::default()
    };
    assert_eq!(store.recordings(&recent).await.unwrap().len(), 2);

    let one = RecordingFilter {
        limit: Some(1),
        ..Default::default()
    };
    assert_eq!(store.recordings(&one).await.unwrap().len(), 1);

    let open = ids(store.open_rows().await.unwrap().rows);
    assert_eq!(open.len(), 2);
    assert!(open.contains(&b) && open.contains(&c));
}

async fn every_segment_still_running_occupies_its_slot(db: TestDb) {
    let store = &db.store;
    let done = store
        .claim(&segment("u1", at(7, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store.set_state(done, Expired, None, None).await.unwrap();
    let cut = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .mark_started(cut, ContactId::new(5).unwrap(), None, 1)
        .await
        .unwrap();
    store
        .set_state(cut, Stopped, None, Some(at(9, 20, 0)))
        .await
        .unwrap();
    let failed = store
        .claim(&segment("u2", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .set_state(failed, Failed, Some("403"), None)
        .await
        .unwrap();
    let mut missed = segment("u3", at(8, 45, 0));
    missed.state = Missed;
    store.claim(&missed).await.unwrap().unwrap();

    let slots = store.occupied_since(at(9, 30, 0)).await.unwrap().rows;
    assert_eq!(
        slots,
        [
            (user("u2"), at(9, 0, 0), at(10, 0, 0)),
            (user("u3"), at(8, 45, 0), at(9, 45, 0)),
        ]
    );
    let slots = store.occupied_since(at(9, 10, 0)).await.unwrap().rows;
    assert_eq!(slots[0], (user("u1"), at(9, 0, 0), at(9, 20, 0)));
    assert_eq!(slots.len(), 3);
}

#[tokio::test]
async fn a_row_that_does_not_read_back_is_named() {
    let (_dir, store) = temp_store().await;
    let id = store
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let mut conn = operator(store.path()).await;

    // The CHECK keeps bad states out of ordinary writes...
    let refused = sqlx::query("UPDATE recordings SET state = 'running'")
        .execute(&mut conn)
        .await;
    assert!(refused.is_err());
    // ...unless someone turns CHECKs off.
    sqlx::query("PRAGMA ignore_check_constraints = ON")
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::query("UPDATE recordings SET state = 'running'")
        .execute(&mut conn)
        .await
        .unwrap();
    let err = store
        .recordings(&RecordingFilter::default())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, StoreError::BadRow(b) if b.table == "recordings" && b.id == id.get() && b.column == "state"),
        "{err:?}"
    );
    assert!(err.to_string().contains("`running`"), "{err}");
    let err = store.set_state(id, Failed, None, None).await.unwrap_err();
    assert!(
        matches!(&err, StoreError::BadRow(b) if b.column == "state"),
        "{err:?}"
    );

    sqlx::query("UPDATE recordings SET state = 'pending', segment_end = 'tomorrow'")
        .execute(&mut conn)
        .await
        .unwrap();
    // A read of many rows skips it and names it, with the user it keeps.
    let open = store.open_rows().await.unwrap();
    assert!(open.rows.is_empty());
    let [bad] = open.bad.as_slice() else {
        panic!("{open:?}")
    };
    assert_eq!(
        (bad.table, bad.id, bad.column),
        ("recordings", id.get(), "segment_end")
    );
    assert_eq!(bad.user, Some(user("u1")));
    let msg = bad.to_string();
    assert!(
        msg.starts_with(&format!(
            "table recordings, id {id}, column segment_end: `tomorrow`"
        )),
        "{msg}"
    );
    // A read of that very row fails, naming it.
    let err = store.recording(id).await.unwrap_err();
    assert!(err.to_string().contains("`tomorrow`"), "{err}");
}

#[tokio::test]
async fn a_bad_row_keeps_its_user_occupied_until_fixed_and_costs_no_one_else() {
    let (_dir, store) = temp_store().await;
    let damaged = store
        .claim(&segment("ann", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let inverted = store
        .claim(&segment("bob", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let nameless = store
        .claim(&segment("eve", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .claim(&segment("cid", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let mut conn = operator(store.path()).await;
    sqlx::raw_sql(&format!(
        "UPDATE recordings SET segment_end = 'zzz' WHERE id = {damaged}; \
         UPDATE recordings SET segment_end = '2026-03-29T08:00:00.000Z' WHERE id = {inverted}; \
         UPDATE recordings SET user_id = CAST(X'FF' AS TEXT), segment_end = 12 \
             WHERE id = {nameless};"
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let read = store.occupied_since(at(9, 30, 0)).await.unwrap();
    let (start, end) = recsched::store::until_fixed();
    let mut slots = read.rows.clone();
    slots.sort();
    assert_eq!(
        slots,
        [
            (user("ann"), start, end),
            (user("bob"), start, end),
            (user("cid"), at(9, 0, 0), at(10, 0, 0)),
        ],
        "the user of a bad row is occupied until it is fixed; the others as stored"
    );
    let mut bad: Vec<(i64, &str, Option<&str>)> = read
        .bad
        .iter()
        .map(|b| (b.id, b.column, b.user.as_ref().map(|u| u.as_str())))
        .collect();
    bad.sort();
    assert_eq!(
        bad,
        [
            (damaged.get(), "segment_end", Some("ann")),
            (inverted.get(), "segment_end", Some("bob")),
            (nameless.get(), "user_id", None),
        ]
    );
    let inverted_row = read.bad.iter().find(|b| b.id == inverted.get()).unwrap();
    assert!(
        inverted_row.problem.contains("is not after segment_start"),
        "{inverted_row}"
    );
    // Listing and reconcile skip the same rows.
    let open = store.open_rows().await.unwrap();
    assert_eq!(open.rows.len(), 1);
    assert_eq!(open.bad.len(), 3);
    assert_eq!(store.adopt_open_rows().await.unwrap().rows.len(), 1);

    // Fixed by the operator: the user is back to its stored time.
    sqlx::raw_sql(&format!(
        "UPDATE recordings SET segment_end = '2026-03-29T10:00:00.000Z' WHERE id = {damaged}"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    let read = store.occupied_since(at(9, 30, 0)).await.unwrap();
    assert!(read
        .rows
        .contains(&(user("ann"), at(9, 0, 0), at(10, 0, 0))));
    assert!(!read.bad.iter().any(|b| b.id == damaged.get()));
}

async fn daemon_state_keeps_values_by_key(db: TestDb) {
    let store = &db.store;
    assert_eq!(store.get_state("planned_through").await.unwrap(), None);
    store
        .set_state_value("planned_through", "2026-03-29T09:00:00.000Z")
        .await
        .unwrap();
    store
        .set_state_value("planned_through", "2026-03-29T10:00:00.000Z")
        .await
        .unwrap();
    assert_eq!(
        store.get_state("planned_through").await.unwrap().as_deref(),
        Some("2026-03-29T10:00:00.000Z")
    );
}

/// sqlite3 lets bytes into `daemon_state.value` (PostgreSQL types it):
/// the read names the row, and a write puts text back.
#[tokio::test]
async fn a_daemon_state_value_that_is_not_text_is_a_bad_row_on_sqlite() {
    let db = TestDb::sqlite().await;
    db.sql("INSERT INTO daemon_state (rowid, key, value) VALUES (4, 'k', X'00FF')")
        .await;
    let err = db.store.get_state("k").await.unwrap_err();
    let StoreError::BadRow(bad) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(
        bad.to_string(),
        "table daemon_state, rowid 4, column value: stored as blob X'00FF', not text; nothing \
         is converted; the daemon goes on without it until the row is fixed or deleted (sqlite3 \
         or psql)"
    );
    db.store.set_state_value("k", "v").await.unwrap();
    assert_eq!(db.store.get_state("k").await.unwrap().as_deref(), Some("v"));
}

async fn claim_many_answers_in_input_order_and_claims_a_repeated_key_once(db: TestDb) {
    let store = &db.store;
    let taken = segment("dup-a", at(9, 0, 0));
    store.claim(&taken).await.unwrap().unwrap();
    let batch = vec![
        segment("dup-b", at(9, 0, 0)),
        taken.clone(),
        segment("dup-c", at(9, 0, 0)),
        segment("dup-b", at(9, 0, 0)),
    ];
    let ids = store.claim_many(&batch).await.unwrap();
    assert!(ids[0].is_some());
    assert_eq!(ids[1], None, "an existing row is not claimed again");
    assert!(ids[2].is_some());
    assert_eq!(ids[3], None, "a key repeated in one batch is claimed once");
    assert_ne!(ids[0], ids[2]);
    let b = store.recording(ids[0].unwrap()).await.unwrap().unwrap();
    assert_eq!(b.user_id.as_str(), "dup-b");
}

async fn occupied_segments_end_at_their_effective_end(db: TestDb) {
    let store = &db.store;
    let a = store
        .claim(&segment("a", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .claim(&segment("b", at(8, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    store
        .set_state(a, Expired, None, Some(at(9, 30, 0)))
        .await
        .unwrap();
    let occupied = store.occupied_since(at(8, 45, 0)).await.unwrap().rows;
    assert_eq!(
        occupied,
        [
            (user("a"), at(9, 0, 0), at(9, 30, 0)),
            (user("b"), at(8, 0, 0), at(9, 0, 0))
        ]
    );
    // Past its end, only the row still open occupies (it is not final yet).
    let open: Vec<_> = store
        .occupied_since(at(9, 30, 0))
        .await
        .unwrap()
        .rows
        .into_iter()
        .map(|(u, _, _)| u)
        .collect();
    assert_eq!(open, [user("b")]);
}

on_both_backends!(
    a_segment_is_claimed_once,
    claim_many_takes_five_thousand_rows_in_one_transaction,
    claim_many_answers_in_input_order_and_claims_a_repeated_key_once,
    state_moves_follow_the_diagram,
    a_late_start_answer_keeps_its_contact_id_without_reviving_the_row,
    attempts_are_counted,
    listings_filter_by_user_state_time_and_count,
    every_segment_still_running_occupies_its_slot,
    occupied_segments_end_at_their_effective_end,
    daemon_state_keeps_values_by_key,
);
