//! The command line: clap types and one module per subcommand. Each module
//! parses its own arguments and applies itself; this file only dispatches.
//! Doc comments on the types are the `--help` text.

pub mod check;
pub mod completions;
pub mod demo;
pub mod exclusions;
pub mod manpages;
pub mod migrate;
pub mod next;
mod online;
pub mod output;
pub mod policy;
pub mod prune;
pub mod recordings;
pub mod report;
pub mod run;
pub mod simulate;
pub mod status;
pub mod teams;

use crate::config::{self, Config};
use crate::store::{Store, StoreError};
use crate::telemetry::LogFormat;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Open NICE CXone screen-recording windows on a schedule.
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
    /// (e.g. RECSCHED_DATABASE__PATH, RECSCHED_DATABASE__URL,
    /// RECSCHED_CXONE__API_BASE).
    #[arg(
        long,
        global = true,
        value_name = "FILE",
        env = "RECSCHED_CONFIG",
        help_heading = "Global options"
    )]
    pub config: Option<PathBuf>,

    /// Log line format.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value_t = LogFormat::Auto,
        help_heading = "Global options"
    )]
    pub log_format: LogFormat,

    /// Log filter in RUST_LOG syntax (default: info for recsched, warn for
    /// libraries).
    #[arg(
        long,
        global = true,
        value_name = "FILTER",
        env = "RUST_LOG",
        help_heading = "Global options"
    )]
    pub log: Option<String>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Run the scheduler daemon (what the systemd unit starts).
    ///
    /// Opens every window of the enabled, valid policies on time, stops or
    /// lets the recordings expire, and keeps one row per recording, until
    /// stopped. SIGTERM or SIGINT: finish the requests in flight (within
    /// schedule.shutdown_grace_seconds) and exit; SIGHUP: re-read the
    /// policies at once (edits are also picked up within
    /// schedule.reload_poll_ms). Under systemd it reports readiness, status
    /// and watchdog pings (Type=notify).
    Run(run::RunArgs),
    /// Try recsched out: simulator, demo database and daemon in one process.
    ///
    /// Starts the built-in CXone simulator on a loopback port, creates a
    /// fresh demo database with example policies, and runs the daemon
    /// against them until Ctrl-C: recordings start and stop, with their
    /// contact ids, within a minute. Needs no credentials and no config.
    Demo(demo::DemoArgs),
    /// Create the database file (mode 0600) if missing and bring its schema up to date.
    ///
    /// Run it as the service user (e.g. `sudo -u recsched recsched migrate`):
    /// the new file belongs to whoever creates it. Safe to run again. The
    /// other commands never create the database; they ask for this one.
    Migrate(migrate::MigrateArgs),
    /// Validate the config and every policy and exclusion row; exit 1 if anything is wrong.
    ///
    /// Prints one line per problem naming the policy, the column and what is
    /// wrong, as the daemon logs it when it skips the row; disabled policies
    /// are checked too. Exit status: 0 when all is well, 1 when anything is
    /// wrong or cannot be read.
    Check(check::CheckArgs),
    /// List, show, add, change and remove recording policies.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// List, add, remove and import exclusions: holidays, shutdowns and leave that no policy records.
    #[command(subcommand)]
    Exclusions(exclusions::ExclusionsCommand),
    /// List recording rows (one per vendor recording), newest first.
    ///
    /// Each row is one segment: who, which policy, the segment's start and
    /// end (UTC), its state, the contact id the vendor returned, how many
    /// start requests were sent, how late a caught-up start was (LATE_S),
    /// and the last error. Every filter narrows the list.
    Recordings(recordings::RecordingsArgs),
    /// Planned against recorded seconds per user, day or policy, with excluded seconds and every gap's reason.
    ///
    /// Planned time comes from the recordings rows (missed and failed ones
    /// included); recorded time runs from the vendor's answer to the start
    /// until the recording ended; excluded time is what exclusions cut
    /// from the policies' windows. Each gap says why: failed (the last
    /// error), missed (recsched was not running), late (seconds late) or
    /// pending. Example: recsched report --from 2026-03-01 --to 2026-03-31
    /// --by day --tz Europe/Amsterdam --csv
    Report(report::ReportArgs),
    /// Show the coming windows of a policy, or of a cron expression to try out.
    ///
    /// Start and end in UTC and on the policy zone's clock (with its offset),
    /// computed by the daemon's own planner: a start time skipped by a
    /// daylight-saving gap opens at the first instant after the gap, and a
    /// fixed time repeated by the fall-back hour opens once. For a policy,
    /// each window excluded in whole or in part (a holiday, leave) shows
    /// which exclusion cuts it and why (column EXCLUDED). Example:
    /// recsched next --cron "30 2 * * *" --tz Europe/Amsterdam --window 3600
    #[command(override_usage = "recsched next [OPTIONS] <POLICY>\n       \
                                recsched next [OPTIONS] --cron <EXPR> --window <SECS> [--tz <ZONE>]")]
    Next(next::NextArgs),
    /// Serve the built-in CXone API simulator (for dry runs and tests).
    Simulate(Box<simulate::SimulateArgs>),
    /// One screen: is the daemon alive, who is recorded now, what opens next, what failed.
    ///
    /// Read from the database alone (opened read-only), so it works whether
    /// the daemon runs or not and changes nothing: the daemon's heartbeat
    /// (written every 5 s; older than 30 s means it is not running), the
    /// recordings not yet ended (pending, recording, stopping), the next
    /// windows of the enabled, valid policies (UTC and the policy's local
    /// time), the failed recordings of the last 24 h with their errors and
    /// the number missed, every problem of a policy row the daemon skips
    /// (as `recsched check` prints them), and the rows of the last 24 h by
    /// state. On a systemd host run it as root or as the service user:
    /// sudo -u recsched recsched status
    Status(status::StatusArgs),
    /// List the CXone teams that policies name, their members and the age of that data.
    ///
    /// Read from the database alone (opened read-only): for each team, the
    /// policies naming it, the members the directory last listed (the daemon
    /// reads them every directory.refresh_seconds), when that was, and the
    /// last failed read if any (the members are then kept: coverage never
    /// shrinks because the directory is down).
    Teams(teams::TeamsArgs),
    /// Delete the history that [history] no longer keeps, now; --dry-run only counts it.
    ///
    /// Removes finished recordings whose segment ended more than
    /// history.keep_days ago (with their attempts), and attempts sent more
    /// than history.keep_attempts_days ago whose recording is finished;
    /// never an open recording (pending, recording, stopping) or its
    /// attempts. 0 keeps a table forever (the default). Prints how many
    /// rows of each table went, or with --dry-run would go. The daemon does
    /// the same once a day; this is safe while it runs (short batches).
    Prune(prune::PruneArgs),
    /// Print the tab-completion script for bash, zsh or fish.
    ///
    /// The Debian package installs all three where the shells look for
    /// them. For a hand install, as root:
    /// recsched completions bash > /usr/share/bash-completion/completions/recsched;
    /// recsched completions zsh > /usr/share/zsh/vendor-completions/_recsched;
    /// recsched completions fish > /usr/share/fish/vendor_completions.d/recsched.fish
    Completions(completions::CompletionsArgs),
    /// Write the manual pages (recsched(8) and one per subcommand) into a directory.
    ///
    /// The Debian package ships the same pages. For a hand install, as root:
    /// recsched manpages /usr/local/share/man/man8 && mandb; then
    /// `man recsched` or `man recsched-policy-add`.
    Manpages(manpages::ManpagesArgs),
}

