//! `recsched recordings`: what was recorded, what is recording now, and
//! what failed or was missed, with why; read from the `recordings` table.
//!
//! Read-only; the filters map one to one onto the store's
//! [`RecordingFilter`], and the flags are parsed into the recording
//! vocabulary (`UserId`, `RecordingState`) before the query, so a typo in
//! a state is an error listing the states, not an empty list.

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::config::Config;
use crate::recording::{RecordingState, UserId};
use crate::store::{RecordingFilter, RecordingRow};

use super::output::{one_line, print_json, print_text, truncated, utc, Table};
use super::{instant, open_for_reading};

/// Flags of `recsched recordings` (its help text is on `Command::Recordings`).
#[derive(Debug, Clone, clap::Args)]
pub struct RecordingsArgs {
    /// Only this user's recordings.
    #[arg(long, value_name = "USER")]
    pub user: Option<UserId>,

    /// Only rows in this state: pending, recording, stopping, stopped,
    /// expired, failed or missed.
    #[arg(long, value_name = "STATE")]
    pub state: Option<RecordingState>,

    /// Only rows that still occupied their user after this instant
    /// (RFC 3339, e.g. 2026-03-29T00:00:00Z): ended later, or still running.
    #[arg(long, value_name = "TIME", value_parser = instant)]
    pub since: Option<DateTime<Utc>>,

    /// At most this many rows (the newest).
    #[arg(long, value_name = "N", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,

    /// Print one JSON array, one object per row with every column.
    #[arg(long)]
    pub json: bool,
}

/// One row in `--json` output: every column, times as RFC 3339 UTC text.
#[derive(Debug, Serialize)]
struct RecordingJson<'a> {
    id: i64,
    user_id: &'a str,
    policy_id: Option<i64>,
    segment_start: String,
    segment_end: String,
    requested_seconds: u32,
    end_mode: &'static str,
    state: &'static str,
    contact_id: Option<i64>,
    interaction_id: Option<&'a str>,
    attempts: u32,
    last_error: Option<&'a str>,
    late_seconds: Option<f64>,
    ended_at: Option<String>,
    created_at: String,
    updated_at: String,
}

impl<'a> From<&'a RecordingRow> for RecordingJson<'a> {
    fn from(r: &'a RecordingRow) -> Self {
        Self {
            id: r.id.get(),
            user_id: r.user_id.as_str(),
            policy_id: r.policy_id,
            segment_start: utc(r.segment_start),
            segment_end: utc(r.segment_end),
            requested_seconds: r.requested_seconds,
            end_mode: r.end_mode.as_str(),
            state: r.state.as_str(),
            contact_id: r.contact_id.map(|c| c.get()),
            interaction_id: r.interaction_id.as_ref().map(|i| i.0.as_str()),
            attempts: r.attempts,
            last_error: r.last_error.as_deref(),
            late_seconds: r.late_seconds,
            ended_at: r.ended_at.map(utc),
            created_at: utc(r.created_at),
            updated_at: utc(r.updated_at),
        }
    }
}

/// Longest last error shown in the table; `--json` has all of it.
const ERROR_WIDTH: usize = 80;

pub async fn run(args: RecordingsArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(config).await?;
    let read = store
        .read_recordings(&RecordingFilter {
            user: args.user,
            state: args.state,
            since: args.since,
            limit: Some(args.limit),
        })
        .await?;
    store.close().await;
    // A row that does not read back is named on stderr, not a failure of
    // the whole listing (as the daemon skips it, the others are listed).
    for bad in &read.bad {
        eprintln!("skipped a row that does not read back: {bad}");
    }
    let shown = read.rows.len() + read.bad.len();
    let rows = read.rows;

    if args.json {
        let list: Vec<RecordingJson> = rows.iter().map(RecordingJson::from).collect();
        print_json(&list)?;
        return Ok(ExitCode::SUCCESS);
    }
    if rows.is_empty() {
        print_text("no recordings match\n")?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut table = Table::new(&[
        "ID", "USER", "POLICY", "START", "END", "STATE", "CONTACT", "ATTEMPTS", "LATE_S", "ERROR",
    ]);
    for r in &rows {
        table.row(vec![
            r.id.to_string(),
            r.user_id.to_string(),
            r.policy_id.map(|p| p.to_string()).unwrap_or_default(),
            utc(r.segment_start),
            utc(r.segment_end),
            r.state.to_string(),
            r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            r.attempts.to_string(),
            r.late_seconds
                .map(|s| format!("{s:.1}"))
                .unwrap_or_default(),
            truncated(
                &one_line(r.last_error.as_deref().unwrap_or("")),
                ERROR_WIDTH,
            ),
        ]);
    }
    print_text(&table.render())?;
    if shown == args.limit as usize {
        eprintln!(
            "(showing the newest {}; raise --limit or narrow with --user, --state, --since)",
            args.limit
        );
    }
    Ok(ExitCode::SUCCESS)
}
