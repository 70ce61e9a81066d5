//! `recsched report`: planned against recorded seconds per user, day or
//! policy, with excluded seconds and every gap's reason, for auditors and
//! works councils.
//!
//! Reads the `recordings` rows (with their answered starts) and the
//! policies and exclusions as the daemon parses them, then hands them to
//! the pure arithmetic in [`crate::report`]. It never writes. Rows that
//! do not read back are left out and named.

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::clock::{format_utc, Clock, SystemClock};
use crate::config::Config;
use crate::planner::Interval;
use crate::policy::exclusion::{attach, end_of_day, load_exclusions, start_of_day};
use crate::policy::{self, parse_timezone};
use crate::report::{self, By, Group, Scope, Sums};
use crate::store::BadRow;

use super::open_for_reading;
use super::output::{one_line, print_json, print_text, Table};

/// Flags of `recsched report`.
#[derive(Debug, Clone, clap::Args)]
pub struct ReportArgs {
    /// First day (2026-03-01, from its local midnight) or instant (RFC 3339).
    #[arg(long, value_name = "DATE|TIME")]
    pub from: String,

    /// Last day (inclusive) or the instant the report ends (exclusive).
    /// Time after now is not counted.
    #[arg(long, value_name = "DATE|TIME")]
    pub to: String,

    /// Only this policy (name or id).
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,

    /// Only this user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// One line per user, local day or policy.
    #[arg(long, value_enum, default_value_t = By::User)]
    pub by: By,

    /// The IANA zone of --from/--to dates and of days (--by day).
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub tz: String,

    /// Print one JSON object: the range, each group with its gaps, the total.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,

    /// Print CSV: a header, one line per group, then the total.
    #[arg(long)]
    pub csv: bool,
}

/// The whole report, as `--json` prints it.
#[derive(Debug, Serialize)]
struct Output {
    from: String,
    to: String,
    timezone: &'static str,
    by: By,
    groups: Vec<Group>,
    total: Sums,
    /// `recordings` rows that do not read back, left out of the sums.
    unreadable_rows: Vec<BadRow>,
}

/// A `--from`/`--to` value: the start of a local day, or an instant.
fn bound(raw: &str, tz: chrono_tz::Tz, end: bool, flag: &str) -> anyhow::Result<DateTime<Utc>> {
    if let Ok(day) = NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        return Ok(if end {
            end_of_day(day, tz)
        } else {
            start_of_day(day, tz)
        });
    }
    crate::clock::parse_utc(raw).map_err(|_| {
        anyhow::anyhow!(
            "{flag} `{}`: neither a date like 2026-03-01 nor an RFC 3339 instant like \
             2026-03-01T00:00:00Z",
            one_line(raw)
        )
    })
}

