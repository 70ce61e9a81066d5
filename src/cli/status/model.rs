//! What `recsched status` shows, as data: [`Status::build`] turns a
//! [`Snapshot`] of the rows and one reading of the clock into the
//! sections of the screen, as a pure function (unit-tested without a
//! database). `--json` prints it as it is; [`super::text`] renders it.
//!
//! The coming windows come from the planner's [`window_starts`] (through
//! [`next::upcoming`]) over the policies the daemon would load
//! ([`policy::load`]), and the policy problems are [`policy::problems`],
//! printed as `recsched check` prints them. Rows that do not read back at
//! all (in `policies`, `policy_users` or `recordings`, see [`BadRow`]) are
//! listed by table, id and column. The daemon is running when its stored
//! heartbeat is not stale by the daemon's own rule
//! ([`liveness::is_stale`]).
//!
//! [`window_starts`]: crate::planner::window_starts
//! [`next::upcoming`]: crate::cli::next::upcoming

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::clock::parse_utc;
use crate::daemon::liveness;
use crate::policy::{self, PolicyRow};
use crate::recording::RecordingState;
use crate::store::{BadRow, RecordingRow};

use crate::cli::next::upcoming;
use crate::cli::output::utc;

/// Everything `status` shows, in the order it shows it.
#[derive(Debug, Serialize)]
pub struct Status {
    /// When the snapshot was taken (UTC).
    pub at: String,
    pub database: String,
    pub daemon: Daemon,
    pub recording_now: Section<Open>,
    pub opens_next: Vec<Opening>,
    pub failed_last_24h: Failed,
    pub invalid_policies: Section<Problem>,
    /// Rows that do not read back: a policy skipped, a user row skipped, or
    /// a user left unrecorded until the row is fixed.
    pub bad_rows: Section<BadRowLine>,
    /// Rows that ended in the last 24 h or are still open, by state.
    pub last_24h: Totals,
}

/// Is the daemon alive, from its heartbeat.
#[derive(Debug, PartialEq, Serialize)]
pub struct Daemon {
    pub state: DaemonState,
    /// The heartbeat as stored (UTC), if there is one.
    pub last_heartbeat: Option<String>,
    pub heartbeat_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DaemonState {
    /// A heartbeat that is not stale ([`liveness::is_stale`]).
    Running,
    /// An older heartbeat: stopped, crashed or hung.
    NotRunning,
    /// No heartbeat at all: the daemon never ran on this database.
    NeverRan,
    /// A heartbeat that is not a time (edited by hand).
    Unknown,
}

/// The first rows of a list and how long the whole list is.
#[derive(Debug, Serialize)]
pub struct Section<T> {
    pub total: usize,
    pub rows: Vec<T>,
}

impl<T> Section<T> {
    fn of(all: Vec<T>, limit: usize) -> Self {
        let total = all.len();
        let rows = all.into_iter().take(limit).collect();
        Self { total, rows }
    }
}

/// A recording row that is not final: someone is being recorded (or a
/// start or stop is in flight).
#[derive(Debug, Serialize)]
pub struct Open {
    pub id: i64,
    pub user_id: String,
    pub policy_id: Option<i64>,
    pub policy: String,
    pub state: &'static str,
    pub since: String,
    pub until: String,
    pub contact_id: Option<i64>,
    /// The segment's end has passed but the row is still open: the daemon
    /// marks it `expired` (or stops it) on its next pass or start.
    pub past_end: bool,
}

/// A window that opens next.
#[derive(Debug, Serialize)]
pub struct Opening {
    pub policy_id: i64,
    pub policy: String,
    pub start: String,
    pub end: String,
    /// The start on the policy zone's clock (RFC 3339 with the offset).
    pub start_local: String,
    /// The zone's abbreviation at the start (`CET`, `CEST`).
    pub abbreviation: String,
    pub timezone: &'static str,
    pub window_seconds: u32,
    pub users: usize,
}

/// Failed rows of the last 24 h, newest first, and how many were missed.
#[derive(Debug, Serialize)]
pub struct Failed {
    pub total: usize,
    pub missed: usize,
    pub rows: Vec<FailedRow>,
}

#[derive(Debug, Serialize)]
pub struct FailedRow {
    pub id: i64,
    pub user_id: String,
    pub policy_id: Option<i64>,
    pub policy: String,
    pub segment_start: String,
    pub segment_end: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// One problem of one policy row, as `recsched check` prints it.
#[derive(Debug, Serialize)]
pub struct Problem {
    pub policy_id: i64,
    pub policy: String,
    pub column: &'static str,
    pub message: String,
}

/// One row that does not read back: table, id, column, problem (and the
/// user it leaves unrecorded), plus the whole message as `check` prints it.
#[derive(Debug, Serialize)]
pub struct BadRowLine {
    #[serde(flatten)]
    pub row: BadRow,
    pub message: String,
}

/// Row counts by state, every state present (zero included), in the
/// order of the state diagram.
#[derive(Debug, PartialEq, Eq)]
pub struct Totals(Vec<(RecordingState, usize)>);

impl Totals {
    fn count(rows: &[RecordingRow]) -> Self {
        Self(
            RecordingState::ALL
                .into_iter()
                .map(|s| (s, rows.iter().filter(|r| r.state == s).count()))
                .collect(),
        )
    }

