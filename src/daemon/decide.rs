//! One planning pass's decision, as a pure function: given the coverage
//! of the policies, what the database already holds, the rows this
//! process tracks and "now", decide which segments start now (or are
//! recorded `missed`), which recordings end now, and when to look again.
//!
//! Deciding from the durable state each time (rather than from timers set
//! earlier) is what makes reloads, restarts, catch-up and clock steps one
//! code path: a new pass after an edit, a crash or a step sees the same
//! rows and draws the same conclusions. Kept pure so every case is a unit
//! test; `dispatch` acts on the answer.

use super::open_rows::Tracked;
use crate::planner::{self, Coverage, CoverageMap, Covered, Due, Interval, Segment, SegmentLimit};
use crate::policy::{EndMode, Policy, PolicyId};
use crate::recording::{RecordingDuration, UserId};
use crate::store::RecordingId;
use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::sync::Arc;

/// Why a recording ends now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// Its segment's end has come.
    Due,
    /// Coverage no longer includes now (policy disabled, deleted, edited,
    /// or an exclusion began).
    Uncovered,
}

/// A segment to claim and start now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub segment: Segment,
    /// What the start asks for: the time left of the segment.
    pub remaining: RecordingDuration,
    /// How late the start is (zero when on time).
    pub late: chrono::Duration,
}

/// What one pass decided.
#[derive(Debug, Default)]
pub struct Plan {
    /// Segments to claim and start now.
    pub starts: Vec<Start>,
    /// Segments wholly past and never started: recorded `missed`.
    pub missed: Vec<Segment>,
    /// Tracked rows to end now.
    pub ends: Vec<(RecordingId, EndReason)>,
    /// When the next start or end is due, if any within the horizon.
    pub next: Option<DateTime<Utc>>,
    /// The next segment start and its policy.
    pub next_start: Option<(DateTime<Utc>, PolicyId)>,
    /// Segments cut to decide: those due now or missed, and the next one
    /// of each user (never the rest of the horizon).
    pub cut: u64,
    /// Segments opening within the claim-ahead span (`decide_ahead`): their
    /// rows are claimed now, their starts sent at their instant.
    pub ahead: Vec<Start>,
}

/// The coverage a pass works on: windows from `from` (normally now; after
/// a restart or a forward clock step, an earlier instant) to
/// `now + horizon`, each policy's walk bounded by
/// [`planner::WALK_LIMIT`].
pub fn cover(
    policies: &[Policy],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    horizon: chrono::Duration,
) -> Covered {
    planner::cover(policies, from, now, now + horizon, planner::WALK_LIMIT)
}

/// `cover`'s coverage alone (the benchmark's `pass::coverage`).
pub fn coverage(
    policies: &[Policy],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    horizon: chrono::Duration,
) -> CoverageMap {
    cover(policies, from, now, horizon).users
}

/// The earliest instant any coverage interval touches: rows ending before
/// it cannot matter to this pass.
pub fn earliest(coverage: &CoverageMap) -> Option<DateTime<Utc>> {
    coverage
        .values()
        .filter_map(|v| v.first())
        .map(|c| c.start)
        .min()
}

/// Decides one pass, claiming nothing ahead.
pub fn decide(
    coverage: &CoverageMap,
    occupied: &HashMap<UserId, Vec<Interval>>,
    tracked: &[Tracked],
    now: DateTime<Utc>,
    limit: SegmentLimit,
) -> Plan {
    decide_ahead(
        coverage,
        occupied,
        tracked,
        now,
        limit,
        chrono::Duration::zero(),
    )
}

