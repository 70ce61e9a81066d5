//! Segments: a user's coverage minus what is already recorded or claimed,
//! cut into vendor recordings of 5 s ..= the segment limit.
//!
//! Deterministic from durable state: `occupied` comes from the user's
//! recording rows, so re-planning after a restart yields the same
//! segments, and a chain continues where the last stored segment ended.
//! Each free run (a maximal piece of coverage that is not occupied) is
//! cut from its start into pieces of exactly the limit, the last piece
//! shorter.
//!
//! A remainder under 5 s (the vendor's minimum) is padded to 5 s rather
//! than dropped, so its end lies up to 5 s past the free run. Because the
//! vendor ignores a start while the user is already being recorded, the
//! padding never reaches into occupied time: when forward padding would,
//! the 5 s are placed to end with the run instead (if that time is free
//! and after the previous segment); when neither fits, the remainder is
//! squeezed between recordings and is dropped (less than 5 s lost, where
//! an overlap would lose a whole recording). A padded segment that runs
//! into the next coverage stretch moves that stretch's first segment to
//! its end, so segments never overlap.
//!
//! Pure: no clock, no I/O; the store turns rows into `occupied`
//! intervals, this module never sees a row.

use chrono::{DateTime, Duration, Utc};

use super::{Coverage, Interval};
use crate::policy::{EndMode, PolicyId};
use crate::recording::{DurationError, RecordingDuration, UserId};

/// The longest segment the planner makes: 5 ..= 13200 s (the API's
/// range), 12600 s by default (3 h 30 min, which both readings of the
/// API page allow).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(transparent)]
pub struct SegmentLimit(u32);

impl SegmentLimit {
    pub const DEFAULT: Self = Self(RecordingDuration::DEFAULT_LIMIT_SECS);

    /// Accepts the API's range, 5 ..= 13200 s.
    pub fn from_secs(secs: i64) -> Result<Self, DurationError> {
        RecordingDuration::from_secs(secs).map(Self::from)
    }

    pub fn as_secs(self) -> u32 {
        self.0
    }
}

impl Default for SegmentLimit {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl From<RecordingDuration> for SegmentLimit {
    fn from(duration: RecordingDuration) -> Self {
        Self(duration.as_secs())
    }
}

impl<'de> serde::Deserialize<'de> for SegmentLimit {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let secs = i64::deserialize(d)?;
        Self::from_secs(secs).map_err(serde::de::Error::custom)
    }
}

/// One vendor recording: `[start, end)` with `end = start + duration`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Segment {
    pub user: UserId,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub duration: RecordingDuration,
    /// The lowest-id policy whose window contains `start`.
    pub policy: PolicyId,
    /// The coverage stretch's end mode.
    pub end_mode: EndMode,
}

impl Segment {
    pub fn interval(&self) -> Interval {
        Interval::new(self.start, self.end)
    }
}

/// Cuts `coverage` minus `occupied` into segments of at most `limit`.
///
/// `coverage` is one user's (as from [`coverage`](super::coverage));
/// `occupied` are that user's intervals already recorded or claimed, in
/// any order, overlapping or not; they are widened to whole seconds.
/// See the module docs for where the chain starts and how a remainder
/// under 5 s is handled.
///
/// ```
/// use std::collections::BTreeSet;
/// use chrono::{Duration, TimeZone, Utc};
/// use recsched::planner::{segments, Coverage, Interval, SegmentLimit};
/// use recsched::policy::{EndMode, PolicyId};
/// use recsched::recording::UserId;
///
/// let ann = UserId::parse("ann").unwrap();
/// let start = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
/// let hours = |h| start + Duration::hours(h);
/// let stretch = Coverage {
///     start,
///     end: hours(8),
///     policies: BTreeSet::from([PolicyId::new(1)]),
///     end_mode: EndMode::Expire,
///     contributions: vec![],
/// };
/// // The first 3.5 h are already recorded: the chain continues from there.
/// let done = [Interval::new(start, start + Duration::seconds(12_600))];
/// let cut = segments(&ann, &[stretch], &done, SegmentLimit::DEFAULT);
/// let secs: Vec<u32> = cut.iter().map(|s| s.duration.as_secs()).collect();
/// assert_eq!(secs, [12_600, 3_600]);
/// assert_eq!(cut[0].start, start + Duration::seconds(12_600));
/// assert_eq!(cut[1].end, hours(8));
/// ```
pub fn segments(
    user: &UserId,
    coverage: &[Coverage],
    occupied: &[Interval],
    limit: SegmentLimit,
) -> Vec<Segment> {
    let occupied = Occupied::new(occupied);
    let mut stretches: Vec<&Coverage> = coverage.iter().filter(|c| c.start < c.end).collect();
    stretches.sort_by_key(|c| (c.start, c.end));

    let mut cutter = Cutter {
        user,
        occupied: &occupied,
        limit: Duration::seconds(i64::from(limit.as_secs())),
        made_until: None,
        out: Vec::new(),
    };
    for stretch in stretches {
        cutter.cut_stretch(stretch);
    }
    cutter.out
}