    /// Every state and its count, in the order of the state diagram.
    pub fn iter(&self) -> impl Iterator<Item = (RecordingState, usize)> + '_ {
        self.0.iter().copied()
    }

    pub fn get(&self, state: RecordingState) -> usize {
        self.0
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n)
    }
}

impl Serialize for Totals {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.0.len()))?;
        for (state, n) in &self.0 {
            map.serialize_entry(state.as_str(), n)?;
        }
        map.end()
    }
}

/// What `build` reads from the database.
pub struct Snapshot {
    pub database: String,
    pub heartbeat: Option<String>,
    /// `pending`, `recording` and `stopping` rows, oldest first.
    pub open: Vec<RecordingRow>,
    /// Rows that ended after `now - 24 h` or are still open, newest first.
    pub recent: Vec<RecordingRow>,
    pub policies: Vec<PolicyRow>,
    /// Rows among those read that do not read back.
    pub bad_rows: Vec<BadRow>,
}

impl Status {
    /// The status at `now` of what `snapshot` holds; each list cut to
    /// `limit` lines.
    pub fn build(now: DateTime<Utc>, snapshot: Snapshot, limit: usize) -> Self {
        let names: HashMap<i64, &str> = snapshot
            .policies
            .iter()
            .map(|p| (p.id, p.name.as_str()))
            .collect();
        let policy_name = |id: Option<i64>| match id {
            Some(id) => names
                .get(&id)
                .map_or_else(|| format!("#{id} (deleted)"), |n| (*n).to_owned()),
            None => "-".to_owned(),
        };

        let open = snapshot
            .open
            .iter()
            .map(|r| Open {
                id: r.id.get(),
                user_id: r.user_id.to_string(),
                policy_id: r.policy_id,
                policy: policy_name(r.policy_id),
                state: r.state.as_str(),
                since: utc(r.segment_start),
                until: utc(r.effective_end()),
                contact_id: r.contact_id.map(|c| c.get()),
                past_end: r.effective_end() <= now,
            })
            .collect();

        let failed: Vec<FailedRow> = snapshot
            .recent
            .iter()
            .filter(|r| r.state == RecordingState::Failed)
            .map(|r| FailedRow {
                id: r.id.get(),
                user_id: r.user_id.to_string(),
                policy_id: r.policy_id,
                policy: policy_name(r.policy_id),
                segment_start: utc(r.segment_start),
                segment_end: utc(r.segment_end),
                attempts: r.attempts,
                last_error: r.last_error.clone(),
            })
            .collect();
        let last_24h = Totals::count(&snapshot.recent);

        let problems: Vec<Problem> = snapshot
            .policies
            .iter()
            .flat_map(policy::problems)
            .map(|e| Problem {
                policy_id: e.id.get(),
                policy: e.name.clone(),
                column: e.column().as_str(),
                message: e.to_string(),
            })
            .collect();

        let mut bad_rows = snapshot.bad_rows;
        bad_rows.sort();
        bad_rows.dedup();
        let bad_rows: Vec<BadRowLine> = bad_rows
            .into_iter()
            .map(|row| BadRowLine {
                message: row.to_string(),
                row,
            })
            .collect();

        let (policies, _) = policy::load(snapshot.policies.clone());
        let mut opens_next: Vec<Opening> = policies
            .iter()
            .filter(|p| p.enabled)
            .flat_map(|p| {
                upcoming(&p.cron, p.window, now, limit)
                    .into_iter()
                    .map(|w| Opening {
                        policy_id: p.id.get(),
                        policy: p.name.clone(),
                        start: w.start,
                        end: w.end,
                        start_local: w.start_local,
                        abbreviation: w.start_abbreviation,
                        timezone: w.timezone,
                        window_seconds: p.window.as_secs(),
                        users: p.users.len(),
                    })
            })
            .collect();
        // The UTC text is fixed-width, so text order is time order.
        opens_next.sort_by(|a, b| (&a.start, &a.policy).cmp(&(&b.start, &b.policy)));
        opens_next.truncate(limit);

        Self {
            at: utc(now),
            database: snapshot.database,
            daemon: daemon(now, snapshot.heartbeat),
            recording_now: Section::of(open, limit),
            opens_next,
            failed_last_24h: Failed {
                total: failed.len(),
                missed: last_24h.get(RecordingState::Missed),
                rows: failed.into_iter().take(limit).collect(),
            },
            invalid_policies: Section::of(problems, limit),
            bad_rows: Section::of(bad_rows, limit),
            last_24h,
        }
    }
}

