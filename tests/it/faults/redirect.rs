//! Issue 12, case 6: redirects. The token endpoint answers its first
//! request with `307` to another host (once, that redirect re-posted the
//! access key secret there), and the API answers one user's start with
//! `307` to another host. Neither is followed: each is a final error for
//! the start that met it, naming the Location's host, while a healthy
//! policy beside them is recorded on time and the other host hears
//! nothing.

use super::hostile::{assert_no_panic, assert_recorded_on_time, named_in_log, Elsewhere};
use super::{add_policy, cron_at, now, refs, running, second_after, users};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{Faults, UserFault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redirects_are_final_errors_naming_the_host_and_go_nowhere() {
    let elsewhere = Elsewhere::bind().await;
    let mut rig = Rig::with_faults(Faults {
        // Only the first token request: the one the token victim makes.
        token_redirect: Some(format!("{}/auth/token", elsewhere.url())),
        token_redirect_limit: Some(1),
        token_advertised_base: Some(elsewhere.url()),
        user_faults: [(
            "moved-1".to_owned(),
            UserFault::Redirect {
                location: format!("{}/steal", elsewhere.url()),
            },
        )]
        .into(),
        ..Faults::default()
    })
    .await;
    // The victim's start must be the first to ask for a token (claiming
    // ahead, the warm-up before the window would ask first).
    rig.set("RECSCHED_SCHEDULE__CLAIM_AHEAD_SECONDS", "0");
    let first = second_after(Duration::seconds(3));
    let then = first + Duration::seconds(1);
    add_policy(
        &rig,
        "token-victim",
        &cron_at(first),
        30,
        "expire",
        &["victim-1"],
    )
    .await;
    add_policy(
        &rig,
        "api-redirected",
        &cron_at(then),
        30,
        "expire",
        &["moved-1"],
    )
    .await;
    let healthy = users("healthy", 3);
    add_policy(
        &rig,
        "healthy",
        &cron_at(then),
        30,
        "expire",
        &refs(&healthy),
    )
    .await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    assert!(now() < first, "the daemon took too long to start");

    let host = elsewhere.host();
    let token_line = named_in_log(&daemon, &["victim-1", &host, "cxone.token_url"]).await;
    assert!(token_line.contains("307"), "{token_line}");
    assert_recorded_on_time(&rig, &healthy, then).await;
    let api_line = named_in_log(&daemon, &["moved-1", &host, "cxone.api_base"]).await;
    assert!(api_line.contains("follows no redirect"), "{api_line}");

    // Both redirected starts are failed rows saying why; neither user was
    // recorded.
    let rows = wait_for(
        std::time::Duration::from_secs(10),
        "both redirected rows failed",
        || async {
            let rows = rig.rows().await;
            let failed = rows
                .iter()
                .filter(|r| r.state == RecordingState::Failed)
                .count();
            (failed == 2).then_some(rows)
        },
    )
    .await;
    for user in ["victim-1", "moved-1"] {
        let row = rows.iter().find(|r| r.user_id.as_str() == user).unwrap();
        assert_eq!(row.state, RecordingState::Failed, "{row:?}");
        let why = row.last_error.as_deref().unwrap_or_default();
        assert!(why.contains(&host), "{row:?}");
        assert!(rig.recordings().iter().all(|m| m.user_id != user));
    }
    daemon.assert_running();
    elsewhere.assert_untouched();
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
}
