//! `recsched status`: one screen for an operator. Is the daemon alive,
//! who is being recorded now, what opens next, what failed and why, which
//! policy rows the daemon skips, and how the last 24 hours went.
//!
//! Everything comes from the database, opened read-only, so it answers the
//! same whether the daemon runs or not, and never changes a row. The
//! daemon's liveness is its heartbeat (`daemon_state` key `last_seen`,
//! written every 5 s); the coming windows come from the planner's
//! [`window_starts`] (through [`next::upcoming`]) over the policies the
//! daemon would load ([`policy::load`]), and the policy problems are
//! [`policy::problems`], printed as `recsched check` prints them. Rows
//! that do not read back at all (in `policies`, `policy_users` or
//! `recordings`, see [`BadRow`]) are listed by table, id and column. The
//! clock is read once, and [`Status::build`] is a pure function of that
//! instant and the rows, so it is unit-tested without a database.
//!
//! [`window_starts`]: crate::planner::window_starts
//! [`next::upcoming`]: super::next::upcoming

use std::collections::HashMap;
use std::process::ExitCode;

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use crate::clock::{parse_utc, Clock, SystemClock};
use crate::config::Config;
use crate::policy::{self, PolicyRow};
use crate::recording::RecordingState;
use crate::store::{BadRow, RecordingFilter, RecordingRow};

use super::next::upcoming;
use super::open_for_reading;
use super::output::{human_secs, one_line, print_json, print_text, truncated, utc, Table};

/// Flags of `recsched status` (its help text is on `Command::Status`).
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// At most this many lines in each list (recording now, opening next,
    /// failed, invalid policies); the totals always count everything.
    #[arg(long, value_name = "N", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub limit: u32,

    /// Print one JSON object with the same sections, for scripts.
    #[arg(long)]
    pub json: bool,
}

/// The `daemon_state` key the daemon's housekeeping writes its heartbeat
/// under (`daemon::LAST_SEEN_KEY`). `tests/it/ops/status.rs` runs the real
/// daemon and reads it back through this command, so the two cannot drift.
pub const HEARTBEAT_KEY: &str = crate::daemon::LAST_SEEN_KEY;

/// A heartbeat older than this means the daemon is not running: it writes
/// one every 5 s, and systemd's watchdog (`WatchdogSec=30s`) restarts a
/// daemon that stops responding for this long.
pub const STALE_AFTER: Duration = Duration::seconds(30);

/// How far back the failure list and the totals look.
pub const RECENT: Duration = Duration::hours(24);

