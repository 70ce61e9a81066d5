//! `recsched exclusions ...`: read and edit the `exclusions` table (time
//! the policies must not record) without writing SQL, and import holiday
//! calendars (`.ics`).
//!
//! The CLI is one more writer of the table beside sqlite3 and psql: the
//! daemon picks up what it writes within the reload time and judges it
//! with the same parser ([`Exclusion::from_row`]), which `add` and
//! `import` run first, so they never write a row the daemon would skip.

mod ics;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::config::Config;
use crate::policy::exclusion::{exclusion_problems, ExclusionColumn};
#[cfg(doc)]
use crate::policy::Exclusion;
use crate::policy::{parse_timezone, ExclusionRow};
use crate::recording::UserId;
use crate::store::{NewExclusion, Store};

use super::output::{one_line, print_json, print_text, Table};
use super::{open_for_reading, open_for_writing};

/// The largest .ics file `import` reads: a national holiday calendar is a
/// few kilobytes; this bounds a mistaken path to a large file.
const ICS_MAX_BYTES: u64 = 16 * 1024 * 1024;

/// The exclusion subcommands. Edits reach a running daemon within the
/// reload time, like policy edits.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ExclusionsCommand {
    /// Add an exclusion: no recording for a policy (or all) and a user (or all) over some dates or times.
    ///
    /// Dates (2026-12-24) are whole local days, both ends inclusive, in
    /// --tz or else each policy's own zone; UTC instants
    /// (2026-12-24T12:00:00Z, any RFC 3339 offset) are half-open.
    /// Examples: recsched exclusions add --from 2026-12-24 --to 2026-12-26
    /// --reason Christmas; recsched exclusions add --policy night-shift
    /// --user agent-7 --from 2026-08-03 --to 2026-08-14 --reason leave
    Add(AddArgs),
    /// List the exclusions, with the problem of each row the daemon skips.
    List(ListArgs),
    /// Delete exclusions by id (no confirmation): their time is recorded again.
    Remove(RemoveArgs),
    /// Import the all-day and timed events of an iCalendar (.ics) file as exclusions.
    ///
    /// An all-day event excludes its local dates (in --tz, else each
    /// policy's zone); a timed one its UTC span. Recurring, cancelled and
    /// unplaceable events are listed as skipped. Importing the same file
    /// again adds nothing. Example: recsched exclusions import
    /// holidays-nl-2026.ics --policy back-office
    Import(ImportArgs),
}

/// Flags of `recsched exclusions add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// First day (2026-12-24) or instant (2026-12-24T12:00:00Z) excluded.
    #[arg(long, value_name = "DATE|TIME")]
    pub from: String,

    /// Last day excluded (inclusive), or the instant the exclusion ends
    /// (exclusive); the same form as --from. Default with a date: --from
    /// (one day).
    #[arg(long, value_name = "DATE|TIME")]
    pub to: Option<String>,

    /// Only this policy (name or id); default: every policy.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,

    /// Only this user; default: every user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// The IANA zone dates are read in; default: each policy's own zone.
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,

    /// Why (shown by `next`, `list` and the report), e.g. "Christmas".
    #[arg(long, value_name = "TEXT")]
    pub reason: Option<String>,
}

/// Flags of `recsched exclusions list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Only those that apply to this policy (name or id), including those for every policy.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,

    /// Only those that apply to this user, including those for every user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// Print one JSON array, one object per row.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `recsched exclusions remove`.
#[derive(Debug, Clone, clap::Args)]
pub struct RemoveArgs {
    /// Ids of the exclusions to delete (as `list` shows them).
    #[arg(value_name = "ID", required = true)]
    pub ids: Vec<i64>,
}

/// Flags of `recsched exclusions import`.
#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The iCalendar file.
    #[arg(value_name = "FILE.ics")]
    pub file: PathBuf,

    /// Only this policy (name or id); default: every policy.
    #[arg(long, value_name = "POLICY")]
    pub policy: Option<String>,

    /// Only this user (a leave calendar); default: every user.
    #[arg(long, value_name = "USER")]
    pub user: Option<String>,

    /// The IANA zone all-day events are read in (default: each policy's
    /// zone) and floating times are read in (default: refused).
    #[arg(long, value_name = "ZONE")]
    pub tz: Option<String>,

    /// Show what would be imported; write nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One row as `list --json` prints it.
#[derive(Debug, Serialize)]
struct RowJson {
    #[serde(flatten)]
    row: ExclusionRow,
    /// The policy's name, when `policy_id` names one.
    policy: Option<String>,
    /// Why the daemon skips it (empty when it is applied).
    problems: Vec<String>,
}

