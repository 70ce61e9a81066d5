//! Scenario `--dense`: issue 15's dense row run by the real `recsched run`
//! binary, as systemd runs it.
//!
//! One policy `* H * * *` (every minute of the hour H, two hours ahead of
//! now, UTC) with 30 s windows for 100,000 users, beside a small policy
//! (2 users, 5 s windows every 10 s), on a SQLite file; the simulator on
//! loopback in this process. The daemon is a child process started with
//! the unit's `MALLOC_ARENA_MAX=2` and a notify socket of ours with
//! `WATCHDOG_USEC` as `WatchdogSec=30s` sets it, so its peak RSS and CPU
//! time are its own and its watchdog pings can be timed. The binary is a
//! parameter, so the same scenario measures an older build ("before").
//!
//! Measured: time to READY=1, peak RSS (`VmHWM`), CPU time (user +
//! system), the small policy's windows (on time, late, failed, absent,
//! from the rows and the simulator), and the longest gap between watchdog
//! pings against the interval. A child whose RSS passes the cap is killed
//! at once (the old planner grew past 1 GiB within 40 s).

use crate::rig::{self, now};
use anyhow::Context as _;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Timelike, Utc};
use recsched::recording::RecordingState;
use recsched::simulator::SimHandle;
use recsched::store::{NewPolicy, RecordingFilter, Store};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Users of the dense policy.
pub const USERS: usize = 100_000;
/// The dense policy's window, seconds.
pub const DENSE_WINDOW: i64 = 30;
/// The small policy: its users, cron and window.
pub const SMALL_USERS: [&str; 2] = ["small-1", "small-2"];
pub const SMALL_CRON: &str = "*/10 * * * * *";
pub const SMALL_WINDOW: i64 = 5;
/// `WatchdogSec=30s` in systemd/recsched.service.
pub const WATCHDOG: Duration = Duration::from_secs(30);
/// A start later than this is late (issue 15: "never delays another
/// policy's start by more than 1 s").
pub const LATE_AFTER_SECS: f64 = 1.0;

/// What the database holds when the daemon starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The dense policy and the small one.
    Dense,
    /// The footprint scenario's 100,000 users in 1,000 daily policies
    /// (`footprint::prepare`), whose windows open 10-110 min ahead: the
    /// real binary's memory with nothing of the bench in its process.
    Footprint,
}

impl Workload {
    pub fn name(self) -> &'static str {
        match self {
            Self::Dense => "dense",
            Self::Footprint => "footprint",
        }
    }
}

/// How one run is made.
#[derive(Debug, Clone)]
pub struct Setup {
    pub workload: Workload,
    /// The `recsched` binary to run.
    pub binary: PathBuf,
    /// How long it runs after it was started.
    pub run_for: Duration,
    /// Killed (SIGKILL) as soon as its RSS passes this many bytes.
    pub rss_cap: u64,
    /// Show the daemon's log on stderr at the end.
    pub log: bool,
}

/// What one run measured.
#[derive(Debug, Clone)]
pub struct Dense {
    /// The dense policy's cron, as stored (footprint: empty).
    pub dense_cron: String,
    /// Writing the policies (not part of the daemon's figures).
    pub prepare_ms: f64,
    /// From spawn to READY=1, if it came.
    pub ready_ms: Option<f64>,
    /// The child's peak resident set (`VmHWM`), bytes, at its last sample.
    pub peak_rss: u64,
    /// Its CPU time (user + system) at its last sample.
    pub cpu_ms: f64,
    /// How long it ran.
    pub ran_ms: f64,
    /// Killed at this time from spawn because its RSS passed the cap.
    pub capped_at_ms: Option<f64>,
    /// Exited on its own before the end (its status).
    pub exited: Option<String>,
    /// WATCHDOG=1 pings received.
    pub pings: usize,
    /// The longest time without a ping: READY to the first ping, between
    /// pings, or the last ping to the end of the run.
    pub longest_ping_gap_ms: Option<f64>,
    /// Gaps longer than the watchdog interval (systemd would have killed).
    pub watchdog_misses: usize,
    /// Dense only.
    pub small: Option<Small>,
}

