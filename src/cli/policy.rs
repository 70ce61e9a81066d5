//! `recsched policy ...`: read and edit the `policies` and `policy_users`
//! tables without writing SQL.
//!
//! The CLI is one more writer of those tables, beside `sqlite3`: the
//! daemon picks up whatever it writes within a few seconds, and judges it
//! with the same parser. So `add` runs that parser ([`Policy::from_row`])
//! before inserting and refuses a row the daemon would skip; the other
//! edits write what they are told and then say when the result will be
//! skipped (no users left, a bad row enabled), pointing at `check`.
//!
//! A policy is named on the command line by its name, or by its id when
//! no policy has that name (for names that are awkward to type; `check`
//! suggests the id then).

use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::policy::{self, Column, Policy, PolicyRow, Problem};
use crate::recording::UserId;
use crate::store::{NewPolicy, Store, StoreError};

use super::next::{table, upcoming, WindowView};
use super::output::{human_secs, one_line, print_json, print_text, yes_no, Table};
use super::{open_for_reading, open_for_writing};

/// The policy subcommands. Edits reach a running daemon within a few
/// seconds (it polls for changes).
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PolicyCommand {
    /// Add a policy; it is validated exactly as the daemon would and refused (nothing written) if invalid.
    ///
    /// Example: recsched policy add --name night-shift --cron "0 22 * * 1-5"
    /// --tz Europe/Amsterdam --window 28800 --end-mode stop --user agent-1
    /// --user agent-2
    Add(AddArgs),
    /// List every policy, with the problem of each row that does not validate.
    List(ListArgs),
    /// Show one policy: every field, its users, any problem and its next 3 windows.
    Show(ShowArgs),
    /// Enable a policy: its windows open again.
    Enable(NameArgs),
    /// Disable a policy: no new windows open; its users' open recordings stop unless another policy covers them.
    Disable(NameArgs),
    /// Delete a policy and its user list (no confirmation); its history in `recordings` is kept.
    Remove(NameArgs),
    /// Add users to a policy.
    AddUser(UsersArgs),
    /// Remove users from a policy (a policy left with no users is skipped until one is added).
    RemoveUser(UsersArgs),
}

/// Flags of `recsched policy add`.
#[derive(Debug, Clone, clap::Args)]
pub struct AddArgs {
    /// Unique name of the policy; other commands refer to it by this name.
    #[arg(long, value_name = "NAME")]
    pub name: String,

    /// When windows open: 5 cron fields (minute hour day-of-month month
    /// day-of-week), or 6 with seconds first, or @hourly, @daily, @weekly...;
    /// read in the --tz zone.
    #[arg(long, value_name = "EXPR")]
    pub cron: String,

    /// IANA time zone the cron is read in, e.g. Europe/Amsterdam.
    #[arg(long, value_name = "ZONE", default_value = "UTC")]
    pub tz: String,

    /// Window length in seconds, 5 to 604800 (7 days).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub window: i64,

    /// How a window ends: `expire` (the vendor's own timer ends the
    /// recording) or `stop` (also send a stop at the window's end).
    #[arg(long, value_name = "MODE", default_value = "expire")]
    pub end_mode: String,

    /// A user id to record; repeat the flag for more users.
    #[arg(long = "user", value_name = "USER", required = true)]
    pub users: Vec<String>,

    /// Add the policy disabled: no window opens until `recsched policy enable NAME`.
    #[arg(long)]
    pub disabled: bool,
}

/// Flags of `recsched policy list`.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Print one JSON array, one object per policy (with all its users).
    #[arg(long)]
    pub json: bool,
}

/// Flags of `recsched policy show`.
#[derive(Debug, Clone, clap::Args)]
pub struct ShowArgs {
    /// The policy's name (or its id).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// Print one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A policy named on the command line.
#[derive(Debug, Clone, clap::Args)]
pub struct NameArgs {
    /// The policy's name (or its id).
    #[arg(value_name = "NAME")]
    pub name: String,
}

/// A policy and user ids.
#[derive(Debug, Clone, clap::Args)]
pub struct UsersArgs {
    /// The policy's name (or its id).
    #[arg(value_name = "NAME")]
    pub name: String,

    /// CXone user ids (any printable text up to 256 characters).
    #[arg(value_name = "USER", required = true, num_args = 1..)]
    pub users: Vec<UserId>,
}

pub async fn run(command: PolicyCommand, config: &Config) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::Add(args) => add(args, config).await,
        PolicyCommand::List(args) => list(args, config).await,
        PolicyCommand::Show(args) => show(args, config).await,
        PolicyCommand::Enable(args) => set_enabled(args, config, true).await,
        PolicyCommand::Disable(args) => set_enabled(args, config, false).await,
        PolicyCommand::Remove(args) => remove(args, config).await,
        PolicyCommand::AddUser(args) => add_users(args, config).await,
        PolicyCommand::RemoveUser(args) => remove_users(args, config).await,
    }?;
    Ok(ExitCode::SUCCESS)
}

