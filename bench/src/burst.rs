//! Scenario 1: N users whose windows open at the same instant.
//!
//! - [`daemon`]: the real daemon (`run_with`, SQLite file, write-ahead rows,
//!   audit rows) starts all N; fire-to-request lag is the window start to
//!   each start request's arrival at the simulator.
//! - [`raw`]: the physical limit: bare reqwest, the same N start calls at
//!   the same concurrency against a fresh simulator, no database.
//! - [`sequential`]: a cron+curl loop: one call at a time, timed over a
//!   sample and extrapolated (with `curl` processes when `curl` is
//!   installed, and with one keep-alive reqwest client).

use crate::rig::{self, ms_between, now, CONCURRENCY, LATENCY_MS};
use anyhow::Context as _;
use chrono::{DateTime, Duration as ChronoDuration, DurationRound, Utc};
use futures::StreamExt as _;
use recsched::clock::parse_utc;
use recsched::simulator::SimHandle;
use recsched::store::NewPolicy;
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, Row, SqliteConnection};
use std::time::{Duration, Instant};

/// The start path every client here calls.
const START_PATH: &str =
    "/interaction-recording-management-service/v1/interactions/start-screen-interaction-recording";
/// Window length of the burst policy: long enough for 10,000 starts.
pub const WINDOW_SECS: i64 = 120;

/// A distribution of milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize, serde::Deserialize)]
pub struct Dist {
    pub min: f64,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

impl Dist {
    /// Nearest-rank percentiles of `values` (any order).
    pub fn of(mut values: Vec<f64>) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        values.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let k = ((p * values.len() as f64).ceil() as usize).clamp(1, values.len());
            values[k - 1]
        };
        Self {
            min: values[0],
            p50: rank(0.50),
            p99: rank(0.99),
            max: values[values.len() - 1],
        }
    }
}

/// What one daemon burst measured. Times are milliseconds after the
/// window start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct DaemonBurst {
    pub users: usize,
    /// How long before the window start the daemon was ready.
    pub lead_ms: f64,
    /// The last write-ahead row was written (inside the one claim
    /// transaction; it commits right after).
    pub claimed_ms: f64,
    /// When each start request left the client (`attempts.at`, after the
    /// concurrency cap).
    pub sent: Dist,
    /// When each start request arrived at the simulator: the lag.
    pub lag: Dist,
    /// When each row's contact id was written (`recordings.updated_at`,
    /// inside its transaction; the commit's fsync follows).
    pub written: Dist,
    /// When polling the database (every 20 ms) first saw every row
    /// `recording` with its contact id.
    pub all_committed_ms: f64,
    /// CPU (user + system) the whole process used from 1 s before the
    /// window start until every row was committed.
    pub cpu_ms: f64,
    pub rows_recording: usize,
    pub start_requests: usize,
    pub sim_recordings: usize,
}

impl DaemonBurst {
    /// Starts recorded per second: N over the time until all were committed.
    pub fn committed_per_sec(&self) -> f64 {
        self.users as f64 / (self.all_committed_ms / 1000.0)
    }

    /// Starts answered per second: N over the time until the last answer
    /// (last arrival plus the simulated latency).
    pub fn answered_per_sec(&self) -> f64 {
        self.users as f64 / ((self.lag.max + LATENCY_MS as f64) / 1000.0)
    }
}