/// The small policy's windows that opened between READY and the end of
/// the run (both users each), from the rows and the simulator.
#[derive(Debug, Clone, Default)]
pub struct Small {
    /// Window starts times users expected.
    pub expected: usize,
    /// Rows started within [`LATE_AFTER_SECS`] of their window.
    pub on_time: usize,
    /// Rows started later.
    pub late: usize,
    /// Rows failed, missed, or still pending at the end.
    pub failed: usize,
    /// Expected windows with no row at all.
    pub absent: usize,
    /// The largest `late_seconds` of any row (a row failed before its
    /// start was sent has none).
    pub max_late_s: f64,
    /// The latest a row was written after its window opened (its
    /// `created_at`): how late the decision was, failed rows included.
    pub max_written_after_s: f64,
    /// The largest lag from a window's opening to its start request at
    /// the simulator, ms.
    pub max_sim_lag_ms: f64,
}

impl Small {
    pub fn all_on_time(&self) -> bool {
        self.expected > 0 && self.on_time == self.expected
    }
}

/// One run: a fresh database in `dir`, the binary started and watched.
pub async fn run(setup: &Setup, dir: &Path) -> anyhow::Result<Dense> {
    let sim = rig::simulator().await?;
    let t = Instant::now();
    let dense_cron = match setup.workload {
        Workload::Dense => {
            let (store, _) = rig::store(dir).await?;
            let cron = prepare(&store).await?;
            store.close().await;
            cron
        }
        Workload::Footprint => {
            crate::footprint::prepare(dir).await?;
            String::new()
        }
    };
    let db = dir.join("bench.db");
    let prepare_ms = t.elapsed().as_secs_f64() * 1000.0;

    let notify = dir.join("notify.sock");
    let socket =
        UnixDatagram::bind(&notify).with_context(|| format!("cannot bind {}", notify.display()))?;
    let log_path = dir.join("daemon.log");
    let mut child = spawn(setup, &sim, &db, &notify, &log_path)?;
    let spawned = Instant::now();
    let messages = listen(socket, spawned);

    let watched = watch(&mut child, setup, spawned).await;
    let ended = spawned.elapsed();
    stop(&mut child);
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    if setup.log {
        eprintln!("{log}");
    }
    let watched = watched.with_context(|| format!("daemon log:\n{}", tail(&log, 40)))?;

    let messages = messages.lock().map(|m| m.clone()).unwrap_or_default();
    let ready = messages
        .iter()
        .find(|(_, m)| m.lines().any(|l| l == "READY=1"))
        .map(|(at, _)| *at);
    let pings: Vec<Duration> = messages
        .iter()
        .filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(at, _)| *at)
        .collect();
    let gaps: Vec<Duration> = ready
        .into_iter()
        .chain(pings.iter().copied())
        .chain(std::iter::once(ended))
        .collect::<Vec<_>>()
        .windows(2)
        .map(|w| w[1].saturating_sub(w[0]))
        .collect();

    let (store, _) = rig::store(dir).await?;
    let wall_ready = ready.map(|r| watched.spawned_at + to_chrono(r));
    let wall_end = watched.spawned_at + to_chrono(ended);
    let small = match setup.workload {
        Workload::Dense => Some(small(&store, &sim, wall_ready, wall_end).await?),
        Workload::Footprint => None,
    };
    store.close().await;

    Ok(Dense {
        dense_cron,
        prepare_ms,
        ready_ms: ready.map(|r| r.as_secs_f64() * 1000.0),
        peak_rss: watched.peak_rss,
        cpu_ms: watched.cpu.as_secs_f64() * 1000.0,
        ran_ms: ended.as_secs_f64() * 1000.0,
        capped_at_ms: watched.capped_at.map(|c| c.as_secs_f64() * 1000.0),
        exited: watched.exited,
        pings: pings.len(),
        longest_ping_gap_ms: ready
            .and(gaps.iter().max())
            .map(|g| g.as_secs_f64() * 1000.0),
        watchdog_misses: gaps.iter().filter(|g| **g > WATCHDOG).count(),
        small,
    })
}

