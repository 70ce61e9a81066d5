//! `recsched prune` on the real binary: what [history] no longer keeps is
//! counted with `--dry-run` (and nothing deleted), then deleted, per
//! table; with the defaults nothing is ever deleted.

use chrono::{DateTime, Duration, Utc};
use recsched::clock::{Clock, SystemClock};
use recsched::recording::{ContactId, RecordingState, UserId};
use recsched::store::{
    EndMode, NewAttempt, NewRecording, Operation, OwnedOutcome, RecordingId, RowWrite, Settings,
    Store,
};

use super::{count, Recsched};

/// A migrated database with, seen from now:
/// - a finished recording 60 days old with its audit row (goes, with it);
/// - a finished recording 20 days old whose audit row is 20 days old
///   (the row stays at 30 days; its audit row goes at 7);
/// - a pending recording 60 days old with an audit row (open: stays);
/// - a finished recording of yesterday with its audit row (stays).
async fn history() -> Recsched {
    let r = Recsched::migrated();
    let store = Store::open(&Settings {
        path: r.db.clone(),
        ..Settings::default()
    })
    .await
    .unwrap();
    let now = SystemClock.now();
    let days_ago = |d: i64| now - Duration::days(d);
    let old = segment(&store, "old", days_ago(60), true).await;
    segment(&store, "middle", days_ago(20), true).await;
    segment(&store, "open", days_ago(60), false).await;
    segment(&store, "fresh", days_ago(1), true).await;
    assert!(store.recording(old).await.unwrap().is_some());
    store.close().await;
    r
}

/// A one-hour segment of `user` from `start`, with a start's audit row;
/// expired when `finished`, else still pending (a retry noted).
async fn segment(store: &Store, user: &str, start: DateTime<Utc>, finished: bool) -> RecordingId {
    let id = store
        .claim_many(&[NewRecording {
            user_id: UserId::parse(user).unwrap(),
            policy_id: 1,
            segment_start: start,
            segment_end: start + Duration::hours(1),
            requested_seconds: 3600,
            end_mode: EndMode::Expire,
            state: RecordingState::Pending,
            late_seconds: None,
            last_error: None,
        }])
        .await
        .unwrap()
        .pop()
        .flatten()
        .unwrap();
    let outcome = if finished {
        OwnedOutcome::Started {
            contact_id: ContactId::new(id.get()).unwrap(),
            interaction_id: None,
        }
    } else {
        OwnedOutcome::Retrying {
            last_error: "HTTP 425".into(),
        }
    };
    let write = RowWrite {
        recording_id: id,
        attempt: Some(NewAttempt {
            recording_id: id,
            at: start,
            operation: Operation::Start,
            attempt: 1,
            requested_seconds: Some(3600),
            http_status: Some(if finished { 202 } else { 425 }),
            error: None,
            latency_ms: Some(20),
            response_body: None,
        }),
        outcome,
    };
    assert!(store.write_batch(&[write]).await.unwrap()[0].is_ok());
    if finished {
        store
            .set_state(id, RecordingState::Expired, None, None)
            .await
            .unwrap();
    }
    id
}

fn keep(r: &Recsched, days: u32, attempts_days: u32) {
    std::fs::write(
        &r.config,
        format!("[history]\nkeep_days = {days}\nkeep_attempts_days = {attempts_days}\n"),
    )
    .unwrap();
}

/// `(recordings, attempts)` rows stored.
async fn rows(r: &Recsched) -> (i64, i64) {
    let mut conn = r.sql().await;
    (
        count(&mut conn, "recordings").await,
        count(&mut conn, "attempts").await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_counts_with_dry_run_then_deletes_what_history_no_longer_keeps() {
    let r = history().await;
    keep(&r, 30, 7);

    let dry = r.ok(&["prune", "--dry-run"]);
    assert!(
        dry.stdout
            .contains("recordings: would remove 1 (finished, ended before "),
        "{dry:?}"
    );
    assert!(
        dry.stdout
            .contains("attempts: would remove 2 (1 with their recordings, 1 sent before "),
        "{dry:?}"
    );
    assert!(
        dry.stdout.contains("dry run: nothing was deleted"),
        "{dry:?}"
    );
    assert_eq!(rows(&r).await, (4, 4), "a dry run deletes nothing");

    let json = r.ok(&["prune", "--dry-run", "--json"]).json();
    assert_eq!(json["dry_run"], true);
    assert_eq!(
        (
            &json["recordings"],
            &json["attempts_of_recordings"],
            &json["attempts"]
        ),
        (&1.into(), &1.into(), &1.into()),
        "{json}"
    );
    assert!(json["recordings_before"].is_string(), "{json}");

    let done = r.ok(&["prune"]);
    assert!(done.stdout.contains("recordings: removed 1 ("), "{done:?}");
    assert!(
        done.stdout
            .contains("attempts: removed 2 (1 with their recordings, 1 sent before "),
        "{done:?}"
    );
    assert!(!done.stdout.contains("dry run"), "{done:?}");
    // Left: the 20-day-old row (its audit row gone), the open row and its
    // audit row, yesterday's row and its audit row.
    assert_eq!(rows(&r).await, (3, 2));

    let again = r.ok(&["prune"]);
    assert!(
        again.stdout.contains("recordings: removed 0 ("),
        "{again:?}"
    );
    assert!(again.stdout.contains("attempts: removed 0 ("), "{again:?}");
    assert_eq!(rows(&r).await, (3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prune_with_the_defaults_keeps_everything_and_says_how_to_set_it() {
    let r = history().await;
    let run = r.ok(&["prune"]);
    assert!(run.stdout.contains("kept forever"), "{run:?}");
    assert!(run.stdout.contains("[history]"), "{run:?}");
    assert_eq!(rows(&r).await, (4, 4));
    // Recordings kept forever, attempts for 7 days: only the two old
    // audit rows of finished recordings go.
    keep(&r, 0, 7);
    let run = r.ok(&["prune"]);
    assert!(
        run.stdout
            .contains("recordings: kept forever (history.keep_days = 0)"),
        "{run:?}"
    );
    assert!(
        run.stdout
            .contains("attempts: removed 2 (0 with their recordings, 2 sent before "),
        "{run:?}"
    );
    assert_eq!(rows(&r).await, (4, 2));
}

#[test]
fn a_retention_out_of_range_is_refused_naming_the_key() {
    let r = Recsched::migrated();
    keep(&r, 40_000, 0);
    let run = r.fails(&["prune", "--dry-run"]);
    assert!(
        run.stderr
            .contains("history.keep_days = 40000: must be 0 (no limit) or between 1 and 36500"),
        "{run:?}"
    );
}
