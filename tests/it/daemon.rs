//! The daemon end to end: a real SQLite file, the simulator on loopback,
//! 6-field crons with second-level windows.
//!
//! What needs a process (signals, `kill -9`, the notify socket, secrets
//! from the environment) runs the real binary (`common::daemon::Rig`).
//! The scheduling logic (windows and segments, overlap chains, end modes,
//! reloads, catch-up, retries) runs the daemon in-process on driven time
//! (`common::driven::Driven`): windows open at their exact instant, and no
//! check depends on how fast this machine is.

mod ahead;
mod bookkeeping;
mod chaos;
mod dense;
mod edits;
mod operate;
mod reconcile;
mod shutdown;
mod steps;
mod unwritable;

use crate::common::daemon::{started, Rig};
use crate::common::driven::Driven;
use chrono::TimeZone;
use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use recsched::clock::{Clock, SystemClock};
use recsched::recording::RecordingState;
use recsched::simulator::{EndReason, Faults, Recording};
use recsched::store::RecordingRow;
use std::collections::HashMap;

pub fn now() -> DateTime<Utc> {
    SystemClock.now()
}

/// Window starts in `[from, until)` of a cron that fires when the second
/// is `offset` modulo `every`.
pub fn starts(
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    every: u32,
    offset: u32,
) -> Vec<DateTime<Utc>> {
    let mut t = from.duration_trunc(Duration::seconds(1)).unwrap();
    if t < from {
        t += Duration::seconds(1);
    }
    let mut out = Vec::new();
    while t < until {
        if t.second() % every == offset {
            out.push(t);
        }
        t += Duration::seconds(1);
    }
    out
}

/// Where driven tests begin: two seconds before a whole minute.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 8, 59, 58).unwrap()
}

/// Waits (without sleeping blindly) until the wall clock passes `at`.
pub async fn until(at: DateTime<Utc>) {
    let left = (at - now()).to_std().unwrap_or_default();
    tokio::time::sleep(left).await;
}

/// The simulator's recordings of `user` that started inside `[start, end)`.
pub fn sim_in<'a>(
    sim: &'a [Recording],
    user: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Vec<&'a Recording> {
    sim.iter()
        .filter(|r| r.user_id == user && r.started_at >= start && r.started_at < end)
        .collect()
}

/// Every user in `users` has exactly one simulator recording started in
/// the window `[w, w + len)`, and its row for `w` holds that recording's
/// contact id.
pub fn assert_each_started_once(
    rows: &[RecordingRow],
    sim: &[Recording],
    users: &[String],
    w: DateTime<Utc>,
    len: Duration,
) {
    for u in users {
        let mine = sim_in(sim, u, w, w + len);
        assert_eq!(mine.len(), 1, "{u}: {mine:?}");
        let row = rows
            .iter()
            .find(|r| r.user_id.as_str() == u && r.segment_start == w)
            .unwrap_or_else(|| panic!("no row for {u} at {w}"));
        assert_eq!(
            row.contact_id.map(|c| c.get()),
            Some(mine[0].contact_id as i64),
            "{row:?}"
        );
    }
}

pub fn row_at<'a>(
    rows: &'a [RecordingRow],
    user: &str,
    start: DateTime<Utc>,
) -> Vec<&'a RecordingRow> {
    rows.iter()
        .filter(|r| r.user_id.as_str() == user && r.segment_start == start)
        .collect()
}

pub async fn add_policy(
    rig: &Rig,
    name: &str,
    cron: &str,
    window: i64,
    end_mode: &str,
    users: &[&str],
) {
    rig.sql(&crate::common::driven::policy_sql(
        name, cron, window, end_mode, users,
    ))
    .await;
}

