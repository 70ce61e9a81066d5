//! Coverage: for each user, the union of the windows of every enabled
//! policy naming them (PRODUCT.md "Words"), each policy's windows cut by
//! its exclusions first (`exclude`). The user must be recorded at every
//! moment of coverage, and only then.
//!
//! Built for many users: each policy's windows are computed once (one
//! cron walk per policy, never per user), users sharing the same set of
//! active policies share one union, and policies with no window in the
//! horizon are dropped before any user is looked at.
//!
//! Invariant: per user, stretches are sorted, disjoint and non-touching.
//! Pure: no clock, no I/O; depends on `policy` and `recording` only.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::interval::merge;
use super::{exclude, windows, Interval};
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

/// For each user named by an enabled policy with a window meeting
/// `[from, until)`: the union of those windows, with overlapping and
/// touching windows merged; sorted, disjoint and non-touching. Users
/// without such a window are absent.
///
/// Stretches are whole unions of the windows found, not clipped to the
/// horizon, so a stretch may begin before `from` or end after `until`.
/// A window that ended before `from` is not looked at, even if it
/// touched one that is still open: the part already past is the store's
/// to know (see [`segments`](super::segments)'s `occupied`).
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
pub fn coverage(
    policies: &[Policy],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> BTreeMap<UserId, Vec<Coverage>> {
    // Each enabled policy's windows, once, merged into runs, minus its
    // exclusions for all its users.
    let active: Vec<(&Policy, Vec<Interval>)> = policies
        .iter()
        .filter(|p| p.enabled)
        .filter_map(|p| {
            let runs = merge(
                windows(p, from, until)
                    .iter()
                    .map(|w| w.interval())
                    .collect(),
            );
            let runs = exclude::subtract(&runs, &exclude::for_everyone(p));
            (!runs.is_empty()).then_some((p, runs))
        })
        .collect();

    // Which active policies name each user, as ascending indices.
    let mut by_user: HashMap<&UserId, Vec<usize>> = HashMap::new();
    for (index, (policy, _)) in active.iter().enumerate() {
        for user in &policy.users {
            by_user.entry(user).or_default().push(index);
        }
    }

    // Users with the same policies get the same union, computed once.
    let mut unions: HashMap<Vec<usize>, Vec<Coverage>> = HashMap::new();
    let mut plan: Vec<(UserId, Vec<Coverage>)> = Vec::with_capacity(by_user.len());
    for (user, indices) in by_user {
        if exclude::has_personal(
            indices.iter().filter_map(|&i| active.get(i)).map(|a| a.0),
            user,
        ) {
            // Exclusions of this user alone: a union of its own.
            let own: Vec<(&Policy, Vec<Interval>)> = indices
                .iter()
                .filter_map(|&i| active.get(i))
                .map(|(p, runs)| (*p, exclude::subtract(runs, &exclude::for_user(p, user))))
                .collect();
            let union = union_of(&own, &(0..own.len()).collect::<Vec<_>>());
            if !union.is_empty() {
                plan.push((user.clone(), union));
            }
            continue;
        }
        let union = unions
            .entry(indices)
            .or_insert_with_key(|indices| union_of(&active, indices));
        plan.push((user.clone(), union.clone()));
    }
    // Sorted first, a BTreeMap is built in one pass.
    plan.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    plan.into_iter().collect()
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
