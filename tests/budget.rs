//! The planning pass over issue 15's dense policy stays within a CPU and a
//! memory budget.
//!
//! The dense row is `* H * * *` (every minute of one hour) with 30 s
//! windows for 100,000 users, beside a small policy (2 users, 5 s every
//! 10 s). Before the bounded walk, the shared unions and the lazy cut, one
//! pass gave every user a copy of the hour's 60 stretches and cut all 60
//! of their segments: 6 million segments, gigabytes and tens of seconds,
//! every pass. `src/daemon/decide/tests.rs` counts the segments a pass
//! cuts; this guards what a pass costs in bytes and CPU time, so a change
//! that keeps the counts but goes back to per-horizon or quadratic work
//! (a copy per user, a scan per user of every user) fails here.
//!
//! Its own test binary because it counts every allocation through a
//! global allocator (`peak_alloc`: the workspace forbids `unsafe`, which a
//! `GlobalAlloc` of our own would need), and because CPU time is read per
//! thread: the test runs its passes on the thread that measures them.
//!
//! The budgets are about ten times what a pass measured on a 2-core
//! machine in a debug build (see each constant), so a loaded CI machine
//! stays well inside them; the old behaviour exceeded them many times
//! over. CPU time, not wall time: waiting for a core costs nothing here.

use chrono::{DateTime, TimeZone, Utc};
use peak_alloc::PeakAlloc;
use recsched::daemon::first_pass;
use recsched::planner::SegmentLimit;
use recsched::policy::{Policy, PolicyRow};
use std::time::Duration;

#[global_allocator]
static ALLOC: PeakAlloc = PeakAlloc;

const USERS: usize = 100_000;

/// Peak bytes allocated by one pass, above what was allocated before it.
/// Measured in a debug build: 7.6 MiB two hours ahead, 18.5 MiB inside
/// the hour (the coverage map of 100,002 users and the 100,002 due
/// starts).
const MEMORY_BUDGET: usize = 192 * 1024 * 1024;

/// CPU time of one pass on the test's thread. Measured in a debug build:
/// 0.10 s two hours ahead, 0.12 s inside the hour (2 cores, shared).
const CPU_BUDGET: Duration = Duration::from_secs(2);

fn policy(id: i64, cron: &str, secs: i64, users: Vec<String>) -> Policy {
    match Policy::from_row(&PolicyRow {
        id,
        name: format!("p{id}"),
        enabled: true,
        cron: cron.into(),
        timezone: "UTC".into(),
        window_seconds: secs,
        end_mode: "expire".into(),
        users,
        teams: Vec::new(),
    }) {
        Ok(p) => p,
        Err(e) => panic!("policy {id}: {e}"),
    }
}

fn policies() -> Vec<Policy> {
    vec![
        policy(
            1,
            "* 11 * * *",
            30,
            (0..USERS).map(|i| format!("agent-{i:06}")).collect(),
        ),
        policy(
            2,
            "*/10 * * * * *",
            5,
            vec!["small-1".into(), "small-2".into()],
        ),
    ]
}

fn at(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    match Utc.with_ymd_and_hms(2026, 1, 1, h, m, s) {
        chrono::LocalResult::Single(t) => t,
        other => panic!("2026-01-01 {h}:{m}:{s}: {other:?}"),
    }
}

/// CPU time (user + system) of the calling thread so far, from
/// `/proc/thread-self/stat` (utime and stime, in clock ticks of 10 ms).
fn thread_cpu() -> Duration {
    let stat = match std::fs::read_to_string("/proc/thread-self/stat") {
        Ok(s) => s,
        Err(e) => panic!("cannot read /proc/thread-self/stat: {e}"),
    };
    // After the command name (in parentheses, which may hold spaces),
    // utime and stime are the 12th and 13th fields.
    let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = after
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    assert_eq!(fields.len(), 2, "no utime/stime in {stat}");
    // USER_HZ is 100 on every Linux the project builds for.
    Duration::from_millis((fields[0] + fields[1]) * 10)
}

/// What one `first_pass` at `now` cost: peak bytes above the start, CPU
/// time, and the number of starts it decided (so the work is not
/// optimised away and is the expected work).
fn measure(policies: &[Policy], now: DateTime<Utc>) -> (usize, Duration, usize) {
    let before = ALLOC.current_usage();
    ALLOC.reset_peak_usage();
    let cpu = thread_cpu();
    let plan = first_pass(policies, now, SegmentLimit::default());
    let cpu = thread_cpu().saturating_sub(cpu);
    let peak = ALLOC.peak_usage().saturating_sub(before);
    let starts = plan.starts.len();
    drop(plan);
    (peak, cpu, starts)
}

#[test]
fn a_pass_over_the_dense_policy_stays_within_its_cpu_and_memory_budget() {
    let policies = policies();
    for (label, now, due) in [
        ("two hours ahead", at(9, 0, 0), 2),
        ("inside the dense hour", at(11, 1, 0), USERS + 2),
    ] {
        let (peak, cpu, starts) = measure(&policies, now);
        println!(
            "{label}: peak {:.1} MiB allocated, {} ms CPU, {starts} starts",
            peak as f64 / (1024.0 * 1024.0),
            cpu.as_millis()
        );
        assert_eq!(starts, due, "{label}: starts decided");
        assert!(
            peak < MEMORY_BUDGET,
            "{label}: a pass allocated {peak} bytes at its peak, budget {MEMORY_BUDGET}"
        );
        assert!(
            cpu < CPU_BUDGET,
            "{label}: a pass took {cpu:?} of CPU, budget {CPU_BUDGET:?}"
        );
    }
}
