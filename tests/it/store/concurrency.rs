//! Several writers on one database: claims decided exactly once (both
//! backends), and SQLite's busy timeout (wait, then `Busy`).

use std::time::{Duration, Instant};

use recsched::store::{Settings, Store, StoreError};
use sqlx::Executor;
use tokio::sync::oneshot;

use super::{at, on_both_backends, operator, segment, settings_in, temp_store, TestDb};

async fn two_handles_racing_for_the_same_segments_claim_each_once(db: TestDb) {
    let one = db.store.clone();
    let two = db.another().await;
    let mut tasks = Vec::new();
    for store in [one.clone(), two.clone(), one.clone(), two] {
        tasks.push(tokio::spawn(async move {
            let mut won = 0;
            for i in 0..50 {
                let seg = segment(&format!("u{i}"), at(9, 0, 0));
                if store.claim(&seg).await.unwrap().is_some() {
                    won += 1;
                }
            }
            // And a burst, as the daemon claims them.
            let burst: Vec<_> = (0..200)
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
    assert_eq!(one.open_rows().await.unwrap().rows.len(), 250);
}

on_both_backends!(two_handles_racing_for_the_same_segments_claim_each_once);

/// Another connection takes the write lock, signals, holds it for `hold`,
/// then commits.
fn hold_write_lock(path: std::path::PathBuf, hold: Duration) -> oneshot::Receiver<()> {
    let (locked_tx, locked_rx) = oneshot::channel();
    tokio::spawn(async move {
        let mut conn = operator(&path).await;
        conn.execute("BEGIN IMMEDIATE").await.unwrap();
        locked_tx.send(()).unwrap();
        tokio::time::sleep(hold).await; // holding the lock, not waiting for anything
        conn.execute("COMMIT").await.unwrap();
    });
    locked_rx
}

#[tokio::test]
async fn a_claim_waits_for_another_writer_within_the_busy_timeout() {
    let (_dir, store) = temp_store().await;
    let hold = Duration::from_millis(1000);
    hold_write_lock(store.path().to_path_buf(), hold)
        .await
        .unwrap();
    let started = Instant::now();
    let id = store.claim(&segment("u1", at(9, 0, 0))).await.unwrap();
    assert!(id.is_some());
    assert!(
        started.elapsed() >= hold / 2,
        "did not wait: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_claim_gives_up_with_busy_after_a_short_timeout() {
    let (dir, store) = temp_store().await;
    let impatient = Store::open(&Settings {
        busy_timeout: Duration::from_millis(50),
        ..settings_in(dir.path(), "recsched.db")
    })
    .await
    .unwrap();
    hold_write_lock(store.path().to_path_buf(), Duration::from_millis(1000))
        .await
        .unwrap();
    let err = impatient
        .claim(&segment("u1", at(9, 0, 0)))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Busy { .. }), "{err:?}");
    assert!(err.is_busy());
    assert!(err.to_string().contains("recsched.db"), "{err}");
}
