//! The daemon's own bookkeeping rows, edited by hand: a deleted
//! `policy_revision` row or a `daemon_state` value that is not text never
//! keeps the daemon from starting, and costs nothing else (in-process, on
//! driven time).

use super::t0;
use crate::common::daemon::wait_for;
use crate::common::driven::Driven;
use recsched::daemon::LAST_SEEN_KEY;
use recsched::simulator::Faults;
use std::time::Duration;

/// How long (real time) this machine may take to show an effect: the
/// watcher polls every 50 ms. Not a correctness margin.
const SEEN: Duration = Duration::from_secs(10);

/// With the revision row gone, the daemon starts, records, recreates the
/// row, and an edit made afterwards still reaches it.
async fn without_the_revision_row(mut rig: Driven) {
    rig.add_policy("always", "*/2 * * * * *", 10, "expire", &["v1"])
        .await;
    rig.sql("DELETE FROM policy_revision").await;
    rig.start().await;
    rig.run_for(chrono::Duration::seconds(3)).await;
    let running = |u: &str| {
        rig.recordings()
            .iter()
            .any(|r| r.user_id == u && r.ended_at.is_none())
    };
    assert!(running("v1"), "{:?}\n{}", rig.recordings(), rig.log());
    assert!(
        rig.log().contains("policy_revision"),
        "the recreated row is not said:\n{}",
        rig.log()
    );

    rig.sql(
        "INSERT INTO policy_users (policy_id, user_id) \
         SELECT id, 'v2' FROM policies WHERE name = 'always';",
    )
    .await;
    wait_for(SEEN, "v2 to be recorded after INSERT", || async {
        running("v2").then_some(())
    })
    .await;
    rig.stop().await;
}

#[tokio::test]
async fn a_deleted_policy_revision_row_is_recreated_on_sqlite() {
    without_the_revision_row(Driven::new(t0()).await).await;
}

#[tokio::test]
async fn a_deleted_policy_revision_row_is_recreated_on_postgres() {
    let Some(rig) = Driven::on_postgres(Faults::default(), t0()).await else {
        return;
    };
    without_the_revision_row(rig).await;
}

/// sqlite3 lets an operator store bytes as the heartbeat (PostgreSQL
/// types the column). The daemon names the row, starts from now as it
/// would without a heartbeat, and writes a good one.
#[tokio::test]
async fn a_daemon_state_value_that_is_not_text_is_named_and_ignored() {
    let mut rig = Driven::new(t0()).await;
    rig.add_policy("always", "*/2 * * * * *", 10, "expire", &["s1"])
        .await;
    rig.sql(&format!(
        "INSERT INTO daemon_state (rowid, key, value) VALUES (7, '{LAST_SEEN_KEY}', X'00FF')"
    ))
    .await;
    rig.start().await;
    rig.run_for(chrono::Duration::seconds(3)).await;
    assert!(
        rig.recordings().iter().any(|r| r.user_id == "s1"),
        "{:?}\n{}",
        rig.recordings(),
        rig.log()
    );
    let log = rig.log();
    assert!(
        log.contains("bad row: table daemon_state, rowid 7, column value: "),
        "{log}"
    );
    rig.stop().await;
    let heartbeat = rig.store.get_state(LAST_SEEN_KEY).await.unwrap();
    assert!(heartbeat.is_some(), "no heartbeat written over the bad one");
}