/// The daemon starts `n` users whose windows open together.
pub async fn daemon(n: usize, dir: &std::path::Path) -> anyhow::Result<DaemonBurst> {
    let sim = rig::simulator().await?;
    let (store, path) = rig::store(dir).await?;
    // Far enough ahead for the policy insert and the daemon's start.
    let lead = ChronoDuration::milliseconds(3000 + (n as i64) / 5);
    let fire = (now() + lead)
        .duration_trunc(ChronoDuration::seconds(1))
        .context("rounding the window start")?
        + ChronoDuration::seconds(1);
    let users: Vec<String> = (0..n).map(|i| format!("burst-{i:05}")).collect();
    store
        .insert_policy(&NewPolicy {
            name: "burst".into(),
            enabled: true,
            cron: rig::cron_at(fire),
            timezone: "UTC".into(),
            window_seconds: WINDOW_SECS,
            end_mode: "expire".into(),
            users,
        })
        .await?;
    let running = rig::start_daemon(store, &sim, Instant::now()).await?;
    let lead_ms = ms_between(now(), fire);
    anyhow::ensure!(
        lead_ms > 500.0,
        "the daemon was ready only {lead_ms:.0} ms before the window start; the run would be late for reasons of its own"
    );

    let mut conn = SqliteConnection::connect_with(
        &SqliteConnectOptions::new()
            .filename(&path)
            .read_only(true)
            .busy_timeout(Duration::from_secs(15)),
    )
    .await?;
    // CPU from just before the window start.
    let to_cpu_mark = (fire - ChronoDuration::seconds(1) - now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(to_cpu_mark).await;
    let cpu_before = crate::machine::cpu_time();
    let to_fire = (fire - now()).to_std().unwrap_or_default();
    tokio::time::sleep(to_fire).await;

    let mut all_committed_ms = f64::NAN;
    let mut done = 0usize;
    let deadline = Instant::now() + Duration::from_secs(WINDOW_SECS as u64);
    while Instant::now() < deadline {
        done = recording_count(&mut conn).await?;
        if done >= n {
            all_committed_ms = ms_between(fire, now());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let cpu_ms = (crate::machine::cpu_time() - cpu_before).as_secs_f64() * 1000.0;
    anyhow::ensure!(
        done >= n,
        "only {done} of {n} rows were recording {WINDOW_SECS} s after the window start"
    );

    let lags: Vec<f64> = starts(&sim)
        .map(|r| ms_between(fire, r.at))
        .collect::<Vec<_>>();
    let start_requests = lags.len();
    let (created, updated) = row_times(&mut conn).await?;
    let sent = sent_times(&mut conn).await?;
    let result = DaemonBurst {
        users: n,
        lead_ms,
        claimed_ms: created
            .iter()
            .map(|t| ms_between(fire, *t))
            .fold(f64::MIN, f64::max),
        sent: Dist::of(sent.iter().map(|t| ms_between(fire, *t)).collect()),
        lag: Dist::of(lags),
        written: Dist::of(updated.iter().map(|t| ms_between(fire, *t)).collect()),
        all_committed_ms,
        cpu_ms,
        rows_recording: done,
        start_requests,
        sim_recordings: sim.recordings().len(),
    };
    conn.close().await?;
    let started = running.metrics.count(&running.metrics.starts, "started");
    running.stop().await?;
    anyhow::ensure!(
        started as usize == n,
        "the daemon counted {started} starts for {n} users"
    );
    Ok(result)
}

/// The successful start requests the simulator logged.
pub fn starts(sim: &SimHandle) -> impl Iterator<Item = recsched::simulator::LoggedRequest> {
    sim.requests()
        .into_iter()
        .filter(|r| r.path == START_PATH && r.status == 200)
}

async fn recording_count(conn: &mut SqliteConnection) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM recordings WHERE state = 'recording' AND contact_id IS NOT NULL",
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(usize::try_from(n).unwrap_or(0))
}

type Times = Vec<DateTime<Utc>>;

/// Each row's `created_at` (write-ahead) and `updated_at` (contact id).
async fn row_times(conn: &mut SqliteConnection) -> anyhow::Result<(Times, Times)> {
    let rows = sqlx::query("SELECT created_at, updated_at FROM recordings")
        .fetch_all(&mut *conn)
        .await?;
    let mut created = Vec::with_capacity(rows.len());
    let mut updated = Vec::with_capacity(rows.len());
    for row in rows {
        created.push(parse_utc(&row.try_get::<String, _>("created_at")?)?);
        updated.push(parse_utc(&row.try_get::<String, _>("updated_at")?)?);
    }
    Ok((created, updated))
}

/// When each successful start left the client.
async fn sent_times(conn: &mut SqliteConnection) -> anyhow::Result<Times> {
    let rows: Vec<String> = sqlx::query_scalar(
        "SELECT at FROM attempts WHERE operation = 'start' AND http_status = 200",
    )
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|t| parse_utc(t).map_err(Into::into))
        .collect()
}

/// What the raw reqwest baseline measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct RawBurst {
    pub users: usize,
    /// From the first request to the last answer.
    pub elapsed_ms: f64,
    /// Arrival at the simulator after the burst began.
    pub lag: Dist,
    pub ok: usize,
    pub cpu_ms: f64,
}

impl RawBurst {
    pub fn per_sec(&self) -> f64 {
        self.users as f64 / (self.elapsed_ms / 1000.0)
    }
}

