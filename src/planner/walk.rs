//! The runs of one policy's windows: its windows meeting a span, merged
//! where they overlap or touch, found at a cost bounded by the runs and
//! not by the number of window starts.
//!
//! Walking every window start is what a plain merge does, and it costs
//! what the cron says, not what is due: `* * * * * *` with a window of
//! 604,800 s has 617,400 starts whose windows meet a 3.5 h horizon, all
//! of them one run. Inside a run no start needs to be seen: any start no
//! later than the run's current end extends it to that start plus the
//! window length, and every start skipped lies inside. So the walk jumps:
//! it guesses that the gap between the last two starts repeats and looks
//! for a start just before the run's end (one look); when the guess
//! misses, it searches for the latest start before the end by halving
//! (about log2 of the window length in looks). A run costs about two
//! looks per window length it spans, a lone window one look.
//!
//! Each look at a window start counts as one start walked, and a walk
//! may stop after [`WALK_LIMIT`] of them (the caller picks the limit):
//! it then says where it stopped, and every window opening before that
//! instant is in its runs, none opening at or after it. It never stops
//! before it has walked past `from` (the run holding `from` costs at
//! most a few dozen looks, whatever the window length), so the caller
//! always knows the coverage of the instant it plans from.
//!
//! Pure: no clock, no I/O; depends on `policy` and the planner's
//! [`window_starts`](super::window_starts) only, so the DST rule stays
//! there.

use chrono::{DateTime, Duration, Utc};

use super::{window_starts, Interval, WindowStarts};
use crate::policy::ZonedCron;

/// The most window starts one planning pass walks for one policy, in each
/// of the two spans it plans: what lies ahead (`now` to the horizon) and,
/// after a restart or a forward clock step, what was missed before `now`.
///
/// Ahead, no legal policy comes near it: overlapping windows are jumped
/// over (two looks per window length where the cron is regular, about
/// log2 of the length where it is not), and the worst rows, seconds as
/// dense and irregular as a cron allows with the shortest windows, walk
/// under 9,000 starts over the longest horizon (13,200 s); about 0.3 us
/// each. Behind, a long outage with short windows can exceed it (a 5 s
/// window every 10 s for a week is 60,480 windows): the pass then plans
/// what it walked and the next one, at once, goes on from where it
/// stopped, so nothing is skipped. Should a walk ahead ever stop, the
/// pass plans up to that instant and the next pass comes by then.
pub const WALK_LIMIT: u64 = 20_000;

/// The merged windows of one policy meeting a span, and what finding them
/// cost.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Walk {
    /// Sorted, disjoint and non-touching.
    pub runs: Vec<Interval>,
    /// Window starts looked at.
    pub walked: u64,
    /// Set when the walk stopped at its limit before `until`: every window
    /// opening before this instant is in `runs`, none opening at or after
    /// it. Always after `from`.
    pub stopped_at: Option<DateTime<Utc>>,
}

/// The runs of the windows `[start, start + length)` of `cron` that meet
/// `[from, until)`, i.e. with `start < until` and `start + length > from`;
/// whole windows, not clipped to the span. Stops once `limit` starts were
/// walked, but not before a start after `from` (see the module docs).
pub(crate) fn walk(
    cron: &ZonedCron,
    length: Duration,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: u64,
) -> Walk {
    let mut out = Walk::default();
    let Some(look_back) = from.checked_sub_signed(length) else {
        return out;
    };
    // Starts are whole seconds: the latest one before `until`.
    let Some(last_ok) = last_second_before(until) else {
        return out;
    };
    let mut cursor = Cursor::new(cron);
    // A window opening exactly `length` before `from` ends at `from`.
    cursor.seek(look_back);
    if cursor.peek() == Some(look_back) {
        cursor.advance();
    }
    while let Some(run_start) = cursor.peek().filter(|s| *s <= last_ok) {
        if cursor.walked >= limit && run_start > from {
            out.stopped_at = Some(run_start);
            break;
        }
        let mut last = run_start;
        cursor.advance();
        loop {
            let end = last + length;
            let Some(next) = cursor.peek().filter(|s| *s <= end && *s <= last_ok) else {
                break;
            };
            if cursor.walked >= limit && next > from {
                // Cut here: the run so far, and the walk resumes at `next`.
                out.runs.push(Interval::new(run_start, end));
                out.stopped_at = Some(next);
                out.walked = cursor.walked;
                return out;
            }
            let gap = next - last;
            last = cursor.jump(next, gap, (next + length).min(last_ok));
        }
        out.runs.push(Interval::new(run_start, last + length));
    }
    out.walked = cursor.walked;
    out
}

