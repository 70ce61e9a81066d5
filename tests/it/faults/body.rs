//! Issue 12, case 8: bodies without a cap. One user's start is answered
//! with a body of a terabyte (JSON that would parse if read whole), and
//! another's with an `interactionId` of 300 characters. The first is cut
//! at 64 KiB and the second refused, each a malformed answer naming what
//! was wrong, while a healthy policy beside them is recorded on time.

use super::hostile::{assert_no_panic, assert_recorded_on_time, named_in_log, Elsewhere};
use super::{add_policy, cron_at, now, refs, running, second_after, users};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{Faults, UserFault};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endless_body_and_a_long_interaction_id_are_refused_by_name() {
    let elsewhere = Elsewhere::bind().await;
    let rig = Rig::with_faults(Faults {
        user_faults: [
            (
                "endless-1".to_owned(),
                UserFault::OversizedBody { bytes: 1 << 40 },
            ),
            (
                "long-id-1".to_owned(),
                UserFault::LongInteractionId { chars: 300 },
            ),
        ]
        .into(),
        token_advertised_base: Some(elsewhere.url()),
        ..Faults::default()
    })
    .await;
    let opens = second_after(Duration::seconds(3));
    add_policy(
        &rig,
        "bad-bodies",
        &cron_at(opens),
        30,
        "expire",
        &["endless-1", "long-id-1"],
    )
    .await;
    let healthy = users("fine", 3);
    add_policy(
        &rig,
        "healthy",
        &cron_at(opens),
        30,
        "expire",
        &refs(&healthy),
    )
    .await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    assert!(now() < opens, "the daemon took too long to start");

    assert_recorded_on_time(&rig, &healthy, opens).await;
    named_in_log(&daemon, &["endless-1", "longer than 65536 bytes"]).await;
    named_in_log(&daemon, &["long-id-1", "interactionId is 300 characters"]).await;
    let rows = wait_for(
        std::time::Duration::from_secs(10),
        "both bad answers' rows failed",
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
    for (user, why) in [
        ("endless-1", "longer than 65536 bytes"),
        ("long-id-1", "interactionId is 300 characters"),
    ] {
        let row = rows.iter().find(|r| r.user_id.as_str() == user).unwrap();
        assert_eq!(row.state, RecordingState::Failed, "{row:?}");
        assert!(
            row.last_error.as_deref().is_some_and(|e| e.contains(why)),
            "{row:?}"
        );
        assert_eq!(row.interaction_id, None, "{row:?}");
        // The audit trail keeps 2 KiB of the answer, never the whole.
        for a in rig.store.attempts_for(row.id).await.unwrap() {
            let kept = a.response_body.as_deref().unwrap_or_default();
            assert!(kept.len() <= 2048, "{} bytes kept", kept.len());
        }
    }
    daemon.assert_running();
    elsewhere.assert_untouched();
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
}