pub async fn run(command: ExclusionsCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        ExclusionsCommand::Add(args) => add(args, config).await,
        ExclusionsCommand::List(args) => list(args, config).await,
        ExclusionsCommand::Remove(args) => remove(args, config).await,
        ExclusionsCommand::Import(args) => import(args, config).await,
    }
}

/// The policy id a `--policy` flag names.
async fn policy_id(store: &Store, name: Option<&str>) -> anyhow::Result<Option<i64>> {
    match name {
        Some(name) => Ok(Some(super::policy::find(store, name).await?.id)),
        None => Ok(None),
    }
}

/// A `--user` flag, checked as a user id.
fn user_flag(raw: Option<&str>) -> anyhow::Result<Option<String>> {
    raw.map(|u| {
        UserId::parse(u)
            .map(|_| u.to_owned())
            .map_err(|e| anyhow::anyhow!("--user `{}`: {e}", one_line(u)))
    })
    .transpose()
}

/// A `--tz` flag, checked as an IANA name.
fn zone_flag(raw: Option<&str>) -> anyhow::Result<Option<chrono_tz::Tz>> {
    raw.map(|tz| {
        parse_timezone(tz).map_err(|e| {
            let hint = e
                .suggestion
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default();
            anyhow::anyhow!("--tz `{}`: not an IANA time zone name{hint}", one_line(tz))
        })
    })
    .transpose()
}

/// `--from`/`--to` as stored: a date as given, an instant in the
/// canonical UTC form.
fn end_flag(raw: &str) -> String {
    match crate::clock::parse_utc(raw) {
        Ok(t) => crate::clock::format_utc(t),
        Err(_) => raw.to_owned(),
    }
}

/// The flag that sets a column, for messages.
fn flag(column: ExclusionColumn) -> &'static str {
    match column {
        ExclusionColumn::UserId => "--user",
        ExclusionColumn::StartsAt => "--from",
        ExclusionColumn::EndsAt => "--to",
        ExclusionColumn::Timezone => "--tz",
    }
}

