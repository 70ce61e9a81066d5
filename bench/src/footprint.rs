//! Scenario 2: 100,000 users in 1,000 policies, loaded and planned: peak
//! RSS, CPU while the daemon idles between windows, and planning time.
//!
//! The database is prepared by a process of its own ([`prepare`]), so the
//! measuring process ([`measure`]) holds only what the daemon holds: the
//! runtime, the idle simulator, the store and the daemon.

use crate::burst::Dist;
use crate::machine;
use crate::rig::{self, now};
use anyhow::Context as _;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Timelike, Utc};
use recsched::planner::{self, SegmentLimit};
use recsched::policy;
use recsched::recording::UserId;
use recsched::store::{NewPolicy, Store};
use std::path::Path;
use std::time::{Duration, Instant};

pub const POLICIES: usize = 1_000;
pub const USERS_PER_POLICY: usize = 100;
/// Zones the policies are spread over, so cron runs through chrono-tz.
const ZONES: [&str; 4] = [
    "UTC",
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Kolkata",
];

/// Writes the policy set: policy `p` opens daily, 1 h long, at
/// `10 + p % 100` minutes from now (in its own zone), so every window
/// falls inside the daemon's planning horizon and none opens while the
/// idle CPU is measured.
pub async fn prepare(dir: &Path) -> anyhow::Result<f64> {
    let (store, _) = rig::store(dir).await?;
    let base = now()
        .duration_trunc(ChronoDuration::minutes(1))
        .context("rounding now")?
        + ChronoDuration::minutes(10);
    let t = Instant::now();
    for p in 0..POLICIES {
        let zone = ZONES[p % ZONES.len()];
        let at = base + ChronoDuration::minutes((p % 100) as i64);
        store
            .insert_policy(&NewPolicy {
                name: format!("team-{p:04}"),
                enabled: true,
                cron: local_daily_cron(at, zone)?,
                timezone: zone.into(),
                window_seconds: 3600,
                end_mode: if p % 2 == 0 { "expire" } else { "stop" }.into(),
                users: (0..USERS_PER_POLICY)
                    .map(|u| format!("agent-{p:04}-{u:03}"))
                    .collect(),
            })
            .await?;
    }
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    store.close().await;
    Ok(ms)
}

/// A daily 6-field cron that fires at `at`'s wall time in `zone`.
fn local_daily_cron(at: DateTime<Utc>, zone: &str) -> anyhow::Result<String> {
    let tz: chrono_tz::Tz = zone.parse().map_err(|e| anyhow::anyhow!("{zone}: {e}"))?;
    let local = at.with_timezone(&tz);
    Ok(format!("0 {} {} * * *", local.minute(), local.hour()))
}

/// What the footprint run measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Footprint {
    pub policies: usize,
    pub users: usize,
    /// `run_with` to `on_ready`: open, load, parse, reconcile.
    pub ready_ms: f64,
    /// Resident set with the simulator and the open store, before the
    /// daemon starts, bytes.
    pub base_rss: u64,
    /// Peak resident set when the daemon is ready (policies loaded, not
    /// yet planned), bytes.
    pub ready_peak_rss: u64,
    /// The process's peak resident set (VmHWM) after loading, planning
    /// and idling, bytes.
    pub peak_rss: u64,
    /// Its resident set at the end, bytes.
    pub rss: u64,
    pub idle_secs: u64,
    /// CPU (user + system) over the idle period.
    pub idle_cpu_ms: f64,
    /// Planning passes the daemon ran during the idle period.
    pub idle_passes: u64,
    /// Reading and parsing the 1,000 policy rows.
    pub load_ms: f64,
    /// `planner::coverage` + `planner::segments` for every user over a
    /// 1-hour horizon (3 runs).
    pub plan_1h_ms: Dist,
    /// The same over the daemon's own horizon (the segment limit, 3.5 h),
    /// which is what each of its passes computes.
    pub plan_daemon_ms: Dist,
    pub segments_1h: usize,
}

/// Starts the daemon on the prepared database, lets it plan, idles for
/// `idle`, then times the planner on its own.
pub async fn measure(dir: &Path, idle: Duration) -> anyhow::Result<Footprint> {
    let sim = rig::simulator().await?;
    let t = Instant::now();
    let (store, _) = rig::store(dir).await?;
    let base_rss = machine::rss();
    let running = rig::start_daemon(store.clone(), &sim, t).await?;
    let ready_peak_rss = machine::peak_rss();
    // The counter counts completed passes: one means the full plan is done.
    let planned = rig::poll_until(Duration::from_secs(60), Duration::from_millis(10), || {
        let passes = running.metrics.passes.get();
        async move { passes >= 1 }
    })
    .await;
    anyhow::ensure!(planned, "the daemon did not finish its first pass in 60 s");

    let passes_before = running.metrics.passes.get();
    let cpu_before = machine::cpu_time();
    tokio::time::sleep(idle).await;
    let idle_cpu_ms = (machine::cpu_time() - cpu_before).as_secs_f64() * 1000.0;
    let idle_passes = running.metrics.passes.get() - passes_before;
    let peak_rss = machine::peak_rss();
    let rss = machine::rss();
    let requests = sim.requests().len();
    let ready_ms = running.ready_after.as_secs_f64() * 1000.0;
    running.stop().await?;
    anyhow::ensure!(
        requests == 0,
        "{requests} requests reached the simulator while idling"
    );

    let (load_ms, plan_1h_ms, plan_daemon_ms, segments_1h) = plan_alone(&store).await?;
    store.close().await;
    Ok(Footprint {
        policies: POLICIES,
        users: POLICIES * USERS_PER_POLICY,
        ready_ms,
        base_rss,
        ready_peak_rss,
        peak_rss,
        rss,
        idle_secs: idle.as_secs(),
        idle_cpu_ms,
        idle_passes,
        load_ms,
        plan_1h_ms,
        plan_daemon_ms,
        segments_1h,
    })
}

/// Times the pure planner over the stored policies.
async fn plan_alone(store: &Store) -> anyhow::Result<(f64, Dist, Dist, usize)> {
    let t = Instant::now();
    let (policies, errors) = policy::load(store.policy_rows().await?);
    let load_ms = t.elapsed().as_secs_f64() * 1000.0;
    anyhow::ensure!(errors.is_empty(), "invalid policies: {errors:?}");
    let limit = SegmentLimit::default();
    let from = now();
    let mut segments = 0;
    let time = |horizon: ChronoDuration| {
        let t = Instant::now();
        let coverage = planner::coverage(&policies, from, from + horizon);
        let cut: usize = coverage
            .iter()
            .map(|(user, spans): (&UserId, _)| planner::segments(user, spans, &[], limit).len())
            .sum();
        (t.elapsed().as_secs_f64() * 1000.0, cut)
    };
    let mut one_hour = Vec::new();
    let mut daemon = Vec::new();
    for _ in 0..3 {
        let (ms, cut) = time(ChronoDuration::hours(1));
        one_hour.push(ms);
        segments = cut;
        daemon.push(time(ChronoDuration::seconds(i64::from(limit.as_secs()))).0);
    }
    Ok((load_ms, Dist::of(one_hour), Dist::of(daemon), segments))
}
