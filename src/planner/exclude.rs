//! Exclusions cut coverage: a policy's windows minus the exclusions that
//! apply to it (PRODUCT.md 14).
//!
//! Cut per policy, before the union: an exclusion of policy A leaves a
//! user covered where policy B still covers them. An exclusion for every
//! user of a policy is cut once from the policy's windows (users sharing
//! policies still share one union); one for a single user is cut only
//! from that user's copy. An exclusion only ever removes time.
//!
//! Pure: no clock, no I/O; depends on `policy` and `recording` only.

use super::interval::merge;
use super::Interval;
use crate::policy::Policy;
use crate::recording::UserId;

/// `runs` minus `cuts`. Both sorted and disjoint (as `merge` makes
/// them); so is the result, and every piece lies inside one run and
/// outside every cut.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsched::planner::{subtract, Interval};
/// let t = |s| Utc.timestamp_opt(s, 0).unwrap();
/// let iv = |a, b| Interval::new(t(a), t(b));
/// assert_eq!(
///     subtract(&[iv(0, 10), iv(20, 30)], &[iv(5, 25)]),
///     [iv(0, 5), iv(25, 30)]
/// );
/// ```
pub fn subtract(runs: &[Interval], cuts: &[Interval]) -> Vec<Interval> {
    let mut out = Vec::with_capacity(runs.len());
    // Cuts ending before a run cannot touch any later run either.
    let mut first = 0;
    for run in runs {
        while cuts.get(first).is_some_and(|c| c.end <= run.start) {
            first += 1;
        }
        let mut start = run.start;
        for cut in &cuts[first..] {
            if cut.start >= run.end {
                break;
            }
            if cut.start > start {
                out.push(Interval::new(start, cut.start));
            }
            start = start.max(cut.end);
            if start >= run.end {
                break;
            }
        }
        if start < run.end {
            out.push(Interval::new(start, run.end));
        }
    }
    out
}

/// The spans of `policy`'s exclusions that apply to every one of its
/// users, merged.
pub(crate) fn for_everyone(policy: &Policy) -> Vec<Interval> {
    merge(
        policy
            .exclusions
            .iter()
            .filter(|e| e.user.is_none())
            .map(|e| Interval::new(e.start, e.end))
            .collect(),
    )
}

/// The spans of `policy`'s exclusions for `user` alone, merged.
pub(crate) fn for_user(policy: &Policy, user: &UserId) -> Vec<Interval> {
    merge(
        policy
            .exclusions
            .iter()
            .filter(|e| e.user.as_ref() == Some(user))
            .map(|e| Interval::new(e.start, e.end))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::prelude::*;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(s, 0).unwrap()
    }

    fn iv(a: i64, b: i64) -> Interval {
        Interval::new(t(a), t(b))
    }

    #[test]
    fn a_cut_inside_a_run_splits_it() {
        assert_eq!(subtract(&[iv(0, 10)], &[iv(3, 4)]), [iv(0, 3), iv(4, 10)]);
    }

    #[test]
    fn cuts_covering_runs_remove_them() {
        assert!(subtract(&[iv(0, 10), iv(12, 14)], &[iv(-5, 20)]).is_empty());
        assert_eq!(subtract(&[iv(0, 10)], &[iv(0, 10)]), []);
    }

    #[test]
    fn touching_cuts_change_nothing() {
        assert_eq!(subtract(&[iv(5, 10)], &[iv(0, 5), iv(10, 15)]), [iv(5, 10)]);
    }

    #[test]
    fn no_cuts_keep_the_runs() {
        assert_eq!(subtract(&[iv(0, 1), iv(2, 3)], &[]), [iv(0, 1), iv(2, 3)]);
    }

    fn seconds(spans: &[Interval]) -> i64 {
        spans.iter().map(|s| s.duration().num_seconds()).sum()
    }

    fn covers(spans: &[Interval], at: DateTime<Utc>) -> bool {
        spans.iter().any(|s| s.contains(at))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Subtracting never adds time, leaves nothing of a cut, and
        /// removes only what a cut holds.
        #[test]
        fn subtract_removes_exactly_the_cut_time(
            raw_runs in prop::collection::vec((0i64..200, 1i64..40), 0..8),
            raw_cuts in prop::collection::vec((0i64..200, 1i64..40), 0..8),
        ) {
            let runs = merge(raw_runs.iter().map(|&(a, l)| iv(a, a + l)).collect());
            let cuts = merge(raw_cuts.iter().map(|&(a, l)| iv(a, a + l)).collect());
            let left = subtract(&runs, &cuts);
            prop_assert!(seconds(&left) <= seconds(&runs));
            for pair in left.windows(2) {
                prop_assert!(pair[0].end <= pair[1].start);
            }
            for s in 0..250 {
                let at = t(s);
                let expected = covers(&runs, at) && !covers(&cuts, at);
                prop_assert_eq!(covers(&left, at), expected, "at {}", s);
            }
        }
    }
}