/// A token from the simulator's password grant.
async fn token(http: &reqwest::Client, sim: &SimHandle) -> anyhow::Result<String> {
    let c = sim.config();
    let answer: serde_json::Value = http
        .post(sim.token_url())
        .basic_auth(&c.client_id, Some(&c.client_secret))
        .form(&[
            ("grant_type", "password"),
            ("username", c.access_key_id.as_str()),
            ("password", c.access_key_secret.as_str()),
        ])
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_owned)
        .context("the token answer has no access_token")
}

/// The physical limit: N start calls, `CONCURRENCY` at a time, no database.
pub async fn raw(n: usize) -> anyhow::Result<RawBurst> {
    let sim = rig::simulator().await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CONCURRENCY)
        .build()?;
    let token = token(&http, &sim).await?;
    let url = format!("{}{START_PATH}", sim.url());
    let users: Vec<String> = (0..n).map(|i| format!("raw-{i:05}")).collect();
    let cpu_before = crate::machine::cpu_time();
    let began = now();
    let t = Instant::now();
    let statuses: Vec<Option<u16>> = futures::stream::iter(users.iter())
        .map(|user| {
            let request = http
                .post(&url)
                .bearer_auth(&token)
                .query(&[("userId", user.as_str()), ("recordingDuration", "120")]);
            async move {
                let response = request.send().await.ok()?;
                let status = response.status().as_u16();
                response.bytes().await.ok()?;
                Some(status)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let elapsed_ms = t.elapsed().as_secs_f64() * 1000.0;
    let cpu_ms = (crate::machine::cpu_time() - cpu_before).as_secs_f64() * 1000.0;
    let lag = Dist::of(starts(&sim).map(|r| ms_between(began, r.at)).collect());
    Ok(RawBurst {
        users: n,
        elapsed_ms,
        lag,
        ok: statuses.iter().filter(|s| **s == Some(200)).count(),
        cpu_ms,
    })
}

/// What the sequential loops measured.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Sequential {
    pub sample: usize,
    /// One keep-alive reqwest client, one call at a time.
    pub reqwest_ms_per_call: f64,
    /// One `curl` process per call, one at a time; `None` without curl.
    pub curl_ms_per_call: Option<f64>,
}

impl Sequential {
    /// The faster of the two loops, calls per second: the stricter baseline.
    pub fn best_per_sec(&self) -> f64 {
        let best = self.curl_ms_per_call.map_or(self.reqwest_ms_per_call, |c| {
            c.min(self.reqwest_ms_per_call)
        });
        1000.0 / best
    }
}

/// One call at a time, `sample` calls each way.
pub async fn sequential(sample: usize) -> anyhow::Result<Sequential> {
    let sim = rig::simulator().await?;
    let http = reqwest::Client::new();
    let token = token(&http, &sim).await?;
    let url = format!("{}{START_PATH}", sim.url());

    let t = Instant::now();
    for i in 0..sample {
        let user = format!("seq-{i:05}");
        http.post(&url)
            .bearer_auth(&token)
            .query(&[("userId", user.as_str()), ("recordingDuration", "120")])
            .send()
            .await?
            .error_for_status()?
            .bytes()
            .await?;
    }
    let reqwest_ms_per_call = t.elapsed().as_secs_f64() * 1000.0 / sample as f64;

    let curl_ms_per_call = match curl_loop(&url, &token, sample).await {
        Ok(ms) => Some(ms),
        Err(e) => {
            eprintln!("recsched-bench: no curl loop: {e:#}");
            None
        }
    };
    Ok(Sequential {
        sample,
        reqwest_ms_per_call,
        curl_ms_per_call,
    })
}

/// What a crontab line `for u in ...; do curl -X POST ...; done` costs per
/// user: one process, one connection, one call.
async fn curl_loop(url: &str, token: &str, sample: usize) -> anyhow::Result<f64> {
    let auth = format!("Authorization: Bearer {token}");
    let t = Instant::now();
    for i in 0..sample {
        let target = format!("{url}?userId=curl-{i:05}&recordingDuration=120");
        let auth = auth.clone();
        // A blocking wait off the runtime's workers, which serve the simulator.
        let out = tokio::task::spawn_blocking(move || {
            std::process::Command::new("curl")
                .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "POST"])
                .args(["-H", &auth, &target])
                .output()
        })
        .await?
        .context("cannot run curl")?;
        let code = String::from_utf8_lossy(&out.stdout);
        anyhow::ensure!(code == "200", "curl got {code} for call {i}");
    }
    Ok(t.elapsed().as_secs_f64() * 1000.0 / sample as f64)
}
