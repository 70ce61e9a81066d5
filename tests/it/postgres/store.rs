//! The store's contract on PostgreSQL: claims decided once across handles,
//! batches, policy edits and their revision (and NOTIFY), occupancy, and
//! the leases that let several instances share the rows.

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_segment_is_claimed_once_even_by_two_handles_racing() {
    let Some(db) = pg().await else { return };
    let one = db.store().await;
    let two = db.store().await;
    assert!(one.is_shared());

    let first = one.claim(&segment("u0", at(9, 0, 0))).await.unwrap();
    assert!(first.is_some());
    assert_eq!(one.claim(&segment("u0", at(9, 0, 0))).await.unwrap(), None);
    assert_eq!(two.claim(&segment("u0", at(9, 0, 0))).await.unwrap(), None);

    let mut tasks = Vec::new();
    for store in [one.clone(), two.clone(), one.clone(), two.clone()] {
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for i in 0..50 {
                let seg = segment(&format!("u{i}"), at(10, 0, 0));
                if store.claim(&seg).await.unwrap().is_some() {
                    won += 1;
                }
            }
            // And a burst, as the daemon claims them.
            let burst: Vec<NewRecording> = (0..200)
                .map(|i| segment(&format!("b{i}"), at(11, 0, 0)))
                .collect();
            won += store
                .claim_many(&burst)
                .await
                .unwrap()
                .iter()
                .filter(|id| id.is_some())
                .count();
            won
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap();
    }
    assert_eq!(total, 250, "each of 50 + 200 segments won exactly once");
    assert_eq!(one.open_rows().await.unwrap().rows.len(), 251);

    // A key asked for twice in one burst is won once, by the first asker.
    let twice = vec![segment("d", at(12, 0, 0)), segment("d", at(12, 0, 0))];
    let ids = one.claim_many(&twice).await.unwrap();
    assert!(ids[0].is_some() && ids[1].is_none(), "{ids:?}");

    let row = one.recording(first.unwrap()).await.unwrap().unwrap();
    assert_eq!(row.segment_start, at(9, 0, 0));
    assert_eq!(row.segment_end, at(10, 0, 0));
    assert_eq!(row.state, RecordingState::Pending);
    assert_eq!(row.late_seconds, Some(0.25));
}

#[tokio::test]
async fn a_batch_commits_every_write_and_reports_each() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
    let ids: Vec<RecordingId> = store
        .claim_many(&[
            segment("a", at(9, 0, 0)),
            segment("b", at(9, 0, 0)),
            segment("c", at(9, 0, 0)),
        ])
        .await
        .unwrap()
        .into_iter()
        .map(Option::unwrap)
        .collect();
    let attempt = |id: RecordingId, status: u16| NewAttempt {
        recording_id: id,
        at: at(9, 0, 1),
        operation: Operation::Start,
        attempt: 2,
        requested_seconds: Some(3599),
        http_status: Some(status),
        error: None,
        latency_ms: Some(12),
        response_body: Some("{\"contactId\":7}".into()),
    };
    let writes = vec![
        RowWrite {
            recording_id: ids[0],
            attempt: Some(attempt(ids[0], 200)),
            outcome: OwnedOutcome::Started {
                contact_id: ContactId::new(7).unwrap(),
                interaction_id: None,
            },
        },
        RowWrite {
            recording_id: ids[1],
            attempt: Some(attempt(ids[1], 400)),
            outcome: OwnedOutcome::Moved {
                to: RecordingState::Failed,
                last_error: Some("400 bad request".into()),
                ended_at: None,
            },
        },
        // Pending cannot become stopped: refused, the rest still lands.
        RowWrite {
            recording_id: ids[2],
            attempt: None,
            outcome: OwnedOutcome::Moved {
                to: RecordingState::Stopped,
                last_error: None,
                ended_at: None,
            },
        },
        RowWrite {
            recording_id: RecordingId::new(999_999),
            attempt: None,
            outcome: OwnedOutcome::Nothing,
        },
    ];
    let results = store.write_batch(&writes).await.unwrap();
    assert!(matches!(results[0], Ok(true)), "{results:?}");
    assert!(matches!(results[1], Ok(true)), "{results:?}");
    assert!(
        matches!(results[2], Err(StoreError::IllegalMove { .. })),
        "{results:?}"
    );
    assert!(
        matches!(results[3], Err(StoreError::RecordingNotFound(_))),
        "{results:?}"
    );
    let started = store.recording(ids[0]).await.unwrap().unwrap();
    assert_eq!(started.state, RecordingState::Recording);
    assert_eq!(started.contact_id.map(|c| c.get()), Some(7));
    assert_eq!(started.attempts, 2);
    let failed = store.recording(ids[1]).await.unwrap().unwrap();
    assert_eq!(failed.state, RecordingState::Failed);
    assert_eq!(failed.last_error.as_deref(), Some("400 bad request"));
    assert_eq!(
        store.recording(ids[2]).await.unwrap().unwrap().state,
        RecordingState::Pending
    );
    let audit = store.attempts_for(ids[0]).await.unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].http_status, Some(200));
    assert_eq!(audit[0].at, at(9, 0, 1));
}