#[tokio::test]
async fn every_window_of_a_plain_sql_policy_is_recorded_once_with_its_contact_id() {
    let mut rig = Driven::new(t0()).await;
    rig.add_policy(
        "every-10s",
        "*/10 * * * * *",
        5,
        "expire",
        &["u1", "u2", "u3"],
    )
    .await;
    rig.start().await;
    let t0 = rig.now();
    let windows = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(21), 10, 0);
    assert!(windows.len() >= 2);
    rig.run_until(*windows.last().unwrap() + Duration::seconds(6))
        .await;
    rig.stop().await;
    let log = rig.log();

    let rows = rig.rows().await;
    let sim = rig.recordings();
    for w in &windows {
        for u in ["u1", "u2", "u3"] {
            let r = row_at(&rows, u, *w);
            assert_eq!(r.len(), 1, "rows for {u} at {w}: {r:?}\n{log}");
            let r = r[0];
            assert_eq!(r.state, RecordingState::Expired, "{r:?}");
            assert_eq!(r.segment_end, *w + Duration::seconds(5));
            let s = sim_in(&sim, u, *w, *w + Duration::seconds(5));
            assert_eq!(
                s.len(),
                1,
                "simulator recordings for {u} in window {w}: {s:?}"
            );
            assert_eq!(Some(s[0].contact_id as i64), r.contact_id.map(|c| c.get()));
            assert_eq!(s[0].duration, 5);
            assert!(
                s[0].started_at - *w < Duration::milliseconds(500),
                "late start: {:?}",
                s[0]
            );
        }
    }
    // Nothing the database does not know about.
    for s in &sim {
        assert!(
            rows.iter()
                .any(|r| r.contact_id.map(|c| c.get()) == Some(s.contact_id as i64)),
            "simulator recording without a row: {s:?}"
        );
    }
    // Every exchange left an attempts row.
    for r in started(&rows) {
        let a = rig.store.attempts_for(r.id).await.unwrap();
        assert!(!a.is_empty(), "no attempts for {r:?}");
        assert_eq!(a.last().unwrap().http_status, Some(200));
    }
}

/// The user's recordings in time order, checked to be one chain: never two
/// at once, each following the previous within `gap`.
pub fn assert_chain(
    sim: &[Recording],
    user: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    gap: Duration,
) -> usize {
    let mut mine: Vec<&Recording> = sim
        .iter()
        .filter(|r| r.user_id == user && r.started_at >= from && r.started_at < until)
        .collect();
    mine.sort_by_key(|r| r.started_at);
    for w in mine.windows(2) {
        let prev_end = w[0].ended_at.expect("previous ended");
        assert!(
            w[1].started_at >= prev_end,
            "two at once: {:?} {:?}",
            w[0],
            w[1]
        );
        assert!(
            w[1].started_at - prev_end <= gap,
            "gap between {:?} and {:?}",
            w[0],
            w[1]
        );
        assert_ne!(w[0].contact_id, w[1].contact_id);
    }
    mine.len()
}

#[tokio::test]
async fn overlapping_policies_make_one_chain_and_long_windows_are_chained() {
    let mut rig = Driven::new(t0()).await;
    // A: [0,12) [20,32) [40,52); B: [6,18) [26,38) [46,58): coverage is
    // [0,18) [20,38) [40,58), cut by the 6 s limit into three segments.
    rig.add_policy("a", "*/20 * * * * *", 12, "expire", &["over"])
        .await;
    rig.add_policy("b", "6-59/20 * * * * *", 12, "expire", &["over"])
        .await;
    rig.schedule.segment_limit_seconds = 6;
    rig.start().await;
    let t0 = rig.now();
    let covs = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(41), 20, 0);
    rig.run_until(*covs.last().unwrap() + Duration::seconds(19))
        .await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    let sim = rig.recordings();
    for c in &covs {
        for (k, offset) in [0, 6, 12].into_iter().enumerate() {
            let start = *c + Duration::seconds(offset);
            let r = row_at(&rows, "over", start);
            assert_eq!(r.len(), 1, "segment {k} of coverage {c}: {r:?}\n{log}");
            assert_eq!(r[0].segment_end, start + Duration::seconds(6));
            assert!(r[0].contact_id.is_some(), "{:?}", r[0]);
        }
        let n = assert_chain(
            &sim,
            "over",
            *c,
            *c + Duration::seconds(18),
            Duration::milliseconds(1500),
        );
        assert_eq!(n, 3, "coverage {c}: {sim:?}");
    }
    assert!(log.contains("recording"), "{log}");
}

