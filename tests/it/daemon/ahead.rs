//! Claim ahead (`schedule.claim_ahead_seconds`): a window's write-ahead
//! rows are committed seconds before it opens, its starts leave at its
//! exact instant; a row claimed ahead whose policy changes before the
//! instant is withdrawn (deleted, never sent); a restart in between sends
//! it at its instant (in-process, on driven time).

use super::t0;
use crate::common::daemon::wait_for;
use crate::common::driven::Driven;
use crate::faults::cron_at;
use chrono::{DateTime, Duration, Utc};
use recsched::recording::RecordingState;
use recsched::store::RecordingRow;

/// How long (real time) this machine may take to show an effect of an
/// edit while the daemon's clock stands still. Not a correctness margin.
const SEEN: std::time::Duration = std::time::Duration::from_secs(20);

/// The instant the tests' windows open: 10 s after the rig's start.
fn window() -> DateTime<Utc> {
    t0() + Duration::seconds(10)
}

/// A rig at `t0()` claiming `ahead` seconds before a window.
async fn rig(ahead: u64) -> Driven {
    let mut rig = Driven::new(t0()).await;
    rig.schedule.claim_ahead_seconds = ahead;
    rig
}

/// The start requests the simulator received, with their arrival.
fn start_times(rig: &Driven) -> Vec<DateTime<Utc>> {
    rig.sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .map(|r| r.at)
        .collect()
}

fn rows_of<'a>(rows: &'a [RecordingRow], user: &str) -> Vec<&'a RecordingRow> {
    rows.iter().filter(|r| r.user_id.as_str() == user).collect()
}

#[tokio::test]
async fn rows_are_claimed_ahead_and_the_starts_leave_at_the_instant() {
    let mut rig = rig(5).await;
    let w = window();
    let users = ["a1", "a2", "a3"];
    rig.add_policy("ahead", &cron_at(w), 30, "expire", &users)
        .await;
    rig.start().await;

    // Five seconds ahead: the rows are committed, nothing is sent.
    rig.run_until(w - Duration::seconds(5)).await;
    let rows = rig.rows().await;
    assert_eq!(rows.len(), users.len(), "{rows:?}\n{}", rig.log());
    for r in &rows {
        assert_eq!(r.state, RecordingState::Pending, "{r:?}");
        assert_eq!(r.segment_start, w);
    }
    assert!(start_times(&rig).is_empty(), "{:?}", rig.sim.requests());
    // The token was fetched ahead too, so the instant waits for no token.
    let token_at: Vec<_> = rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path == "/auth/token")
        .map(|r| r.at)
        .collect();
    assert_eq!(token_at.len(), 1, "{:?}", rig.sim.requests());
    assert!(token_at[0] < w);

    // One tick before the instant: still nothing sent.
    rig.run_until(w - Duration::milliseconds(1)).await;
    assert!(start_times(&rig).is_empty(), "{:?}", rig.sim.requests());

    // At the instant, exactly then, every start leaves once.
    rig.run_until(w).await;
    let sent = start_times(&rig);
    assert_eq!(sent, vec![w; users.len()], "{}", rig.log());
    let rows = rig.rows().await;
    for r in &rows {
        assert_eq!(r.state, RecordingState::Recording, "{r:?}");
        assert_eq!(r.late_seconds, Some(0.0), "{r:?}");
    }
    rig.run_for(Duration::seconds(40)).await;
    assert_eq!(rig.recordings().len(), users.len());
    assert_eq!(rig.rows().await.len(), users.len());
    rig.stop().await;
}

#[tokio::test]
async fn zero_claims_at_the_instant_as_before() {
    let mut rig = rig(0).await;
    let w = window();
    rig.add_policy("at-once", &cron_at(w), 30, "expire", &["z1", "z2"])
        .await;
    rig.start().await;
    rig.run_until(w - Duration::milliseconds(1)).await;
    assert!(rig.rows().await.is_empty(), "nothing is claimed ahead");
    rig.run_until(w).await;
    let rows = rig.rows().await;
    assert_eq!(rows.len(), 2);
    assert_eq!(start_times(&rig), vec![w; 2]);
    rig.stop().await;
}

