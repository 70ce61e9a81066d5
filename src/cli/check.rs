//! `recsched check`: is the configuration valid, and does every policy
//! row parse? For operators after an edit, and for scripts (exit status).
//!
//! It reads the rows exactly as the daemon does ([`Store::read_policies`],
//! and the `recordings` rows a planning pass reads,
//! [`Store::occupied_since`]) and judges them with the daemon's own parser
//! ([`policy::problems`]), so "check is clean" means "the daemon will skip
//! nothing". It reports every problem of every row, not only the first:
//! policies that do not validate, and rows of any table that do not read
//! back at all ([`BadRow`], by table, id and column), and `exclusions`
//! rows that do not read back or parse. It never writes.
//!
//! [`Store::read_policies`]: crate::store::Store::read_policies
//! [`Store::occupied_since`]: crate::store::Store::occupied_since

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::policy::{self, PolicyError};
use crate::store::BadRow;

use super::output::{print_json, print_text};

/// Flags of `recsched check` (its help text is on `Command::Check`).
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Print the problems as one JSON array (empty when all is well).
    #[arg(long)]
    pub json: bool,

    /// Also reach CXone: discover the endpoints (with cxone.issuer set and
    /// cxone.api_base empty) and ask for one token; print what was found,
    /// secrets left out. Sends no recording request. Exit 1 if it fails.
    #[arg(long)]
    pub online: bool,
}

/// One problem, for `--json`.
#[derive(Debug, Serialize)]
struct ProblemJson {
    /// `config`, `policy` (a policy row that does not validate), `row`
    /// (a row of any table that does not read back) or `online`
    /// (`--online` failed).
    source: &'static str,
    /// The table and the row: `id` is a value of the `key` column (`id`;
    /// for `policy_users`, `rowid` on SQLite, `policy_id` on PostgreSQL).
    table: Option<&'static str>,
    key: Option<&'static str>,
    id: Option<i64>,
    /// The column, or `users` for a policy's user list.
    column: Option<&'static str>,
    policy_id: Option<i64>,
    policy: Option<String>,
    /// The whole message, as printed in text form.
    message: String,
}

impl From<&PolicyError> for ProblemJson {
    fn from(e: &PolicyError) -> Self {
        Self {
            source: "policy",
            table: Some("policies"),
            key: Some("id"),
            id: Some(e.id.get()),
            column: Some(e.column().as_str()),
            policy_id: Some(e.id.get()),
            policy: Some(e.name.clone()),
            message: e.to_string(),
        }
    }
}

impl From<&BadRow> for ProblemJson {
    fn from(row: &BadRow) -> Self {
        let policy_id = match (row.table, row.key) {
            ("policies", _) | ("policy_users", "policy_id") => Some(row.id),
            _ => None,
        };
        Self {
            source: "row",
            table: Some(row.table),
            key: Some(row.key),
            id: Some(row.id),
            column: Some(row.column),
            policy_id,
            policy: None,
            message: row.to_string(),
        }
    }
}

