//! `recsched check`: is the configuration valid, and does every policy
//! row parse? For operators after an edit, and for scripts (exit status).
//!
//! It reads the rows exactly as the daemon does ([`Store::policy_rows`])
//! and judges them with the daemon's own parser ([`policy::problems`]),
//! so "check is clean" means "the daemon will skip nothing". It reports
//! every problem of every row, not only the first, and never writes.
//!
//! [`Store::policy_rows`]: crate::store::Store::policy_rows

use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;

use crate::policy::{self, PolicyError};

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
    /// `config`, `policy`, or `online` (`--online` failed).
    source: &'static str,
    policy_id: Option<i64>,
    policy: Option<String>,
    /// The column of `policies` (or `users`), when it is a policy's.
    column: Option<&'static str>,
    /// The whole message, as printed in text form.
    message: String,
}

impl From<&PolicyError> for ProblemJson {
    fn from(e: &PolicyError) -> Self {
        Self {
            source: "policy",
            policy_id: Some(e.id.get()),
            policy: Some(e.name.clone()),
            column: Some(e.column().as_str()),
            message: e.to_string(),
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
                        policy_id: None,
                        policy: None,
                        column: None,
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
    let rows = store.policy_rows().await?;
    store.close().await;

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
        let mut list: Vec<ProblemJson> = problems.iter().map(ProblemJson::from).collect();
        if let Some(Err((_, e))) = &online {
            list.push(ProblemJson {
                source: "online",
                policy_id: None,
                policy: None,
                column: None,
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
        let enabled = rows.iter().filter(|r| r.enabled).count();
        let source = crate::config::choose_file(config_file)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "built-in defaults".to_owned());
        let db = config.database.describe();
        if problems.is_empty() {
            let policies = match rows.len() {
                0 => format!("no policies in {db}"),
                1 => format!("the one policy in {db} validates ({enabled} enabled)"),
                n => format!("all {n} policies in {db} validate ({enabled} enabled)"),
            };
            text.push_str(&format!("ok: config ({source}) is valid; {policies}\n"));
        } else {
            text.push_str(&format!(
                "{} {} in {bad_policies} {} ({} checked); the daemon skips {}\n",
                problems.len(),
                plural(problems.len(), "problem", "problems"),
                plural(bad_policies, "policy", "policies"),
                rows.len(),
                plural(bad_policies, "it", "them"),
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
    Ok(if problems.is_empty() && !online_failed {
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
