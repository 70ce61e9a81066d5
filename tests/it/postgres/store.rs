//! What only the PostgreSQL store has (its share of the common contract
//! runs in `store::`, on both backends): NOTIFY on policy edits, the
//! leases that let several instances share the rows, and the fence that
//! keeps an instance that lost a row from changing it.

use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use recsched::recording::{ContactId, RecordingState, UserId};
use recsched::store::{
    EndMode, NewAttempt, NewPolicy, NewRecording, Operation, OwnedOutcome, RecordingId, RowWrite,
    Store, StoreError,
};

use super::pg;

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap()
}

fn segment(user: &str, start: DateTime<Utc>) -> NewRecording {
    NewRecording {
        user_id: UserId::parse(user).unwrap(),
        policy_id: 1,
        segment_start: start,
        segment_end: start + chrono::Duration::hours(1),
        requested_seconds: 3600,
        end_mode: EndMode::Expire,
        state: RecordingState::Pending,
        late_seconds: Some(0.25),
        last_error: None,
    }
}

fn policy(name: &str, users: &[&str]) -> NewPolicy {
    NewPolicy {
        name: name.to_owned(),
        enabled: true,
        cron: "0 9 * * MON-FRI".to_owned(),
        timezone: "Europe/Amsterdam".to_owned(),
        window_seconds: 3600,
        end_mode: "expire".to_owned(),
        users: users.iter().map(|u| (*u).to_owned()).collect(),
    }
}

#[tokio::test]
async fn a_policy_edit_notifies_listeners() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
    let mut listener = store
        .listen_policies()
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    store
        .insert_policy(&policy("back-office", &["u1"]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), listener.changed())
        .await
        .expect("a NOTIFY within 5 s")
        .unwrap();
    // An operator's psql edit notifies too.
    db.sql("UPDATE policies SET window_seconds = 60 WHERE name = 'back-office'")
        .await;
    tokio::time::timeout(Duration::from_secs(5), listener.changed())
        .await
        .expect("a NOTIFY within 5 s")
        .unwrap();
}