async fn add(args: AddArgs, config: &Config) -> anyhow::Result<()> {
    check_name(&args.name)?;
    let row = PolicyRow {
        id: 0,
        name: args.name,
        enabled: !args.disabled,
        cron: args.cron,
        timezone: args.tz,
        window_seconds: args.window,
        end_mode: args.end_mode,
        users: args.users,
        teams: Vec::new(),
    };
    // The daemon's own parser: what it would skip is never written.
    if Policy::from_row(&row).is_err() {
        let mut message = format!(
            "policy `{}` was not added (nothing was written):",
            one_line(&row.name)
        );
        for problem in policy::problems(&row) {
            message.push_str(&format!(
                "\n  {} (fix {})",
                problem.problem,
                flag(problem.column())
            ));
        }
        anyhow::bail!(message);
    }

    let first = if row.enabled {
        next_windows(&row, 1)
    } else {
        Vec::new()
    };
    let store = open_for_writing(config).await?;
    let id = store
        .insert_policy(&NewPolicy {
            name: row.name.clone(),
            enabled: row.enabled,
            cron: row.cron.clone(),
            timezone: row.timezone.clone(),
            window_seconds: row.window_seconds,
            end_mode: row.end_mode.clone(),
            users: row.users.clone(),
        })
        .await?;
    store.close().await;
    let state = if row.enabled {
        "enabled"
    } else {
        "disabled; enable it with `recsched policy enable NAME`"
    };
    let mut text = format!(
        "added policy `{}` (id {id}, {state}) to {}\n",
        one_line(&row.name),
        config.database.path.display()
    );
    if let Some(w) = first.first() {
        text.push_str(&format!(
            "first window: {} to {} ({} {} to {} {})\n",
            w.start, w.end, w.start_local, w.start_abbreviation, w.end_local, w.end_abbreviation
        ));
    }
    print_text(&text)
}

/// The command-line flag of `policy add` that sets `column`.
fn flag(column: Column) -> &'static str {
    match column {
        Column::Name => "--name",
        Column::Cron => "--cron",
        Column::Timezone => "--tz",
        Column::WindowSeconds => "--window",
        Column::EndMode => "--end-mode",
        Column::Users => "--user",
        Column::Teams => "the policy_teams rows",
    }
}

/// A name the other commands can take back: not empty, on one line, and
/// not a number (a number names a policy by id).
fn check_name(name: &str) -> anyhow::Result<()> {
    if name.trim().is_empty() {
        anyhow::bail!("policy name is empty; give one with --name");
    }
    if name.chars().any(char::is_control) {
        anyhow::bail!(
            "policy name `{}` contains a control character; fix --name",
            one_line(name)
        );
    }
    if name.parse::<i64>().is_ok() {
        anyhow::bail!(
            "policy name `{name}` is a number, which other commands would read as a policy id; \
             fix --name (e.g. `policy-{name}`)"
        );
    }
    Ok(())
}

/// One policy in `--json` output: its row as stored, plus what is wrong
/// with it (empty when it validates).
#[derive(Debug, Serialize)]
struct PolicyJson<'a> {
    #[serde(flatten)]
    row: &'a PolicyRow,
    problems: Vec<String>,
}

/// `policy show --json`: the row, its problems and its next windows.
#[derive(Debug, Serialize)]
struct ShowJson<'a> {
    #[serde(flatten)]
    policy: PolicyJson<'a>,
    /// Empty when the row does not validate.
    next_windows: Vec<WindowView>,
}

/// How many windows `policy show` lists.
const SHOWN_WINDOWS: usize = 3;

/// The next `count` windows of a row that validates, from now.
fn next_windows(row: &PolicyRow, count: usize) -> Vec<WindowView> {
    match Policy::from_row(row) {
        Ok(policy) => upcoming(&policy.cron, policy.window, SystemClock.now(), count),
        Err(_) => Vec::new(),
    }
}

impl<'a> PolicyJson<'a> {
    fn new(row: &'a PolicyRow) -> Self {
        Self {
            row,
            problems: policy::problems(row)
                .iter()
                .map(|e| e.problem.to_string())
                .collect(),
        }
    }
}

