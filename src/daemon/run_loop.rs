//! The scheduling loop: a planning pass (`dispatch`), then a wait until
//! the next instant the pass computed, a policy edit, or shutdown. An idle
//! daemon plans once per event, not on a timer.
//!
//! The wait is where the clock rule lives (see the module docs of
//! `daemon`): it sleeps on the monotonic clock in slices of at most
//! [`CHECK_EVERY`], and after each slice reads both clocks again. A wall
//! clock that moved more than [`STEP`] more or less than the monotonic
//! clock has stepped; the loop says so and plans again at once. After a
//! forward step, the next pass plans from where the wall clock would have
//! been, so windows the step jumped over are started late (if time is
//! left) or recorded `missed`, never silently dropped. Each slice also
//! pings systemd's watchdog and looks for a live row whose end passed
//! while its job still held it.

use super::dispatch::{self, InFlight, Next};
use super::reconcile::Since;
use super::{Notifier, Shared};
use crate::clock::{after, format_utc, Reading};
use crate::policy::Policy;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The longest the loop sleeps without reading the wall clock again.
pub(super) const CHECK_EVERY: Duration = Duration::from_secs(5);

/// A disagreement between the two clocks beyond this is a step.
pub(super) const STEP: chrono::Duration = chrono::Duration::seconds(1);

/// With nothing due, the loop still plans once an hour.
const IDLE: chrono::Duration = chrono::Duration::hours(1);

/// After a failed pass, the next one comes this much later.
const AFTER_FAILURE: chrono::Duration = chrono::Duration::seconds(1);

/// Why windows a forward step jumped over were not started.
const STEPPED: &str = "the wall clock stepped forward over the window";

/// Why windows that ended before the loop could plan them were not started
/// (a long pass, a host too busy to run the loop on time).
const LATE: &str = "the window passed while recsched was too busy or stalled to plan it";

/// Why windows that ended while passes failed were not started.
const FAILING: &str = "the window passed while planning passes were failing";

/// Why the loop stopped waiting.
enum Woke {
    /// Something is due, or the policies changed: plan now.
    Plan,
    /// The wall clock stepped: plan now, from `since` when it went forward.
    Stepped(Option<Since>),
    Shutdown,
}

/// Runs passes and waits until `shutdown`.
pub(super) async fn run(
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    mut policies: watch::Receiver<Arc<Vec<Policy>>>,
    mut current: Arc<Vec<Policy>>,
    since: Since,
    notifier: &Notifier,
    shutdown: &CancellationToken,
) {
    let mut since = Some(since);
    let in_flight = Arc::new(InFlight::new(shared.schedule.max_concurrency));
    let mut last_status = String::new();
    let mut seen = Reading::take(shared.clock.as_ref());
    let mut watching = true;
    loop {
        let now = shared.clock.now();
        shared.liveness.loop_turned(now);
        notifier.watchdog();
        // After a starter's claims failed, plan from that pass's now.
        let failed = in_flight.take_failed_from().map(|at| Since {
            at,
            reason: FAILING,
        });
        let from = earlier(since.take(), failed).unwrap_or(Since::now(now));
        let pass = dispatch::pass(shared, tracker, &current, &in_flight, from, now);
        let alive = || {
            notifier.watchdog();
            shared.liveness.loop_turned(shared.clock.now());
        };
        // Where the next pass plans from, when not from its own now.
        let (next, plan_from) = match pinging(notifier.ping_every(), alive, pass).await {
            Ok(next) => (next, next.resume),
            Err(e) => {
                tracing::error!(error = %e, "planning pass failed; trying again in 1 s");
                // The next pass plans from where this one did: windows
                // that end meanwhile are started late or recorded, never
                // dropped.
                let again = if from.at < now {
                    from
                } else {
                    Since {
                        at: now,
                        reason: FAILING,
                    }
                };
                (Next::default().at(now + AFTER_FAILURE), Some(again))
            }
        };
        let line = status_line(shared, &current, &next);
        if line != last_status {
            notifier.status(&line);
            last_status = line;
        }
        // Windows missed before `now` still to walk: plan again at once.
        let wake_at = match next.resume {
            Some(_) => now,
            None => next.at.map_or(now + IDLE, |n| n.min(now + IDLE)),
        };
        let mut wait = Wait {
            shared,
            seen: &mut seen,
            policies: &mut policies,
            current: &mut current,
            watching: &mut watching,
            notifier,
            shutdown,
        };
        let woke = wait.until(wake_at).await;
        // Woken after the instant it meant to plan at (a pass that ran
        // long, a slow machine): what opened and closed since then is
        // looked at too, started late or recorded `missed`.
        let late = (wake_at < shared.clock.now()).then_some(Since {
            at: wake_at,
            reason: LATE,
        });
        match woke {
            Woke::Plan | Woke::Stepped(None) => since = earlier(plan_from, late),
            // A forward step names what it jumped over, including what
            // the loop was late for just before.
            Woke::Stepped(Some(step)) => {
                let at = late.map_or(step.at, |late| late.at.min(step.at));
                let stepped = Since {
                    at,
                    reason: step.reason,
                };
                since = earlier(plan_from, Some(stepped));
            }
            Woke::Shutdown => return,
        }
    }
}

