//! The only reader of wall-clock time, and the daemon's only way to wait.
//!
//! A [`Clock`] gives two readings and one wait:
//! - [`Clock::now`]: wall-clock time (UTC), what windows are planned in.
//!   It can step: NTP corrects a host that booted with a wrong clock, a VM
//!   resumes from a snapshot, an operator sets the date.
//! - [`Clock::instant`]: monotonic time, which never steps. Every wait is a
//!   deadline on it, so a step can neither stretch nor cut a sleep.
//! - [`Clock::sleep_until`]: resolves once the monotonic reading reaches a
//!   deadline.
//!
//! # The clock rule
//! Whoever waits for a wall-clock instant sleeps on the monotonic clock in
//! short slices and reads the wall clock again after each one, comparing
//! how far each reading moved (see `daemon`): a wall clock that moved more
//! or less than the monotonic one has stepped, and the plan is made again.
//! Periodic work (the heartbeat, lease renewal) runs on [`Ticker`], which
//! never looks at the wall clock at all.
//!
//! # Two clocks
//! [`SystemClock`] is the host's (`Utc::now` and tokio's timer).
//! [`ManualClock`] is for tests: time moves only when the test says so.
//! [`ManualClock::advance`] moves both readings and wakes every sleeper
//! whose deadline it passes; [`ManualClock::step`] moves the wall clock
//! alone, as NTP would.
//!
//! The manual clock keeps its own sleepers instead of pausing tokio's
//! timer, on purpose. Under paused tokio time the runtime advances time by
//! itself whenever every task waits, and a task waiting on I/O (a pooled
//! sqlx connection, a SQLite worker thread, an HTTP answer) counts as
//! waiting: timeouts inside sqlx and reqwest would fire at once and the
//! daemon's own timers would run ahead of its work. With a manual clock,
//! I/O and its timeouts stay on real time and only the daemon's timers
//! are driven, so a test moves time exactly when it chooses to.
//!
//! Pure code (planner, retry) takes instants as arguments and never sees
//! a clock at all.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// A wait on a [`Clock`]; owns everything it needs.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Longer than any wait the daemon makes; what a deadline too far to
/// represent becomes.
const FAR: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Reads wall-clock and monotonic time, and sleeps on the monotonic one.
pub trait Clock: Send + Sync + 'static {
    /// Wall-clock time in UTC. It can step, forward or back.
    fn now(&self) -> DateTime<Utc>;

    /// Monotonic time: never steps, never goes back.
    fn instant(&self) -> Instant;

    /// Resolves once [`Clock::instant`] reaches `deadline` (at once if it
    /// already has).
    fn sleep_until(&self, deadline: Instant) -> Sleep;

    /// Sleeps for `period` of monotonic time from now.
    fn sleep(&self, period: Duration) -> Sleep {
        self.sleep_until(after(self.instant(), period))
    }
}

/// `at + period`, or a far deadline when that cannot be represented.
pub fn after(at: Instant, period: Duration) -> Instant {
    at.checked_add(period)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}

/// The host's clocks: `Utc::now` and tokio's timer.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one sanctioned wall-clock read
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn instant(&self) -> Instant {
        Instant::now()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        Box::pin(tokio::time::sleep_until(deadline))
    }
}

/// One reading of both clocks, taken together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reading {
    pub wall: DateTime<Utc>,
    pub instant: Instant,
}

impl Reading {
    pub fn take(clock: &dyn Clock) -> Self {
        Self {
            instant: clock.instant(),
            wall: clock.now(),
        }
    }

    /// How far the wall clock moved since `earlier` beyond what the
    /// monotonic clock did: zero without a step, positive when the wall
    /// clock jumped forward, negative when it went back.
    pub fn step_since(&self, earlier: &Reading) -> chrono::Duration {
        let monotonic = self.instant.saturating_duration_since(earlier.instant);
        let monotonic = chrono::Duration::from_std(monotonic).unwrap_or(chrono::Duration::MAX);
        (self.wall - earlier.wall) - monotonic
    }

    /// Where the wall clock would stand now had it not stepped since
    /// `earlier`.
    pub fn expected_wall(&self, earlier: &Reading) -> DateTime<Utc> {
        self.wall - self.step_since(earlier)
    }
}

/// A period on the monotonic clock, like `tokio::time::interval` with
/// `MissedTickBehavior::Delay`, through a [`Clock`] so tests can drive it.
/// The first tick is immediate; a tick that comes late pushes the next
/// one a whole period after it (no burst of catch-up ticks).
pub struct Ticker {
    clock: Arc<dyn Clock>,
    period: Duration,
    next: Instant,
}