#[tokio::test]
async fn policy_edits_move_the_revision_and_notify_listeners() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
    let mut listener = store
        .listen_policies()
        .await
        .unwrap()
        .expect("PostgreSQL listens");
    let r0 = store.policy_revision().await.unwrap();

    let id = store
        .insert_policy(&policy("back-office", &["u1", "u2", "u1"]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(5), listener.changed())
        .await
        .expect("a NOTIFY within 5 s")
        .unwrap();
    let r1 = store.policy_revision().await.unwrap();
    assert!(r1 > r0);

    let row = store.policy_row("back-office").await.unwrap().unwrap();
    assert_eq!(row.id, id);
    assert_eq!(row.users, vec!["u1", "u2"]);
    assert!(row.enabled);
    assert_eq!(row.timezone, "Europe/Amsterdam");

    assert!(matches!(
        store.insert_policy(&policy("back-office", &["x"])).await,
        Err(StoreError::DuplicatePolicy(_))
    ));
    store
        .set_policy_enabled("back-office", false)
        .await
        .unwrap();
    assert!(store.add_policy_user("back-office", "u3").await.unwrap());
    assert!(!store.add_policy_user("back-office", "u3").await.unwrap());
    assert!(store.remove_policy_user("back-office", "u1").await.unwrap());
    let r2 = store.policy_revision().await.unwrap();
    assert!(r2 >= r1 + 3, "{r1} -> {r2}");
    let row = store.policy_row("back-office").await.unwrap().unwrap();
    assert!(!row.enabled);
    assert_eq!(row.users, vec!["u2", "u3"]);

    // An operator's psql edit moves it too.
    db.sql("UPDATE policies SET window_seconds = 60 WHERE name = 'back-office'")
        .await;
    assert!(store.policy_revision().await.unwrap() > r2);

    store.remove_policy("back-office").await.unwrap();
    assert!(store.policy_rows().await.unwrap().is_empty());
    assert!(matches!(
        store.remove_policy("back-office").await,
        Err(StoreError::PolicyNotFound(_))
    ));
}

#[tokio::test]
async fn occupied_segments_end_at_their_effective_end() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
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
        .set_state(a, RecordingState::Expired, None, Some(at(9, 30, 0)))
        .await
        .unwrap();
    let occupied = store.occupied_since(at(8, 45, 0)).await.unwrap().rows;
    let users: Vec<(&str, DateTime<Utc>, DateTime<Utc>)> = occupied
        .iter()
        .map(|(u, s, e)| (u.as_str(), *s, *e))
        .collect();
    assert_eq!(
        users,
        vec![
            ("a", at(9, 0, 0), at(9, 30, 0)),
            ("b", at(8, 0, 0), at(9, 0, 0))
        ]
    );
    // Past its end, only the row still open occupies (it is not final yet).
    let open: Vec<String> = store
        .occupied_since(at(9, 30, 0))
        .await
        .unwrap()
        .rows
        .iter()
        .map(|(u, _, _)| u.as_str().to_owned())
        .collect();
    assert_eq!(open, ["b"]);
    store.set_state_value("last_seen", "x").await.unwrap();
    store.set_state_value("last_seen", "y").await.unwrap();
    assert_eq!(
        store.get_state("last_seen").await.unwrap().as_deref(),
        Some("y")
    );
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