/// A position among a cron's window starts: the first start at or after
/// the last place looked at, with a count of looks.
struct Cursor<'a> {
    cron: &'a ZonedCron,
    starts: Option<WindowStarts<'a>>,
    next: Option<DateTime<Utc>>,
    walked: u64,
    /// Steps to take one by one before guessing again in a short run,
    /// after a guess missed.
    steps_before_guess: u32,
}

/// Below this many seconds of room, stepping start by start costs no
/// more than halving.
const SHORT: i64 = 16;

/// After a missed guess in a short run, how many starts to step over one
/// by one before guessing again.
const STEPS_AFTER_MISS: u32 = 4;

impl<'a> Cursor<'a> {
    fn new(cron: &'a ZonedCron) -> Self {
        Self {
            cron,
            starts: None,
            next: None,
            walked: 0,
            steps_before_guess: 0,
        }
    }

    fn peek(&self) -> Option<DateTime<Utc>> {
        self.next
    }

    /// Moves to the start after the current one.
    fn advance(&mut self) {
        self.next = self.starts.as_mut().and_then(Iterator::next);
        self.walked += 1;
    }

    /// Moves to the first start at or after `t`.
    fn seek(&mut self, t: DateTime<Utc>) {
        self.starts = Some(window_starts(self.cron, t));
        self.advance();
    }

    /// Moves to the first start strictly after `t` (starts are whole
    /// seconds: the first at or after the next whole second).
    fn seek_after(&mut self, t: DateTime<Utc>) {
        match DateTime::from_timestamp(t.timestamp().saturating_add(1), 0) {
            Some(next_second) => self.seek(next_second),
            None => {
                self.next = None;
                self.walked += 1;
            }
        }
    }

    /// The cursor is on `at`, a start inside the current run, `gap` after
    /// the start before it. Finds a start no later than `bound` (the run's
    /// end as `at` extends it, or the last start the span allows), as late
    /// as is cheap to find, and leaves the cursor on the start after it.
    /// Returns the start found (`at` itself when stepping).
    fn jump(&mut self, at: DateTime<Utc>, gap: Duration, bound: DateTime<Utc>) -> DateTime<Utc> {
        let room = (bound - at).num_seconds();
        let step = gap.num_seconds();
        let short = room < SHORT;
        if short && self.steps_before_guess > 0 {
            self.steps_before_guess -= 1;
            self.advance();
            return at;
        }
        // Guess: the gap repeats up to the bound.
        let guess = if step > 0 { room / step * step } else { 0 };
        if guess == 0 {
            self.advance();
            return at;
        }
        let at_guess = at + Duration::seconds(guess);
        self.seek(at_guess);
        if let Some(found) = self.next.filter(|s| *s <= bound) {
            self.advance();
            return found;
        }
        // Nothing in [at_guess, bound].
        if short {
            self.steps_before_guess = STEPS_AFTER_MISS;
            self.seek_after(at);
            return at;
        }
        self.latest_before(at, at_guess - Duration::seconds(1))
    }

    /// The latest start in `[at, bound]` (`at` is one), by halving; leaves
    /// the cursor on the start after it.
    fn latest_before(&mut self, at: DateTime<Utc>, bound: DateTime<Utc>) -> DateTime<Utc> {
        let (mut lo, mut hi) = (at, bound);
        // Whether the cursor stands on `lo`.
        let mut on_lo = false;
        while lo < hi {
            let mid = lo + Duration::seconds(((hi - lo).num_seconds() + 1) / 2);
            self.seek(mid);
            match self.next.filter(|s| *s <= hi) {
                Some(found) => {
                    lo = found;
                    on_lo = true;
                }
                None => {
                    hi = mid - Duration::seconds(1);
                    on_lo = false;
                }
            }
        }
        if on_lo {
            self.advance();
        } else {
            self.seek_after(lo);
        }
        lo
    }
}

/// The latest whole second strictly before `t`.
fn last_second_before(t: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let secs = t.timestamp();
    let secs = if t.timestamp_subsec_nanos() == 0 {
        secs.checked_sub(1)?
    } else {
        secs
    };
    DateTime::from_timestamp(secs, 0)
}

#[cfg(test)]
mod tests;
