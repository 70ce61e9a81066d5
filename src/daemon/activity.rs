//! How many of the daemon's tasks are working right now, as opposed to
//! waiting for time to pass.
//!
//! A test that drives the daemon's clock by hand (`clock::ManualClock`)
//! must not move time while the daemon is still acting on the present:
//! a start still on its way to the vendor would land late. [`Activity`]
//! answers "is everyone waiting for the clock?". Each task of the daemon
//! that can wait on the clock holds a [`Busy`] for as long as it lives
//! (the loop, the heartbeat, lease renewal, every job, every write handed
//! to the writer), and every wait on the clock or on another of those
//! tasks is an [`Idle`] for as long as it lasts. When [`Activity::working`]
//! is zero, nothing will happen until the clock moves: the test may move
//! it to the next sleeper's deadline.
//!
//! The reload watcher is left out on purpose: it polls on real time and
//! only ever wakes the loop, which counts from then on. In production the
//! count costs two atomic operations per wait and nothing reads it.

use crate::clock::{Clock, Sleep};
use chrono::{DateTime, Utc};
use std::future::Future;
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

/// Counts the daemon's tasks that are doing something other than waiting.
#[derive(Debug, Default)]
pub struct Activity {
    working: AtomicIsize,
}

impl Activity {
    /// How many tasks are working; zero when every task waits for the
    /// clock (or for a task that does).
    pub fn working(&self) -> usize {
        usize::try_from(self.working.load(Ordering::SeqCst)).unwrap_or(0)
    }

    /// One more task at work until the guard is dropped.
    pub(crate) fn busy(self: &Arc<Self>) -> Busy {
        self.working.fetch_add(1, Ordering::SeqCst);
        Busy(self.clone())
    }

    /// The calling task (which holds a [`Busy`]) waits until the guard is
    /// dropped.
    pub(crate) fn idle(self: &Arc<Self>) -> Idle {
        self.working.fetch_sub(1, Ordering::SeqCst);
        Idle(self.clone())
    }

    /// Runs `wait` as an [`Idle`] stretch of the calling task.
    pub(crate) async fn waiting<F: Future>(self: &Arc<Self>, wait: F) -> F::Output {
        let _idle = self.idle();
        wait.await
    }
}

/// A task at work; see [`Activity::busy`].
#[derive(Debug)]
pub(crate) struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.working.fetch_sub(1, Ordering::SeqCst);
    }
}

/// A busy task waiting; see [`Activity::idle`].
#[derive(Debug)]
pub(crate) struct Idle(Arc<Activity>);

impl Drop for Idle {
    fn drop(&mut self) {
        self.0.working.fetch_add(1, Ordering::SeqCst);
    }
}

/// The daemon's clock: the given one, with every sleep counted as idle.
pub(crate) struct CountingClock {
    pub inner: Arc<dyn Clock>,
    pub activity: Arc<Activity>,
}

impl Clock for CountingClock {
    fn now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    fn instant(&self) -> Instant {
        self.inner.instant()
    }

    fn sleep_until(&self, deadline: Instant) -> Sleep {
        // Idle from the moment the wait is made, not from its first poll.
        let idle = self.activity.idle();
        let sleep = self.inner.sleep_until(deadline);
        Box::pin(async move {
            let _idle = idle;
            sleep.await;
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use chrono::TimeZone;
    use futures::FutureExt as _;
    use std::time::Duration;

    #[tokio::test]
    async fn a_task_sleeping_on_the_clock_is_not_working() {
        let activity = Arc::new(Activity::default());
        let manual = ManualClock::new(Utc.with_ymd_and_hms(2026, 3, 29, 0, 0, 0).unwrap());
        let clock = CountingClock {
            inner: Arc::new(manual.clone()),
            activity: activity.clone(),
        };
        let busy = activity.busy();
        assert_eq!(activity.working(), 1);
        let mut sleep = clock.sleep(Duration::from_secs(1));
        assert_eq!(activity.working(), 0);
        assert!((&mut sleep).now_or_never().is_none());
        manual.advance(chrono::Duration::seconds(1));
        assert!(sleep.now_or_never().is_some());
        assert_eq!(activity.working(), 1);
        // A wait given up (another branch of a select won) counts again.
        let sleep = clock.sleep(Duration::from_secs(1));
        assert_eq!(activity.working(), 0);
        drop(sleep);
        assert_eq!(activity.working(), 1);
        drop(busy);
        assert_eq!(activity.working(), 0);
    }
}