/// Of two instants to plan from, the earlier (with its reason).
fn earlier(a: Option<Since>, b: Option<Since>) -> Option<Since> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.at < a.at { b } else { a }),
        (a, b) => a.or(b),
    }
}

/// How long a single pass may keep the watchdog fed. A pass that claims a
/// burst of starts on a slow database may take longer than the watchdog
/// period; one running this long is stuck, and the watchdog should act.
const LONGEST_PASS: Duration = Duration::from_secs(300);

/// Awaits a planning pass; every `every` meanwhile, for up to
/// [`LONGEST_PASS`], calls `ping` (which pings systemd's watchdog and tells
/// `/healthz` the loop is alive). Without a watchdog (`every` is `None`)
/// the pass is simply awaited.
///
/// The pings wait on tokio's timer, not on the daemon's [`Clock`]: the
/// watchdog counts systemd's real monotonic time, and a wait on the
/// daemon's clock would count the loop as idle (`activity`) while the
/// pass it runs is still at work.
///
/// [`Clock`]: crate::clock::Clock
async fn pinging<F: std::future::Future>(
    every: Option<Duration>,
    mut ping: impl FnMut(),
    pass: F,
) -> F::Output {
    let Some(every) = every else {
        return pass.await;
    };
    tokio::pin!(pass);
    let started = tokio::time::Instant::now();
    let mut ticks = tokio::time::interval_at(started + every, every);
    let mut warned = false;
    loop {
        tokio::select! {
            out = &mut pass => return out,
            _ = ticks.tick() => {
                if started.elapsed() < LONGEST_PASS {
                    ping();
                } else if !warned {
                    warned = true;
                    tracing::error!(
                        seconds = started.elapsed().as_secs(),
                        "the planning pass is stuck; no longer pinging the watchdog"
                    );
                }
            }
        }
    }
}

/// The loop's wait between passes.
struct Wait<'a> {
    shared: &'a Shared,
    /// The last reading of both clocks, to tell a step from time passing.
    seen: &'a mut Reading,
    policies: &'a mut watch::Receiver<Arc<Vec<Policy>>>,
    current: &'a mut Arc<Vec<Policy>>,
    /// Whether the policy watcher still runs (it stops at shutdown).
    watching: &'a mut bool,
    notifier: &'a Notifier,
    shutdown: &'a CancellationToken,
}