pub async fn run(args: CheckArgs, config_file: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = match super::load_config(config_file) {
        Ok(config) => config,
        Err(e) => {
            // Every key out of its range is a problem of its own.
            let messages = match e.downcast_ref::<crate::config::ConfigError>() {
                Some(crate::config::ConfigError::OutOfRange(problems)) => {
                    problems.iter().map(|p| format!("config: {p}")).collect()
                }
                _ => vec![format!("{e:#}")],
            };
            if args.json {
                let list: Vec<ProblemJson> = messages
                    .into_iter()
                    .map(|message| ProblemJson {
                        source: "config",
                        table: None,
                        key: None,
                        id: None,
                        column: None,
                        policy_id: None,
                        policy: None,
                        message,
                    })
                    .collect();
                print_json(&list)?;
            } else {
                print_text(&format!("{}\n", messages.join("\n")))?;
            }
            return Ok(ExitCode::FAILURE);
        }
    };

    let store = super::open_for_reading(&config).await?;
    let read = store.read_policies().await?;
    // The recordings rows the daemon reads: those a planning pass places
    // in time (open ones, and those whose end is still to come), and the
    // open ones it adopts at start (every column).
    let occupied = store.occupied_since(SystemClock.now()).await?;
    let open = store.open_rows().await?;
    let exclusions = store.read_exclusions().await?;
    store.close().await;
    let rows = read.rows;
    let mut bad = read.bad;
    // Exclusion rows: those that do not read back, then those the
    // daemon's parser refuses; each is skipped (not applied).
    let exclusions = exclusions.rows_and_bad(&mut bad);
    let (_, refused) = crate::policy::exclusion::load_exclusions(&exclusions);
    bad.extend(refused.iter().map(BadRow::from_exclusion));
    let mut recordings: Vec<BadRow> = occupied.bad.into_iter().chain(open.bad).collect();
    recordings.sort_by_key(|b| (b.id, b.column));
    recordings.dedup_by_key(|b| (b.id, b.column));
    bad.extend(recordings);

    let online = if args.online {
        Some(super::online::run(&config).await)
    } else {
        None
    };

    let mut problems = Vec::new();
    let mut bad_policies = 0;
    for row in &rows {
        let found = policy::problems(row);
        bad_policies += usize::from(!found.is_empty());
        problems.extend(found);
    }

    let online_failed = matches!(online, Some(Err(_)));
    if args.json {
        let mut list: Vec<ProblemJson> = problems
            .iter()
            .map(ProblemJson::from)
            .chain(bad.iter().map(ProblemJson::from))
            .collect();
        if let Some(Err((_, e))) = &online {
            list.push(ProblemJson {
                source: "online",
                table: None,
                key: None,
                id: None,
                column: None,
                policy_id: None,
                policy: None,
                message: format!("online: {e}"),
            });
        }
        print_json(&list)?;
    } else {
        let mut text = String::new();
        for problem in &problems {
            text.push_str(&problem.to_string());
            text.push('\n');
        }
        for row in &bad {
            text.push_str(&row.to_string());
            text.push('\n');
        }
        let enabled = rows.iter().filter(|r| r.enabled).count();
        let source = crate::config::choose_file(config_file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".to_owned());
        let db = config.database.describe();
        if problems.is_empty() && bad.is_empty() {
            let policies = match rows.len() {
                0 => format!("no policies in {db}"),
                1 => format!("the one policy in {db} validates ({enabled} enabled)"),
                n => format!("all {n} policies in {db} validate ({enabled} enabled)"),
            };
            text.push_str(&format!("ok: config ({source}) is valid; {policies}\n"));
        }
        if !problems.is_empty() {
            text.push_str(&format!(
                "{} {} in {bad_policies} {} ({} checked); the daemon skips {}\n",
                problems.len(),
                plural(problems.len(), "problem", "problems"),
                plural(bad_policies, "policy", "policies"),
                rows.len(),
                plural(bad_policies, "it", "them"),
            ));
        }
        if !bad.is_empty() {
            let mut by_table: Vec<(&str, usize)> = Vec::new();
            for row in &bad {
                match by_table.iter_mut().find(|(t, _)| *t == row.table) {
                    Some((_, n)) => *n += 1,
                    None => by_table.push((row.table, 1)),
                }
            }
            let tables: Vec<String> = by_table
                .iter()
                .map(|(table, n)| format!("{table} {n}"))
                .collect();
            text.push_str(&format!(
                "{} bad {} in rows that do not read back ({}); fix or delete {}\n",
                bad.len(),
                plural(bad.len(), "value", "values"),
                tables.join(", "),
                plural(bad.len(), "the row", "the rows"),
            ));
        }
        // Informational: a dry config without credentials still checks.
        text.push_str(&crate::cxone::AuthPlan::of(&config.cxone).describe());
        text.push('\n');
        match &online {
            Some(Ok(lines)) => {
                for line in lines {
                    text.push_str(&format!("{line}\n"));
                }
                text.push_str("online: ok\n");
            }
            Some(Err((lines, e))) => {
                for line in lines {
                    text.push_str(&format!("{line}\n"));
                }
                text.push_str(&format!("online: FAILED: {e}\n"));
            }
            None => {}
        }
        print_text(&text)?;
    }
    Ok(if problems.is_empty() && bad.is_empty() && !online_failed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}
