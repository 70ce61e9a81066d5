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
    let by_start = |c: &Coverage| (c.start, c.end);
    if coverage.is_sorted_by_key(by_start) {
        return cut(user, coverage, occupied, limit).collect();
    }
    let mut sorted = coverage.to_vec();
    sorted.sort_by_key(by_start);
    cut(user, &sorted, occupied, limit).collect()
}

/// The segments of [`segments`], one at a time, in start order, each cut
/// only when asked for: a planning pass that needs what is due now and
/// the next segment after it cuts those and no more, however long the
/// horizon. `coverage` must be sorted by start (as [`coverage`] makes it);
/// stretches out of order are a caller's bug and cut nothing after them
/// that overlaps what was already cut.
///
/// [`coverage`]: super::coverage
pub fn cut<'a>(
    user: &'a UserId,
    coverage: &'a [Coverage],
    occupied: &[Interval],
    limit: SegmentLimit,
) -> Segments<'a> {
    Segments {
        user,
        coverage,
        occupied: Occupied::new(occupied),
        limit: Duration::seconds(i64::from(limit.as_secs())),
        next_stretch: 0,
        at: None,
        made_until: None,
    }
}

const MIN: Duration = Duration::seconds(RecordingDuration::MIN_SECS as i64);

/// Iterator returned by [`cut`].
#[derive(Debug, Clone)]
pub struct Segments<'a> {
    user: &'a UserId,
    coverage: &'a [Coverage],
    occupied: Occupied,
    limit: Duration,
    /// The index of the next stretch to enter.
    next_stretch: usize,
    /// Where cutting stands in the current stretch.
    at: Option<At<'a>>,
    /// The end of the last segment made.
    made_until: Option<DateTime<Utc>>,
}

/// A position inside one stretch: `pos`, and the end of the free run
/// being cut when inside one.
#[derive(Debug, Clone, Copy)]
struct At<'a> {
    stretch: &'a Coverage,
    pos: DateTime<Utc>,
    run_end: Option<DateTime<Utc>>,
}

impl Iterator for Segments<'_> {
    type Item = Segment;

    fn next(&mut self) -> Option<Segment> {
        loop {
            let Some(mut at) = self.at else {
                let stretch = self.coverage.get(self.next_stretch)?;
                self.next_stretch += 1;
                if stretch.start < stretch.end {
                    let pos = self
                        .made_until
                        .map_or(stretch.start, |made| made.max(stretch.start));
                    self.at = Some(At {
                        stretch,
                        pos,
                        run_end: None,
                    });
                }
                continue;
            };
            let made = match at.run_end {
                Some(run_end) if at.pos < run_end => self.piece(&mut at, run_end),
                // The free run is cut (a last piece rounded up to whole
                // seconds may end past it): look for the next one.
                Some(run_end) => {
                    at.pos = run_end;
                    at.run_end = None;
                    None
                }
                None if at.pos >= at.stretch.end => {
                    self.at = None;
                    continue;
                }
                None => {
                    match self.occupied.holding(at.pos) {
                        Some(busy) => at.pos = busy.end,
                        None => {
                            let end = at.stretch.end;
                            at.run_end = Some(
                                self.occupied
                                    .next_start_after(at.pos)
                                    .map_or(end, |next| next.min(end)),
                            );
                        }
                    }
                    None
                }
            };
            self.at = Some(at);
            if made.is_some() {
                return made;
            }
        }
    }
}

impl Segments<'_> {
    /// The next piece of the free run `[at.pos, run_end)`, cut from its
    /// start; moves `at.pos` past it (to the run's end after a remainder).
    fn piece(&mut self, at: &mut At<'_>, run_end: DateTime<Utc>) -> Option<Segment> {
        let pos = at.pos;
        let left = ceil_to_seconds(run_end - pos);
        if left >= MIN {
            let piece = left.min(self.limit);
            at.pos = pos + piece;
            return self.make(at.stretch, pos, piece);
        }
        // A remainder under 5 s: pad it to 5 s.
        at.pos = run_end;
        let forward = Interval::new(pos, pos + MIN);
        let backward = Interval::new(pos + left - MIN, pos + left);
        if !self.occupied.overlaps(&forward) {
            self.make(at.stretch, forward.start, MIN)
        } else if !self.occupied.overlaps(&backward)
            && self.made_until.is_none_or(|made| made <= backward.start)
        {
            self.make(at.stretch, backward.start, MIN)
        } else {
            None
        }
    }

    fn make(
        &mut self,
        stretch: &Coverage,
        start: DateTime<Utc>,
        length: Duration,
    ) -> Option<Segment> {
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
            return None;
        };
        self.made_until = Some(end);
        Some(Segment {
            user: self.user.clone(),
            start,
            end,
            duration,
            policy,
            end_mode: stretch.end_mode,
        })
    }
}

/// The user's occupied time: widened to whole seconds, sorted, merged.
#[derive(Debug, Clone)]
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
