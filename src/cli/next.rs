//! `recsched next`: when a policy's windows open, in UTC and in the
//! policy's own time, so an operator can check a cron expression and its
//! daylight-saving behaviour before (or after) putting it in a policy.
//!
//! The instants come from the planner's [`window_starts`], the function
//! the daemon plans with, so what `next` prints is what the daemon does,
//! gap and fold included. Given a POLICY, each window also lists the
//! exclusions that cut it, with their reasons (`excluded`). This module
//! only parses the flags, reads the clock once (for the default
//! `--from`) and prints.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::planner::window_starts;
use crate::policy::{self, parse_timezone, Policy, WindowLength, ZonedCron};

mod excluded;

pub use excluded::{mark, ExcludedView};

use super::output::{human_secs, one_line, print_json, print_text, utc, Table};
use super::{instant, open_for_reading};

/// Flags of `recsched next` (its help text is on `Command::Next`).
#[derive(Debug, Clone, clap::Args)]
pub struct NextArgs {
    /// The policy (name or id) whose windows to show; or give --cron,
    /// --tz and --window instead to try an expression out.
    #[arg(
        value_name = "POLICY",
        required_unless_present = "cron",
        conflicts_with_all = ["cron", "tz", "window"]
    )]
    pub policy: Option<String>,

    /// Instead of a policy: a cron expression, as in `policy add --cron`.
    #[arg(long, value_name = "EXPR", requires = "window")]
    pub cron: Option<String>,

    /// With --cron: the IANA time zone it is read in [default: UTC].
    #[arg(long, value_name = "ZONE", requires = "cron")]
    pub tz: Option<String>,

    /// With --cron: the window length in seconds (5 to 604800).
    #[arg(
        long,
        value_name = "SECS",
        requires = "cron",
        allow_negative_numbers = true
    )]
    pub window: Option<i64>,

    /// How many windows to show.
    #[arg(long, value_name = "N", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub count: u32,

    /// Show windows opening at or after this instant (RFC 3339) instead of now.
    #[arg(long, value_name = "TIME", value_parser = instant)]
    pub from: Option<DateTime<Utc>>,

    /// Print one JSON array, one object per window.
    #[arg(long)]
    pub json: bool,
}

/// One window as printed: UTC instants, and the same instants on the
/// policy zone's clock with their offset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WindowView {
    /// RFC 3339, UTC, as stored in the database.
    pub start: String,
    pub end: String,
    /// RFC 3339 with the zone's offset at that instant.
    pub start_local: String,
    pub end_local: String,
    /// The zone's abbreviation at each instant (`CET`, `CEST`).
    pub start_abbreviation: String,
    pub end_abbreviation: String,
    pub timezone: &'static str,
    /// The policy's exclusions over this window (empty without a policy).
    pub excluded: Vec<ExcludedView>,
}

/// The first `count` windows of `cron` opening at or after `from` (fewer
/// if the expression stops matching before year 5000).
pub fn upcoming(
    cron: &ZonedCron,
    window: WindowLength,
    from: DateTime<Utc>,
    count: usize,
) -> Vec<WindowView> {
    let tz = cron.timezone();
    let local = |t: DateTime<Utc>| {
        let l = t.with_timezone(&tz);
        (
            l.format("%Y-%m-%dT%H:%M:%S%:z").to_string(),
            l.format("%Z").to_string(),
        )
    };
    window_starts(cron, from)
        .take(count)
        .map(|start| {
            let end = start + window.as_duration();
            let (start_local, start_abbreviation) = local(start);
            let (end_local, end_abbreviation) = local(end);
            WindowView {
                start: utc(start),
                end: utc(end),
                start_local,
                end_local,
                start_abbreviation,
                end_abbreviation,
                timezone: tz.name(),
                excluded: Vec::new(),
            }
        })
        .collect()
}

/// The windows as a text table; with an EXCLUDED column when an
/// exclusion cuts any of them.
pub fn table(windows: &[WindowView]) -> String {
    let header = [
        "START (UTC)",
        "END (UTC)",
        "START (LOCAL)",
        "END (LOCAL)",
        "EXCLUDED",
    ];
    let cut = windows.iter().any(|w| !w.excluded.is_empty());
    let mut table = Table::new(&header[..if cut { 5 } else { 4 }]);
    for w in windows {
        let mut row = vec![
            w.start.clone(),
            w.end.clone(),
            format!("{} {}", w.start_local, w.start_abbreviation),
            format!("{} {}", w.end_local, w.end_abbreviation),
        ];
        if cut {
            let why: Vec<String> = w.excluded.iter().map(ExcludedView::text).collect();
            row.push(why.join("; "));
        }
        table.row(row);
    }
    table.render()
}

