//! `recsched prune`: delete now what `[history]` no longer keeps, or with
//! `--dry-run` count it, and say how many rows of each table went (or
//! would go). The daemon does the same once a day (`daemon::retention`);
//! this runs the very same batches, so it is safe while the daemon runs.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::daemon::retention::{self, Pruned};
use crate::store::{Cutoffs, History, PruneCounts};

use super::output::{print_json, print_text, utc};
use super::{open_for_reading, open_for_writing};

/// Flags of `recsched prune` (its help text is on `Command::Prune`).
#[derive(Debug, Clone, clap::Args)]
pub struct PruneArgs {
    /// Count what would be deleted, per table; delete nothing (the
    /// database is opened read-only).
    #[arg(long)]
    pub dry_run: bool,

    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What `recsched prune` reports.
#[derive(Debug, Clone, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub keep_days: u32,
    pub keep_attempts_days: u32,
    /// Final recordings whose segment ended before this go (UTC); `null`:
    /// kept forever.
    pub recordings_before: Option<String>,
    /// Attempts sent before this go, unless their recording is open;
    /// `null`: kept as long as their recording.
    pub attempts_before: Option<String>,
    /// `recordings` rows removed (or, dry, that would be).
    pub recordings: u64,
    /// `attempts` rows removed with their recordings.
    pub attempts_of_recordings: u64,
    /// `attempts` rows removed for their age alone.
    pub attempts: u64,
}

pub async fn run(args: PruneArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let history = config.history;
    let now = SystemClock.now();
    let cutoffs = history.cutoffs(now);
    if history.keeps_everything() {
        let report = report(&args, &history, &cutoffs, PruneCounts::default());
        if args.json {
            print_json(&report)?;
        } else {
            print_text(
                "history.keep_days and history.keep_attempts_days are both 0: history is kept \
                 forever, nothing to remove. Set them in the [history] section of the config \
                 file (or RECSCHED_HISTORY__KEEP_DAYS, RECSCHED_HISTORY__KEEP_ATTEMPTS_DAYS).\n",
            )?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let counts = if args.dry_run {
        let store = open_for_reading(config).await?;
        let counts = store.prune_counts(&cutoffs).await;
        store.close().await;
        counts?
    } else {
        let store = open_for_writing(config).await?;
        let pruned = retention::prune(&store, &cutoffs, &SystemClock).await;
        store.close().await;
        match pruned {
            Ok(Pruned { removed, .. }) => removed,
            Err(e) => {
                let done = report(&args, &history, &cutoffs, e.done.removed);
                print_text(&text(&done, &config.database.describe()))?;
                return Err(anyhow::Error::new(e.source)
                    .context("pruning stopped early; run it again to carry on"));
            }
        }
    };
    let report = report(&args, &history, &cutoffs, counts);
    if args.json {
        print_json(&report)?;
    } else {
        print_text(&text(&report, &config.database.describe()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn report(args: &PruneArgs, history: &History, cutoffs: &Cutoffs, n: PruneCounts) -> PruneReport {
    let shown = |at: Option<DateTime<Utc>>| at.map(utc);
    PruneReport {
        dry_run: args.dry_run,
        keep_days: history.keep_days,
        keep_attempts_days: history.keep_attempts_days,
        recordings_before: shown(cutoffs.recordings),
        attempts_before: shown(cutoffs.attempts),
        recordings: n.recordings,
        attempts_of_recordings: n.attempts_of_recordings,
        attempts: n.attempts,
    }
}

/// The report as an operator reads it: one line per table.
fn text(r: &PruneReport, database: &str) -> String {
    let verb = if r.dry_run { "would remove" } else { "removed" };
    let mut out = format!(
        "database {database}: history.keep_days = {}, history.keep_attempts_days = {}\n",
        r.keep_days, r.keep_attempts_days
    );
    match &r.recordings_before {
        Some(before) => out.push_str(&format!(
            "recordings: {verb} {} (finished, ended before {before})\n",
            r.recordings
        )),
        None => out.push_str("recordings: kept forever (history.keep_days = 0)\n"),
    }
    let by_age = match &r.attempts_before {
        Some(before) => format!(", {} sent before {before}", r.attempts),
        None => String::new(),
    };
    out.push_str(&format!(
        "attempts: {verb} {} ({} with their recordings{by_age})\n",
        r.attempts + r.attempts_of_recordings,
        r.attempts_of_recordings
    ));
    if r.dry_run {
        out.push_str("dry run: nothing was deleted\n");
    }
    out
}