#[tokio::test]
async fn a_row_claimed_ahead_whose_policy_changes_is_withdrawn_and_never_sent() {
    let mut rig = rig(5).await;
    let w = window();
    let cron = cron_at(w);
    rig.add_policy("disabled", &cron, 30, "expire", &["d1"])
        .await;
    rig.add_policy("deleted", &cron, 30, "expire", &["x1"])
        .await;
    rig.add_policy("shrunk", &cron, 30, "expire", &["s1", "s2"])
        .await;
    rig.add_policy("longer", &cron, 30, "expire", &["l1"]).await;
    rig.add_policy("moved", &cron, 30, "expire", &["m1"]).await;
    rig.add_policy("kept", &cron, 30, "expire", &["k1"]).await;
    rig.start().await;
    rig.run_until(w - Duration::seconds(4)).await;
    let claimed = rig.rows().await;
    assert_eq!(claimed.len(), 7, "{claimed:?}\n{}", rig.log());

    let later = cron_at(w + Duration::seconds(20));
    rig.sql(&format!(
        "UPDATE policies SET enabled = 0 WHERE name = 'disabled'; \
         DELETE FROM policy_users WHERE policy_id = (SELECT id FROM policies WHERE name = 'deleted'); \
         DELETE FROM policies WHERE name = 'deleted'; \
         DELETE FROM policy_users WHERE user_id = 's1'; \
         UPDATE policies SET window_seconds = 60 WHERE name = 'longer'; \
         UPDATE policies SET cron = '{later}' WHERE name = 'moved';"
    ))
    .await;
    // Seen while the daemon's clock stands still: withdrawn rows go, the
    // lengthened window is claimed again as it now is.
    let rows = wait_for(SEEN, "the changed rows to be withdrawn", || async {
        let rows = rig.rows().await;
        let l1 = rows_of(&rows, "l1");
        let done = ["d1", "x1", "s1", "m1"]
            .iter()
            .all(|u| rows_of(&rows, u).is_empty())
            && l1.len() == 1
            && l1[0].segment_end == w + Duration::seconds(60);
        done.then_some(rows)
    })
    .await;
    assert_eq!(rows.len(), 3, "s2, l1 and k1 are left: {rows:?}");
    assert!(rig.log().contains("withdrew rows claimed ahead"));
    assert!(
        start_times(&rig).is_empty(),
        "nothing sent before the instant"
    );

    rig.run_until(w + Duration::seconds(1)).await;
    let sim = rig.recordings();
    let mut started: Vec<(&str, u64)> = sim
        .iter()
        .map(|r| (r.user_id.as_str(), r.duration))
        .collect();
    started.sort();
    assert_eq!(
        started,
        vec![("k1", 30), ("l1", 60), ("s2", 30)],
        "{}",
        rig.log()
    );
    assert!(sim.iter().all(|r| r.started_at == w), "{sim:?}");

    // The moved window opens at its new instant, claimed ahead again.
    rig.run_until(w + Duration::seconds(20)).await;
    let m1: Vec<_> = rig
        .recordings()
        .into_iter()
        .filter(|r| r.user_id == "m1")
        .collect();
    assert_eq!(m1.len(), 1, "{m1:?}\n{}", rig.log());
    assert_eq!(m1[0].started_at, w + Duration::seconds(20));
    rig.stop().await;
}

#[tokio::test]
async fn a_restart_between_the_claim_and_the_instant_sends_at_the_instant() {
    let mut rig = rig(5).await;
    let w = window();
    let users = ["r1", "r2"];
    rig.add_policy("restart", &cron_at(w), 30, "expire", &users)
        .await;
    rig.start().await;
    rig.run_until(w - Duration::seconds(4)).await;
    let claimed = rig.rows().await;
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    rig.stop().await;

    // Down for two seconds, back three seconds before the instant.
    rig.clock.advance(Duration::seconds(1));
    rig.start().await;
    rig.run_until(w - Duration::milliseconds(1)).await;
    assert!(start_times(&rig).is_empty(), "{:?}", rig.sim.requests());
    rig.run_until(w).await;
    assert_eq!(start_times(&rig), vec![w; 2], "{}", rig.log());
    let rows = rig.rows().await;
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        claimed.iter().map(|r| r.id).collect::<Vec<_>>(),
        "the same rows, adopted"
    );
    assert!(rows.iter().all(|r| r.state == RecordingState::Recording));
    rig.stop().await;
}

#[tokio::test]
async fn a_row_adopted_after_a_restart_is_withdrawn_when_its_policy_went() {
    let mut rig = rig(5).await;
    let w = window();
    rig.add_policy("gone", &cron_at(w), 30, "expire", &["g1"])
        .await;
    rig.start().await;
    rig.run_until(w - Duration::seconds(4)).await;
    assert_eq!(rig.rows().await.len(), 1);
    rig.stop().await;
    rig.sql("UPDATE policies SET enabled = 0 WHERE name = 'gone';")
        .await;
    rig.start().await;
    wait_for(SEEN, "the row to be withdrawn", || async {
        rig.rows().await.is_empty().then_some(())
    })
    .await;
    rig.run_until(w + Duration::seconds(2)).await;
    assert!(rig.recordings().is_empty(), "{}", rig.log());
    assert!(rig.rows().await.is_empty());
    rig.stop().await;
}

#[tokio::test]
async fn a_forward_step_while_a_row_waits_sends_it_when_the_stepped_clock_reads_the_instant() {
    let mut rig = rig(5).await;
    let w = window();
    rig.add_policy("stepped", &cron_at(w), 30, "expire", &["p1"])
        .await;
    rig.start().await;
    rig.run_until(w - Duration::seconds(5)).await;
    assert_eq!(rig.rows().await.len(), 1);
    // NTP corrects the host by 3 s: the window is 2 s away now, not 5.
    rig.clock.step(Duration::seconds(3));
    rig.run_until(w - Duration::milliseconds(1)).await;
    assert!(start_times(&rig).is_empty(), "{:?}", rig.sim.requests());
    rig.run_until(w).await;
    let rows = rig.rows().await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].state, RecordingState::Recording, "{}", rig.log());
    let sent = rig.store.attempts_for(rows[0].id).await.unwrap()[0].at;
    assert_eq!(sent, w, "sent when the stepped clock read the instant");
    rig.stop().await;
}