/// Decides one pass; a user's next segment that opens within `ahead` of
/// `now` is to be claimed now ([`Plan::ahead`]) and sent at its instant,
/// and the pass wakes `ahead` before a later one. Only for a user without
/// a tracked row and without a start due now: a segment that follows
/// another recording of its user must wait for that one's end first,
/// which the pass at its instant arranges (ends, then the start, in one
/// job), so it is claimed then, as without `ahead`.
pub fn decide_ahead(
    coverage: &CoverageMap,
    occupied: &HashMap<UserId, Vec<Interval>>,
    tracked: &[Tracked],
    now: DateTime<Utc>,
    limit: SegmentLimit,
    ahead: chrono::Duration,
) -> Plan {
    let mut out = Plan::default();
    let claiming_ahead = ahead > chrono::Duration::zero();
    let tracking: std::collections::HashSet<&UserId> = if claiming_ahead {
        tracked.iter().map(|t| t.row.user()).collect()
    } else {
        std::collections::HashSet::new()
    };
    let next = |at: DateTime<Utc>, out: &mut Plan| {
        out.next = Some(out.next.map_or(at, |n: DateTime<Utc>| n.min(at)));
    };

    for t in tracked {
        let seg = &t.row.segment;
        if t.busy || !t.row.is_live() {
            // A job holds it, or it is a pending row of an earlier process
            // (resumed by the daemon, not planned again). Wake at its end
            // all the same, to end it once the job is done.
            if seg.end > now {
                next(seg.end, &mut out);
            }
            continue;
        }
        let spans = coverage.get(&seg.user);
        if seg.end <= now {
            out.ends.push((t.row.id, EndReason::Due));
        } else if seg.start <= now && !covered(spans, now) {
            if seg.end_mode == EndMode::Expire && seg.end - now <= PAD {
                // It ends by itself within the vendor's minimum: nothing
                // to send (a segment may be padded this far past coverage).
                next(seg.end, &mut out);
            } else {
                out.ends.push((t.row.id, EndReason::Uncovered));
            }
        } else {
            // Covered; or the wall clock stepped back to before the
            // segment began, and its window is still ahead: it ends at its
            // end, not now. Coverage may end before the recording does (an
            // exclusion begins, a window was shortened): look again then.
            let until = covered_until(spans, now).filter(|u| *u + PAD < seg.end);
            next(until.unwrap_or(seg.end), &mut out);
        }
    }

    for (user, spans) in coverage {
        let taken = occupied.get(user).map_or(&[][..], Vec::as_slice);
        let mut claimable = claiming_ahead && !tracking.contains(user);
        // Cut lazily: what is due now, then the user's next segment.
        for segment in planner::cut(user, spans, taken, limit) {
            out.cut += 1;
            match planner::due(&segment, now) {
                Due::Now { remaining, late } => {
                    claimable = false;
                    out.starts.push(Start {
                        segment,
                        remaining,
                        late,
                    });
                }
                Due::Missed => out.missed.push(segment),
                Due::Upcoming { at } => {
                    if out.next_start.is_none_or(|(n, _)| at < n) {
                        out.next_start = Some((at, segment.policy));
                    }
                    if claimable && at - ahead <= now {
                        out.ahead.push(Start {
                            remaining: segment.duration,
                            segment,
                            late: chrono::Duration::zero(),
                        });
                        break;
                    }
                    next(if claimable { at - ahead } else { at }, &mut out);
                    // Later segments of this user follow this one.
                    break;
                }
            }
        }
    }
    out
}

/// Of the rows claimed ahead and not yet sent (`waiting`: pending, opening
/// after now), those the policies no longer plan as they were claimed: the
/// user's coverage (with the row's own time free again) no longer gives a
/// segment with the row's start, end, policy and end mode. Their policy
/// was edited (window, cron, zone, end mode), disabled or deleted, their
/// user removed, or an exclusion now covers them: they are withdrawn and
/// never sent.
pub fn withdrawn(
    coverage: &CoverageMap,
    occupied: &HashMap<UserId, Vec<Interval>>,
    waiting: &[super::open_rows::OpenRow],
    limit: SegmentLimit,
) -> Vec<RecordingId> {
    waiting
        .iter()
        .filter(|row| !still_planned(coverage, occupied, &row.segment, limit))
        .map(|row| row.id)
        .collect()
}

