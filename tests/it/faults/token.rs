//! Issue 12, case 5: a token endpoint whose `expires_in` is absurd
//! (`9999999999999`, which once overflowed the clock arithmetic and
//! panicked every start) or tiny (`1`, shorter than the renewal margin,
//! which once made every call fetch a token of its own, one at a time).
//! Two policies open at once; each test checks the daemon stays up, every
//! user is recorded on time, the value is named in the log, nothing goes
//! to the host the token answer advertises, and nothing panicked.

use super::hostile::{assert_no_panic, assert_recorded_on_time, named_in_log, Elsewhere};
use super::{add_policy, cron_at, now, refs, running, second_after, users};
use crate::common::daemon::Rig;
use chrono::Duration;
use recsched::simulator::Faults;

/// Two policies of three users, opening together; returns every user.
async fn two_policies(rig: &Rig, tag: &str, opens: chrono::DateTime<chrono::Utc>) -> Vec<String> {
    let a = users(&format!("{tag}-a"), 3);
    let b = users(&format!("{tag}-b"), 3);
    add_policy(
        rig,
        &format!("{tag}-first"),
        &cron_at(opens),
        30,
        "expire",
        &refs(&a),
    )
    .await;
    add_policy(
        rig,
        &format!("{tag}-second"),
        &cron_at(opens),
        30,
        "expire",
        &refs(&b),
    )
    .await;
    a.into_iter().chain(b).collect()
}

fn token_requests(rig: &Rig) -> usize {
    rig.sim
        .requests()
        .iter()
        .filter(|r| r.path == "/auth/token")
        .count()
}

async fn rig_with(expires_in: i64, elsewhere: &Elsewhere) -> Rig {
    Rig::with_faults(Faults {
        token_expires_in: Some(expires_in),
        // The answer points at another host; the configured URLs win.
        token_advertised_base: Some(elsewhere.url()),
        ..Faults::default()
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_absurd_token_lifetime_panics_nothing_and_every_user_is_recorded() {
    let elsewhere = Elsewhere::bind().await;
    let rig = rig_with(9_999_999_999_999, &elsewhere).await;
    let opens = second_after(Duration::seconds(3));
    let everyone = two_policies(&rig, "absurd", opens).await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    assert!(now() < opens, "the daemon took too long to start");

    assert_recorded_on_time(&rig, &everyone, opens).await;
    let line = named_in_log(&daemon, &["expires_in 9999999999999", "86400 s"]).await;
    assert!(line.contains("WARN"), "{line}");
    assert_eq!(token_requests(&rig), 1, "one token for everyone");
    daemon.assert_running();
    elsewhere.assert_untouched();
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tiny_token_lifetime_is_clamped_and_one_token_serves_every_call() {
    let elsewhere = Elsewhere::bind().await;
    let rig = rig_with(1, &elsewhere).await;
    let opens = second_after(Duration::seconds(3));
    let everyone = two_policies(&rig, "tiny", opens).await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    assert!(now() < opens, "the daemon took too long to start");

    assert_recorded_on_time(&rig, &everyone, opens).await;
    named_in_log(&daemon, &["expires_in 1 ", "60 s"]).await;
    // Clamped to 60 s and renewed after 30 s: the six starts of this
    // test share one token (before, each fetched its own).
    assert_eq!(token_requests(&rig), 1, "{:?}", rig.sim.requests());
    daemon.assert_running();
    elsewhere.assert_untouched();
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
}
