//! `recsched teams`: every CXone team a policy names, with its members as
//! the directory last listed them and the age of that list.
//!
//! Read from the database alone (opened read-only), like `status`: it
//! works whether the daemon runs or not, and never calls the directory.
//! The same view, without the member lists, is a section of
//! `recsched status` ([`status_text`]).

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::{Clock, SystemClock};
use crate::config::Config;
use crate::store::{Rows, Store};

use super::open_for_reading;
use super::output::{human_secs, one_line, print_json, print_text, truncated, utc};

/// List the CXone teams policies name, their members and the age of that data.
#[derive(Debug, Clone, clap::Args)]
pub struct TeamsArgs {
    /// Print one JSON array, one object per team (members included).
    #[arg(long)]
    pub json: bool,
}

/// A policy naming a team.
#[derive(Debug, Clone, Serialize)]
pub struct TeamPolicyView {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
}

/// One team as `recsched teams` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct TeamView {
    pub team_id: String,
    pub policies: Vec<TeamPolicyView>,
    /// How many members the last complete read found.
    pub member_count: usize,
    /// The members (empty in `status`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub members: Option<Vec<String>>,
    /// The last complete read (UTC); `null`: never read.
    pub refreshed_at: Option<String>,
    /// Seconds since then.
    pub age_seconds: Option<i64>,
    /// Older than `directory.refresh_seconds` (or never read).
    pub stale: bool,
    /// The last read, complete or not.
    pub attempted_at: Option<String>,
    /// Why the last read failed; `null` when it succeeded.
    pub last_error: Option<String>,
}

/// Every team a policy names or the directory was read for, by team id;
/// and the team rows that do not read back (skipped).
pub async fn overview(
    store: &Store,
    now: DateTime<Utc>,
    refresh: Duration,
    with_members: bool,
) -> anyhow::Result<Rows<TeamView>> {
    let mut bad = Vec::new();
    let mut teams: BTreeMap<String, TeamView> = BTreeMap::new();
    let blank = |team_id: &str| TeamView {
        team_id: team_id.to_owned(),
        policies: Vec::new(),
        member_count: 0,
        members: None,
        refreshed_at: None,
        age_seconds: None,
        stale: true,
        attempted_at: None,
        last_error: None,
    };
    for p in store.team_policies().await?.rows_and_bad(&mut bad) {
        teams
            .entry(p.team_id.clone())
            .or_insert_with(|| blank(&p.team_id))
            .policies
            .push(TeamPolicyView {
                id: p.policy_id,
                name: p.policy,
                enabled: p.enabled,
            });
    }
    for r in store.team_refreshes().await?.rows_and_bad(&mut bad) {
        let view = teams
            .entry(r.team_id.clone())
            .or_insert_with(|| blank(&r.team_id));
        view.member_count = r.members;
        view.refreshed_at = r.refreshed_at.map(utc);
        view.age_seconds = r.refreshed_at.map(|at| (now - at).num_seconds().max(0));
        view.stale = r
            .refreshed_at
            .is_none_or(|at| (now - at).to_std().map_or(true, |age| age >= refresh));
        view.attempted_at = Some(utc(r.attempted_at));
        view.last_error = r.last_error;
    }
    if with_members {
        for view in teams.values_mut() {
            view.members = Some(
                store
                    .team_member_rows(&view.team_id)
                    .await?
                    .rows_and_bad(&mut bad)
                    .into_iter()
                    .map(|m| m.user_id)
                    .collect(),
            );
        }
    }
    Ok(Rows {
        rows: teams.into_values().collect(),
        bad,
    })
}

/// The first line of a team: who names it, how many members, how old.
fn headline(view: &TeamView) -> String {
    let policies = if view.policies.is_empty() {
        "named by no policy".to_owned()
    } else {
        let names: Vec<String> = view
            .policies
            .iter()
            .map(|p| {
                if p.enabled {
                    one_line(&p.name)
                } else {
                    format!("{} (disabled)", one_line(&p.name))
                }
            })
            .collect();
        format!("policies {}", names.join(", "))
    };
    let read = match (&view.refreshed_at, view.age_seconds) {
        (Some(at), Some(age)) => format!(
            "{} members, read {} ago ({at}){}",
            view.member_count,
            human_secs(age),
            if view.stale { ", stale" } else { "" }
        ),
        _ => "never read from the directory".to_owned(),
    };
    format!("team {}: {read}; {policies}", one_line(&view.team_id))
}

