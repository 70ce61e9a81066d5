//! The command line: clap types and one module per subcommand. Each module
//! parses its own arguments and applies itself; this file only dispatches.
//! Doc comments on the types are the `--help` text.

pub mod demo;
pub mod run;
pub mod simulate;

use crate::config::{self, Config};
use crate::telemetry::LogFormat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// recsched opens NICE CXone screen-recording windows on a schedule.
///
/// Operators keep recording policies as rows in SQLite (with sqlite3 or
/// `recsched policy`); `recsched run` opens every window on time, keeps
/// the contact ids, stops or lets recordings expire, and retries what may
/// be retried.
#[derive(Debug, clap::Parser)]
#[command(name = "recsched", version, propagate_version = true)]
pub struct Cli {
    /// Config file (TOML). Default: /etc/recsched/recsched.toml when it
    /// exists, else built-in defaults. RECSCHED_* variables override it
    /// (e.g. RECSCHED_DATABASE__PATH, RECSCHED_CXONE__API_BASE).
    #[arg(long, global = true, value_name = "FILE", env = "RECSCHED_CONFIG")]
    pub config: Option<PathBuf>,

    /// Log line format.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax (default: info for recsched, warn for
    /// libraries).
    #[arg(long, global = true, value_name = "FILTER", env = "RUST_LOG")]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the scheduler daemon (what the systemd unit starts). SIGTERM or
    /// SIGINT: finish requests in flight and exit; SIGHUP: reload policies.
    Run(run::RunArgs),
    /// Try it out: the built-in CXone simulator, a fresh demo database
    /// with example policies, and the daemon, in one process, until Ctrl-C.
    Demo(demo::DemoArgs),
    /// Serve the built-in CXone API simulator (for dry runs and tests).
    Simulate(Box<simulate::SimulateArgs>),
}

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Run(args) => run::run(config_file, args).await,
        Command::Demo(args) => demo::run(args).await,
        Command::Simulate(args) => {
            let _ = config_file;
            simulate::run(*args, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the config: `--config`, else the default file when it exists,
/// then the process environment.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<Config> {
    let chosen = config::choose_file(file);
    Ok(config::load(chosen.as_deref(), std::env::vars())?)
}

/// Completes on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        let _ = tokio::signal::ctrl_c().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
