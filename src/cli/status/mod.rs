//! `recsched status`: one screen for an operator. Is the daemon alive,
//! who is being recorded now, what opens next, what failed and why, which
//! policy rows the daemon skips, and how the last 24 hours went.
//!
//! Everything comes from the database, opened read-only, so it answers the
//! same whether the daemon runs or not, and never changes a row. Three
//! parts, one job each:
//! - this module reads the clock once and the rows once (a [`Snapshot`]),
//!   with the store's own description of the database (a file path, or a
//!   PostgreSQL URL without its password);
//! - [`model`]: [`Status::build`], a pure function of that instant and the
//!   rows, unit-tested without a database; the daemon's liveness is its
//!   heartbeat judged by the daemon's own rule
//!   ([`daemon::liveness::is_stale`](crate::daemon::liveness::is_stale));
//! - [`text`]: the screen in words an operator knows; `--json` prints the
//!   model itself.

pub mod model;
pub mod text;

use std::process::ExitCode;

use chrono::Duration;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::RecordingFilter;

use super::open_for_reading;
use super::output::{print_json, print_text};
pub use model::{Snapshot, Status};

/// Flags of `recsched status` (its help text is on `Command::Status`).
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// At most this many lines in each list (recording now, opening next,
    /// failed, invalid policies); the totals always count everything.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,

    /// Print one JSON object with the same sections, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// The `daemon_state` key the daemon's housekeeping writes its heartbeat
/// under (`daemon::LAST_SEEN_KEY`). `tests/it/ops/status.rs` runs the real
/// daemon and reads it back through this command, so the two cannot drift.
pub const HEARTBEAT_KEY: &str = crate::daemon::LAST_SEEN_KEY;

/// How far back the failure list and the totals look.
pub const RECENT: Duration = Duration::hours(24);

pub async fn run(args: StatusArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(config).await?;
    let now = SystemClock.now();
    // A heartbeat that does not read back is a bad row like any other.
    let mut skipped = Vec::new();
    let heartbeat = match store.get_state(HEARTBEAT_KEY).await {
        Err(crate::store::StoreError::BadRow(bad)) => {
            skipped.push(bad);
            None
        }
        read => read?,
    };
    let open = store.open_rows().await?;
    let recent = store
        .read_recordings(&RecordingFilter {
            since: Some(now - RECENT),
            ..RecordingFilter::default()
        })
        .await?;
    let policies = store.read_policies().await?;
    // Exclusions the daemon skips: rows that do not read back or parse.
    let exclusions = store.read_exclusions().await?.rows_and_bad(&mut skipped);
    let (_, refused) = crate::policy::exclusion::load_exclusions(&exclusions);
    skipped.extend(refused.iter().map(crate::store::BadRow::from_exclusion));
    let snapshot = Snapshot {
        database: store.describe(),
        heartbeat,
        open: open.rows,
        recent: recent.rows,
        policies: policies.rows,
        bad_rows: [open.bad, recent.bad, policies.bad, skipped].concat(),
    };
    let teams = super::teams::overview(&store, now, config.directory.refresh(), false)
        .await?
        .rows;
    store.close().await;

    let status = Status::build(now, snapshot, args.limit as usize);
    if args.json {
        /// `status --json` with the teams' membership ages beside it.
        #[derive(serde::Serialize)]
        struct WithTeams<'a> {
            #[serde(flatten)]
            status: &'a Status,
            teams: &'a [super::teams::TeamView],
        }
        print_json(&WithTeams {
            status: &status,
            teams: &teams,
        })?;
    } else {
        print_text(&(text::render(&status) + &super::teams::status_text(&teams)))?;
    }
    Ok(ExitCode::SUCCESS)
}
