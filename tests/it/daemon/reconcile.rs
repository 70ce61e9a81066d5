//! Becoming responsible for open rows the daemon did not just claim and
//! start itself: a claim whose commit landed but whose answer was lost,
//! and pending starts left by an earlier process (in-process, on driven
//! time).

use super::{row_at, sim_in, t0};
use crate::common::driven::Driven;
use crate::faults::cron_at;
use chrono::Duration;
use futures::future::BoxFuture;
use recsched::cxone::{self, Client, Limits};
use recsched::daemon::RowSink;
use recsched::policy::EndMode;
use recsched::recording::{ContactId, RecordingDuration, RecordingState, UserId};
use recsched::secret::Secret;
use recsched::store::{NewRecording, OwnedOutcome, RecordingId, RowWrite, Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Commits the first claim of pending rows, then reports an error, as a
/// connection lost between COMMIT and its answer would.
struct LoseFirstClaim {
    store: Store,
    lost: Arc<AtomicUsize>,
}

impl RowSink for LoseFirstClaim {
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>> {
        Box::pin(async move {
            let ids = self.store.claim_many(rows).await?;
            let pending = rows.iter().any(|r| r.state == RecordingState::Pending);
            if pending && self.lost.fetch_add(1, Ordering::SeqCst) == 0 {
                return Err(StoreError::Io {
                    path: self.store.path().to_owned(),
                    context: "reading the answer to a claim",
                    source: std::io::Error::other("connection reset after COMMIT"),
                });
            }
            Ok(ids)
        })
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>> {
        Box::pin(self.store.write_batch(writes))
    }
}

#[tokio::test]
async fn a_claim_committed_with_its_answer_lost_is_adopted_and_started_once() {
    let mut rig = Driven::new(t0()).await;
    let w = t0() + Duration::seconds(2);
    let users = ["l1", "l2", "l3"];
    rig.add_policy("lost", &cron_at(w), 30, "expire", &users)
        .await;
    let lost = Arc::new(AtomicUsize::new(0));
    let counter = lost.clone();
    rig.hooks.wrap_rows = Some(Arc::new(move |store| {
        Arc::new(LoseFirstClaim {
            store,
            lost: counter.clone(),
        }) as Arc<dyn RowSink>
    }));
    rig.start().await;
    rig.run_until(w + Duration::seconds(5)).await;
    rig.stop().await;
    let log = rig.log();
    assert!(
        lost.load(Ordering::SeqCst) >= 1,
        "no claim was lost:\n{log}"
    );
    assert!(
        log.contains("adopted claims whose answer was lost"),
        "{log}"
    );
    let rows = rig.rows().await;
    let sim = rig.recordings();
    for u in users {
        let r = row_at(&rows, u, w);
        assert_eq!(r.len(), 1, "{u}: {rows:?}");
        assert_eq!(r[0].state, RecordingState::Recording, "{:?}\n{log}", r[0]);
        let made = sim_in(&sim, u, w, w + Duration::seconds(30));
        assert_eq!(made.len(), 1, "{u}: {sim:?}");
        assert_eq!(
            r[0].contact_id.map(|c| c.get()),
            Some(made[0].contact_id as i64)
        );
        // Started on the pass after the failed one, a second late.
        assert!(made[0].started_at - w <= Duration::seconds(2), "{made:?}");
    }
    let starts = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .count();
    assert_eq!(starts, users.len(), "one start per segment");
}

/// A client of the simulator, on the rig's clock.
fn client(rig: &Driven) -> Client {
    let c = rig.sim.config();
    let settings = cxone::Settings {
        api_base: rig.sim.url().to_owned(),
        token_url: rig.sim.token_url(),
        client_id: c.client_id.clone(),
        client_secret: Some(Secret::new(c.client_secret.clone())),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        ..cxone::Settings::default()
    };
    Client::new(
        &settings,
        None,
        Limits::default(),
        Arc::new(rig.clock.clone()),
    )
    .unwrap()
}

/// Two segments of `user` left by an earlier process: the first recording
/// (its vendor recording made now, lasting `vendor_secs`), the second
/// pending from `s` for 20 s. Returns the first's contact id and the
/// second's row id.
async fn chain_left_behind(
    rig: &Driven,
    user: &str,
    s: chrono::DateTime<chrono::Utc>,
    vendor_secs: i64,
) -> (ContactId, RecordingId) {
    let u = UserId::parse(user).unwrap();
    let first = client(rig)
        .start(&u, RecordingDuration::from_secs(vendor_secs).unwrap())
        .await;
    let contact = first
        .result
        .expect("the first segment's recording")
        .contact_id;
    let row = |start: chrono::DateTime<chrono::Utc>, secs: i64| NewRecording {
        user_id: u.clone(),
        policy_id: 1,
        segment_start: start,
        segment_end: start + Duration::seconds(secs),
        requested_seconds: u32::try_from(secs).unwrap(),
        end_mode: EndMode::Expire,
        state: RecordingState::Pending,
        late_seconds: Some(0.0),
        last_error: None,
    };
    let ids = rig
        .store
        .claim_many(&[row(s - Duration::seconds(10), 10), row(s, 20)])
        .await
        .unwrap();
    let (Some(first_id), Some(second_id)) = (ids[0], ids[1]) else {
        panic!("claims: {ids:?}");
    };
    let moved = rig
        .store
        .write_batch(&[RowWrite {
            recording_id: first_id,
            attempt: None,
            outcome: OwnedOutcome::Started {
                contact_id: contact,
                interaction_id: None,
            },
        }])
        .await
        .unwrap();
    assert!(matches!(moved[..], [Ok(true)]), "{moved:?}");
    (contact, second_id)
}

#[tokio::test]
async fn a_resumed_start_knows_its_predecessor_and_never_takes_its_contact_id() {
    let mut rig = Driven::new(t0()).await;
    // The earlier process ran a chain from s - 10 s: one 10 s segment,
    // then one of 20 s, whose start it never got an answer to.
    let s = t0() + Duration::seconds(10);
    rig.add_policy(
        "chain",
        &cron_at(s - Duration::seconds(10)),
        30,
        "expire",
        &["p1", "p2"],
    )
    .await;
    rig.clock.advance_to(s - Duration::seconds(10));
    // p1's first recording is still ending at the vendor 5 s into the
    // second segment; p2's goes on past the second segment's end.
    let (c1, r1) = chain_left_behind(&rig, "p1", s, 15).await;
    let (c2, r2) = chain_left_behind(&rig, "p2", s, 60).await;

    // The new process starts a second into the second segment.
    rig.clock.advance_to(s + Duration::seconds(1));
    rig.start().await;
    // p2's start gives up 5 s before its end, at s + 15 s.
    rig.run_until(s + Duration::seconds(16)).await;
    rig.stop().await;
    let log = rig.log();

    let p1 = rig.store.recording(r1).await.unwrap().unwrap();
    assert_eq!(p1.state, RecordingState::Recording, "{p1:?}\n{log}");
    let own = p1.contact_id.expect("p1's second segment started");
    assert_ne!(own, c1, "took the predecessor's contact id: {p1:?}");
    let sim = rig.recordings();
    let made = sim_in(&sim, "p1", s, s + Duration::seconds(20));
    assert_eq!(made.len(), 1, "{sim:?}");
    assert_eq!(made[0].contact_id as i64, own.get());
    // Asked again while the vendor answered with the predecessor's.
    let attempts = rig.store.attempts_for(r1).await.unwrap();
    assert!(
        attempts.iter().any(|a| a
            .error
            .as_deref()
            .is_some_and(|e| e.contains("previous segment"))),
        "{attempts:?}"
    );

    let p2 = rig.store.recording(r2).await.unwrap().unwrap();
    assert_eq!(p2.state, RecordingState::Failed, "{p2:?}\n{log}");
    assert_eq!(p2.contact_id, None, "{p2:?}");
    assert!(
        p2.last_error
            .as_deref()
            .is_some_and(|e| e.contains(&format!("contact id {c2}"))),
        "{p2:?}"
    );
}
