//! A failing vendor, swept: 10%, 30% and 50% of start/stop requests
//! answered 425, 504, or 504 after the recording did start (a third
//! each), with latency jitter and spikes. Whatever the rate, no window is
//! started twice and every window leaves exactly one row; at 10% and 30%
//! every window starts inside itself; at 50% at least 90% do.
//!
//! The daemon runs in-process on driven time (`common::driven`): retries
//! wait their exact backoff on the daemon's clock while the requests and
//! their injected latency take real time, so what is counted depends on
//! the faults alone, not on how fast this machine is.

use super::{refs, row_at, sim_in, users};
use crate::common::driven::Driven;
use crate::daemon::{starts, t0};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::Faults;

/// Windows open every 10 s and last this long; a start is retried until
/// 5 s before the end.
const WINDOW_SECS: i64 = 9;

/// What one run saw.
struct Sweep {
    windows: usize,
    /// The vendor made one recording inside the window and its row holds
    /// that recording's contact id.
    started: usize,
    /// Of those, after at least one failed attempt.
    retried: usize,
    /// Rows `failed` (retries ran out), each with its reason.
    failed: usize,
    /// A user with two vendor recordings started inside one window.
    doubled: usize,
    /// Windows without exactly one row.
    bad_rows: usize,
    /// Vendor recordings whose contact id no row holds.
    unknown: usize,
    requests: usize,
    injected: usize,
}

async fn sweep(rate: f64, seed: u64, n_users: usize, span_secs: i64) -> Sweep {
    let faults = Faults {
        rate_425: rate / 3.0,
        rate_504: rate / 3.0,
        rate_504_after_start: rate / 3.0,
        latency_ms: 10,
        latency_jitter_ms: 40,
        spike_rate: 0.05,
        spike_ms: 700,
        seed,
        ..Faults::default()
    };
    let mut rig = Driven::with_faults(faults, t0()).await;
    rig.retry.base_ms = 100;
    rig.retry.cap_ms = 1000;
    let who = users(&format!("r{}", (rate * 100.0) as u32), n_users);
    rig.add_policy(
        "flaky",
        "*/10 * * * * *",
        WINDOW_SECS,
        "expire",
        &refs(&who),
    )
    .await;
    rig.start().await;
    let t0 = rig.now();
    let windows = starts(
        t0 + Duration::seconds(1),
        t0 + Duration::seconds(span_secs),
        10,
        0,
    );
    assert!(!windows.is_empty());
    // Past the last window's end, before the next window opens.
    rig.run_until(
        *windows.last().unwrap() + Duration::seconds(WINDOW_SECS) + Duration::milliseconds(500),
    )
    .await;
    rig.stop().await;
    let log = rig.log();

    let rows = rig.rows().await;
    let sim = rig.recordings();
    let mut s = Sweep {
        windows: 0,
        started: 0,
        retried: 0,
        failed: 0,
        doubled: 0,
        bad_rows: 0,
        unknown: 0,
        requests: 0,
        injected: 0,
    };
    for w in &windows {
        for u in &who {
            s.windows += 1;
            let made = sim_in(&sim, u, *w, *w + Duration::seconds(WINDOW_SECS));
            if made.len() > 1 {
                s.doubled += 1;
                eprintln!("doubled: {u} at {w}: {made:?}");
            }
            let r = row_at(&rows, u, *w);
            let [row] = r.as_slice() else {
                s.bad_rows += 1;
                eprintln!("{} rows for {u} at {w}: {r:?}", r.len());
                continue;
            };
            match (made.as_slice(), row.state) {
                ([one], _) if row.contact_id.map(|c| c.get()) == Some(one.contact_id as i64) => {
                    s.started += 1;
                    s.retried += usize::from(row.attempts > 1);
                }
                (_, RecordingState::Failed) => {
                    assert!(row.last_error.is_some(), "failed without a reason: {row:?}");
                    s.failed += 1;
                }
                _ => eprintln!("not started: {row:?} vendor: {made:?}"),
            }
        }
    }
    s.unknown = sim
        .iter()
        .filter(|m| {
            !rows
                .iter()
                .any(|r| r.contact_id.map(|c| c.get()) == Some(m.contact_id as i64))
        })
        .inspect(|m| eprintln!("vendor recording no row knows: {m:?}"))
        .count();
    let requests: Vec<_> = rig
        .sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .collect();
    s.requests = requests.len();
    s.injected = requests
        .iter()
        .filter(|r| matches!(r.status, 425 | 504))
        .count();
    println!(
        "vendor failing {:.0}% (425/504/504-after-start, spikes): {}/{} windows started inside \
         their window ({:.1}%), {} after retries, {} failed with a reason, {} doubled, {} windows \
         without exactly one row, {} vendor recordings without a row; {} start requests, {} \
         answered 425/504",
        rate * 100.0,
        s.started,
        s.windows,
        100.0 * s.started as f64 / s.windows as f64,
        s.retried,
        s.failed,
        s.doubled,
        s.bad_rows,
        s.unknown,
        s.requests,
        s.injected
    );
    if s.started < s.windows {
        eprintln!("daemon log:\n{log}");
    }
    s
}

/// What every rate must hold to.
fn assert_exactly_once(s: &Sweep) {
    assert_eq!(s.doubled, 0, "a window was started twice");
    assert_eq!(s.bad_rows, 0, "a window without exactly one row");
    assert!(s.injected > 0, "no fault fired: the run proves nothing");
}

#[tokio::test]
async fn vendor_failing_10_percent_every_window_starts_inside_itself_once() {
    let s = sweep(0.10, 10, 20, 31).await;
    assert_exactly_once(&s);
    assert_eq!(s.unknown, 0, "a vendor recording no row knows");
    assert_eq!(s.started, s.windows, "a window did not start inside itself");
}

#[tokio::test]
async fn vendor_failing_30_percent_every_window_starts_inside_itself_once() {
    let s = sweep(0.30, 30, 20, 31).await;
    assert_exactly_once(&s);
    assert_eq!(s.unknown, 0, "a vendor recording no row knows");
    assert_eq!(s.started, s.windows, "a window did not start inside itself");
}

#[tokio::test]
async fn vendor_failing_50_percent_starts_nine_windows_in_ten_and_never_twice() {
    let s = sweep(0.50, 50, 20, 31).await;
    assert_exactly_once(&s);
    assert!(
        s.started * 10 >= s.windows * 9,
        "only {}/{} windows started inside themselves",
        s.started,
        s.windows
    );
}

/// `RECSCHED_SOAK=1` (and optionally `RECSCHED_SOAK_SECONDS`, default
/// 600): 30% failures with spikes over 50 users for many windows.
#[tokio::test]
async fn soak_vendor_failing_30_percent_for_minutes() {
    if std::env::var("RECSCHED_SOAK").as_deref() != Ok("1") {
        println!("soak skipped: set RECSCHED_SOAK=1 (and RECSCHED_SOAK_SECONDS) to run it");
        return;
    }
    let secs: i64 = std::env::var("RECSCHED_SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(600);
    let s = sweep(0.30, 3030, 50, secs).await;
    assert_exactly_once(&s);
    // Over thousands of windows a start may run out of retries (0.3^8 per
    // window): it must then be `failed` with a reason, never lost.
    assert_eq!(
        s.started + s.failed,
        s.windows,
        "a window neither started nor failed"
    );
    assert!(s.started * 100 >= s.windows * 99, "fewer than 99% started");
}
