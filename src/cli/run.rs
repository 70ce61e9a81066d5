//! `recsched run`: load the config, open the database, build the client,
//! and run the daemon until SIGTERM or SIGINT; SIGHUP reloads policies.

use crate::clock::{Clock, SystemClock};
use crate::cxone::{Client, Renewal, RenewalObserver};
use crate::daemon::{self, Context, Hooks, Notifier};
use crate::metrics;
use crate::store::Store;
use anyhow::Context as _;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio_util::sync::CancellationToken;

/// `recsched run` takes no arguments of its own: everything comes from the
/// config file and `RECSCHED_*` variables.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

pub async fn run(config_file: Option<&Path>, _args: RunArgs) -> anyhow::Result<ExitCode> {
    let cfg = super::load_config(config_file)?;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    let client = Client::new(
        &cfg.cxone,
        credentials_dir.as_deref(),
        cfg.schedule.limits(),
        clock.clone(),
    )
    .context("cannot build the CXone client")?;
    let store = Store::open(&cfg.database).await?;
    let cancel = CancellationToken::new();
    let hooks = Hooks {
        notifier: Notifier::from_env(),
        ..Hooks::default()
    };
    let client = Arc::new(
        client
            .with_shutdown(cancel.clone())
            .on_token_renewal(token_counter(hooks.metrics.clone())),
    );
    spawn_signal_handlers(cancel.clone(), hooks.reload.clone())?;
    serve_metrics(&cfg.metrics, &hooks, clock.clone(), cancel.clone()).await?;
    daemon::endpoints::start(client.clone(), store.clone(), cancel.clone()).await;
    tracing::info!(
        auth = %client.auth_mode(),
        token_endpoint = client.token_endpoint().map(|u| u.to_string()).unwrap_or_default(),
        "CXone client ready"
    );
    daemon::directory::Refresher {
        client: client.clone(),
        store: store.clone(),
        settings: cfg.directory.clone(),
        retry: cfg.retry,
        clock: clock.clone(),
        metrics: hooks.metrics.clone(),
    }
    .spawn(cancel.clone());
    // The daily history sweep ([history]); none while it keeps everything.
    daemon::retention::Sweeper {
        store: store.clone(),
        history: cfg.history,
        clock: clock.clone(),
    }
    .spawn(cancel.clone());
    let ctx = Context {
        store,
        client,
        clock,
        schedule: cfg.schedule,
        retry: cfg.retry,
    };
    daemon::run_with(ctx, cancel, hooks, || {}).await?;
    Ok(ExitCode::SUCCESS)
}

/// Counts the client's token renewals in `metrics` (neither knows the other).
pub fn token_counter(metrics: Arc<metrics::Metrics>) -> RenewalObserver {
    Arc::new(move |renewal| match renewal {
        Renewal::Renewed => metrics.token_renewed(),
        Renewal::Failed => metrics.token_renewal_failed(),
    })
}

/// Binds `metrics.listen` (unless empty) and serves `/metrics` and
/// `/healthz` until `cancel`. Returns the bound address (port 0 picks one).
pub async fn serve_metrics(
    settings: &metrics::Settings,
    hooks: &Hooks,
    clock: Arc<dyn Clock>,
    cancel: CancellationToken,
) -> anyhow::Result<Option<std::net::SocketAddr>> {
    if settings.listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(settings.listen.trim())
        .await
        .with_context(|| {
            format!(
                "cannot listen for metrics on metrics.listen = {:?}; pick a free loopback port, or set it to \"\" to turn metrics off",
                settings.listen
            )
        })?;
    let addr = listener.local_addr()?;
    tracing::info!(url = %format!("http://{addr}/metrics"), "metrics listening");
    let liveness = hooks.liveness.clone();
    let health: metrics::HealthCheck = Arc::new(move || liveness.check(clock.now()));
    let registry = hooks.metrics.clone();
    tokio::spawn(async move {
        if let Err(e) = metrics::serve(listener, registry, health, async move {
            cancel.cancelled().await
        })
        .await
        {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(Some(addr))
}

/// SIGTERM and SIGINT cancel `cancel`; SIGHUP fires `reload`.
pub fn spawn_signal_handlers(
    cancel: CancellationToken,
    reload: daemon::reload::Trigger,
) -> anyhow::Result<()> {
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => { tracing::info!("SIGTERM received"); cancel.cancel(); }
                _ = int.recv() => { tracing::info!("SIGINT received"); cancel.cancel(); }
                _ = hup.recv() => { reload.fire(); continue; }
            }
            break;
        }
    });
    Ok(())
}
