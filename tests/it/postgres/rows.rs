//! Bad rows on PostgreSQL: the same rule as on SQLite where this backend
//! can meet them. Its columns are typed and its foreign keys enforced, so
//! wrong types and orphans cannot happen; what psql can still write is a
//! `recordings` row whose end is not after its start (or a count below
//! zero), and a `policy_users` row whose user id is not a valid user id.
//! A planning pass judges a `recordings` row on what places it in time;
//! adopting an open row judges every column.

use chrono::{DateTime, Duration, TimeZone, Utc};
use recsched::recording::{RecordingState, UserId};
use recsched::store::{until_fixed, EndMode, NewPolicy, NewRecording, RecordingFilter};

use super::pg;
use crate::common::daemon::wait_for;
use crate::common::pg::PgRig;
use crate::daemon::now;
use crate::faults::{cron_at, running, second_after};

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 29, h, m, s).unwrap()
}

fn user(raw: &str) -> UserId {
    UserId::parse(raw).unwrap()
}

fn segment(user_id: &str, start: DateTime<Utc>) -> NewRecording {
    NewRecording {
        user_id: user(user_id),
        policy_id: 1,
        segment_start: start,
        segment_end: start + Duration::hours(1),
        requested_seconds: 3600,
        end_mode: EndMode::Expire,
        state: RecordingState::Pending,
        late_seconds: None,
        last_error: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_recording_row_occupies_its_user_and_is_given_back_not_taken_over() {
    let Some(db) = pg().await else { return };
    let dead = db.store().await.for_instance("dead");
    let survivor = db.store().await.for_instance("survivor");
    let bad = dead
        .claim(&segment("ann", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    let negative = dead
        .claim(&segment("bob", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    dead.claim(&segment("cid", at(9, 0, 0)))
        .await
        .unwrap()
        .unwrap();
    db.sql(&format!(
        "UPDATE recordings SET segment_end = segment_start - interval '1 minute' \
             WHERE id = {bad}; \
         UPDATE recordings SET attempts = -1 WHERE id = {negative}; \
         UPDATE recordings SET lease_until = now() - interval '1 second';"
    ))
    .await;

    // A pass judges what places a row in time: ann's end is not after its
    // start, so ann is occupied until it is fixed; bob's row is placed
    // (its bad count does not matter to when it occupies him).
    let read = survivor.occupied_since(at(9, 30, 0)).await.unwrap();
    let (start, end) = until_fixed();
    let mut slots = read.rows.clone();
    slots.sort();
    assert_eq!(
        slots,
        [
            (user("ann"), start, end),
            (user("bob"), at(9, 0, 0), at(10, 0, 0)),
            (user("cid"), at(9, 0, 0), at(10, 0, 0)),
        ]
    );
    let [named] = read.bad.as_slice() else {
        panic!("{:?}", read.bad)
    };
    assert_eq!((named.id, named.column), (bad.get(), "segment_end"));
    assert!(
        named.to_string().contains("is not after segment_start"),
        "{named}"
    );

    // The survivor takes the readable row over and gives the others back.
    // Adopting judges every column.
    let taken = survivor.adopt_open_rows().await.unwrap();
    assert_eq!(taken.rows.len(), 1);
    assert_eq!(taken.rows[0].row.user_id, user("cid"));
    let mut named: Vec<(i64, &str)> = taken.bad.iter().map(|b| (b.id, b.column)).collect();
    named.sort();
    assert_eq!(
        named,
        [(bad.get(), "segment_end"), (negative.get(), "attempts")]
    );
    let mut conn = db.conn().await;
    let owners: Vec<Option<String>> =
        sqlx::query_scalar("SELECT owner FROM recordings WHERE id = ANY($1) ORDER BY id")
            .bind(vec![bad.get(), negative.get()])
            .fetch_all(&mut conn)
            .await
            .unwrap();
    assert_eq!(owners, [None, None], "a row nobody can read is nobody's");

    // Fixed by the operator: the next takeover adopts it.
    db.sql(&format!(
        "UPDATE recordings SET segment_end = segment_start + interval '1 hour' WHERE id = {bad}"
    ))
    .await;
    let taken = survivor.adopt_open_rows().await.unwrap();
    assert_eq!(taken.rows.len(), 1);
    assert_eq!(taken.rows[0].row.id, bad);
    assert_eq!(taken.bad.len(), 1, "the other is still bad");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_row_with_a_bad_user_id_is_skipped_and_its_policy_goes_on() {
    let Some(db) = pg().await else { return };
    let store = db.store().await;
    let id = store
        .insert_policy(&NewPolicy {
            name: "day".into(),
            enabled: true,
            cron: "0 9 * * *".into(),
            timezone: "UTC".into(),
            window_seconds: 3600,
            end_mode: "expire".into(),
            users: vec!["u1".into()],
        })
        .await
        .unwrap();
    db.sql(&format!(
        "INSERT INTO policy_users VALUES ({id}, E'tab\\there'), ({id}, '')"
    ))
    .await;
    let read = store.read_policies().await.unwrap();
    assert_eq!(read.rows.len(), 1);
    assert_eq!(read.rows[0].users, ["u1"]);
    assert_eq!(read.bad.len(), 2);
    for bad in &read.bad {
        assert_eq!(
            (bad.table, bad.key, bad.id, bad.column),
            ("policy_users", "policy_id", id, "user_id")
        );
    }
    let text = read.bad.iter().map(ToString::to_string).collect::<Vec<_>>();
    assert!(
        text.iter().any(|t| t.starts_with(&format!(
            "table policy_users, policy_id {id}, column user_id: `tab\\there`: user id contains a \
             control character"
        ))),
        "{text:?}"
    );
}

/// End to end: a damaged open row (its end before its start) leaves its
/// user alone; the daemon starts, and the other users are recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_on_postgres_leaves_a_damaged_rows_user_alone_and_records_the_others() {
    let Some(rig) = PgRig::new().await else {
        return;
    };
    let w = second_after(Duration::seconds(4));
    rig.add_policy("healthy", &cron_at(w), 20, "expire", &["h1", "d1"])
        .await;
    rig.db
        .sql(
            "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
                 requested_seconds, state, contact_id) \
             VALUES ('d1', 1, now() - interval '1 hour', now() - interval '2 hours', 60, \
                 'recording', 777)",
        )
        .await;
    let mut daemon = rig.spawn();
    running(&daemon).await;
    wait_for(
        std::time::Duration::from_secs(15),
        "h1 recording",
        || async {
            rig.store
                .read_recordings(&RecordingFilter::default())
                .await
                .unwrap()
                .rows
                .into_iter()
                .find(|r| r.user_id.as_str() == "h1" && r.contact_id.is_some())
        },
    )
    .await;
    let h1 = rig
        .rig
        .recordings()
        .into_iter()
        .find(|r| r.user_id == "h1")
        .unwrap();
    assert!(h1.started_at >= w && h1.started_at < w + Duration::seconds(5));
    assert!(now() > w);
    assert!(!rig.rig.recordings().iter().any(|r| r.user_id == "d1"));
    daemon.assert_running();
    let log = daemon.log();
    assert!(
        log.contains("table recordings, id 1, column segment_end: ")
            && log.contains("is not after segment_start")
            && log.contains("nothing is started for user `d1`"),
        "{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
}