pub async fn run(args: NextArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let from = args.from.unwrap_or_else(|| SystemClock.now());
    let (title, cron, window, policy) = match (&args.policy, &args.cron) {
        (Some(name), _) => {
            let config = super::load_config(config_file)?;
            let store = open_for_reading(&config).await?;
            let row = super::policy::find(&store, name).await?;
            let exclusions = store.read_exclusions().await?;
            store.close().await;
            let mut policy = Policy::from_row(&row).map_err(|_| {
                let problems: Vec<String> = policy::problems(&row)
                    .iter()
                    .map(|e| format!("\n  {}", e.problem))
                    .collect();
                anyhow::anyhow!(
                    "policy `{}` does not validate, so it has no windows (the daemon skips it):{}",
                    one_line(&row.name),
                    problems.concat()
                )
            })?;
            // The exclusions the daemon applies (a bad row is skipped,
            // as `check` reports).
            let (exclusions, _) = policy::exclusion::load_exclusions(&exclusions.rows);
            policy::exclusion::attach(std::slice::from_mut(&mut policy), &exclusions);
            if !policy.enabled {
                eprintln!(
                    "note: policy `{}` is disabled: these windows open only once it is enabled",
                    one_line(&policy.name)
                );
            }
            let title = format!(
                "policy `{}`: cron `{}` in {}, window {} s ({})",
                one_line(&policy.name),
                policy.cron.expression(),
                policy.cron.timezone().name(),
                policy.window.as_secs(),
                human_secs(i64::from(policy.window.as_secs())),
            );
            (title, policy.cron.clone(), policy.window, Some(policy))
        }
        (None, Some(expression)) => {
            let (cron, window) =
                parse_flags(expression, args.tz.as_deref(), args.window.unwrap_or(0))?;
            let title = format!(
                "cron `{}` in {}, window {} s ({})",
                cron.expression(),
                cron.timezone().name(),
                window.as_secs(),
                human_secs(i64::from(window.as_secs())),
            );
            (title, cron, window, None)
        }
        // clap requires one of the two.
        (None, None) => anyhow::bail!("give a POLICY, or --cron and --window"),
    };

    let mut windows = upcoming(&cron, window, from, args.count as usize);
    if let Some(policy) = &policy {
        mark(&mut windows, policy);
    }
    if args.json {
        print_json(&windows)?;
    } else {
        let mut text = format!("{title}\n");
        if windows.is_empty() {
            text.push_str(&format!("no window opens after {}\n", utc(from)));
        } else {
            text.push_str(&table(&windows));
        }
        print_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// `--cron`, `--tz` and `--window`, through the same parsers as a policy row.
fn parse_flags(
    expression: &str,
    tz: Option<&str>,
    window: i64,
) -> anyhow::Result<(ZonedCron, WindowLength)> {
    let tz = parse_timezone(tz.unwrap_or("UTC")).map_err(|e| {
        let hint = e
            .suggestion
            .map(|s| format!("; did you mean `{s}`?"))
            .unwrap_or_default();
        anyhow::anyhow!(
            "--tz `{}`: not an IANA time zone name{hint}",
            one_line(&e.value)
        )
    })?;
    let cron = ZonedCron::new(expression, tz)
        .map_err(|e| anyhow::anyhow!("--cron `{}`: {e}", one_line(expression)))?;
    let window = WindowLength::from_secs(window)
        .map_err(|_| anyhow::anyhow!("--window {window}: must be between 5 and 604800"))?;
    Ok((cron, window))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_utc;

    #[test]
    fn local_times_carry_the_offset_of_their_instant() {
        let (cron, window) = parse_flags("30 2 * * *", Some("Europe/Amsterdam"), 3600).unwrap();
        let from = parse_utc("2026-03-29T00:00:00Z").unwrap();
        let w = &upcoming(&cron, window, from, 1)[0];
        assert_eq!(w.start, "2026-03-29T01:00:00.000Z");
        assert_eq!(w.start_local, "2026-03-29T03:00:00+02:00");
        assert_eq!(w.start_abbreviation, "CEST");
        assert_eq!(w.end_local, "2026-03-29T04:00:00+02:00");
    }

    #[test]
    fn bad_flags_name_the_flag() {
        let e = parse_flags("61 * * * *", None, 60).unwrap_err().to_string();
        assert_eq!(e, "--cron `61 * * * *`: minute 61 out of range 0-59");
        let e = parse_flags("@daily", Some("europe/amsterdam"), 60)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("--tz `europe/amsterdam`"), "{e}");
        assert!(e.contains("`Europe/Amsterdam`"), "{e}");
        let e = parse_flags("@daily", None, 3).unwrap_err().to_string();
        assert!(e.starts_with("--window 3"), "{e}");
    }
}
