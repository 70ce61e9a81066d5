//! Window start instants: a policy's cron read in its zone, with Vixie
//! cron's daylight-saving rule (PRODUCT.md, behaviour 5).
//!
//! The cron is matched against wall-clock time (croner, through
//! [`ZonedCron::next_local_match`]); this module alone decides which
//! instants a matching wall-clock time becomes:
//!
//! - a time that exists once becomes that instant;
//! - a time skipped by a spring-forward gap: a [`JobKind::Wildcard`] job
//!   (seconds, minute or hour field starting with `*`) follows the clock
//!   and does not fire; any other ([`JobKind::Fixed`]) job fires once at
//!   the first instant after the gap;
//! - a time repeated by a fall-back fold: a wildcard job fires in both
//!   passes, a fixed job once, in the first pass.
//!
//! Croner 4 applies the same rule when a time field is a single value or
//! starts with `*`, but counts lists, ranges and stepped ranges
//! (`30 1,2 * * *`, `0 2-3 * * *`) as wildcard jobs, where Vixie cron
//! counts them as fixed. So the rule is applied here, on wall-clock
//! matches, and croner's zoned search serves only as a test oracle.
//!
//! Pure: no clock, no I/O; depends on `policy` only.

use std::collections::VecDeque;

use chrono::{DateTime, Duration, LocalResult, NaiveDateTime, Offset, TimeZone, Utc};
use chrono_tz::{GapInfo, Tz};

use crate::policy::{JobKind, ZonedCron};

/// The window start instants of `cron` at or after `from`, strictly
/// increasing, following the DST rule in the module docs. Ends only
/// past year 5000.
///
/// ```
/// use chrono::{TimeZone, Utc};
/// use recsched::planner::window_starts;
/// use recsched::policy::ZonedCron;
///
/// // 02:30 does not exist in Amsterdam on 29 March 2026: the fixed job
/// // fires at the first instant after the gap, 03:00 CEST (01:00 UTC).
/// let cron = ZonedCron::new("30 2 * * *", chrono_tz::Europe::Amsterdam).unwrap();
/// let from = Utc.with_ymd_and_hms(2026, 3, 28, 12, 0, 0).unwrap();
/// let starts: Vec<_> = window_starts(&cron, from).take(2).collect();
/// assert_eq!(starts, [
///     Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap(),
///     Utc.with_ymd_and_hms(2026, 3, 30, 0, 30, 0).unwrap(),
/// ]);
/// ```
pub fn window_starts(cron: &ZonedCron, from: DateTime<Utc>) -> WindowStarts<'_> {
    let mut starts = WindowStarts {
        cron,
        from,
        next_wall: None,
        queue: VecDeque::new(),
        last: None,
    };
    let Some(first) = ceil_to_second(from) else {
        return starts;
    };
    let tz = cron.timezone();
    let wall = first.with_timezone(&tz).naive_local();
    starts.next_wall = Some(wall);
    // Starting inside a fold: which pass `from` is in decides what is left.
    if let LocalResult::Ambiguous(a, b) = tz.from_local_datetime(&wall) {
        let in_second_pass = b.to_utc() == first;
        if let Some(fold) = Fold::around(tz, a.to_utc(), b.to_utc()) {
            match (cron.kind(), in_second_pass) {
                (JobKind::Wildcard, false) => starts.push_fold(Some(wall), fold.start_wall, &fold),
                (JobKind::Wildcard, true) => starts.push_fold(None, wall, &fold),
                // A fixed job's fold times fired in the first pass, all before `from`.
                (JobKind::Fixed, true) => starts.next_wall = Some(fold.end_wall),
                (JobKind::Fixed, false) => {}
            }
        }
    }
    starts
}

/// Iterator returned by [`window_starts`].
#[derive(Debug, Clone)]
pub struct WindowStarts<'a> {
    cron: &'a ZonedCron,
    from: DateTime<Utc>,
    /// The wall-clock time to search on from (inclusive); `None` when done.
    next_wall: Option<NaiveDateTime>,
    /// Instants found but not yet handed out, in order: a fold yields a
    /// whole batch at once.
    queue: VecDeque<DateTime<Utc>>,
    /// The last instant handed out; keeps the output strictly increasing
    /// when two gap times meet at the same first instant after the gap.
    last: Option<DateTime<Utc>>,
}