impl Wait<'_> {
    async fn until(&mut self, wake_at: DateTime<Utc>) -> Woke {
        let ping = self.notifier.ping_every();
        let mut slept = false;
        loop {
            let reading = Reading::take(self.shared.clock.as_ref());
            let step = reading.step_since(self.seen);
            let expected = reading.expected_wall(self.seen);
            *self.seen = reading;
            if step.abs() > STEP {
                let (way, by) = if step > chrono::Duration::zero() {
                    ("forward", step)
                } else {
                    ("back", -step)
                };
                tracing::warn!(
                    step_ms = step.num_milliseconds(),
                    expected = %format_utc(expected),
                    now = %format_utc(reading.wall),
                    "the wall clock stepped {way} by {}; planning again",
                    words(by)
                );
                let since = (step > chrono::Duration::zero()).then_some(Since {
                    at: expected,
                    reason: STEPPED,
                });
                return Woke::Stepped(since);
            }
            if reading.wall >= wake_at {
                return Woke::Plan;
            }
            // A live row whose end passed while its job held it (looked
            // for after each slice, and after the step check, so that a
            // step is named as one).
            if slept && self.shared.open.overdue(reading.wall) {
                return Woke::Plan;
            }
            let slice = (wake_at - reading.wall)
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(CHECK_EVERY)
                .min(ping.unwrap_or(Duration::MAX));
            self.shared.liveness.loop_sleeps_until(
                reading.wall + chrono::Duration::from_std(slice).unwrap_or(IDLE),
            );
            tokio::select! {
                () = self.shared.clock.sleep_until(after(reading.instant, slice)) => {
                    self.notifier.watchdog();
                    slept = true;
                }
                changed = self.policies.changed(), if *self.watching => {
                    match changed {
                        Ok(()) => *self.current = self.policies.borrow_and_update().clone(),
                        Err(_) => *self.watching = false,
                    }
                    return Woke::Plan;
                }
                () = self.shared.wake.notified() => return Woke::Plan,
                () = self.shutdown.cancelled() => return Woke::Shutdown,
            }
        }
    }
}

/// "30 min 5 s", "1 h", "2.5 s".
fn words(d: chrono::Duration) -> String {
    let ms = d.num_milliseconds();
    if ms < 60_000 {
        return format!("{:.1} s", ms as f64 / 1000.0);
    }
    // To the nearest second: the two clocks are read a moment apart.
    let secs = (ms + 500) / 1000;
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h} h"));
    }
    if m > 0 {
        parts.push(format!("{m} min"));
    }
    if s > 0 {
        parts.push(format!("{s} s"));
    }
    parts.join(" ")
}

/// systemd's STATUS line: "12 recording, next window 09:00 Europe/Amsterdam
/// (back-office), 0 failed".
fn status_line(shared: &Shared, policies: &[Policy], next: &Next) -> String {
    let recording = shared.open.live_count();
    let failed = shared.metrics.count(&shared.metrics.starts, "failed");
    let next = match next.start {
        Some((at, id)) => match policies.iter().find(|p| p.id == id) {
            Some(p) => {
                let tz = p.cron.timezone();
                format!(
                    "next window {} {} ({})",
                    at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
                    tz.name(),
                    p.name
                )
            }
            None => format!("next window {} UTC", at.format("%Y-%m-%d %H:%M:%S")),
        },
        None => "no window in the next hours".to_owned(),
    };
    format!("{recording} recording, {next}, {failed} failed since start")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_long_pass_keeps_the_watchdog_fed_until_it_is_deemed_stuck() {
        let pings = std::cell::Cell::new(0);
        let pass = tokio::time::sleep(Duration::from_millis(10_500));
        pinging(
            Some(Duration::from_secs(1)),
            || pings.set(pings.get() + 1),
            pass,
        )
        .await;
        assert_eq!(pings.get(), 10);

        // A pass that never ends is pinged for LONGEST_PASS, then not.
        let pings = std::cell::Cell::new(0);
        let stuck = tokio::time::sleep(LONGEST_PASS * 3);
        pinging(
            Some(Duration::from_secs(15)),
            || pings.set(pings.get() + 1),
            stuck,
        )
        .await;
        assert_eq!(pings.get(), 19, "every 15 s for 300 s, the last at 285 s");

        // Without a watchdog, nothing pings.
        let pinged = std::cell::Cell::new(false);
        pinging(
            None,
            || pinged.set(true),
            tokio::time::sleep(Duration::from_secs(60)),
        )
        .await;
        assert!(!pinged.get());
    }

    #[test]
    fn steps_are_said_in_words() {
        assert_eq!(words(chrono::Duration::milliseconds(2500)), "2.5 s");
        assert_eq!(words(chrono::Duration::minutes(30)), "30 min");
        assert_eq!(words(chrono::Duration::seconds(3605)), "1 h 5 s");
        assert_eq!(words(chrono::Duration::milliseconds(1_799_999)), "30 min");
    }
}