const MIN: Duration = Duration::seconds(RecordingDuration::MIN_SECS as i64);

struct Cutter<'a> {
    user: &'a UserId,
    occupied: &'a Occupied,
    limit: Duration,
    /// The end of the last segment made.
    made_until: Option<DateTime<Utc>>,
    out: Vec<Segment>,
}

impl Cutter<'_> {
    fn cut_stretch(&mut self, stretch: &Coverage) {
        let mut pos = self
            .made_until
            .map_or(stretch.start, |made| made.max(stretch.start));
        while pos < stretch.end {
            if let Some(busy) = self.occupied.holding(pos) {
                pos = busy.end;
                continue;
            }
            let run_end = self
                .occupied
                .next_start_after(pos)
                .map_or(stretch.end, |next| next.min(stretch.end));
            self.cut_run(stretch, pos, run_end);
            pos = run_end;
        }
    }

    /// Cuts one free run `[start, end)` from its start.
    fn cut_run(&mut self, stretch: &Coverage, start: DateTime<Utc>, end: DateTime<Utc>) {
        let mut pos = start;
        while pos < end {
            let left = ceil_to_seconds(end - pos);
            if left >= MIN {
                let piece = left.min(self.limit);
                self.make(stretch, pos, piece);
                pos += piece;
                continue;
            }
            // A remainder under 5 s: pad it to 5 s.
            let forward = Interval::new(pos, pos + MIN);
            let backward = Interval::new(pos + left - MIN, pos + left);
            if !self.occupied.overlaps(&forward) {
                self.make(stretch, forward.start, MIN);
            } else if !self.occupied.overlaps(&backward)
                && self.made_until.is_none_or(|made| made <= backward.start)
            {
                self.make(stretch, backward.start, MIN);
            }
            return;
        }
    }

    fn make(&mut self, stretch: &Coverage, start: DateTime<Utc>, length: Duration) {
        let end = start + length;
        let policy = stretch
            .policy_at(start)
            .or_else(|| {
                stretch
                    .contributions
                    .iter()
                    .filter(|c| c.interval.overlaps(&Interval::new(start, end)))
                    .map(|c| c.policy)
                    .min()
            })
            .or_else(|| stretch.policies.first().copied());
        // `length` is within 5 ..= limit <= 13200 s, so the duration is
        // always valid; a stretch without any policy cannot be attributed.
        let (Some(policy), Ok(duration)) =
            (policy, RecordingDuration::from_secs(length.num_seconds()))
        else {
            return;
        };
        self.out.push(Segment {
            user: self.user.clone(),
            start,
            end,
            duration,
            policy,
            end_mode: stretch.end_mode,
        });
        self.made_until = Some(end);
    }
}

/// The user's occupied time: widened to whole seconds, sorted, merged.
struct Occupied(Vec<Interval>);

impl Occupied {
    fn new(raw: &[Interval]) -> Self {
        let widened = raw
            .iter()
            .filter(|i| !i.is_empty())
            .map(|i| Interval::new(floor_to_second(i.start), ceil_to_second(i.end)))
            .collect();
        Self(super::interval::merge(widened))
    }

    /// The occupied interval holding `t`, if any.
    fn holding(&self, t: DateTime<Utc>) -> Option<Interval> {
        let i = self.0.partition_point(|busy| busy.end <= t);
        self.0.get(i).filter(|busy| busy.start <= t).copied()
    }

    /// The start of the first occupied interval after `t`.
    fn next_start_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let i = self.0.partition_point(|busy| busy.start <= t);
        self.0.get(i).map(|busy| busy.start)
    }

    fn overlaps(&self, span: &Interval) -> bool {
        let i = self.0.partition_point(|busy| busy.end <= span.start);
        self.0.get(i).is_some_and(|busy| busy.overlaps(span))
    }
}

fn ceil_to_seconds(d: Duration) -> Duration {
    let whole = Duration::seconds(d.num_seconds());
    if d > whole {
        whole + Duration::seconds(1)
    } else {
        whole
    }
}

fn floor_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn ceil_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    if t.timestamp_subsec_nanos() == 0 {
        return t;
    }
    t.timestamp()
        .checked_add(1)
        .and_then(|s| DateTime::from_timestamp(s, 0))
        .unwrap_or(t)
}

#[cfg(test)]
mod tests;