#[tokio::test]
async fn stop_mode_sends_a_stop_with_the_right_contact_id_at_the_window_end() {
    let mut rig = Driven::new(t0()).await;
    rig.add_policy("stopper", "*/10 * * * * *", 5, "stop", &["s1"])
        .await;
    rig.start().await;
    let t0 = rig.now();
    let windows = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(21), 10, 0);
    rig.run_until(*windows.last().unwrap() + Duration::seconds(6))
        .await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    let sim = rig.recordings();
    let stops: Vec<String> = rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("stop-screen-interaction-recording"))
        .filter_map(|r| r.query)
        .collect();
    for w in &windows {
        let r = row_at(&rows, "s1", *w);
        assert_eq!(r.len(), 1, "{r:?}\n{log}");
        assert_eq!(r[0].state, RecordingState::Stopped, "{:?}\n{log}", r[0]);
        let contact = r[0].contact_id.unwrap().get();
        let s = sim_in(&sim, "s1", *w, *w + Duration::seconds(5));
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].contact_id as i64, contact);
        assert_eq!(s[0].end_reason, Some(EndReason::Stopped), "{:?}", s[0]);
        let ended = s[0].ended_at.unwrap();
        let end = *w + Duration::seconds(5);
        assert!(
            ended >= end && ended - end < Duration::milliseconds(500),
            "stopped at {ended}, window end {end}"
        );
        assert!(
            stops
                .iter()
                .any(|q| q.contains(&format!("contactId={contact}"))),
            "no stop with contactId={contact}: {stops:?}"
        );
    }
}

#[tokio::test]
async fn a_flaky_api_still_gets_every_window_started_inside_it_once() {
    let faults = Faults {
        rate_425: 0.1,
        rate_504: 0.1,
        rate_504_after_start: 0.1,
        seed: 7,
        ..Faults::default()
    };
    let mut rig = Driven::with_faults(faults, t0()).await;
    rig.retry.base_ms = 100;
    rig.retry.cap_ms = 1000;
    let users = ["f1", "f2", "f3", "f4", "f5", "f6"];
    rig.add_policy("flaky", "*/10 * * * * *", 8, "expire", &users)
        .await;
    rig.start().await;
    let t0 = rig.now();
    let windows = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(31), 10, 0);
    rig.run_until(*windows.last().unwrap() + Duration::seconds(9))
        .await;
    rig.stop().await;
    let log = rig.log();
    let rows = rig.rows().await;
    let sim = rig.recordings();
    let mut retried = 0;
    for w in &windows {
        for u in users {
            let r = row_at(&rows, u, *w);
            assert_eq!(r.len(), 1, "{u} {w}: {r:?}");
            let s = sim_in(&sim, u, *w, *w + Duration::seconds(8));
            assert_eq!(s.len(), 1, "{u} at {w}: {s:?}\n{log}");
            assert_eq!(
                r[0].contact_id.map(|c| c.get()),
                Some(s[0].contact_id as i64),
                "{:?}",
                r[0]
            );
            retried += usize::from(r[0].attempts > 1);
        }
    }
    // The started-inside-window rate, for the record.
    let total = windows.len() * users.len();
    println!("flaky API (30% 425/504/504-after-start): {total}/{total} windows started inside their window, {retried} after retries");
    assert!(
        retried > 0,
        "the faults never fired: the test proves nothing"
    );
    let by_user: HashMap<&str, usize> = sim.iter().fold(HashMap::new(), |mut m, r| {
        *m.entry(r.user_id.as_str()).or_default() += 1;
        m
    });
    assert!(by_user.values().all(|n| *n >= windows.len()));
}