/// Writes the dense policy (the hour two hours ahead, UTC) and the small
/// one; returns the dense cron.
async fn prepare(store: &Store) -> anyhow::Result<String> {
    let hour = (now() + ChronoDuration::hours(2)).hour();
    let cron = format!("* {hour} * * *");
    store
        .insert_policy(&NewPolicy {
            name: "dense".into(),
            enabled: true,
            cron: cron.clone(),
            timezone: "UTC".into(),
            window_seconds: DENSE_WINDOW,
            end_mode: "expire".into(),
            users: (0..USERS).map(|u| format!("agent-{u:06}")).collect(),
        })
        .await?;
    store
        .insert_policy(&NewPolicy {
            name: "small".into(),
            enabled: true,
            cron: SMALL_CRON.into(),
            timezone: "UTC".into(),
            window_seconds: SMALL_WINDOW,
            end_mode: "expire".into(),
            users: SMALL_USERS.iter().map(|u| (*u).to_owned()).collect(),
        })
        .await?;
    Ok(cron)
}

/// `recsched run` as the unit starts it: the unit's malloc setting, a
/// notify socket and `WATCHDOG_USEC`, the database and the vendor from
/// the environment (an empty config file), its log in `log`.
fn spawn(
    setup: &Setup,
    sim: &SimHandle,
    db: &Path,
    notify: &Path,
    log: &Path,
) -> anyhow::Result<Child> {
    let config = db.with_file_name("empty.toml");
    std::fs::write(&config, "")?;
    let c = sim.config();
    let mut cmd = Command::new(&setup.binary);
    cmd.arg("--config").arg(&config).arg("run");
    for (k, _) in std::env::vars() {
        if k.starts_with("RECSCHED_") || k.starts_with("MALLOC_") {
            cmd.env_remove(k);
        }
    }
    let file = std::fs::File::create(log)?;
    cmd.env("RUST_LOG", "info")
        .env("MALLOC_ARENA_MAX", "2")
        .env("NOTIFY_SOCKET", notify)
        .env("WATCHDOG_USEC", WATCHDOG.as_micros().to_string())
        .env_remove("WATCHDOG_PID")
        .env_remove("JOURNAL_STREAM")
        .env("RECSCHED_DATABASE__PATH", db)
        .env("RECSCHED_CXONE__API_BASE", sim.url())
        .env("RECSCHED_CXONE__TOKEN_URL", sim.token_url())
        .env("RECSCHED_CXONE__CLIENT_ID", &c.client_id)
        .env("RECSCHED_CXONE__CLIENT_SECRET", &c.client_secret)
        .env("RECSCHED_CXONE__ACCESS_KEY_ID", &c.access_key_id)
        .env("RECSCHED_CXONE__ACCESS_KEY_SECRET", &c.access_key_secret)
        .env("RECSCHED_METRICS__LISTEN", "")
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone()?))
        .stderr(Stdio::from(file));
    cmd.spawn()
        .with_context(|| format!("cannot start {}", setup.binary.display()))
}

/// Every datagram on the notify socket, with its time from `since`, on a
/// thread of its own until the socket is dropped with the process.
fn listen(socket: UnixDatagram, since: Instant) -> Arc<Mutex<Vec<(Duration, String)>>> {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let out = messages.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(buf.get(..n).unwrap_or_default()).into_owned();
            if let Ok(mut m) = out.lock() {
                m.push((since.elapsed(), text));
            }
        }
    });
    messages
}

/// What watching the child found.
struct Watched {
    spawned_at: DateTime<Utc>,
    peak_rss: u64,
    cpu: Duration,
    capped_at: Option<Duration>,
    exited: Option<String>,
}

