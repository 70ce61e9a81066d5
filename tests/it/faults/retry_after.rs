//! Issue 12, case 7: a vendor that answers one user's starts with 425
//! and `Retry-After: 0`, for ever. Taken at its word, that once made over
//! 200 starts for the user in one 15 s window. The retries now wait at
//! least the normal backoff, so their count is bounded by it, and a
//! healthy policy beside is recorded on time.

use super::hostile::{assert_no_panic, assert_recorded_on_time, named_in_log, Elsewhere};
use super::{
    add_policy, cron_at, now, refs, running, second_after, start_requests, user_of, users,
};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{Faults, UserFault};

/// The locked user's window; its start is retried until 5 s before the
/// end, so for 3 s.
const WINDOW_SECS: i64 = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_zero_is_retried_at_the_backoff_not_hundreds_of_times() {
    let elsewhere = Elsewhere::bind().await;
    let rig = Rig::with_faults(Faults {
        retry_after_secs: Some(0),
        user_faults: [("stuck-1".to_owned(), UserFault::Locked)].into(),
        token_advertised_base: Some(elsewhere.url()),
        ..Faults::default()
    })
    .await;
    let opens = second_after(Duration::seconds(3));
    add_policy(
        &rig,
        "locked",
        &cron_at(opens),
        WINDOW_SECS,
        "expire",
        &["stuck-1"],
    )
    .await;
    let healthy = users("beside", 3);
    add_policy(
        &rig,
        "healthy",
        &cron_at(opens),
        WINDOW_SECS,
        "expire",
        &refs(&healthy),
    )
    .await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    assert!(now() < opens, "the daemon took too long to start");

    assert_recorded_on_time(&rig, &healthy, opens).await;
    named_in_log(&daemon, &["stuck-1", "425"]).await;
    let row = wait_for(
        std::time::Duration::from_secs(20),
        "the locked user's row to fail when its retries run out",
        || async {
            rig.rows()
                .await
                .into_iter()
                .find(|r| r.user_id.as_str() == "stuck-1" && r.state == RecordingState::Failed)
        },
    )
    .await;
    assert!(
        row.last_error.as_deref().is_some_and(|e| e.contains("425")),
        "{row:?}"
    );
    let starts = start_requests(&rig)
        .into_iter()
        .filter(|r| user_of(r).as_deref() == Some("stuck-1"))
        .count();
    // Backoff ceilings 0.5, 1, 2, 4, 8, 16, 30 s with full jitter over
    // the 3 s of retrying: about 4 starts, and more than 15 only if the
    // jitter samples of eight 30 s ceilings add up to under 3 s (odds far
    // below one in a million). Before, Retry-After: 0 gave hundreds.
    println!("425 with Retry-After: 0 for 3 s of retrying: {starts} starts");
    assert!((2..=15).contains(&starts), "{starts} starts for stuck-1");
    daemon.assert_running();
    elsewhere.assert_untouched();
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
}
