//! The pieces every scenario sets up: the in-process simulator with a
//! fixed latency, a SQLite file in a temporary directory, and the daemon
//! itself (`daemon::run_with`) with the benchmark's client limits.

use anyhow::Context as _;
use chrono::{DateTime, Datelike, Timelike, Utc};
use recsched::clock::{Clock, SystemClock};
use recsched::cxone::{self, Client};
use recsched::daemon::{self, Context, DaemonError, Hooks};
use recsched::metrics::Metrics;
use recsched::secret::Secret;
use recsched::simulator::{self, Faults, SimConfig, SimHandle};
use recsched::store::{self, Store};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Simulated vendor latency per start/stop call.
pub const LATENCY_MS: u64 = 20;
/// The daemon's `schedule.max_concurrency` (and the raw baseline's).
pub const CONCURRENCY: usize = 256;

/// Wall-clock now, through the project's one clock.
pub fn now() -> DateTime<Utc> {
    SystemClock.now()
}

/// A simulator answering every start and stop after [`LATENCY_MS`].
pub async fn simulator() -> anyhow::Result<SimHandle> {
    simulator::spawn(SimConfig {
        faults: Faults {
            latency_ms: LATENCY_MS,
            ..Faults::default()
        },
        ..SimConfig::default()
    })
    .await
    .context("cannot start the simulator")
}

/// A fresh, migrated database in `dir`.
pub async fn store(dir: &Path) -> anyhow::Result<(Store, PathBuf)> {
    let path = dir.join("bench.db");
    let store = Store::open(&store::Settings {
        path: path.clone(),
        ..store::Settings::default()
    })
    .await?;
    Ok((store, path))
}

/// A one-shot 6-field cron (UTC) that fires at `at`'s second (and again a
/// year later).
pub fn cron_at(at: DateTime<Utc>) -> String {
    format!(
        "{} {} {} {} {} *",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month()
    )
}

/// A running daemon.
pub struct Running {
    pub cancel: CancellationToken,
    pub metrics: Arc<Metrics>,
    /// From `run_with` being called to its `on_ready` (policies loaded,
    /// rows reconciled).
    pub ready_after: Duration,
    task: JoinHandle<Result<(), DaemonError>>,
}

impl Running {
    /// Cancels and waits for `run_with` to return.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.cancel.cancel();
        self.task.await.context("daemon task panicked")??;
        Ok(())
    }
}

/// Starts `daemon::run_with` on `store` against `sim`, with
/// `schedule.max_concurrency = CONCURRENCY`, and waits for `on_ready`.
/// `started` is when the caller's clock for "ready after" began.
pub async fn start_daemon(
    store: Store,
    sim: &SimHandle,
    started: Instant,
) -> anyhow::Result<Running> {
    let c = sim.config();
    let settings = cxone::Settings {
        api_base: sim.url().to_owned(),
        token_url: sim.token_url(),
        client_id: c.client_id.clone(),
        client_secret: Some(Secret::new(c.client_secret.clone())),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        ..cxone::Settings::default()
    };
    let schedule = daemon::Settings {
        max_concurrency: CONCURRENCY,
        ..daemon::Settings::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let cancel = CancellationToken::new();
    let client = Client::new(&settings, None, schedule.limits(), clock.clone())?
        .with_shutdown(cancel.clone());
    let ctx = Context {
        store,
        client: Arc::new(client),
        clock,
        schedule,
        retry: recsched::retry::RetryPolicy::default(),
    };
    let metrics = Arc::new(Metrics::new());
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(daemon::run_with(
        ctx,
        cancel.clone(),
        Hooks {
            metrics: metrics.clone(),
            ..Hooks::default()
        },
        move || {
            let _ = ready_tx.send(started.elapsed());
        },
    ));
    let ready_after = match tokio::time::timeout(Duration::from_secs(120), ready_rx).await {
        Ok(Ok(d)) => d,
        Ok(Err(_)) => {
            // on_ready was dropped: run_with returned; say why.
            let result = task.await.context("daemon task panicked")?;
            anyhow::bail!("the daemon stopped before it was ready: {result:?}");
        }
        Err(_) => anyhow::bail!("the daemon was not ready within 120 s"),
    };
    Ok(Running {
        cancel,
        metrics,
        ready_after,
        task,
    })
}

/// Polls `check` every `every` until it is true or `within` passes;
/// returns whether it became true.
pub async fn poll_until<F, Fut>(within: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

/// Milliseconds from `from` to `to` (negative if `to` is earlier).
pub fn ms_between(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}
