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

use super::dispatch::{self, Next};
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
    let mut last_status = String::new();
    let mut seen = Reading::take(shared.clock.as_ref());
    let mut watching = true;
    loop {
        let now = shared.clock.now();
        shared.liveness.loop_turned(now);
        notifier.watchdog();
        let from = since.take().unwrap_or(Since::now(now));
        let next = match dispatch::pass(shared, tracker, &current, from, now).await {
            Ok(next) => next,
            Err(e) => {
                tracing::error!(error = %e, "planning pass failed; trying again in 1 s");
                Next::default().at(now + AFTER_FAILURE)
            }
        };
        let line = status_line(shared, &current, &next);
        if line != last_status {
            notifier.status(&line);
            last_status = line;
        }
        let wake_at = next.at.map_or(now + IDLE, |n| n.min(now + IDLE));
        let mut wait = Wait {
            shared,
            seen: &mut seen,
            policies: &mut policies,
            current: &mut current,
            watching: &mut watching,
            notifier,
            shutdown,
        };
        match wait.until(wake_at).await {
            Woke::Plan => {}
            Woke::Stepped(from) => since = from,
            Woke::Shutdown => return,
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
                    // A live row whose end passed while its job held it.
                    if self.shared.open.overdue(self.shared.clock.now()) {
                        return Woke::Plan;
                    }
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

    #[test]
    fn steps_are_said_in_words() {
        assert_eq!(words(chrono::Duration::milliseconds(2500)), "2.5 s");
        assert_eq!(words(chrono::Duration::minutes(30)), "30 min");
        assert_eq!(words(chrono::Duration::seconds(3605)), "1 h 5 s");
        assert_eq!(words(chrono::Duration::milliseconds(1_799_999)), "30 min");
    }
}
