//! The coverage report (`recsched report`): did we record what the
//! policies said? Pure arithmetic over `recordings` rows and the
//! policies' exclusions; the CLI reads, this module adds up.
//!
//! # What is counted, per group (user, local day or policy)
//! - planned: each row's segment, `missed` and `failed` ones included; a
//!   segment ended early on purpose (an exclusion began, its policy was
//!   disabled: `ended_at` before `segment_end`) was planned only until
//!   then;
//! - recorded: from the vendor's answer to the start until the end
//!   (`ended_at`, else the segment's end), for rows that started;
//! - excluded: time a policy's windows hold that its exclusions cut, for
//!   each of its users, unless another policy still covered the user;
//! - gaps: planned time not recorded, each with its reason: `failed`
//!   (the last error), `missed` (recsched was not running), `late` (the
//!   start was answered after the segment began) or `pending` (no answer
//!   yet).
//!
//! Instants count in whole seconds: the answer's time is cut to its
//! second, so a start answered within the first second is not late.
//! Everything is clipped to the report's range; days are local days in
//! the report's zone (23 or 25 hours across a clock change).
//!
//! Depends on `planner`, `policy`, `recording` and the store's row type;
//! no I/O, no clock.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, DurationRound, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::clock::format_utc;
use crate::planner::{self, subtract, Interval};
use crate::policy::exclusion::end_of_day;
use crate::policy::Policy;
use crate::recording::{RecordingState, UserId};
use crate::store::ReportRow;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum By {
    User,
    Day,
    Policy,
}

/// Why planned time was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GapReason {
    Failed,
    Missed,
    Late,
    Pending,
}

impl GapReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Failed => "failed",
            Self::Missed => "missed",
            Self::Late => "late",
            Self::Pending => "pending",
        }
    }
}

/// Planned time not recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub user: UserId,
    pub policy_id: Option<i64>,
    /// The `recordings` row.
    pub recording_id: i64,
    pub start: String,
    pub end: String,
    pub seconds: f64,
    pub reason: GapReason,
    /// `failed`: the last error; `missed`: that recsched was not running;
    /// `late`: how late the start was answered.
    pub detail: String,
}

/// The sums of one group (or of all).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Sums {
    pub planned_seconds: f64,
    pub recorded_seconds: f64,
    pub excluded_seconds: f64,
    /// recorded / planned; `None` when nothing was planned.
    pub ratio: Option<f64>,
    /// Gap seconds by reason.
    pub failed_seconds: f64,
    pub missed_seconds: f64,
    pub late_seconds: f64,
    pub pending_seconds: f64,
}

/// One group of the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Group {
    /// The user id, the local date (`2026-12-24`), or the policy (its
    /// name, else its id; `(none)` for rows whose policy_id was cleared).
    pub group: String,
    #[serde(flatten)]
    pub sums: Sums,
    pub gaps: Vec<Gap>,
}

/// What the report is over.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    pub range: Interval,
    pub by: By,
    /// The zone local days are cut in.
    pub zone: Tz,
    /// Policy names by id, for `--by policy`.
    pub names: &'a HashMap<i64, String>,
}

/// One user's excluded time under one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExcludedTime {
    pub user: UserId,
    pub policy_id: i64,
    pub interval: Interval,
}

/// The time each enabled policy's exclusions (attached) cut from its
/// users in `range`, less what another policy still covered.
pub fn excluded_time(policies: &[Policy], range: Interval) -> Vec<ExcludedTime> {
    let remaining = planner::coverage(policies, range.start, range.end);
    let mut out = Vec::new();
    for policy in policies
        .iter()
        .filter(|p| p.enabled && !p.exclusions.is_empty())
    {
        let runs = clip(
            &merge(
                planner::windows(policy, range.start, range.end)
                    .iter()
                    .map(|w| w.interval())
                    .collect(),
            ),
            range,
        );
        for user in &policy.users {
            let cuts = merge(
                policy
                    .exclusions
                    .iter()
                    .filter(|e| e.applies_to(user))
                    .map(|e| Interval::new(e.start, e.end))
                    .collect(),
            );
            let cut = subtract(&runs, &subtract(&runs, &cuts));
            let still: Vec<Interval> = remaining
                .get(user)
                .map(|c| c.iter().map(|c| c.interval()).collect())
                .unwrap_or_default();
            for interval in subtract(&cut, &still) {
                out.push(ExcludedTime {
                    user: user.clone(),
                    policy_id: policy.id.get(),
                    interval,
                });
            }
        }
    }
    out
}