impl Ticker {
    pub fn new(clock: Arc<dyn Clock>, period: Duration) -> Self {
        let next = clock.instant();
        Self {
            clock,
            period: period.max(Duration::from_millis(1)),
            next,
        }
    }

    /// Waits for the next tick.
    pub async fn tick(&mut self) {
        self.clock.sleep_until(self.next).await;
        let now = self.clock.instant();
        let due = after(self.next, self.period);
        self.next = if due < now {
            after(now, self.period)
        } else {
            due
        };
    }

    pub fn period(&self) -> Duration {
        self.period
    }
}

/// A clock that moves only when told to; for tests. Cheap to clone: every
/// clone is the same clock.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Manual>);

#[derive(Debug)]
struct Manual {
    /// The monotonic reading is `origin + elapsed`.
    origin: Instant,
    state: Mutex<ManualState>,
    /// Carries `elapsed` to the sleepers.
    elapsed: watch::Sender<Duration>,
}

#[derive(Debug)]
struct ManualState {
    wall: DateTime<Utc>,
    elapsed: Duration,
    /// Deadlines (as `elapsed` values) of the sleepers, by ticket.
    sleepers: BTreeMap<u64, Duration>,
    next_ticket: u64,
}

impl ManualClock {
    pub fn new(at: DateTime<Utc>) -> Self {
        Self(Arc::new(Manual {
            origin: Instant::now(),
            state: Mutex::new(ManualState {
                wall: at,
                elapsed: Duration::ZERO,
                sleepers: BTreeMap::new(),
                next_ticket: 0,
            }),
            elapsed: watch::Sender::new(Duration::ZERO),
        }))
    }

    fn state(&self) -> std::sync::MutexGuard<'_, ManualState> {
        self.0.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the wall clock to `at` without moving the monotonic clock: a
    /// clock step.
    pub fn set(&self, at: DateTime<Utc>) {
        self.state().wall = at;
    }

    /// Steps the wall clock by `by` (either way) without moving the
    /// monotonic clock, as NTP stepping the host's clock would.
    pub fn step(&self, by: chrono::Duration) {
        self.state().wall += by;
    }

    /// Lets `by` of time pass: both readings move and every sleeper whose
    /// deadline is reached wakes. A negative `by` is a step back.
    pub fn advance(&self, by: chrono::Duration) {
        let Ok(forward) = by.to_std() else {
            self.step(by);
            return;
        };
        let elapsed = {
            let mut s = self.state();
            s.wall += by;
            s.elapsed = s.elapsed.saturating_add(forward);
            s.elapsed
        };
        self.0.elapsed.send_replace(elapsed);
    }

    /// Lets time pass until the wall clock reads `at` (nothing if it
    /// already does or is past it).
    pub fn advance_to(&self, at: DateTime<Utc>) {
        let by = at - self.now();
        if by > chrono::Duration::zero() {
            self.advance(by);
        }
    }

    /// The wall-clock instant at which the earliest sleeper wakes, if any
    /// sleeps.
    pub fn next_wake(&self) -> Option<DateTime<Utc>> {
        let s = self.state();
        let first = s.sleepers.values().min()?;
        let left = first.saturating_sub(s.elapsed);
        Some(s.wall + chrono::Duration::from_std(left).unwrap_or(chrono::Duration::MAX))
    }

    /// How many sleepers wait on this clock.
    pub fn sleepers(&self) -> usize {
        self.state().sleepers.len()
    }
}

