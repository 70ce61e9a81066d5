//! Keeps the members of every team an enabled policy names, from the
//! vendor's directory ([`crate::cxone::directory`]).
//!
//! Each team is read again once its membership is `directory.refresh_seconds`
//! old; a team whose read failed is tried again every minute at most (every
//! [`PRE_WINDOW_RETRY`] when one of its policies' windows opens within
//! [`PRE_WINDOW`]), so stale membership is read again before a window opens.
//! A complete read replaces the team's `team_members`; that moves the policy
//! revision when someone joined or left, and the daemon reloads its
//! policies: a leaver is then treated like a user removed from
//! `policy_users` (their recording ends), a joiner is covered at once if a
//! window is open with at least 5 s left, else from the next window.
//!
//! A failed read changes no member (never shrink coverage because the
//! directory is down): it is logged, noted in `team_refreshes`, and the
//! membership's age keeps growing in `recsched status`, `recsched teams` and
//! the `recsched_team_membership_age_seconds` gauge.
//!
//! The loop wakes every few seconds (or every `refresh_seconds`, when
//! shorter) and reads the clock afresh each time, so a clock step neither
//! stops nor doubles refreshes. It reads the policies itself, when their
//! revision moves, so it needs nothing from the scheduling loop.

use crate::clock::{format_utc, Clock};
use crate::cxone::directory::Settings;
use crate::cxone::Client;
use crate::metrics::{Metrics, TeamLabel};
use crate::planner::window_starts;
use crate::policy::{self, Policy, TeamId};
use crate::retry::RetryPolicy;
use crate::store::Store;
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How far ahead of a window stale membership is read again.
pub const PRE_WINDOW: Duration = Duration::from_secs(30);
/// How often a failing team is tried while one of its windows is near.
pub const PRE_WINDOW_RETRY: Duration = Duration::from_secs(10);
/// How often a failing team is tried otherwise (at most; less when
/// `refresh_seconds` is shorter).
pub const RETRY_EVERY: Duration = Duration::from_secs(60);
/// The longest sleep between two looks.
const TICK: Duration = Duration::from_secs(5);

/// What the refresher knows of one team.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TeamState {
    /// The last complete read.
    pub refreshed_at: Option<DateTime<Utc>>,
    /// The last read, complete or not.
    pub attempted_at: Option<DateTime<Utc>>,
    /// Members as last stored.
    pub members: Option<usize>,
}

/// Whether `team` is to be read now: its membership is at least `refresh`
/// old (or was never read, or the clock went back past its read), and the
/// last attempt is far enough back: [`RETRY_EVERY`] (at most `refresh`),
/// or [`PRE_WINDOW_RETRY`] when a window of it opens soon. Pure.
pub fn is_due(team: TeamState, now: DateTime<Utc>, refresh: Duration, window_soon: bool) -> bool {
    let since = |at: DateTime<Utc>| (now - at).to_std().ok();
    let stale = match team.refreshed_at {
        None => true,
        // `None`: the clock is before the read (it stepped back).
        Some(at) => since(at).is_none_or(|age| age >= refresh),
    };
    if !stale {
        return false;
    }
    let spacing = if window_soon {
        PRE_WINDOW_RETRY.min(refresh)
    } else {
        RETRY_EVERY.min(refresh)
    };
    match team.attempted_at {
        None => true,
        Some(at) => since(at).is_none_or(|ago| ago >= spacing),
    }
}

/// Everything the refresher runs with.
pub struct Refresher {
    pub client: Arc<Client>,
    pub store: Store,
    pub settings: Settings,
    pub retry: RetryPolicy,
    pub clock: Arc<dyn Clock>,
    pub metrics: Arc<Metrics>,
}