impl Iterator for WindowStarts<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            while let Some(t) = self.queue.pop_front() {
                if t >= self.from && self.last.is_none_or(|last| t > last) {
                    self.last = Some(t);
                    return Some(t);
                }
            }
            self.advance()?;
        }
    }
}

impl WindowStarts<'_> {
    /// Finds the next matching wall-clock time and queues its instants.
    fn advance(&mut self) -> Option<()> {
        let tz = self.cron.timezone();
        let wall = self.cron.next_local_match(self.next_wall.take()?)?;
        let after = wall.checked_add_signed(Duration::seconds(1));
        match tz.from_local_datetime(&wall) {
            LocalResult::Single(t) => {
                self.queue.push_back(t.to_utc());
                self.next_wall = after;
            }
            LocalResult::None => {
                if self.cron.kind() == JobKind::Fixed {
                    if let Some(end) = GapInfo::new(&wall, &tz).and_then(|gap| gap.end) {
                        self.queue.push_back(end.to_utc());
                    }
                }
                self.next_wall = after;
            }
            LocalResult::Ambiguous(a, b) => match self.cron.kind() {
                JobKind::Fixed => {
                    self.queue.push_back(a.to_utc());
                    self.next_wall = after;
                }
                JobKind::Wildcard => {
                    let fold = Fold::around(tz, a.to_utc(), b.to_utc())?;
                    self.push_fold(Some(wall), fold.start_wall, &fold);
                }
            },
        }
        Some(())
    }

    /// Queues a wildcard job's fold in instant order: first-pass matches
    /// from `first_from` (if any), then second-pass matches from
    /// `second_from`; the walk resumes after the fold.
    fn push_fold(
        &mut self,
        first_from: Option<NaiveDateTime>,
        second_from: NaiveDateTime,
        fold: &Fold,
    ) {
        let passes = [
            first_from.map(|from| (from, fold.first_offset)),
            Some((second_from, fold.second_offset)),
        ];
        for (mut wall, offset) in passes.into_iter().flatten() {
            while let Some(hit) = self.cron.next_local_match(wall) {
                if hit >= fold.end_wall {
                    break;
                }
                if let Some(instant) = hit.checked_sub_signed(offset) {
                    self.queue.push_back(instant.and_utc());
                }
                match hit.checked_add_signed(Duration::seconds(1)) {
                    Some(next) => wall = next,
                    None => break,
                }
            }
        }
        self.next_wall = Some(fold.end_wall);
    }
}

/// A range of wall-clock times that occurs twice: `[start_wall, end_wall)`,
/// first at `first_offset` from UTC, then at `second_offset`.
#[derive(Debug, Clone, Copy)]
struct Fold {
    start_wall: NaiveDateTime,
    end_wall: NaiveDateTime,
    first_offset: Duration,
    second_offset: Duration,
}

impl Fold {
    /// The fold holding a wall-clock time whose two instants are
    /// `earlier` and `later`: the transition lies in `(earlier, later]`.
    fn around(tz: Tz, earlier: DateTime<Utc>, later: DateTime<Utc>) -> Option<Self> {
        let offset = |secs: i64| -> Option<i32> {
            let t = DateTime::from_timestamp(secs, 0)?;
            Some(
                tz.offset_from_utc_datetime(&t.naive_utc())
                    .fix()
                    .local_minus_utc(),
            )
        };
        let first = offset(earlier.timestamp())?;
        let second = offset(later.timestamp())?;
        // Binary search for the first second at the later offset.
        let (mut lo, mut hi) = (earlier.timestamp(), later.timestamp());
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if offset(mid)? == first {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        let transition = DateTime::from_timestamp(hi, 0)?.naive_utc();
        let first_offset = Duration::seconds(i64::from(first));
        let second_offset = Duration::seconds(i64::from(second));
        Some(Self {
            start_wall: transition.checked_add_signed(second_offset)?,
            end_wall: transition.checked_add_signed(first_offset)?,
            first_offset,
            second_offset,
        })
    }
}

/// Cron times are whole seconds: the first whole second at or after `t`.
fn ceil_to_second(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if t.timestamp_subsec_nanos() == 0 {
        Some(t)
    } else {
        DateTime::from_timestamp(t.timestamp().checked_add(1)?, 0)
    }
}

#[cfg(test)]
mod tests;