/// Removes a sleeper from the clock's list when its wait ends or is
/// dropped.
struct Ticket {
    clock: ManualClock,
    id: u64,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.clock.state().sleepers.remove(&self.id);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.state().wall
    }

    fn instant(&self) -> Instant {
        self.0.origin + self.state().elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        let target = deadline.saturating_duration_since(self.0.origin);
        // Registered now, not at the first poll, so `next_wake` sees every
        // sleeper from the moment its wait is made.
        let ticket = {
            let mut s = self.state();
            let id = s.next_ticket;
            s.next_ticket += 1;
            s.sleepers.insert(id, target);
            Ticket {
                clock: self.clone(),
                id,
            }
        };
        let mut elapsed = self.0.elapsed.subscribe();
        Box::pin(async move {
            let _ticket = ticket;
            loop {
                if *elapsed.borrow_and_update() >= target {
                    return;
                }
                if elapsed.changed().await.is_err() {
                    // The clock is gone: time never moves again.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

/// Canonical text form of an instant, as stored in the database and
/// printed: RFC 3339, UTC, whole or fractional seconds with `Z`
/// (`2026-03-29T01:00:00Z`, `2026-03-29T01:00:00.250Z`). One form, so that
/// `sqlite3` users can compare stored values as text.
pub fn format_utc(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Parses any RFC 3339 instant into UTC.
pub fn parse_utc(raw: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(raw).map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use futures::FutureExt as _;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap()
    }

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = ManualClock::new(t0());
        assert_eq!(c.now(), t0());
        c.advance(chrono::Duration::seconds(90));
        assert_eq!(c.now(), t0() + chrono::Duration::seconds(90));
    }

    #[test]
    fn a_step_moves_the_wall_clock_and_not_the_monotonic_one() {
        let c = ManualClock::new(t0());
        let before = Reading::take(&c);
        c.advance(chrono::Duration::seconds(3));
        let plain = Reading::take(&c);
        assert_eq!(plain.step_since(&before), chrono::Duration::zero());
        c.step(chrono::Duration::minutes(30));
        c.advance(chrono::Duration::seconds(2));
        let stepped = Reading::take(&c);
        assert_eq!(stepped.step_since(&plain), chrono::Duration::minutes(30));
        assert_eq!(
            stepped.expected_wall(&plain),
            t0() + chrono::Duration::seconds(5)
        );
        c.set(t0());
        assert_eq!(
            Reading::take(&c).step_since(&stepped),
            -(chrono::Duration::minutes(30) + chrono::Duration::seconds(5))
        );
        // A negative advance is a step back.
        c.advance(chrono::Duration::seconds(-10));
        assert_eq!(c.instant(), stepped.instant);
    }

    #[tokio::test]
    async fn sleepers_wake_when_time_passes_their_deadline_and_not_before() {
        let c = ManualClock::new(t0());
        let mut short = c.sleep(Duration::from_secs(5));
        let mut long = c.sleep(Duration::from_secs(10));
        assert_eq!(c.sleepers(), 2);
        assert_eq!(c.next_wake(), Some(t0() + chrono::Duration::seconds(5)));
        assert!((&mut short).now_or_never().is_none());
        // A wall-clock step wakes nobody.
        c.step(chrono::Duration::hours(1));
        assert!((&mut short).now_or_never().is_none());
        c.advance(chrono::Duration::seconds(5));
        assert!((&mut short).now_or_never().is_some());
        assert!((&mut long).now_or_never().is_none());
        drop(short);
        assert_eq!(c.sleepers(), 1);
        c.advance_to(c.next_wake().unwrap());
        assert!(long.now_or_never().is_some());
        assert_eq!(c.sleepers(), 0);
        assert_eq!(c.next_wake(), None);
    }

    #[tokio::test]
    async fn a_deadline_taken_before_an_advance_is_not_lost() {
        let c = ManualClock::new(t0());
        let deadline = after(c.instant(), Duration::from_secs(1));
        c.advance(chrono::Duration::seconds(2));
        assert!(c.sleep_until(deadline).now_or_never().is_some());
    }

    #[tokio::test]
    async fn a_ticker_keeps_its_period_and_does_not_burst_after_a_gap() {
        let c = ManualClock::new(t0());
        let mut t = Ticker::new(Arc::new(c.clone()), Duration::from_secs(5));
        assert!(
            t.tick().now_or_never().is_some(),
            "the first tick is at once"
        );
        let mut fut = Box::pin(t.tick());
        assert!((&mut fut).now_or_never().is_none());
        c.advance(chrono::Duration::seconds(4));
        assert!((&mut fut).now_or_never().is_none());
        c.advance(chrono::Duration::seconds(1));
        assert!(fut.now_or_never().is_some());
        // Thirty seconds without anyone ticking: one tick, then a period.
        c.advance(chrono::Duration::seconds(30));
        assert!(t.tick().now_or_never().is_some());
        assert!(t.tick().now_or_never().is_none());
        assert_eq!(
            c.next_wake(),
            None,
            "a dropped tick leaves no sleeper behind"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn the_system_clock_sleeps_on_tokios_timer() {
        let c = SystemClock;
        let start = c.instant();
        c.sleep(Duration::from_secs(3)).await;
        assert_eq!(c.instant() - start, Duration::from_secs(3));
    }

    #[test]
    fn utc_text_is_fixed_width_and_sorts_as_time() {
        let a = Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap();
        let b = a + chrono::Duration::milliseconds(250);
        assert_eq!(format_utc(a), "2026-03-29T01:00:00.000Z");
        assert_eq!(format_utc(b), "2026-03-29T01:00:00.250Z");
        assert!(format_utc(a) < format_utc(b));
        assert_eq!(parse_utc("2026-03-29T03:00:00+02:00").unwrap(), a);
    }
}