/// Runs the parsed command line.
pub async fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config_file = cli.config.as_deref();
    match cli.command {
        Command::Run(args) => run::run(config_file, args).await,
        Command::Demo(args) => demo::run(args).await,
        // `check` reports a bad config in its own output.
        Command::Check(args) => check::run(args, config_file).await,
        Command::Migrate(args) => migrate::run(args, &load_config(config_file)?).await,
        Command::Policy(command) => policy::run(command, &load_config(config_file)?).await,
        // `next --cron` needs neither the config nor the database.
        Command::Next(args) => next::run(args, config_file).await,
        Command::Exclusions(command) => exclusions::run(command, &load_config(config_file)?).await,
        Command::Report(args) => report::run(args, &load_config(config_file)?).await,
        Command::Recordings(args) => recordings::run(args, &load_config(config_file)?).await,
        Command::Status(args) => status::run(args, &load_config(config_file)?).await,
        Command::Teams(args) => teams::run(args, &load_config(config_file)?).await,
        Command::Prune(args) => prune::run(args, &load_config(config_file)?).await,
        // The simulator stands in for the vendor and reads none of our config.
        // Both describe the command line itself: no config, no database.
        Command::Completions(args) => completions::run(args),
        Command::Manpages(args) => manpages::run(args),
        Command::Simulate(args) => {
            simulate::run(*args, shutdown_signal()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Loads the config: `--config`, else the default file when it exists,
/// then the process environment.
pub fn load_config(file: Option<&Path>) -> anyhow::Result<Config> {
    let chosen = config::choose_file(file);
    let mut config = config::load(chosen.as_deref(), std::env::vars())?;
    // A relative `database.url_file` is a systemd credential.
    config.database.credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(PathBuf::from);
    Ok(config)
}

/// Parses an RFC 3339 instant given as a flag (`--since`, `--from`).
pub fn instant(raw: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    crate::clock::parse_utc(raw).map_err(|e| {
        format!(
            "`{raw}` is not an RFC 3339 time such as 2026-03-29T00:00:00Z or \
             2026-03-29T02:00:00+02:00 ({e})"
        )
    })
}

/// Opens the database to change it. Unlike the daemon and `migrate`, a
/// command that edits policies never creates the file: a typo in
/// `database.path` must not leave the edit in a new, unused database.
/// Applies pending migrations, as the daemon would.
pub async fn open_for_writing(config: &Config) -> anyhow::Result<Store> {
    let path = &config.database.path;
    // PostgreSQL: the server refuses an unknown database by itself.
    let sqlite = config.database.postgres_url()?.is_none();
    if sqlite && !path.exists() {
        anyhow::bail!(
            "database {}: the file does not exist; run `recsched migrate` to create it, or fix \
             database.path in the config (or RECSCHED_DATABASE__PATH)",
            path.display()
        );
    }
    Store::open(&config.database).await.map_err(with_cli_fix)
}

/// Opens the database to read it; never creates or migrates anything.
pub async fn open_for_reading(config: &Config) -> anyhow::Result<Store> {
    Store::open_read_only(&config.database)
        .await
        .map_err(with_cli_fix)
}

/// A store error, with the CLI command that fixes it where there is one.
fn with_cli_fix(err: StoreError) -> anyhow::Error {
    match err {
        StoreError::FileMissing { path } => anyhow::anyhow!(
            "database {}: the file does not exist; create it with `recsched migrate`, or fix \
             database.path in the config (or RECSCHED_DATABASE__PATH)",
            path.display()
        ),
        StoreError::NotMigrated { path } => anyhow::anyhow!(
            "database {}: its schema is older than this build; bring it up to date with \
             `recsched migrate`",
            path.display()
        ),
        other => other.into(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn walk(cmd: &clap::Command, path: &str, check: &mut dyn FnMut(&str, &clap::Command)) {
        check(path, cmd);
        for sub in cmd.get_subcommands() {
            walk(sub, &format!("{path} {}", sub.get_name()), check);
        }
    }

    #[test]
    fn every_command_and_flag_has_help_text() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        walk(&cmd, "recsched", &mut |path, cmd| {
            assert!(cmd.get_about().is_some(), "`{path}` has no help");
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" {
                    assert!(arg.get_help().is_some(), "`{path}`: {id} has no help");
                }
            }
        });
    }
}