/// What one row contributes.
#[derive(Debug, Clone)]
struct Piece {
    user: UserId,
    policy_id: Option<i64>,
    interval: Interval,
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Planned,
    Recorded,
    Excluded,
    Gap {
        reason: GapReason,
        recording_id: i64,
        detail: String,
    },
}

/// A row's planned, recorded and gap pieces (not yet clipped).
fn pieces(row: &ReportRow, out: &mut Vec<Piece>) {
    let started = matches!(
        row.state,
        RecordingState::Recording
            | RecordingState::Stopping
            | RecordingState::Stopped
            | RecordingState::Expired
    );
    let end = match row.ended_at {
        Some(at) if started && at > row.segment_start && at < row.segment_end => at,
        _ => row.segment_end,
    };
    let planned = Interval::new(row.segment_start, end);
    let piece = |interval, kind| Piece {
        user: row.user_id.clone(),
        policy_id: row.policy_id,
        interval,
        kind,
    };
    out.push(piece(planned, Kind::Planned));
    let gap = |reason, detail: String| Kind::Gap {
        reason,
        recording_id: row.id.get(),
        detail,
    };
    match row.state {
        RecordingState::Failed => out.push(piece(
            planned,
            gap(
                GapReason::Failed,
                row.last_error
                    .clone()
                    .unwrap_or_else(|| "no error recorded".into()),
            ),
        )),
        RecordingState::Missed => out.push(piece(
            planned,
            gap(
                GapReason::Missed,
                "recsched was not running when the window opened".into(),
            ),
        )),
        RecordingState::Pending => out.push(piece(
            planned,
            gap(GapReason::Pending, "the start has not been answered".into()),
        )),
        _ => {
            // The answer's second; without an audit row, the catch-up
            // lateness the row itself records.
            let late_by = chrono::Duration::milliseconds(
                (row.late_seconds.unwrap_or(0.0).max(0.0) * 1000.0) as i64,
            );
            let answered = row
                .answered_at
                .unwrap_or(row.segment_start + late_by)
                .duration_trunc(chrono::Duration::seconds(1))
                .unwrap_or(row.segment_start)
                .clamp(row.segment_start, end);
            if answered > row.segment_start {
                let late = Interval::new(row.segment_start, answered);
                out.push(piece(
                    late,
                    gap(
                        GapReason::Late,
                        format!("started {} s late", late.duration().num_seconds()),
                    ),
                ));
            }
            out.push(piece(Interval::new(answered, end), Kind::Recorded));
        }
    }
}

/// The report: one group per user, day or policy (sorted), and the total.
pub fn report(
    rows: &[ReportRow],
    excluded: &[ExcludedTime],
    scope: &Scope<'_>,
) -> (Vec<Group>, Sums) {
    let mut all = Vec::new();
    for row in rows {
        pieces(row, &mut all);
    }
    all.extend(excluded.iter().map(|e| Piece {
        user: e.user.clone(),
        policy_id: Some(e.policy_id),
        interval: e.interval,
        kind: Kind::Excluded,
    }));

    // Clip to the range, cut into days, key by group.
    let mut grouped: BTreeMap<String, Vec<Piece>> = BTreeMap::new();
    for piece in all {
        let Some(interval) = clip(&[piece.interval], scope.range).into_iter().next() else {
            continue;
        };
        for (day, part) in split(interval, scope) {
            let key = match scope.by {
                By::User => piece.user.as_str().to_owned(),
                By::Day => day.format("%Y-%m-%d").to_string(),
                By::Policy => match piece.policy_id {
                    Some(id) => scope
                        .names
                        .get(&id)
                        .cloned()
                        .unwrap_or_else(|| id.to_string()),
                    None => "(none)".to_owned(),
                },
            };
            grouped.entry(key).or_default().push(Piece {
                interval: part,
                ..piece.clone()
            });
        }
    }

    let mut total = Sums::default();
    let mut total_excluded: Vec<(UserId, Interval)> = Vec::new();
    let groups = grouped
        .into_iter()
        .map(|(group, pieces)| {
            let mut sums = Sums::default();
            let mut gaps = Vec::new();
            // Excluded time of one user counts once, whatever policies cut it.
            let mut excluded: HashMap<&UserId, Vec<Interval>> = HashMap::new();
            for p in &pieces {
                let secs = seconds(p.interval);
                match &p.kind {
                    Kind::Planned => sums.planned_seconds += secs,
                    Kind::Recorded => sums.recorded_seconds += secs,
                    Kind::Excluded => {
                        excluded.entry(&p.user).or_default().push(p.interval);
                        total_excluded.push((p.user.clone(), p.interval));
                    }
                    Kind::Gap {
                        reason,
                        recording_id,
                        detail,
                    } => {
                        *gap_field(&mut sums, *reason) += secs;
                        gaps.push(Gap {
                            user: p.user.clone(),
                            policy_id: p.policy_id,
                            recording_id: *recording_id,
                            start: format_utc(p.interval.start),
                            end: format_utc(p.interval.end),
                            seconds: secs,
                            reason: *reason,
                            detail: detail.clone(),
                        });
                    }
                }
            }
            sums.excluded_seconds = excluded
                .into_values()
                .map(|spans| {
                    merge(spans)
                        .into_iter()
                        .map(seconds)
                        .fold(0.0, |a, b| a + b)
                })
                .fold(0.0, |a, b| a + b);
            finish(&mut sums);
            add(&mut total, &sums);
            Group { group, sums, gaps }
        })
        .collect();
    // Across groups, excluded time of one user counts once too.
    let mut by_user: HashMap<UserId, Vec<Interval>> = HashMap::new();
    for (user, interval) in total_excluded {
        by_user.entry(user).or_default().push(interval);
    }
    total.excluded_seconds = by_user
        .into_values()
        .map(|spans| {
            merge(spans)
                .into_iter()
                .map(seconds)
                .fold(0.0, |a, b| a + b)
        })
        .fold(0.0, |a, b| a + b);
    finish(&mut total);
    (groups, total)
}