async fn list(args: ListArgs, config: &Config) -> anyhow::Result<()> {
    let store = open_for_reading(config).await?;
    let read = store.read_policies().await?;
    store.close().await;
    // Rows that do not read back are not listed (there is nothing typed to
    // show) but named on stderr, so a policy never just goes missing.
    for bad in &read.bad {
        eprintln!("skipped a row that does not read back: {bad}");
    }
    let rows = read.rows;
    if args.json {
        let list: Vec<PolicyJson> = rows.iter().map(PolicyJson::new).collect();
        return print_json(&list);
    }
    if rows.is_empty() {
        return print_text(&format!(
            "no policies in {}; add one with `recsched policy add`\n",
            config.database.path.display()
        ));
    }
    let mut table = Table::new(&[
        "ID", "NAME", "ENABLED", "CRON", "TZ", "WINDOW", "END", "USERS", "PROBLEM",
    ]);
    for row in &rows {
        table.row(vec![
            row.id.to_string(),
            row.name.clone(),
            yes_no(row.enabled).to_owned(),
            row.cron.clone(),
            row.timezone.clone(),
            format!("{}s", row.window_seconds),
            row.end_mode.clone(),
            row.users.len().to_string(),
            problem_summary(row),
        ]);
    }
    print_text(&table.render())
}

/// The first problem of a row, and how many more there are.
fn problem_summary(row: &PolicyRow) -> String {
    let problems = policy::problems(row);
    match problems.as_slice() {
        [] => String::new(),
        [one] => one.problem.to_string(),
        [first, rest @ ..] => format!("{} (+{} more: `recsched check`)", first.problem, rest.len()),
    }
}

async fn show(args: ShowArgs, config: &Config) -> anyhow::Result<()> {
    let store = open_for_reading(config).await?;
    let row = find(&store, &args.name).await?;
    store.close().await;
    let windows = next_windows(&row, SHOWN_WINDOWS);
    if args.json {
        return print_json(&ShowJson {
            policy: PolicyJson::new(&row),
            next_windows: windows,
        });
    }
    let problems = policy::problems(&row);
    let mut text = String::new();
    let mut line = |key: &str, value: &str| {
        text.push_str(&format!("{key:<10}  {}\n", one_line(value)));
    };
    line("id", &row.id.to_string());
    line("name", &row.name);
    line("enabled", yes_no(row.enabled));
    line("cron", &row.cron);
    line("timezone", &row.timezone);
    line(
        "window",
        &format!(
            "{} s ({})",
            row.window_seconds,
            human_secs(row.window_seconds)
        ),
    );
    line("end mode", &row.end_mode);
    line("users", &row.users.len().to_string());
    line(
        "problems",
        if problems.is_empty() {
            "none"
        } else {
            "the daemon skips this policy:"
        },
    );
    for problem in &problems {
        text.push_str(&format!("  {}\n", one_line(&problem.problem.to_string())));
    }
    if !row.users.is_empty() {
        text.push_str("users:\n");
        for user in &row.users {
            text.push_str(&format!("  {}\n", one_line(user)));
        }
    }
    if !windows.is_empty() {
        text.push_str(if row.enabled {
            "next windows:\n"
        } else {
            "next windows (once enabled):\n"
        });
        for line in table(&windows).lines() {
            text.push_str(&format!("  {line}\n"));
        }
    }
    print_text(&text)
}

async fn set_enabled(args: NameArgs, config: &Config, enabled: bool) -> anyhow::Result<()> {
    let store = open_for_writing(config).await?;
    let row = find(&store, &args.name).await?;
    store
        .set_policy_enabled(&row.name, enabled)
        .await
        .map_err(|e| not_found(e, &args.name))?;
    store.close().await;
    let now = if enabled { "enabled" } else { "disabled" };
    let was = if row.enabled == enabled {
        " (it already was)"
    } else {
        ""
    };
    print_text(&format!(
        "policy `{}` (id {}) is {now}{was}\n",
        one_line(&row.name),
        row.id
    ))?;
    if enabled {
        warn_if_skipped(&row);
    }
    Ok(())
}

async fn remove(args: NameArgs, config: &Config) -> anyhow::Result<()> {
    let store = open_for_writing(config).await?;
    let row = find(&store, &args.name).await?;
    store
        .remove_policy(&row.name)
        .await
        .map_err(|e| not_found(e, &args.name))?;
    store.close().await;
    print_text(&format!(
        "removed policy `{}` (id {}) and its {} {}; its rows in `recordings` are kept\n",
        one_line(&row.name),
        row.id,
        row.users.len(),
        if row.users.len() == 1 {
            "user"
        } else {
            "users"
        },
    ))
}

