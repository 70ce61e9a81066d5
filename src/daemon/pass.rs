//! One planning pass, as a pure function: given the policies, what the
//! database already holds, the rows this process tracks and "now", decide
//! which segments start now (or are recorded `missed`), which recordings
//! end now, and when to look again.
//!
//! Deciding from the durable state each time (rather than from timers set
//! earlier) is what makes reloads, restarts and catch-up one code path:
//! a new pass after an edit or a crash sees the same rows and draws the
//! same conclusions. Kept pure so every case is a unit test.

use crate::planner::{self, Coverage, Due, Interval, Segment, SegmentLimit};
use crate::policy::{EndMode, Policy};
use crate::recording::{ContactId, RecordingState, UserId};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, HashMap};

/// A recording this process knows to be open (pending, recording, stopping).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracked {
    pub id: i64,
    pub user: UserId,
    pub policy_id: Option<i64>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub end_mode: EndMode,
    pub state: RecordingState,
    pub contact: Option<ContactId>,
    /// A job of this process is working on it; leave it alone.
    pub busy: bool,
}

/// Why a recording ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its segment's end has come.
    Due,
    /// Coverage no longer includes now (policy disabled, deleted, edited,
    /// or an exclusion began).
    Uncovered,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Segments to claim and start now, with how late they are.
    pub starts: Vec<(Segment, chrono::Duration)>,
    /// Segments wholly past and never started: recorded `missed`.
    pub missed: Vec<Segment>,
    /// Tracked rows to end now.
    pub ends: Vec<(i64, EndReason)>,
    /// When the next start or end is due, if any within the horizon.
    pub next: Option<DateTime<Utc>>,
    /// The next segment start and its policy.
    pub next_start: Option<(DateTime<Utc>, crate::policy::PolicyId)>,
}

/// The coverage a pass works on: windows from `from` (normally now; after
/// a restart, when the previous process was last seen) to `now + horizon`.
pub fn coverage(
    policies: &[Policy],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    horizon: chrono::Duration,
) -> BTreeMap<UserId, Vec<Coverage>> {
    planner::coverage(policies, from.min(now), now + horizon)
}

/// The earliest instant any coverage interval touches: rows ending before
/// it cannot matter to this pass.
pub fn earliest(coverage: &BTreeMap<UserId, Vec<Coverage>>) -> Option<DateTime<Utc>> {
    coverage
        .values()
        .filter_map(|v| v.first())
        .map(|c| c.start)
        .min()
}

/// Decides one pass.
pub fn plan<'a>(
    coverage: &BTreeMap<UserId, Vec<Coverage>>,
    occupied: &HashMap<UserId, Vec<Interval>>,
    tracked: impl IntoIterator<Item = &'a Tracked>,
    now: DateTime<Utc>,
    limit: SegmentLimit,
) -> Plan {
    let mut out = Plan::default();
    let next = |at: DateTime<Utc>, out: &mut Plan| {
        out.next = Some(out.next.map_or(at, |n: DateTime<Utc>| n.min(at)));
    };

    for t in tracked {
        let open = matches!(
            t.state,
            RecordingState::Recording | RecordingState::Stopping
        );
        if t.busy || !open {
            // A job holds it, or it is a pending row of an earlier process
            // (resumed by the daemon, not planned again). Wake at its end
            // all the same, to end it once the job is done.
            if t.end > now {
                next(t.end, &mut out);
            }
            continue;
        }
        let spans = coverage.get(&t.user);
        if t.end <= now {
            out.ends.push((t.id, EndReason::Due));
        } else if !covered(spans, now) {
            if t.end_mode == EndMode::Expire && t.end - now <= PAD {
                // It ends by itself within the vendor's minimum: nothing
                // to send (a segment may be padded this far past coverage).
                next(t.end, &mut out);
            } else {
                out.ends.push((t.id, EndReason::Uncovered));
            }
        } else {
            // Coverage may end before the recording does (an exclusion
            // begins, a window was shortened): look again then.
            let until = covered_until(spans, now).filter(|u| *u + PAD < t.end);
            next(until.unwrap_or(t.end), &mut out);
        }
    }

    let none = Vec::new();
    for (user, spans) in coverage {
        let taken = occupied.get(user).unwrap_or(&none);
        for seg in planner::segments(user, spans, taken, limit) {
            match planner::due(&seg, now) {
                Due::Now { late, .. } => out.starts.push((seg, late)),
                Due::Missed => out.missed.push(seg),
                Due::Upcoming { at } => {
                    next(at, &mut out);
                    if out.next_start.is_none_or(|(n, _)| at < n) {
                        out.next_start = Some((at, seg.policy));
                    }
                    // Later segments of this user follow this one.
                    break;
                }
            }
        }
    }
    out
}

/// How far a segment may run past coverage: the vendor's minimum, to
/// which a short remainder is padded.
const PAD: chrono::Duration =
    chrono::Duration::seconds(crate::recording::RecordingDuration::MIN_SECS as i64);

/// The end of the coverage interval holding `now`.
fn covered_until(spans: Option<&Vec<Coverage>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    spans?
        .iter()
        .find(|c| c.start <= now && now < c.end)
        .map(|c| c.end)
}

/// Whether `now` lies inside one of the user's coverage intervals.
fn covered(spans: Option<&Vec<Coverage>>, now: DateTime<Utc>) -> bool {
    spans.is_some_and(|spans| spans.iter().any(|c| c.start <= now && now < c.end))
}

/// Groups occupied intervals by user.
pub fn by_user(
    rows: Vec<(UserId, DateTime<Utc>, DateTime<Utc>)>,
) -> HashMap<UserId, Vec<Interval>> {
    let mut map: HashMap<UserId, Vec<Interval>> = HashMap::new();
    for (user, start, end) in rows {
        map.entry(user).or_default().push(Interval { start, end });
    }
    for v in map.values_mut() {
        v.sort_by_key(|i| i.start);
    }
    map
}

#[cfg(test)]
mod tests;
