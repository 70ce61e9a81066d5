//! `recsched run`: load the config, open the database, build the client,
//! and run the daemon until SIGTERM or SIGINT; SIGHUP reloads policies.

use crate::clock::{Clock, SystemClock};
use crate::cxone::Client;
use crate::daemon::{self, Context};
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
    let client = client.with_shutdown(cancel.clone());
    let reload = daemon::reload::Trigger::default();
    spawn_signal_handlers(cancel.clone(), reload.clone())?;
    let ctx = Context {
        store,
        client: Arc::new(client),
        clock,
        schedule: cfg.schedule,
        retry: cfg.retry,
    };
    daemon::run_with(ctx, cancel, reload, Arc::default(), || {}).await?;
    Ok(ExitCode::SUCCESS)
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