/// Whether `claimed` is still the segment its user's coverage gives at its
/// start, with its own occupied time taken out.
fn still_planned(
    coverage: &CoverageMap,
    occupied: &HashMap<UserId, Vec<Interval>>,
    claimed: &Segment,
    limit: SegmentLimit,
) -> bool {
    let Some(spans) = coverage.get(&claimed.user) else {
        return false;
    };
    let mut taken: Vec<Interval> = occupied.get(&claimed.user).cloned().unwrap_or_default();
    if let Some(own) = taken
        .iter()
        .position(|i| i.start == claimed.start && i.end == claimed.end)
    {
        taken.remove(own);
    }
    for segment in planner::cut(&claimed.user, spans, &taken, limit) {
        if segment.start < claimed.start {
            continue;
        }
        return segment.start == claimed.start
            && segment.end == claimed.end
            && segment.policy == claimed.policy
            && segment.end_mode == claimed.end_mode;
    }
    false
}

/// Puts `starts` in an order of this instance's own (`seed`, its id): a
/// pseudo-random permutation, the same for the same seed. Instances
/// sharing a database all plan the same starts; walking them each in its
/// own order (then [`fair_order`], which keeps each policy's order), they
/// claim different ones first and share a burst, where the same order
/// would let the first to plan take nearly all of it.
pub fn spread(starts: &mut [Start], seed: &str) {
    use std::hash::{Hash, Hasher};
    starts.sort_by_cached_key(|start| {
        let mut h = std::hash::DefaultHasher::new();
        seed.hash(&mut h);
        start.segment.user.hash(&mut h);
        start.segment.start.hash(&mut h);
        h.finish()
    });
}

/// Orders due starts round by round: the first due start of each policy,
/// then the second of each, and so on (policies by id within a round,
/// each policy's starts in their order). Starts are claimed and sent in
/// this order, so a policy of 2 users due at the same instant as one of
/// 100,000 is among the first sent, not the last.
pub fn fair_order(starts: &mut Vec<Start>) {
    let mut seen: HashMap<PolicyId, usize> = HashMap::new();
    let mut keyed: Vec<((usize, PolicyId), Start)> = std::mem::take(starts)
        .into_iter()
        .map(|start| {
            let policy = start.segment.policy;
            let round = seen.entry(policy).or_default();
            let key = (*round, policy);
            *round += 1;
            (key, start)
        })
        .collect();
    // Stable: within a round and policy, the order stays.
    keyed.sort_by_key(|(key, _)| *key);
    starts.extend(keyed.into_iter().map(|(_, start)| start));
}

/// How far a segment may run past coverage: the vendor's minimum, to
/// which a short remainder is padded.
const PAD: chrono::Duration =
    chrono::Duration::seconds(crate::recording::RecordingDuration::MIN_SECS as i64);

/// The end of the coverage interval holding `now`.
fn covered_until(spans: Option<&Arc<[Coverage]>>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    spans?
        .iter()
        .find(|c| c.start <= now && now < c.end)
        .map(|c| c.end)
}

/// What the first planning pass of a daemon on an empty database decides
/// for `policies` at `now`: the coverage from `now` to `now + limit`, no
/// occupied time, no open rows, then `decide`. The same pure work every
/// pass does; public so that the benchmark (`bench/`) can time the
/// planning of a burst without a database. The daemon itself never calls
/// it: its passes go through `dispatch`, which knows what is occupied.
pub fn first_pass(policies: &[Policy], now: DateTime<Utc>, limit: SegmentLimit) -> Plan {
    let horizon = chrono::Duration::seconds(i64::from(limit.as_secs()));
    let coverage = coverage(policies, now, now, horizon);
    decide(&coverage, &HashMap::new(), &[], now, limit)
}

/// Whether `now` lies inside one of the user's coverage intervals.
fn covered(spans: Option<&Arc<[Coverage]>>, now: DateTime<Utc>) -> bool {
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
