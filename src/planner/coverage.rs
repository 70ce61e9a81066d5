//! Coverage: for each user, the union of the windows of every enabled
//! policy naming them (PRODUCT.md "Words"), each policy's windows cut by
//! its exclusions first (`exclude`). The user must be recorded at every
//! moment of coverage, and only then.
//!
//! Built for many users: each policy's windows are found once per pass
//! (one [`walk`](super::walk) per policy, never per user, at a cost
//! bounded by [`WALK_LIMIT`](super::WALK_LIMIT)), policies with no window
//! in the horizon are dropped before any user is looked at, and users
//! sharing the same set of active policies share one union: one
//! allocation, behind an [`Arc`], whether 2 users or 100,000 hold it.
//!
//! Invariant: per user, stretches are sorted, disjoint and non-touching.
//! Pure: no clock, no I/O; depends on `policy` and `recording` only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::interval::merge;
use super::walk::walk;
#[cfg(test)]
use super::WALK_LIMIT;
use super::{exclude, Interval};
use crate::policy::{EndMode, Policy, PolicyId};
use crate::recording::UserId;

/// One maximal stretch of a user's coverage, `[start, end)`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Coverage {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Every policy with a window in this stretch.
    pub policies: BTreeSet<PolicyId>,
    /// `Stop` if any contributing policy is `stop`.
    pub end_mode: EndMode,
    /// Where each policy covers the stretch: one entry per maximal run of
    /// that policy's own (merged) windows, by start. A segment names the
    /// lowest-id policy whose window holds its start.
    pub contributions: Vec<Contribution>,
}

/// A run of one policy's windows inside a [`Coverage`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Contribution {
    pub policy: PolicyId,
    pub interval: Interval,
}

impl Coverage {
    pub fn interval(&self) -> Interval {
        Interval::new(self.start, self.end)
    }

    /// The lowest-id policy whose window contains `t`.
    pub fn policy_at(&self, t: DateTime<Utc>) -> Option<PolicyId> {
        self.contributions
            .iter()
            .filter(|c| c.interval.contains(t))
            .map(|c| c.policy)
            .min()
    }
}

/// Each user's coverage, one shared copy per distinct union.
pub type CoverageMap = BTreeMap<UserId, Arc<[Coverage]>>;

/// For each user named by an enabled policy with a window meeting
/// `[from, until)`: the union of those windows, with overlapping and
/// touching windows merged; sorted, disjoint and non-touching. Users
/// without such a window are absent. Users with the same policies (and
/// no exclusion of their own) hold the same [`Arc`].
///
/// Stretches are whole unions of the windows found, not clipped to the
/// horizon, so a stretch may begin before `from` or end after `until`.
/// A window that ended before `from` is not looked at, even if it
/// touched one that is still open: the part already past is the store's
/// to know (see [`segments`](super::segments)'s `occupied`).
///
/// Walks every window start it needs, however many (a report over a
/// month); a planning pass uses [`cover`], which bounds the walk.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsched::planner::coverage;
/// use recsched::policy::{EndMode, Policy, PolicyRow};
/// use recsched::recording::UserId;
///
/// let row = |id, cron: &str, end_mode: &str| PolicyRow {
///     id,
///     name: format!("p{id}"),
///     enabled: true,
///     cron: cron.into(),
///     timezone: "UTC".into(),
///     window_seconds: 3600,
///     end_mode: end_mode.into(),
///     users: vec!["ann".into()],
///     teams: vec![],
/// };
/// let policies = [
///     Policy::from_row(&row(1, "0 9 * * *", "expire")).unwrap(),
///     Policy::from_row(&row(2, "30 9 * * *", "stop")).unwrap(),
/// ];
/// let at = |h, m| Utc.with_ymd_and_hms(2026, 1, 1, h, m, 0).unwrap();
/// let plan = coverage(&policies, at(8, 0), at(12, 0));
/// let ann = &plan[&UserId::parse("ann").unwrap()];
/// assert_eq!(ann.len(), 1);
/// assert_eq!((ann[0].start, ann[0].end), (at(9, 0), at(10, 30)));
/// assert_eq!(ann[0].end_mode, EndMode::Stop);
/// ```
pub fn coverage(policies: &[Policy], from: DateTime<Utc>, until: DateTime<Utc>) -> CoverageMap {
    cover(policies, from, from, until, u64::MAX).users
}