/// Longest error shown in the text form; `--json` has all of it.
const ERROR_WIDTH: usize = 100;

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
    pub state: Liveness,
    /// The heartbeat as stored (UTC), if there is one.
    pub last_heartbeat: Option<String>,
    pub heartbeat_age_seconds: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// A heartbeat within [`STALE_AFTER`].
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

    /// The one screen, in words an operator knows.
    pub fn text(&self) -> String {
        let mut out = format!(
            "recsched status at {}, database {}\n",
            self.at, self.database
        );

        out.push_str(&format!("\nDaemon: {}\n", self.daemon.words()));

        let now = &self.recording_now;
        out.push_str(&format!(
            "\nRecording now: {}\n",
            count_line(now.total, now.rows.len())
        ));
        if now.total == 0 {
            out.push_str("nobody is being recorded\n");
        } else {
            let mut table = Table::new(&[
                "USER",
                "POLICY",
                "STATE",
                "SINCE (UTC)",
                "UNTIL (UTC)",
                "CONTACT",
            ]);
            for r in &now.rows {
                table.row(vec![
                    r.user_id.clone(),
                    r.policy.clone(),
                    r.state.to_owned(),
                    r.since.clone(),
                    format!("{}{}", r.until, if r.past_end { " (passed)" } else { "" }),
                    r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
                ]);
            }
            out.push_str(&table.render());
            let passed = now.rows.iter().filter(|r| r.past_end).count();
            if passed > 0 {
                out.push_str(&format!(
                    "{passed} of these are past their end (passed): the daemon marks them \
                     expired on its next pass, or when it starts again\n"
                ));
            }
        }

        out.push_str("\nOpening next:\n");
        if self.opens_next.is_empty() {
            out.push_str("no window of an enabled, valid policy is coming\n");
        } else {
            let mut table =
                Table::new(&["POLICY", "START (UTC)", "START (LOCAL)", "LENGTH", "USERS"]);
            for w in &self.opens_next {
                table.row(vec![
                    w.policy.clone(),
                    w.start.clone(),
                    format!("{} {} ({})", w.start_local, w.abbreviation, w.timezone),
                    human_secs(i64::from(w.window_seconds)),
                    w.users.to_string(),
                ]);
            }
            out.push_str(&table.render());
        }

        let failed = &self.failed_last_24h;
        out.push_str(&format!(
            "\nFailed in the last 24 h: {}; missed (service was down): {}\n",
            count_line(failed.total, failed.rows.len()),
            failed.missed
        ));
        if !failed.rows.is_empty() {
            let mut table = Table::new(&["SEGMENT START (UTC)", "USER", "POLICY", "TRIES", "WHY"]);
            for r in &failed.rows {
                table.row(vec![
                    r.segment_start.clone(),
                    r.user_id.clone(),
                    r.policy.clone(),
                    r.attempts.to_string(),
                    truncated(
                        &one_line(r.last_error.as_deref().unwrap_or("")),
                        ERROR_WIDTH,
                    ),
                ]);
            }
            out.push_str(&table.render());
        }
        if failed.total > 0 || failed.missed > 0 {
            out.push_str("(all of them: recsched recordings --state failed, or --state missed)\n");
        }

        let bad = &self.invalid_policies;
        if bad.total == 0 {
            out.push_str("\nInvalid policies: none, every policy row validates\n");
        } else {
            out.push_str(&format!(
                "\nInvalid policies (the daemon skips them): {} {}{}\n",
                bad.total,
                if bad.total == 1 {
                    "problem"
                } else {
                    "problems"
                },
                shown(bad.total, bad.rows.len()),
            ));
            for p in &bad.rows {
                out.push_str(&p.message);
                out.push('\n');
            }
            out.push_str("(fix the rows, then `recsched check` must print ok)\n");
        }

        let bad = &self.bad_rows;
        if bad.total == 0 {
            out.push_str("\nBad rows: none, every row reads back\n");
        } else {
            out.push_str(&format!(
                "\nBad rows (do not read back; skipped): {}{}\n",
                bad.total,
                shown(bad.total, bad.rows.len()),
            ));
            for r in &bad.rows {
                out.push_str(&r.message);
                out.push('\n');
            }
        }

        let totals: Vec<String> = self
            .last_24h
            .0
            .iter()
            .map(|(state, n)| format!("{state} {n}"))
            .collect();
        out.push_str(&format!("\nLast 24 h: {}\n", totals.join(", ")));
        out
    }
}

impl Daemon {
    /// "running (heartbeat 3 s ago)" and its siblings.
    fn words(&self) -> String {
        let heartbeat = self.last_heartbeat.as_deref().unwrap_or("");
        let age = self.heartbeat_age_seconds.map(ago).unwrap_or_default();
        match self.state {
            Liveness::Running => format!("running (heartbeat {age})"),
            Liveness::NotRunning => format!(
                "not running? last heartbeat {heartbeat} ({age}); \
                 see `systemctl status recsched` and `journalctl -u recsched`"
            ),
            Liveness::NeverRan => "never ran on this database (no heartbeat); start it with \
                 `systemctl start recsched` or `recsched run`"
                .to_owned(),
            Liveness::Unknown => format!(
                "unknown: the heartbeat `{}` in table daemon_state is not a time",
                one_line(heartbeat)
            ),
        }
    }
}

/// Liveness from the stored heartbeat at `now`. A heartbeat a little in
/// the future (the clock stepped back) counts as fresh.
fn daemon(now: DateTime<Utc>, heartbeat: Option<String>) -> Daemon {
    let Some(raw) = heartbeat else {
        return Daemon {
            state: Liveness::NeverRan,
            last_heartbeat: None,
            heartbeat_age_seconds: None,
        };
    };
    match parse_utc(&raw) {
        Ok(at) => {
            let age = (now - at).num_seconds().max(0);
            Daemon {
                state: if age <= STALE_AFTER.num_seconds() {
                    Liveness::Running
                } else {
                    Liveness::NotRunning
                },
                last_heartbeat: Some(utc(at)),
                heartbeat_age_seconds: Some(age),
            }
        }
        Err(_) => Daemon {
            state: Liveness::Unknown,
            last_heartbeat: Some(raw),
            heartbeat_age_seconds: None,
        },
    }
}