pub async fn run(args: ReportArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let tz = parse_timezone(&args.tz).map_err(|e| {
        anyhow::anyhow!("--tz `{}`: not an IANA time zone name", one_line(&e.value))
    })?;
    let from = bound(&args.from, tz, false, "--from")?;
    let to = bound(&args.to, tz, true, "--to")?;
    let now = SystemClock.now();
    let until = to.min(now);
    if until <= from {
        anyhow::bail!(
            "the report's range is empty: --from {} is not before --to {} (and now)",
            format_utc(from),
            format_utc(until)
        );
    }
    let store = open_for_reading(config).await?;
    let wanted_policy = match &args.policy {
        Some(name) => Some(super::policy::find(&store, name).await?.id),
        None => None,
    };
    let rows = store.report_rows(from, until).await?;
    let policy_rows = store.policy_rows().await?;
    let exclusions = store.read_exclusions().await?;
    store.close().await;

    let names: HashMap<i64, String> = policy_rows.iter().map(|p| (p.id, p.name.clone())).collect();
    let (mut policies, _) = policy::load(policy_rows);
    let (exclusions, _) = load_exclusions(&exclusions.rows);
    attach(&mut policies, &exclusions);
    let range = Interval::new(from, until);
    let wanted_user = |u: &str| args.user.as_deref().is_none_or(|w| w == u);
    let excluded: Vec<_> = report::excluded_time(&policies, range)
        .into_iter()
        .filter(|e| wanted_user(e.user.as_str()))
        .filter(|e| wanted_policy.is_none_or(|p| p == e.policy_id))
        .collect();
    let recordings: Vec<_> = rows
        .rows
        .into_iter()
        .filter(|r| wanted_user(r.user_id.as_str()))
        .filter(|r| wanted_policy.is_none_or(|p| r.policy_id == Some(p)))
        .collect();
    let scope = Scope {
        range,
        by: args.by,
        zone: tz,
        names: &names,
    };
    let (groups, total) = report::report(&recordings, &excluded, &scope);
    let out = Output {
        from: format_utc(from),
        to: format_utc(until),
        timezone: tz.name(),
        by: args.by,
        groups,
        total,
        unreadable_rows: rows.bad,
    };
    if args.json {
        print_json(&out)?;
    } else if args.csv {
        print_text(&csv(&out))?;
    } else {
        print_text(&text(&out))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Seconds as printed: whole when whole.
fn secs(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("-".to_owned(), |r| format!("{r:.3}"))
}

fn text(out: &Output) -> String {
    let by = match out.by {
        By::User => "USER",
        By::Day => "DAY",
        By::Policy => "POLICY",
    };
    let mut t = Table::new(&[by, "PLANNED_S", "RECORDED_S", "EXCLUDED_S", "RATIO", "GAPS"]);
    let gaps = |s: &Sums| {
        let parts: Vec<String> = [
            ("failed", s.failed_seconds),
            ("missed", s.missed_seconds),
            ("late", s.late_seconds),
            ("pending", s.pending_seconds),
        ]
        .iter()
        .filter(|(_, v)| *v > 0.0)
        .map(|(name, v)| format!("{name} {} s", secs(*v)))
        .collect();
        parts.join(", ")
    };
    let line = |t: &mut Table, name: String, s: &Sums| {
        t.row(vec![
            name,
            secs(s.planned_seconds),
            secs(s.recorded_seconds),
            secs(s.excluded_seconds),
            ratio(s.ratio),
            gaps(s),
        ])
    };
    for g in &out.groups {
        line(&mut t, g.group.clone(), &g.sums);
    }
    line(&mut t, "(total)".to_owned(), &out.total);
    let mut text = format!(
        "coverage from {} to {} ({}), by {}\n{}",
        out.from,
        out.to,
        out.timezone,
        by.to_lowercase(),
        t.render()
    );
    let all: Vec<_> = out.groups.iter().flat_map(|g| &g.gaps).collect();
    if !all.is_empty() {
        text.push_str("\ngaps:\n");
        let mut t = Table::new(&[
            "USER", "POLICY", "FROM", "TO", "SECONDS", "REASON", "DETAIL",
        ]);
        for g in all {
            t.row(vec![
                g.user.as_str().to_owned(),
                g.policy_id.map_or("-".to_owned(), |p| p.to_string()),
                g.start.clone(),
                g.end.clone(),
                secs(g.seconds),
                g.reason.as_str().to_owned(),
                g.detail.clone(),
            ]);
        }
        text.push_str(&t.render());
    }
    for bad in &out.unreadable_rows {
        text.push_str(&format!("left out: {bad}\n"));
    }
    text
}

/// A CSV field, quoted when it must be (RFC 4180).
fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_owned()
    }
}

fn csv(out: &Output) -> String {
    let mut text = String::from(
        "group,planned_seconds,recorded_seconds,excluded_seconds,ratio,failed_seconds,\
         missed_seconds,late_seconds,pending_seconds,gaps\n",
    );
    let mut line = |name: &str, s: &Sums, gaps: usize| {
        text.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{gaps}\n",
            field(name),
            secs(s.planned_seconds),
            secs(s.recorded_seconds),
            secs(s.excluded_seconds),
            s.ratio.map_or(String::new(), |r| format!("{r:.4}")),
            secs(s.failed_seconds),
            secs(s.missed_seconds),
            secs(s.late_seconds),
            secs(s.pending_seconds),
        ))
    };
    for g in &out.groups {
        line(&g.group, &g.sums, g.gaps.len());
    }
    let n: usize = out.groups.iter().map(|g| g.gaps.len()).sum();
    line("(total)", &out.total, n);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_local_days_and_instants_are_kept() {
        let tz: chrono_tz::Tz = "Europe/Amsterdam".parse().unwrap();
        assert_eq!(
            format_utc(bound("2026-03-29", tz, false, "--from").unwrap()),
            "2026-03-28T23:00:00.000Z"
        );
        assert_eq!(
            format_utc(bound("2026-03-29", tz, true, "--to").unwrap()),
            "2026-03-29T22:00:00.000Z"
        );
        assert_eq!(
            format_utc(bound("2026-03-29T10:00:00Z", tz, true, "--to").unwrap()),
            "2026-03-29T10:00:00.000Z"
        );
        let e = bound("29/3", tz, false, "--from").unwrap_err().to_string();
        assert!(e.starts_with("--from `29/3`"), "{e}");
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        assert_eq!(field("ann"), "ann");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(field("say \"hi\""), "\"say \"\"hi\"\"\"");
    }
}