/// Liveness from the stored heartbeat at `now`, by the daemon's own rule
/// ([`liveness::is_stale`]). A heartbeat a little in the future (the clock
/// stepped back) counts as fresh, with age 0.
fn daemon(now: DateTime<Utc>, heartbeat: Option<String>) -> Daemon {
    let Some(raw) = heartbeat else {
        return Daemon {
            state: DaemonState::NeverRan,
            last_heartbeat: None,
            heartbeat_age_seconds: None,
        };
    };
    match parse_utc(&raw) {
        Ok(at) => {
            let age = now - at;
            Daemon {
                state: if liveness::is_stale(age) {
                    DaemonState::NotRunning
                } else {
                    DaemonState::Running
                },
                last_heartbeat: Some(utc(at)),
                heartbeat_age_seconds: Some(age.num_seconds().max(0)),
            }
        }
        Err(_) => Daemon {
            state: DaemonState::Unknown,
            last_heartbeat: Some(raw),
            heartbeat_age_seconds: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::parse_utc;

    fn at(raw: &str) -> DateTime<Utc> {
        parse_utc(raw).unwrap()
    }

    #[test]
    fn a_fresh_heartbeat_means_running_and_an_old_one_does_not() {
        let now = at("2026-03-29T10:00:00Z");
        let d = daemon(now, Some("2026-03-29T09:59:57.000Z".into()));
        assert_eq!(d.state, DaemonState::Running);
        assert_eq!(d.heartbeat_age_seconds, Some(3));

        let d = daemon(now, Some("2026-03-29T09:55:00.000Z".into()));
        assert_eq!(d.state, DaemonState::NotRunning);
        assert_eq!(d.heartbeat_age_seconds, Some(300));
        assert_eq!(
            d.last_heartbeat.as_deref(),
            Some("2026-03-29T09:55:00.000Z")
        );

        assert_eq!(daemon(now, None).state, DaemonState::NeverRan);
        assert_eq!(
            daemon(now, Some("yesterday".into())).state,
            DaemonState::Unknown
        );
        // The clock stepped back a little: still running, age 0.
        let d = daemon(now, Some("2026-03-29T10:00:02.000Z".into()));
        assert_eq!(
            (d.state, d.heartbeat_age_seconds),
            (DaemonState::Running, Some(0))
        );
    }

    #[test]
    fn the_stale_limit_is_inclusive() {
        let now = at("2026-03-29T10:00:30Z");
        let fresh = daemon(now, Some("2026-03-29T10:00:00.000Z".into()));
        assert_eq!(fresh.state, DaemonState::Running);
        let stale = daemon(now, Some("2026-03-29T09:59:59.000Z".into()));
        assert_eq!(stale.state, DaemonState::NotRunning);
    }

    fn policy(id: i64, name: &str, cron: &str, enabled: bool) -> PolicyRow {
        PolicyRow {
            id,
            name: name.into(),
            enabled,
            cron: cron.into(),
            timezone: "Europe/Amsterdam".into(),
            window_seconds: 3600,
            end_mode: "expire".into(),
            users: vec!["u1".into(), "u2".into()],
            teams: Vec::new(),
        }
    }

    #[test]
    fn next_openings_merge_policies_in_time_order_and_skip_disabled_and_invalid() {
        let snapshot = Snapshot {
            database: "x.db".into(),
            heartbeat: None,
            open: Vec::new(),
            recent: Vec::new(),
            policies: vec![
                policy(1, "hourly", "0 * * * *", true),
                policy(2, "half-past", "30 * * * *", true),
                policy(3, "off", "15 * * * *", false),
                policy(4, "broken", "61 * * * *", true),
            ],
            bad_rows: Vec::new(),
        };
        let status = Status::build(at("2026-03-29T10:10:00Z"), snapshot, 3);
        let got: Vec<(&str, &str)> = status
            .opens_next
            .iter()
            .map(|o| (o.policy.as_str(), o.start.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("half-past", "2026-03-29T10:30:00.000Z"),
                ("hourly", "2026-03-29T11:00:00.000Z"),
                ("half-past", "2026-03-29T11:30:00.000Z"),
            ]
        );
        assert_eq!(
            status.opens_next[0].start_local,
            "2026-03-29T12:30:00+02:00"
        );
        assert_eq!(status.opens_next[0].abbreviation, "CEST");
        assert_eq!(status.opens_next[0].users, 2);
        assert_eq!(status.invalid_policies.total, 1);
        assert_eq!(
            status.invalid_policies.rows[0].message,
            "policy `broken`: cron `61 * * * *`: minute 61 out of range 0-59"
        );
        assert_eq!(status.last_24h.get(RecordingState::Failed), 0);
    }
}