impl Refresher {
    /// Keeps the teams' membership until `cancel`. Starts as a task of
    /// its own; returns at once.
    pub fn spawn(self, cancel: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run(cancel))
    }

    async fn run(self, cancel: CancellationToken) {
        let tick = TICK.min(self.settings.refresh());
        let mut revision = None;
        let mut policies: Vec<Policy> = Vec::new();
        let mut teams: BTreeMap<TeamId, TeamState> = BTreeMap::new();
        match self.store.team_refreshes().await {
            Ok(known) => {
                for bad in &known.bad {
                    tracing::warn!(table = bad.table, id = bad.id, "bad row: {bad}");
                }
                for r in known.rows {
                    if let Ok(id) = TeamId::parse(r.team_id) {
                        teams.insert(
                            id,
                            TeamState {
                                refreshed_at: r.refreshed_at,
                                attempted_at: Some(r.attempted_at),
                                members: Some(r.members),
                            },
                        );
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot read when teams were last refreshed; reading them all now")
            }
        }
        let mut named: BTreeSet<TeamId> = BTreeSet::new();
        loop {
            match self.store.policy_revision().await {
                Ok(r) if Some(r) == revision => {}
                Ok(r) => match self.store.policy_rows().await {
                    Ok(rows) => {
                        // Only the enabled policies naming teams matter
                        // here. Parsing the others too (every user of
                        // every policy) held a second copy of the whole
                        // set beside the scheduler's, both at once at
                        // startup: a tenth of the footprint's peak RSS.
                        let rows = rows
                            .into_iter()
                            .filter(|r| r.enabled && !r.teams.is_empty())
                            .collect();
                        let (parsed, _) = policy::load(rows);
                        policies = parsed
                            .into_iter()
                            .filter(|p| p.enabled && !p.teams.is_empty())
                            .collect();
                        revision = Some(r);
                        let now_named: BTreeSet<TeamId> = policies
                            .iter()
                            .flat_map(|p| p.teams.iter().cloned())
                            .collect();
                        for gone in named.difference(&now_named) {
                            let label = TeamLabel {
                                team: gone.to_string(),
                            };
                            self.metrics.team_membership_age_seconds.remove(&label);
                            self.metrics.team_members.remove(&label);
                        }
                        named = now_named;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read the policies' teams; trying again")
                    }
                },
                Err(e) => tracing::warn!(error = %e, "cannot read the policy revision"),
            }

            let now = self.clock.now();
            for team in &named {
                let state = teams.get(team).copied().unwrap_or_default();
                let soon = window_soon(&policies, team, now);
                if is_due(state, now, self.settings.refresh(), soon) {
                    let refreshed = self.refresh(team, state, &cancel).await;
                    teams.insert(team.clone(), refreshed);
                }
                if cancel.is_cancelled() {
                    return;
                }
            }
            self.export_ages(&named, &teams);
            tokio::select! {
                () = tokio::time::sleep(tick) => {}
                () = cancel.cancelled() => return,
            }
        }
    }

    /// Reads one team and stores what it found; returns its new state.
    async fn refresh(
        &self,
        team: &TeamId,
        before: TeamState,
        cancel: &CancellationToken,
    ) -> TeamState {
        let started = self.clock.now();
        let deadline = started
            + chrono::Duration::seconds(
                i64::try_from(self.settings.team_timeout_seconds).unwrap_or(120),
            );
        let read = self
            .client
            .team_members(&self.settings, team, &self.retry, deadline, cancel)
            .await;
        let at = self.clock.now();
        match read {
            Ok(read) => {
                if read.bad_ids > 0 {
                    tracing::warn!(team = %team, skipped = read.bad_ids, "the directory listed users whose id is not a user id; they are left out");
                }
                let members: Vec<String> = read.members.iter().map(|u| u.to_string()).collect();
                match self
                    .store
                    .replace_team_members(team.as_str(), &members, at)
                    .await
                {
                    Ok(change) => {
                        if change.joined.is_empty() && change.left.is_empty() {
                            tracing::debug!(team = %team, members = change.members, pages = read.pages, "team membership read; unchanged");
                        } else {
                            tracing::info!(
                                team = %team,
                                members = change.members,
                                joined = change.joined.len(),
                                left = change.left.len(),
                                first_joined = change.joined.first().map(String::as_str).unwrap_or(""),
                                first_left = change.left.first().map(String::as_str).unwrap_or(""),
                                pages = read.pages,
                                "team membership changed"
                            );
                        }
                        TeamState {
                            refreshed_at: Some(at),
                            attempted_at: Some(at),
                            members: Some(change.members),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(team = %team, error = %e, "could not store the team's members; keeping the last ones");
                        TeamState {
                            attempted_at: Some(at),
                            ..before
                        }
                    }
                }
            }
            Err(e) => {
                let kept = before
                    .refreshed_at
                    .map(|t| format!("the membership read at {}", format_utc(t)))
                    .unwrap_or_else(|| "no membership (never read)".to_owned());
                tracing::warn!(team = %team, error = %e.error, kept = %kept, "team refresh failed; keeping the last membership");
                if let Err(store_error) = self
                    .store
                    .team_refresh_failed(team.as_str(), at, &e.error.to_string())
                    .await
                {
                    tracing::warn!(team = %team, error = %store_error, "could not note the failed refresh");
                }
                TeamState {
                    attempted_at: Some(at),
                    ..before
                }
            }
        }
    }

    fn export_ages(&self, named: &BTreeSet<TeamId>, teams: &BTreeMap<TeamId, TeamState>) {
        let now = self.clock.now();
        for team in named {
            let label = TeamLabel {
                team: team.to_string(),
            };
            let state = teams.get(team).copied().unwrap_or_default();
            if let Some(n) = state.members {
                self.metrics
                    .team_members
                    .get_or_create(&label)
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            let age = state
                .refreshed_at
                .map(|at| (now - at).num_milliseconds().max(0) as f64 / 1000.0);
            match age {
                Some(age) => {
                    self.metrics
                        .team_membership_age_seconds
                        .get_or_create(&label)
                        .set(age);
                }
                // Never read: no age to show (the gauge is absent).
                None => {
                    self.metrics.team_membership_age_seconds.remove(&label);
                }
            }
        }
    }
}

/// Whether a window of a policy naming `team` opens within [`PRE_WINDOW`].
fn window_soon(policies: &[Policy], team: &TeamId, now: DateTime<Utc>) -> bool {
    let horizon = chrono::Duration::from_std(PRE_WINDOW).unwrap_or_default();
    policies
        .iter()
        .filter(|p| p.teams.contains(team))
        .filter_map(|p| window_starts(&p.cron, now).next())
        .any(|start| start - now <= horizon)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 8, 0, 0).unwrap() + chrono::Duration::seconds(secs)
    }

    const REFRESH: Duration = Duration::from_secs(900);

    fn read_at(secs: i64) -> TeamState {
        TeamState {
            refreshed_at: Some(t(secs)),
            attempted_at: Some(t(secs)),
            members: Some(1),
        }
    }

    #[test]
    fn a_team_never_read_is_due_at_once() {
        assert!(is_due(TeamState::default(), t(0), REFRESH, false));
    }

    #[test]
    fn a_team_is_read_again_once_its_membership_is_refresh_seconds_old() {
        assert!(!is_due(read_at(0), t(899), REFRESH, false));
        assert!(
            !is_due(read_at(0), t(899), REFRESH, true),
            "fresh enough before a window too"
        );
        assert!(is_due(read_at(0), t(900), REFRESH, false));
    }

    #[test]
    fn a_failing_team_is_tried_every_minute_and_every_ten_seconds_before_a_window() {
        let failing = TeamState {
            refreshed_at: Some(t(0)),
            attempted_at: Some(t(1000)),
            members: Some(1),
        };
        assert!(!is_due(failing, t(1030), REFRESH, false));
        assert!(is_due(failing, t(1060), REFRESH, false));
        assert!(!is_due(failing, t(1005), REFRESH, true));
        assert!(is_due(failing, t(1010), REFRESH, true));
        // A short refresh interval spaces the retries by itself.
        assert!(is_due(failing, t(1002), Duration::from_secs(2), false));
        assert!(is_due(failing, t(1002), Duration::from_secs(2), true));
        assert!(!is_due(failing, t(1001), Duration::from_secs(2), true));
    }

    #[test]
    fn a_clock_step_back_does_not_stop_refreshes() {
        // Read "in the future": the clock went back an hour.
        assert!(is_due(read_at(3600), t(0), REFRESH, false));
    }

    #[test]
    fn a_window_is_soon_only_for_policies_naming_the_team() {
        use crate::policy::{PolicyRow, PolicyTeam};
        let policy = Policy::from_row(&PolicyRow {
            id: 1,
            name: "p".into(),
            enabled: true,
            cron: "0 9 * * *".into(),
            timezone: "UTC".into(),
            window_seconds: 60,
            end_mode: "expire".into(),
            users: vec![],
            teams: vec![PolicyTeam {
                id: "t1".into(),
                members: vec![],
            }],
        })
        .unwrap();
        let nine = Utc.with_ymd_and_hms(2026, 3, 29, 9, 0, 0).unwrap();
        let t1 = TeamId::parse("t1").unwrap();
        let t2 = TeamId::parse("t2").unwrap();
        let policies = [policy];
        assert!(window_soon(
            &policies,
            &t1,
            nine - chrono::Duration::seconds(20)
        ));
        assert!(!window_soon(
            &policies,
            &t1,
            nine - chrono::Duration::seconds(40)
        ));
        assert!(!window_soon(
            &policies,
            &t2,
            nine - chrono::Duration::seconds(20)
        ));
    }
}