/// The failure line of a team, if its last read failed.
fn failure(view: &TeamView) -> Option<String> {
    let error = view.last_error.as_ref()?;
    Some(format!(
        "  last read failed at {}: {}; the members above are kept",
        view.attempted_at.as_deref().unwrap_or("?"),
        truncated(&one_line(error), 300)
    ))
}

/// The teams section of `recsched status` (empty when no team is named).
pub fn status_text(views: &[TeamView]) -> String {
    if views.is_empty() {
        return String::new();
    }
    let mut text = String::from("\nteams (members from the CXone directory):\n");
    for view in views {
        text.push_str(&format!("  {}\n", headline(view)));
        if let Some(line) = failure(view) {
            text.push_str(&format!("  {line}\n"));
        }
    }
    text
}

pub async fn run(args: TeamsArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(config).await?;
    let Rows { rows: views, bad } =
        overview(&store, SystemClock.now(), config.directory.refresh(), true).await?;
    store.close().await;
    // Said on stderr, so the listing (and its JSON) stays what it was.
    for row in &bad {
        eprintln!("skipped: {row}");
    }
    if args.json {
        print_json(&views)?;
        return Ok(ExitCode::SUCCESS);
    }
    if views.is_empty() {
        print_text(
            "no policy names a team; name one with\n  INSERT INTO policy_teams (policy_id, team_id) \
             SELECT id, 'TEAM' FROM policies WHERE name = 'POLICY';\n",
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut text = String::new();
    for view in &views {
        text.push_str(&headline(view));
        text.push('\n');
        if let Some(line) = failure(view) {
            text.push_str(&line);
            text.push('\n');
        }
        for member in view.members.iter().flatten() {
            text.push_str(&format!("  {}\n", one_line(member)));
        }
    }
    print_text(&text)?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> TeamView {
        TeamView {
            team_id: "back-office".into(),
            policies: vec![
                TeamPolicyView {
                    id: 1,
                    name: "day".into(),
                    enabled: true,
                },
                TeamPolicyView {
                    id: 2,
                    name: "night".into(),
                    enabled: false,
                },
            ],
            member_count: 40,
            members: None,
            refreshed_at: Some("2026-03-29T08:00:00.000Z".into()),
            age_seconds: Some(125),
            stale: false,
            attempted_at: Some("2026-03-29T08:02:00.000Z".into()),
            last_error: None,
        }
    }

    #[test]
    fn a_team_reads_as_its_members_age_and_policies() {
        assert_eq!(
            headline(&view()),
            "team back-office: 40 members, read 2m 5s ago (2026-03-29T08:00:00.000Z); \
             policies day, night (disabled)"
        );
        assert_eq!(failure(&view()), None);
    }

    #[test]
    fn a_failed_read_says_the_members_are_kept() {
        let v = TeamView {
            stale: true,
            last_error: Some("could not reach CXone".into()),
            ..view()
        };
        assert!(headline(&v).contains("ago (2026-03-29T08:00:00.000Z), stale"));
        assert_eq!(
            failure(&v).unwrap(),
            "  last read failed at 2026-03-29T08:02:00.000Z: could not reach CXone; the \
             members above are kept"
        );
        let text = status_text(&[v]);
        assert!(text.starts_with("\nteams (members from the CXone directory):\n  team back-office"));
        assert_eq!(status_text(&[]), "");
    }

    #[test]
    fn a_team_never_read_says_so() {
        let v = TeamView {
            refreshed_at: None,
            age_seconds: None,
            policies: vec![],
            ..view()
        };
        assert_eq!(
            headline(&v),
            "team back-office: never read from the directory; named by no policy"
        );
    }
}