/// An age the way people say it: `3 s ago`, `5 min ago`, `2 h ago`,
/// `3 days ago`, rounded down.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// "3" or "12 (10 shown; raise --limit)".
fn count_line(total: usize, rows: usize) -> String {
    format!("{total}{}", shown(total, rows))
}

/// " (10 shown; raise --limit)" when a list was cut, else nothing.
fn shown(total: usize, rows: usize) -> String {
    if rows < total {
        format!(" ({rows} shown; raise --limit)")
    } else {
        String::new()
    }
}

pub async fn run(args: StatusArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let store = open_for_reading(config).await?;
    let now = SystemClock.now();
    // A heartbeat that does not read back is a bad row like any other.
    let mut skipped = Vec::new();
    let heartbeat = match store.get_state(HEARTBEAT_KEY).await {
        Err(crate::store::StoreError::BadRow(bad)) => {
            skipped.push(bad);
            None
        }
        read => read?,
    };
    let open = store.open_rows().await?;
    let recent = store
        .read_recordings(&RecordingFilter {
            since: Some(now - RECENT),
            ..RecordingFilter::default()
        })
        .await?;
    let policies = store.read_policies().await?;
    // Exclusions the daemon skips: rows that do not read back or parse.
    let exclusions = store.read_exclusions().await?.rows_and_bad(&mut skipped);
    let (_, refused) = crate::policy::exclusion::load_exclusions(&exclusions);
    skipped.extend(refused.iter().map(crate::store::BadRow::from_exclusion));
    let snapshot = Snapshot {
        database: config.database.path.display().to_string(),
        heartbeat,
        open: open.rows,
        recent: recent.rows,
        policies: policies.rows,
        bad_rows: [open.bad, recent.bad, policies.bad, skipped].concat(),
    };
    let teams = super::teams::overview(&store, now, config.directory.refresh(), false)
        .await?
        .rows;
    store.close().await;

    let status = Status::build(now, snapshot, args.limit as usize);
    if args.json {
        /// `status --json` with the teams' membership ages beside it.
        #[derive(serde::Serialize)]
        struct WithTeams<'a> {
            #[serde(flatten)]
            status: &'a Status,
            teams: &'a [super::teams::TeamView],
        }
        print_json(&WithTeams {
            status: &status,
            teams: &teams,
        })?;
    } else {
        print_text(&(status.text() + &super::teams::status_text(&teams)))?;
    }
    Ok(ExitCode::SUCCESS)
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
        assert_eq!(d.state, Liveness::Running);
        assert_eq!(d.heartbeat_age_seconds, Some(3));
        assert_eq!(d.words(), "running (heartbeat 3 s ago)");

        let d = daemon(now, Some("2026-03-29T09:55:00.000Z".into()));
        assert_eq!(d.state, Liveness::NotRunning);
        assert!(
            d.words()
                .starts_with("not running? last heartbeat 2026-03-29T09:55:00.000Z (5 min ago)"),
            "{}",
            d.words()
        );

        assert_eq!(daemon(now, None).state, Liveness::NeverRan);
        assert_eq!(
            daemon(now, Some("yesterday".into())).state,
            Liveness::Unknown
        );
        // The clock stepped back a little: still running, age 0.
        let d = daemon(now, Some("2026-03-29T10:00:02.000Z".into()));
        assert_eq!(
            (d.state, d.heartbeat_age_seconds),
            (Liveness::Running, Some(0))
        );
    }

    #[test]
    fn the_stale_limit_is_inclusive() {
        let now = at("2026-03-29T10:00:30Z");
        let fresh = daemon(now, Some("2026-03-29T10:00:00.000Z".into()));
        assert_eq!(fresh.state, Liveness::Running);
        let stale = daemon(now, Some("2026-03-29T09:59:59.000Z".into()));
        assert_eq!(stale.state, Liveness::NotRunning);
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(0), "0 s ago");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(7200), "2 h ago");
        assert_eq!(ago(47 * 3600), "47 h ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
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