/// A store of instance `owner` with a short lease.
async fn instance(db: &crate::common::pg::PgDb, owner: &str, lease_ms: u64) -> Store {
    let mut settings = db.settings();
    settings.lease = Duration::from_millis(lease_ms);
    Store::open(&settings).await.unwrap().for_instance(owner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_instances_open_rows_go_to_exactly_one_survivor_once_its_lease_runs_out() {
    let Some(db) = pg().await else { return };
    let dead = instance(&db, "dead", 60_000).await;
    let b = instance(&db, "b", 60_000).await;
    let c = instance(&db, "c", 60_000).await;
    let burst: Vec<NewRecording> = (0..40)
        .map(|i| segment(&format!("u{i}"), at(9, 0, 0)))
        .collect();
    let ids = dead.claim_many(&burst).await.unwrap();
    assert!(ids.iter().all(Option::is_some));
    // One finished before the instance died: never taken over.
    dead.set_state(ids[0].unwrap(), RecordingState::Failed, Some("x"), None)
        .await
        .unwrap();

    // The lease is live: nobody may take the rows.
    assert!(b.adopt_open_rows().await.unwrap().rows.is_empty());
    assert_eq!(dead.renew_leases().await.unwrap().len(), 39);

    // It runs out (the dead instance renews no more; the clock is the
    // server's, so the test moves the lease rather than wait); two
    // survivors race for the rows.
    db.sql("UPDATE recordings SET lease_until = now() - interval '1 second' WHERE owner = 'dead'")
        .await;
    let (by_b, by_c) = tokio::join!(b.adopt_open_rows(), c.adopt_open_rows());
    let (by_b, by_c) = (by_b.unwrap().rows, by_c.unwrap().rows);
    assert_eq!(
        by_b.len() + by_c.len(),
        39,
        "b {} c {}",
        by_b.len(),
        by_c.len()
    );
    let mut all: Vec<i64> = by_b.iter().chain(&by_c).map(|a| a.row.id.get()).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 39, "no row went to both");
    assert!(by_b
        .iter()
        .chain(&by_c)
        .all(|a| a.previous_owner.as_deref() == Some("dead")));

    // Their new leases are live; the old owner, if it came back, finds
    // it owns nothing.
    assert!(b.adopt_open_rows().await.unwrap().rows.is_empty());
    assert!(dead.renew_leases().await.unwrap().is_empty());
    assert_eq!(b.renew_leases().await.unwrap().len(), by_b.len());

    // A clean shutdown hands rows over at once.
    assert_eq!(b.release_leases().await.unwrap(), by_b.len() as u64);
    assert_eq!(c.adopt_open_rows().await.unwrap().rows.len(), by_b.len());
}

/// A start answered with contact `contact`, as the daemon writes it.
fn started(id: RecordingId, contact: i64) -> RowWrite {
    RowWrite {
        recording_id: id,
        attempt: Some(NewAttempt {
            recording_id: id,
            at: at(9, 0, 1),
            operation: Operation::Start,
            attempt: 1,
            requested_seconds: Some(3599),
            http_status: Some(202),
            error: None,
            latency_ms: Some(5),
            response_body: None,
        }),
        outcome: OwnedOutcome::Started {
            contact_id: ContactId::new(contact).unwrap(),
            interaction_id: None,
        },
    }
}

fn failed(id: RecordingId) -> RowWrite {
    RowWrite {
        recording_id: id,
        attempt: None,
        outcome: OwnedOutcome::Moved {
            to: RecordingState::Failed,
            last_error: Some("stale".into()),
            ended_at: None,
        },
    }
}

/// Two segments, claimed by `store`'s instance.
async fn claim_two(store: &Store) -> Vec<RecordingId> {
    let burst = [segment("u1", at(9, 0, 0)), segment("u2", at(9, 0, 0))];
    let ids = store.claim_many(&burst).await.unwrap();
    ids.into_iter().map(Option::unwrap).collect()
}

/// `(state, contact id, audit rows)` of row `id`.
async fn as_stored(store: &Store, id: RecordingId) -> (RecordingState, Option<i64>, usize) {
    let row = store.recording(id).await.unwrap().unwrap();
    let audit = store.attempts_for(id).await.unwrap().len();
    (row.state, row.contact_id.map(|c| c.get()), audit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_by_an_instance_that_lost_its_rows_changes_nothing_and_is_reported_lost() {
    let Some(db) = pg().await else { return };
    let a = instance(&db, "a", 60_000).await;
    let b = instance(&db, "b", 60_000).await;
    let ids = claim_two(&a).await;
    let untouched = (RecordingState::Pending, None, 0);

    // Another instance may not write a row it does not own.
    let results = b.write_batch(&[started(ids[0], 7)]).await.unwrap();
    assert!(
        matches!(results[0], Err(StoreError::Lost { id }) if id == ids[0]),
        "{results:?}"
    );
    assert_eq!(as_stored(&a, ids[0]).await, untouched);

    // The owner stalls past its lease (the lease is on the server's clock:
    // the test moves it rather than wait). Nobody has taken the rows yet,
    // and still the owner's writes are refused: its lease is not live.
    db.sql("UPDATE recordings SET lease_until = now() - interval '1 second' WHERE owner = 'a'")
        .await;
    let err = a
        .set_state(ids[1], RecordingState::Failed, Some("stale"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Lost { .. }), "{err:?}");
    assert!(
        err.to_string().contains("no longer this instance's"),
        "{err}"
    );

    // b takes them over; a wakes and writes what it was doing: the start
    // it had sent, a failure it had decided. Nothing of it lands, not
    // even the audit row, and each write says the row is lost.
    let taken = b.adopt_open_rows().await.unwrap().rows;
    assert_eq!(taken.len(), 2);
    let results = a
        .write_batch(&[started(ids[0], 7), failed(ids[1])])
        .await
        .unwrap();
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Lost { .. }))),
        "{results:?}"
    );
    for id in &ids {
        assert_eq!(as_stored(&a, *id).await, untouched);
    }
    // Its renewal finds both rows lost.
    let mut renewal = a.renew_leases_of(&ids).await.unwrap();
    renewal.lost.sort();
    assert!(renewal.renewed.is_empty(), "{renewal:?}");
    assert_eq!(renewal.lost, ids);

    // The new owner writes as usual.
    let results = b.write_batch(&[started(ids[0], 8)]).await.unwrap();
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    assert_eq!(
        as_stored(&b, ids[0]).await,
        (RecordingState::Recording, Some(8), 1)
    );
    // A handle of no instance (an operator's tool) is not fenced.
    let plain = db.store().await;
    assert!(plain
        .set_state(ids[1], RecordingState::Failed, Some("by hand"), None)
        .await
        .unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_mixing_owned_lost_illegal_and_missing_rows_answers_each_and_lands_only_the_owned()
{
    let Some(db) = pg().await else { return };
    let a = instance(&db, "a", 60_000).await;
    let b = instance(&db, "b", 60_000).await;
    let burst = [
        segment("u1", at(9, 0, 0)),
        segment("u2", at(9, 0, 0)),
        segment("u3", at(9, 0, 0)),
    ];
    let ids: Vec<RecordingId> = a
        .claim_many(&burst)
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    // b takes the second row over (a's lease on it ran out).
    db.sql(&format!(
        "UPDATE recordings SET lease_until = now() - interval '1 second' WHERE id = {}",
        ids[1].get()
    ))
    .await;
    assert_eq!(b.adopt_open_rows().await.unwrap().rows.len(), 1);
    let results = a
        .write_batch(&[
            started(ids[0], 10),
            started(ids[1], 11),
            // Illegal: pending -> stopped.
            RowWrite {
                recording_id: ids[2],
                attempt: None,
                outcome: OwnedOutcome::Moved {
                    to: RecordingState::Stopped,
                    last_error: None,
                    ended_at: None,
                },
            },
            started(RecordingId::new(987_654), 12),
            failed(ids[1]),
            started(ids[2], 13),
        ])
        .await
        .unwrap();
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    assert!(matches!(results[1], Err(StoreError::Lost { id }) if id == ids[1]));
    assert!(matches!(results[2], Err(StoreError::IllegalMove { .. })));
    assert!(matches!(results[3], Err(StoreError::RecordingNotFound(_))));
    assert!(matches!(results[4], Err(StoreError::Lost { .. })));
    assert!(matches!(results[5], Ok(true)), "{results:?}");
    assert_eq!(
        as_stored(&a, ids[0]).await,
        (RecordingState::Recording, Some(10), 1)
    );
    // Nothing of a's writes to the lost row, not even the audit row.
    assert_eq!(
        as_stored(&a, ids[1]).await,
        (RecordingState::Pending, None, 0)
    );
    assert_eq!(
        as_stored(&a, ids[2]).await,
        (RecordingState::Recording, Some(13), 1)
    );
}

#[tokio::test]
async fn a_lease_nobody_took_over_is_renewed_and_a_row_given_up_is_taken_back() {
    let Some(db) = pg().await else { return };
    let a = instance(&db, "a", 60_000).await;
    let ids = claim_two(&a).await;
    db.sql("UPDATE recordings SET lease_until = now() - interval '1 second' WHERE owner = 'a'")
        .await;
    // Renewing what it still tracks: nobody else can have written it.
    let renewal = a.renew_leases_of(&ids[..1]).await.unwrap();
    assert_eq!((renewal.renewed, renewal.lost), (ids[..1].to_vec(), vec![]));
    let results = a.write_batch(&[started(ids[0], 3)]).await.unwrap();
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    // A row it no longer tracks (say it gave it up when it could not renew
    // in time) stays unrenewed; once its lease has run out, a takeover,
    // its own included, adopts it again.
    let back = a.adopt_open_rows().await.unwrap().rows;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].row.id, ids[1]);
    assert_eq!(back[0].previous_owner.as_deref(), Some("a"));
    let results = a.write_batch(&[failed(ids[1])]).await.unwrap();
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    // A final row is neither renewed nor lost: it is done.
    let renewal = a.renew_leases_of(&ids[1..]).await.unwrap();
    assert_eq!(renewal, Default::default());
}