/// Samples the child's `/proc` files every 50 ms until `run_for` passes,
/// it exits, or its RSS passes the cap (then it is killed at once).
async fn watch(child: &mut Child, setup: &Setup, spawned: Instant) -> anyhow::Result<Watched> {
    let spawned_at = now();
    let pid = child.id();
    let mut last = Sample::default();
    let mut capped_at = None;
    let mut exited = None;
    while spawned.elapsed() < setup.run_for {
        if let Some(status) = child.try_wait()? {
            exited = Some(status.to_string());
            break;
        }
        if let Some(s) = Sample::of(pid) {
            last = s;
        }
        if last.rss > setup.rss_cap {
            capped_at = Some(spawned.elapsed());
            let _ = child.kill();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(Watched {
        spawned_at,
        peak_rss: last.peak_rss,
        cpu: last.cpu,
        capped_at,
        exited,
    })
}

/// SIGTERM, up to 20 s (the unit's `TimeoutStopSec`) to exit, then SIGKILL.
fn stop(child: &mut Child) {
    if matches!(child.try_wait(), Ok(Some(_))) {
        return;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if matches!(child.try_wait(), Ok(Some(_))) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// One reading of a process's `/proc/PID/{status,stat}`.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    rss: u64,
    peak_rss: u64,
    cpu: Duration,
}

impl Sample {
    fn of(pid: u32) -> Option<Self> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let kib = |key: &str| -> Option<u64> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        };
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        Some(Self {
            rss: kib("VmRSS:")? * 1024,
            peak_rss: kib("VmHWM:")? * 1024,
            cpu: crate::machine::stat_cpu(&stat),
        })
    }
}

/// The small policy's windows from `ready` to `end`: what the rows say of
/// each, and the simulator's lag for each start it received.
async fn small(
    store: &Store,
    sim: &SimHandle,
    ready: Option<DateTime<Utc>>,
    end: DateTime<Utc>,
) -> anyhow::Result<Small> {
    let mut out = Small::default();
    let Some(ready) = ready else {
        return Ok(out);
    };
    // Window starts on the 10 s grid from READY on, whose 5 s window
    // closed before the end.
    let step = ChronoDuration::seconds(10);
    let mut opens = Vec::new();
    let mut at = ready.duration_trunc(step)? + step;
    while at + ChronoDuration::seconds(SMALL_WINDOW) <= end {
        opens.push(at);
        at += step;
    }
    let rows = store
        .recordings(&RecordingFilter {
            limit: Some(1_000_000),
            ..RecordingFilter::default()
        })
        .await?;
    for user in SMALL_USERS {
        for open in &opens {
            out.expected += 1;
            let row = rows
                .iter()
                .find(|r| r.user_id.as_str() == user && r.segment_start == *open);
            let Some(row) = row else {
                out.absent += 1;
                continue;
            };
            let late = row.late_seconds.unwrap_or(0.0);
            out.max_late_s = out.max_late_s.max(late);
            let written = rig::ms_between(row.segment_start, row.created_at) / 1000.0;
            out.max_written_after_s = out.max_written_after_s.max(written);
            match row.state {
                RecordingState::Failed | RecordingState::Missed | RecordingState::Pending => {
                    out.failed += 1
                }
                _ if late > LATE_AFTER_SECS => out.late += 1,
                _ => out.on_time += 1,
            }
        }
    }
    for r in sim.recordings() {
        if !SMALL_USERS.contains(&r.user_id.as_str()) || r.started_at < ready {
            continue;
        }
        let open = r.started_at.duration_trunc(step)?;
        let lag = rig::ms_between(open, r.started_at);
        out.max_sim_lag_ms = out.max_sim_lag_ms.max(lag);
    }
    Ok(out)
}

fn to_chrono(d: Duration) -> ChronoDuration {
    ChronoDuration::from_std(d).unwrap_or(ChronoDuration::MAX)
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