/// What a planning pass covers, what finding it cost, and where a walk
/// stopped at its limit.
#[derive(Debug, Clone, Default)]
pub struct Covered {
    /// As from [`coverage`], except where a walk stopped (below).
    pub users: CoverageMap,
    /// Window starts walked, over every policy.
    pub walked: u64,
    /// The most window starts walked for one policy.
    pub most_walked: u64,
    /// The earliest instant a walk of what was missed before `now`
    /// stopped at (windows opening from there on are not in `users`):
    /// the next pass must plan from there, at once.
    pub behind_until: Option<DateTime<Utc>>,
    /// The earliest instant a walk ahead of `now` stopped at: `users`
    /// holds no window opening at or after it, so the next pass must come
    /// by then.
    pub ahead_until: Option<DateTime<Utc>>,
}

/// The coverage of one planning pass: windows meeting `[from, until)`
/// (`from` is `now`, or earlier after a restart or a forward clock step),
/// walked in two spans, what was missed (`from` to `now`) and what lies
/// ahead (`now` to `until`), each at most `limit` window starts per
/// policy. A walk that stops keeps every window opening before its stop
/// (see [`Covered`]); the span ahead always covers `now` itself, so the
/// coverage of the present is always whole.
pub fn cover(
    policies: &[Policy],
    from: DateTime<Utc>,
    now: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Covered {
    let mut out = Covered::default();
    let from = from.min(now);
    let earliest = |a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>| match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    // Each enabled policy's windows, once, merged into runs, minus its
    // exclusions for all its users.
    let mut active: Vec<(&Policy, Vec<Interval>)> = Vec::new();
    for policy in policies.iter().filter(|p| p.enabled) {
        let length = policy.window.as_duration();
        let ahead = walk(&policy.cron, length, now, until, limit);
        let mut runs = ahead.runs;
        let mut walked = ahead.walked;
        out.ahead_until = earliest(out.ahead_until, ahead.stopped_at);
        if from < now {
            let behind = walk(&policy.cron, length, from, now, limit);
            runs = merge([behind.runs, runs].concat());
            walked += behind.walked;
            out.behind_until = earliest(out.behind_until, behind.stopped_at);
        }
        out.walked += walked;
        out.most_walked = out.most_walked.max(walked);
        let runs = exclude::subtract(&runs, &exclude::for_everyone(policy));
        if !runs.is_empty() {
            active.push((policy, runs));
        }
    }
    out.users = by_user(&active);
    out
}

/// Every user's union, computed once per distinct set of policies.
///
/// Each policy's users are already sorted: merging those lists (rather
/// than hashing every user) yields each user once, in order, with the
/// ascending indices of the policies naming them ([`MergeUsers`]), and
/// the map is built from sorted input in one pass.
fn by_user(active: &[(&Policy, Vec<Interval>)]) -> CoverageMap {
    // Per policy, the users with exclusions of their own (usually none).
    let personal: Vec<BTreeSet<&UserId>> = active
        .iter()
        .map(|(p, _)| {
            p.exclusions
                .iter()
                .filter_map(|e| e.user.as_ref())
                .collect()
        })
        .collect();
    let mut shared: HashMap<Vec<usize>, Arc<[Coverage]>> = HashMap::new();
    let mut plan: Vec<(UserId, Arc<[Coverage]>)> = Vec::new();
    let mut indices: Vec<usize> = Vec::new();
    let mut last: Option<(Vec<usize>, Arc<[Coverage]>)> = None;
    let mut users = MergeUsers::new(active);
    while let Some(user) = users.next(&mut indices) {
        if indices
            .iter()
            .any(|&i| personal.get(i).is_some_and(|p| p.contains(user)))
        {
            // Exclusions of this user alone: a union of its own.
            let own: Vec<(&Policy, Vec<Interval>)> = indices
                .iter()
                .filter_map(|&i| active.get(i))
                .map(|(p, runs)| (*p, exclude::subtract(runs, &exclude::for_user(p, user))))
                .collect();
            let union = union_of(&own, &(0..own.len()).collect::<Vec<_>>());
            if !union.is_empty() {
                plan.push((user.clone(), union.into()));
            }
            continue;
        }
        // Neighbours mostly share their policies: skip the lookup then.
        let union = match &last {
            Some((same, union)) if *same == indices => union.clone(),
            _ => {
                let union = shared
                    .entry(indices.clone())
                    .or_insert_with(|| union_of(active, &indices).into())
                    .clone();
                last = Some((indices.clone(), union.clone()));
                union
            }
        };
        plan.push((user.clone(), union));
    }
    plan.into_iter().collect()
}

/// Every user of the `active` policies once, in order, with the indices of
/// the policies naming them, ascending: a k-way merge of the policies'
/// sorted user sets.
struct MergeUsers<'a> {
    lists: Vec<std::collections::btree_set::Iter<'a, UserId>>,
    heads: std::collections::BinaryHeap<std::cmp::Reverse<(&'a UserId, usize)>>,
}

impl<'a> MergeUsers<'a> {
    fn new(active: &'a [(&'a Policy, Vec<Interval>)]) -> Self {
        let mut lists: Vec<_> = active.iter().map(|(p, _)| p.users.iter()).collect();
        let heads = lists
            .iter_mut()
            .enumerate()
            .filter_map(|(i, list)| list.next().map(|u| std::cmp::Reverse((u, i))))
            .collect();
        Self { lists, heads }
    }

    /// The next user; `named` is set to the indices of its policies.
    fn next(&mut self, named: &mut Vec<usize>) -> Option<&'a UserId> {
        let std::cmp::Reverse((user, first)) = self.heads.pop()?;
        named.clear();
        named.push(first);
        while let Some(std::cmp::Reverse((_, i))) = self
            .heads
            .peek_mut()
            .filter(|head| head.0 .0 == user)
            .map(std::collections::binary_heap::PeekMut::pop)
        {
            named.push(i);
        }
        for &i in named.iter() {
            if let Some(next) = self.lists.get_mut(i).and_then(Iterator::next) {
                self.heads.push(std::cmp::Reverse((next, i)));
            }
        }
        named.sort_unstable();
        Some(user)
    }
}

/// Merges the runs of the policies at `indices` into coverage stretches.
fn union_of(active: &[(&Policy, Vec<Interval>)], indices: &[usize]) -> Vec<Coverage> {
    let mut pieces: Vec<(Interval, &Policy)> = indices
        .iter()
        .filter_map(|&i| active.get(i))
        .flat_map(|(policy, runs)| runs.iter().map(move |run| (*run, *policy)))
        .collect();
    pieces.sort_by_key(|(run, policy)| (run.start, policy.id));

    let mut stretches: Vec<Coverage> = Vec::new();
    for (run, policy) in pieces {
        let contribution = Contribution {
            policy: policy.id,
            interval: run,
        };
        match stretches.last_mut() {
            Some(last) if run.start <= last.end => {
                last.end = last.end.max(run.end);
                last.policies.insert(policy.id);
                last.end_mode = last.end_mode.max(policy.end_mode);
                last.contributions.push(contribution);
            }
            _ => stretches.push(Coverage {
                start: run.start,
                end: run.end,
                policies: BTreeSet::from([policy.id]),
                end_mode: policy.end_mode,
                contributions: vec![contribution],
            }),
        }
    }
    stretches
}

#[cfg(test)]
mod tests;