fn gap_field(sums: &mut Sums, reason: GapReason) -> &mut f64 {
    match reason {
        GapReason::Failed => &mut sums.failed_seconds,
        GapReason::Missed => &mut sums.missed_seconds,
        GapReason::Late => &mut sums.late_seconds,
        GapReason::Pending => &mut sums.pending_seconds,
    }
}

fn add(total: &mut Sums, group: &Sums) {
    total.planned_seconds += group.planned_seconds;
    total.recorded_seconds += group.recorded_seconds;
    total.failed_seconds += group.failed_seconds;
    total.missed_seconds += group.missed_seconds;
    total.late_seconds += group.late_seconds;
    total.pending_seconds += group.pending_seconds;
}

/// Rounds the sums to milliseconds and computes the ratio.
fn finish(sums: &mut Sums) {
    for v in [
        &mut sums.planned_seconds,
        &mut sums.recorded_seconds,
        &mut sums.excluded_seconds,
        &mut sums.failed_seconds,
        &mut sums.missed_seconds,
        &mut sums.late_seconds,
        &mut sums.pending_seconds,
    ] {
        *v = (*v * 1000.0).round() / 1000.0;
    }
    sums.ratio = (sums.planned_seconds > 0.0)
        .then(|| (sums.recorded_seconds / sums.planned_seconds * 10_000.0).round() / 10_000.0);
}

fn seconds(i: Interval) -> f64 {
    i.duration().num_milliseconds() as f64 / 1000.0
}

fn merge(mut spans: Vec<Interval>) -> Vec<Interval> {
    spans.retain(|s| !s.is_empty());
    spans.sort_unstable();
    let mut out: Vec<Interval> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}

/// The parts of `spans` inside `range`.
fn clip(spans: &[Interval], range: Interval) -> Vec<Interval> {
    spans
        .iter()
        .map(|s| Interval::new(s.start.max(range.start), s.end.min(range.end)))
        .filter(|s| !s.is_empty())
        .collect()
}

/// `interval` cut at local midnights (only when grouping by day), each
/// part with its local date.
fn split(interval: Interval, scope: &Scope<'_>) -> Vec<(NaiveDate, Interval)> {
    let tz = scope.zone;
    let day_of = |t: DateTime<Utc>| t.with_timezone(&tz).date_naive();
    if scope.by != By::Day {
        return vec![(day_of(interval.start), interval)];
    }
    let mut out = Vec::new();
    let mut start = interval.start;
    while start < interval.end {
        let day = day_of(start);
        let end = end_of_day(day, tz).min(interval.end);
        if end <= start {
            break;
        }
        out.push((day, Interval::new(start, end)));
        start = end;
    }
    out
}

#[cfg(test)]
mod tests;