async fn add_users(args: UsersArgs, config: &Config) -> anyhow::Result<()> {
    let store = open_for_writing(config).await?;
    let row = find(&store, &args.name).await?;
    let mut added = Vec::new();
    let mut already = Vec::new();
    for user in &args.users {
        let new = store
            .add_policy_user(&row.name, user.as_str())
            .await
            .map_err(|e| not_found(e, &args.name))?;
        let list = if new { &mut added } else { &mut already };
        list.push(user.as_str());
    }
    let after = reread(&store, &row).await?;
    store.close().await;
    let mut text = format!("policy `{}`:", one_line(&row.name));
    if !added.is_empty() {
        text.push_str(&format!(" added {};", users_list(&added)));
    }
    if !already.is_empty() {
        text.push_str(&format!(" already there: {};", users_list(&already)));
    }
    text.push_str(&format!(" {} now\n", users_count(after.users.len())));
    print_text(&text)?;
    if after.enabled {
        warn_if_skipped(&after);
    }
    Ok(())
}

async fn remove_users(args: UsersArgs, config: &Config) -> anyhow::Result<()> {
    let store = open_for_writing(config).await?;
    let row = find(&store, &args.name).await?;
    let mut removed = Vec::new();
    let mut absent = Vec::new();
    for user in &args.users {
        let gone = store
            .remove_policy_user(&row.name, user.as_str())
            .await
            .map_err(|e| not_found(e, &args.name))?;
        let list = if gone { &mut removed } else { &mut absent };
        list.push(user.as_str());
    }
    let after = reread(&store, &row).await?;
    store.close().await;
    let name = one_line(&row.name);
    let mut text = format!("policy `{name}`:");
    if !removed.is_empty() {
        text.push_str(&format!(" removed {};", users_list(&removed)));
    }
    if !absent.is_empty() {
        text.push_str(&format!(" not in it: {};", users_list(&absent)));
    }
    text.push_str(&format!(" {} now\n", users_count(after.users.len())));
    if after.users.is_empty() {
        text.push_str(&format!(
            "policy `{name}` now has no users: the daemon skips it (and `recsched check` \
             reports it) until one is added with `recsched policy add-user {} USER`\n",
            one_line(&cli_handle(&after))
        ));
    }
    print_text(&text)
}

/// The policy named `name`, else the one whose id is `name`.
pub(super) async fn find(store: &Store, name: &str) -> anyhow::Result<PolicyRow> {
    if let Some(row) = store.policy_row(name).await? {
        return Ok(row);
    }
    if let Ok(id) = name.parse::<i64>() {
        if let Some(row) = store.policy_rows().await?.into_iter().find(|r| r.id == id) {
            return Ok(row);
        }
    }
    Err(unknown(name))
}

/// The row again after an edit, to report what it holds now.
async fn reread(store: &Store, row: &PolicyRow) -> anyhow::Result<PolicyRow> {
    store
        .policy_row(&row.name)
        .await?
        .with_context(|| format!("policy `{}` was removed meanwhile", one_line(&row.name)))
}

fn unknown(name: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "no policy named `{}`; run `recsched policy list` to see the names",
        one_line(name)
    )
}

/// The store's "not found" (the row vanished between our read and the
/// edit) in the CLI's words; other errors as they are.
fn not_found(err: StoreError, name: &str) -> anyhow::Error {
    match err {
        StoreError::PolicyNotFound(_) => unknown(name),
        other => other.into(),
    }
}

/// How to name the policy in a suggested command: what the policy
/// parser suggests in its "no users" problem (the name, or the id when
/// the name would need quoting).
fn cli_handle(row: &PolicyRow) -> String {
    policy::problems(row)
        .into_iter()
        .find_map(|e| match e.problem {
            Problem::NoUsers { policy } => Some(policy),
            _ => None,
        })
        .unwrap_or_else(|| row.name.clone())
}

/// On stderr: the daemon will skip this (enabled) row, and why.
fn warn_if_skipped(row: &PolicyRow) {
    let problems = policy::problems(row);
    if problems.is_empty() {
        return;
    }
    eprintln!(
        "warning: policy `{}` does not validate, so the daemon skips it:",
        one_line(&row.name)
    );
    for problem in problems {
        eprintln!("  {}", problem.problem);
    }
}

fn users_list(users: &[&str]) -> String {
    users
        .iter()
        .map(|u| one_line(u))
        .collect::<Vec<_>>()
        .join(", ")
}

fn users_count(n: usize) -> String {
    match n {
        0 => "no users".to_owned(),
        1 => "1 user".to_owned(),
        n => format!("{n} users"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_cannot_be_given_back_are_refused() {
        assert!(check_name("night-shift").is_ok());
        assert!(check_name("night shift").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("  ").is_err());
        assert!(check_name("a\nb").is_err());
        let e = check_name("12").unwrap_err().to_string();
        assert!(e.contains("--name"), "{e}");
    }
}
