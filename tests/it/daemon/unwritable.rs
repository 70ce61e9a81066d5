//! A contact id the vendor returned while the database cannot be written
//! (a read-only file, a full disk) is kept until an operator mends it, not
//! dropped (in-process, on driven time).

use super::{row_at, sim_in, t0};
use crate::common::driven::Driven;
use crate::faults::cron_at;
use chrono::Duration;
use futures::future::BoxFuture;
use recsched::daemon::RowSink;
use recsched::recording::RecordingState;
use recsched::store::{NewRecording, RecordingId, RowWrite, Store, StoreError};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Refuses the first `refuse` batches of row updates as a read-only file
/// or a full disk would (alternating); claims go through.
struct UnwritableFor {
    store: Store,
    refuse: usize,
    refused: Arc<AtomicUsize>,
}

impl RowSink for UnwritableFor {
    fn claim_many<'a>(
        &'a self,
        rows: &'a [NewRecording],
    ) -> BoxFuture<'a, Result<Vec<Option<RecordingId>>, StoreError>> {
        Box::pin(self.store.claim_many(rows))
    }

    fn write_batch<'a>(
        &'a self,
        writes: &'a [RowWrite],
    ) -> BoxFuture<'a, Result<Vec<Result<bool, StoreError>>, StoreError>> {
        Box::pin(async move {
            let n = self.refused.fetch_add(1, Ordering::SeqCst);
            if n < self.refuse {
                let path = self.store.path().to_owned();
                return Err(if n % 2 == 0 {
                    StoreError::ReadOnly { path }
                } else {
                    StoreError::Full { path }
                });
            }
            self.store.write_batch(writes).await
        })
    }
}

#[tokio::test]
async fn a_contact_id_waits_for_a_read_only_or_full_database_to_be_mended() {
    let mut rig = Driven::new(t0()).await;
    let w = t0() + Duration::seconds(2);
    // One user: an update queued behind the writer's backoff counts as
    // work to the rig (`Activity`), which would then never move the clock.
    let users = ["ro1"];
    rig.add_policy("unwritable", &cron_at(w), 60, "expire", &users)
        .await;
    let refused = Arc::new(AtomicUsize::new(0));
    let counter = refused.clone();
    rig.hooks.wrap_rows = Some(Arc::new(move |store| {
        Arc::new(UnwritableFor {
            store,
            refuse: 4,
            refused: counter.clone(),
        }) as Arc<dyn RowSink>
    }));
    rig.start().await;
    rig.run_until(w + Duration::seconds(20)).await;
    rig.stop().await;
    let log = rig.log();
    assert!(
        refused.load(Ordering::SeqCst) > 4,
        "the updates were not refused and retried:\n{log}"
    );
    assert!(log.contains("database not writable now; retrying"), "{log}");
    let rows = rig.rows().await;
    let sim = rig.recordings();
    for u in users {
        let r = row_at(&rows, u, w);
        assert_eq!(r.len(), 1, "{u}: {rows:?}");
        assert_eq!(r[0].state, RecordingState::Recording, "{:?}\n{log}", r[0]);
        let made = sim_in(&sim, u, w, w + Duration::seconds(60));
        assert_eq!(made.len(), 1, "{u}: one recording, not a resend: {sim:?}");
        assert_eq!(
            r[0].contact_id.map(|c| c.get()),
            Some(made[0].contact_id as i64),
            "{u}: the contact id the vendor returned"
        );
    }
}
