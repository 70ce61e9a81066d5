//! A half-open span of time, `[start, end)`, and merging of such spans.
//!
//! Every planner step speaks in half-open UTC spans, so "touching" and
//! "overlapping" mean the same thing everywhere. Depends on nothing.

use chrono::{DateTime, Utc};

/// A half-open span `[start, end)` in UTC; empty when `end <= start`.
///
/// The store hands the planner a user's already recorded or claimed time
/// as intervals (see [`segments`](super::segments)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct Interval {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Interval {
    pub fn new(start: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self { start, end }
    }

    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// `start <= t < end`.
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }

    /// Whether the two share a moment (touching is not overlapping).
    pub fn overlaps(&self, other: &Interval) -> bool {
        self.start < other.end && other.start < self.end
    }

    pub fn duration(&self) -> chrono::Duration {
        self.end - self.start
    }
}

/// Sorts and merges overlapping and touching intervals; drops empty ones.
/// The result is sorted, disjoint and non-touching.
pub(crate) fn merge(mut spans: Vec<Interval>) -> Vec<Interval> {
    spans.retain(|s| !s.is_empty());
    spans.sort_unstable();
    let mut merged: Vec<Interval> = Vec::with_capacity(spans.len());
    for span in spans {
        match merged.last_mut() {
            Some(last) if span.start <= last.end => last.end = last.end.max(span.end),
            _ => merged.push(span),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn iv(a: i64, b: i64) -> Interval {
        let t = |s| Utc.timestamp_opt(s, 0).unwrap();
        Interval::new(t(a), t(b))
    }

    #[test]
    fn touching_and_overlapping_intervals_merge() {
        assert_eq!(
            merge(vec![iv(10, 20), iv(0, 5), iv(5, 8), iv(15, 30), iv(40, 40)]),
            vec![iv(0, 8), iv(10, 30)]
        );
    }

    #[test]
    fn touching_is_not_overlapping() {
        assert!(!iv(0, 5).overlaps(&iv(5, 10)));
        assert!(iv(0, 6).overlaps(&iv(5, 10)));
        assert!(iv(0, 5).contains(iv(0, 5).start));
        assert!(!iv(0, 5).contains(iv(0, 5).end));
    }
}
