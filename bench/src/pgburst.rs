//! The `--postgres` scenario: the burst of [`crate::burst::daemon`] (N
//! users, one window opening at the same instant, 20 ms simulator) on one
//! PostgreSQL database, served by one, two or three daemon instances in
//! this process. Each instance is its own `run_with` with its own store
//! pool, its own `Client` and its own instance id; all share the one
//! simulator, and they race for every segment (`ON CONFLICT DO NOTHING`).

use crate::burst::{starts, Dist, WINDOW_SECS};
use crate::rig::{self, ms_between, now};
use anyhow::Context as _;
use chrono::{Duration as ChronoDuration, DurationRound};
use recsched::secret::Secret;
use recsched::store::{self, NewPolicy, Store};
use sqlx::{Connection, PgConnection};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// What one PostgreSQL burst measured. Times are milliseconds after the
/// window start.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct PgBurst {
    pub users: usize,
    pub instances: usize,
    /// How long before the window start the last instance was ready.
    pub lead_ms: f64,
    /// When each start request arrived at the simulator: the lag.
    pub lag: Dist,
    /// When polling the database (every 20 ms) first saw every row
    /// `recording` with its contact id.
    pub all_committed_ms: f64,
    /// CPU (user + system) of this process (daemons and simulator, not the
    /// PostgreSQL server) from 1 s before the window start until every
    /// row was committed.
    pub cpu_ms: f64,
    /// Rows in `recordings` (any state).
    pub rows: usize,
    pub rows_recording: usize,
    pub start_requests: usize,
    pub sim_recordings: usize,
    /// Users the vendor holds more than one recording for.
    pub users_twice: usize,
    /// Rows each instance owns, most first.
    pub per_instance: Vec<usize>,
    /// Starts the instances' metrics counted, summed.
    pub started: u64,
}

impl PgBurst {
    /// Starts recorded per second: N over the time until all were committed.
    pub fn committed_per_sec(&self) -> f64 {
        self.users as f64 / (self.all_committed_ms / 1000.0)
    }

    /// Rows = start requests = vendor recordings = N, nobody twice.
    pub fn exact(&self) -> bool {
        let n = self.users;
        self.rows == n
            && self.rows_recording == n
            && self.start_requests == n
            && self.sim_recordings == n
            && self.users_twice == 0
            && self.started as usize == n
    }
}

/// `instances` daemons on the (empty) database at `url` start `n` users
/// whose windows open together.
pub async fn burst(n: usize, instances: usize, url: &str) -> anyhow::Result<PgBurst> {
    let sim = rig::simulator().await?;
    let settings = store::Settings {
        url: Some(Secret::new(url.to_owned())),
        ..store::Settings::default()
    };
    let admin = Store::open(&settings)
        .await
        .context("cannot open the PostgreSQL store")?;
    // Far enough ahead for the policy insert and every instance's start.
    let lead = ChronoDuration::milliseconds(3000 + (n as i64) / 5 + 1000 * instances as i64);
    let fire = (now() + lead)
        .duration_trunc(ChronoDuration::seconds(1))
        .context("rounding the window start")?
        + ChronoDuration::seconds(1);
    let users: Vec<String> = (0..n).map(|i| format!("burst-{i:05}")).collect();
    admin
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
    admin.close().await;

    let mut running = Vec::with_capacity(instances);
    for _ in 0..instances {
        // A pool of its own per instance, as separate processes would have.
        let store = Store::open(&settings).await?;
        running.push(rig::start_daemon(store, &sim, Instant::now()).await?);
    }
    let lead_ms = ms_between(now(), fire);
    anyhow::ensure!(
        lead_ms > 500.0,
        "the instances were ready only {lead_ms:.0} ms before the window start; the run would be late for reasons of its own"
    );

    let mut conn = PgConnection::connect(url).await?;
    let to_cpu_mark = (fire - ChronoDuration::seconds(1) - now())
        .to_std()
        .unwrap_or_default();
    tokio::time::sleep(to_cpu_mark).await;
    let cpu_before = crate::machine::cpu_time();
    tokio::time::sleep((fire - now()).to_std().unwrap_or_default()).await;

    let mut all_committed_ms = f64::NAN;
    let mut done = 0usize;
    let deadline = Instant::now() + Duration::from_secs(WINDOW_SECS as u64);
    while Instant::now() < deadline {
        done = count(
            &mut conn,
            "SELECT COUNT(*) FROM recordings WHERE state = 'recording' AND contact_id IS NOT NULL",
        )
        .await?;
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

    let lags: Vec<f64> = starts(&sim).map(|r| ms_between(fire, r.at)).collect();
    let start_requests = lags.len();
    let recordings = sim.recordings();
    let mut by_user: HashMap<&str, usize> = HashMap::new();
    for r in &recordings {
        *by_user.entry(r.user_id.as_str()).or_default() += 1;
    }
    let owners: Vec<(Option<String>, i64)> =
        sqlx::query_as("SELECT owner, COUNT(*) FROM recordings GROUP BY owner")
            .fetch_all(&mut conn)
            .await?;
    let mut per_instance: Vec<usize> = owners
        .iter()
        .map(|(_, c)| usize::try_from(*c).unwrap_or(0))
        .collect();
    per_instance.sort_unstable_by(|a, b| b.cmp(a));
    per_instance.resize(per_instance.len().max(instances), 0);
    let rows = count(&mut conn, "SELECT COUNT(*) FROM recordings").await?;
    conn.close().await?;

    let mut started = 0;
    for r in running {
        started += r.metrics.count(&r.metrics.starts, "started");
        r.stop().await?;
    }
    Ok(PgBurst {
        users: n,
        instances,
        lead_ms,
        lag: Dist::of(lags),
        all_committed_ms,
        cpu_ms,
        rows,
        rows_recording: done,
        start_requests,
        sim_recordings: recordings.len(),
        users_twice: by_user.values().filter(|c| **c > 1).count(),
        per_instance,
        started,
    })
}

async fn count(conn: &mut PgConnection, sql: &str) -> anyhow::Result<usize> {
    let n: i64 = sqlx::query_scalar(sql).fetch_one(&mut *conn).await?;
    Ok(usize::try_from(n).unwrap_or(0))
}