async fn add(args: AddArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let user_id = user_flag(args.user.as_deref())?;
    zone_flag(args.tz.as_deref())?;
    let starts_at = end_flag(&args.from);
    let ends_at = match &args.to {
        Some(to) => end_flag(to),
        None if crate::clock::parse_utc(&args.from).is_err() => starts_at.clone(),
        None => {
            anyhow::bail!("--to is needed with an instant; give the instant it ends (exclusive)")
        }
    };
    let reason = args
        .reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty());
    let candidate = ExclusionRow {
        id: 0,
        policy_id: None,
        user_id: user_id.clone(),
        starts_at,
        ends_at,
        timezone: args.tz.clone(),
        reason,
    };
    if let Some(e) = exclusion_problems(&candidate).first() {
        anyhow::bail!("{} {}; nothing was written", flag(e.column), e.problem);
    }
    let store = open_for_writing(config).await?;
    let policy_id = policy_id(&store, args.policy.as_deref()).await?;
    let new = NewExclusion {
        policy_id,
        user_id: candidate.user_id,
        starts_at: candidate.starts_at,
        ends_at: candidate.ends_at,
        timezone: candidate.timezone,
        reason: candidate.reason,
    };
    let ids = store.insert_exclusions(std::slice::from_ref(&new)).await?;
    store.close().await;
    match ids.first().copied().flatten() {
        Some(id) => print_text(&format!(
            "added exclusion {id}: {}; a running daemon applies it within its reload time\n",
            describe(&new)
        ))?,
        None => print_text(&format!(
            "an identical exclusion is already there: {}\n",
            describe(&new)
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// "2026-12-24 to 2026-12-26 (policy 3, every user): Christmas".
fn describe(e: &NewExclusion) -> String {
    let policy = e
        .policy_id
        .map_or("every policy".to_owned(), |p| format!("policy {p}"));
    let user = e
        .user_id
        .as_deref()
        .map_or("every user".to_owned(), |u| format!("user {}", one_line(u)));
    let reason = e
        .reason
        .as_deref()
        .map(|r| format!(": {}", one_line(r)))
        .unwrap_or_default();
    format!(
        "{} to {} ({policy}, {user}){reason}",
        e.starts_at, e.ends_at
    )
}

async fn list(args: ListArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(config).await?;
    let wanted_policy = policy_id(&store, args.policy.as_deref()).await?;
    let read = store.read_exclusions().await?;
    let policies = store.policy_rows().await?;
    store.close().await;
    let names: std::collections::HashMap<i64, String> =
        policies.into_iter().map(|p| (p.id, p.name)).collect();
    let rows: Vec<RowJson> = read
        .rows
        .into_iter()
        .filter(|r| {
            wanted_policy.is_none() || r.policy_id.is_none() || r.policy_id == wanted_policy
        })
        .filter(|r| {
            args.user.is_none()
                || r.user_id.is_none()
                || r.user_id.as_deref() == args.user.as_deref()
        })
        .map(|row| RowJson {
            policy: row.policy_id.and_then(|p| names.get(&p).cloned()),
            problems: exclusion_problems(&row)
                .iter()
                .map(|e| format!("{} {}", e.column.as_str(), e.problem))
                .collect(),
            row,
        })
        .collect();
    if args.json {
        print_json(&rows)?;
    } else {
        let mut table = Table::new(&[
            "ID", "POLICY", "USER", "FROM", "TO", "ZONE", "REASON", "PROBLEM",
        ]);
        for r in &rows {
            table.row(vec![
                r.row.id.to_string(),
                match (&r.policy, r.row.policy_id) {
                    (Some(name), _) => name.clone(),
                    (None, Some(id)) => id.to_string(),
                    (None, None) => "(all)".to_owned(),
                },
                r.row.user_id.clone().unwrap_or_else(|| "(all)".to_owned()),
                r.row.starts_at.clone(),
                r.row.ends_at.clone(),
                r.row
                    .timezone
                    .clone()
                    .unwrap_or_else(|| "(policy's)".to_owned()),
                r.row.reason.clone().unwrap_or_default(),
                r.problems.join("; "),
            ]);
        }
        let mut text = if rows.is_empty() {
            "no exclusions\n".to_owned()
        } else {
            table.render()
        };
        for bad in &read.bad {
            text.push_str(&format!("{bad}\n"));
        }
        print_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn remove(args: RemoveArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_writing(config).await?;
    let mut missing = Vec::new();
    for id in &args.ids {
        if store.remove_exclusion(*id).await? {
            print_text(&format!("removed exclusion {id}\n"))?;
        } else {
            missing.push(id.to_string());
        }
    }
    store.close().await;
    if missing.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        anyhow::bail!(
            "no exclusion with id {}; `recsched exclusions list` shows them",
            missing.join(", ")
        )
    }
}

async fn import(args: ImportArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let zone = zone_flag(args.tz.as_deref())?;
    let user_id = user_flag(args.user.as_deref())?;
    let size = std::fs::metadata(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?
        .len();
    if size > ICS_MAX_BYTES {
        anyhow::bail!(
            "{}: {size} bytes; an iCalendar file of more than {ICS_MAX_BYTES} bytes is not \
             imported",
            args.file.display()
        );
    }
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let store = if args.dry_run {
        open_for_reading(config).await?
    } else {
        open_for_writing(config).await?
    };
    let options = ics::Options {
        policy_id: policy_id(&store, args.policy.as_deref()).await?,
        user_id,
        zone,
    };
    let read = ics::read(&text, &options).map_err(|e| {
        anyhow::anyhow!(
            "{}: not an iCalendar file this command can read: {}",
            args.file.display(),
            one_line(&e)
        )
    })?;
    let mut text = String::new();
    let (imported, already) = if args.dry_run {
        for row in &read.rows {
            text.push_str(&format!("would import: {}\n", describe(row)));
        }
        (0, 0)
    } else {
        let ids = store.insert_exclusions(&read.rows).await?;
        let imported = ids.iter().filter(|id| id.is_some()).count();
        (imported, ids.len() - imported)
    };
    store.close().await;
    for s in &read.skipped {
        text.push_str(&format!("skipped `{}`: {}\n", s.event, s.why));
    }
    if !args.dry_run {
        text.push_str(&format!(
            "imported {imported} exclusions from {} ({already} already there, {} events \
             skipped); a running daemon applies them within its reload time\n",
            args.file.display(),
            read.skipped.len()
        ));
    }
    print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_are_stored_in_the_canonical_form_and_dates_as_given() {
        assert_eq!(
            end_flag("2026-12-24T13:00:00+01:00"),
            "2026-12-24T12:00:00.000Z"
        );
        assert_eq!(end_flag("2026-12-24"), "2026-12-24");
    }

    #[test]
    fn every_column_is_named_by_its_flag() {
        assert_eq!(flag(ExclusionColumn::StartsAt), "--from");
        assert_eq!(flag(ExclusionColumn::EndsAt), "--to");
    }
}
