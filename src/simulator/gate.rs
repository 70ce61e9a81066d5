//! The simulated vendor's workers: at most `max_concurrency` start/stop
//! requests are worked on at once, the rest wait for a slot.
//!
//! A plain `tokio::sync::Semaphore` cannot change its size downwards while
//! permits are out, and the limit changes at run time (`PUT /_sim/config`),
//! so the gate is a counter behind a std mutex plus a [`Notify`] that wakes
//! waiters when a slot frees or the limit changes. The gate also keeps the
//! peak number of requests in progress, which is how a test or a benchmark
//! sees the limit honoured (`GET /_sim/stats`).

use std::sync::Mutex;

use serde::Serialize;
use tokio::sync::Notify;

/// What the gate has seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GateStats {
    /// Requests holding a slot now.
    pub in_flight: usize,
    /// The most requests that ever held a slot at once.
    pub peak_in_flight: usize,
    /// Requests waiting for a slot now.
    pub waiting: usize,
}

#[derive(Debug, Default)]
struct Counts {
    limit: Option<usize>,
    stats: GateStats,
}

#[derive(Debug, Default)]
pub struct Gate {
    /// A std mutex: it is held for a few instructions and never across an
    /// `.await`.
    counts: Mutex<Counts>,
    /// Wakes waiters when a slot frees or the limit changes.
    freed: Notify,
}

/// A held slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Slot<'a> {
    gate: &'a Gate,
}

impl Gate {
    pub fn new(limit: Option<usize>) -> Self {
        let gate = Self::default();
        gate.set_limit(limit);
        gate
    }

    /// Changes the limit; waiters re-check at once. Requests already in
    /// progress keep their slots.
    pub fn set_limit(&self, limit: Option<usize>) {
        self.lock().limit = limit;
        self.freed.notify_waiters();
    }

    pub fn stats(&self) -> GateStats {
        self.lock().stats
    }

    /// Waits for a slot.
    pub async fn acquire(&self) -> Slot<'_> {
        let mut waiting = false;
        loop {
            let freed = self.freed.notified();
            tokio::pin!(freed);
            // Register for wake-ups before checking, so a slot freed in
            // between is not missed.
            freed.as_mut().enable();
            {
                let mut c = self.lock();
                if c.limit.is_none_or(|limit| c.stats.in_flight < limit) {
                    if waiting {
                        c.stats.waiting -= 1;
                    }
                    c.stats.in_flight += 1;
                    c.stats.peak_in_flight = c.stats.peak_in_flight.max(c.stats.in_flight);
                    return Slot { gate: self };
                }
                if !waiting {
                    waiting = true;
                    c.stats.waiting += 1;
                }
            }
            freed.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.gate.lock().stats.in_flight -= 1;
        self.gate.freed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// Lets the (single-threaded) test runtime run other tasks until
    /// `done` holds or a bounded number of turns has passed.
    async fn settle_until(done: impl Fn() -> bool) {
        for _ in 0..1000 {
            if done() {
                return;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn without_a_limit_every_request_gets_a_slot() {
        let gate = Gate::new(None);
        let slots: Vec<_> = futures::future::join_all((0..10).map(|_| gate.acquire())).await;
        assert_eq!(gate.stats().in_flight, 10);
        drop(slots);
        assert_eq!(gate.stats().in_flight, 0);
        assert_eq!(gate.stats().peak_in_flight, 10);
    }

    #[tokio::test]
    async fn a_request_beyond_the_limit_waits_until_a_slot_frees() {
        let gate = Arc::new(Gate::new(Some(1)));
        let first = gate.acquire().await;
        let g = Arc::clone(&gate);
        let second = tokio::spawn(async move {
            let _slot = g.acquire().await;
        });
        settle_until(|| gate.stats().waiting == 1 || second.is_finished()).await;
        assert!(
            !second.is_finished(),
            "second request got a slot beyond the limit"
        );
        assert_eq!(gate.stats().waiting, 1);
        drop(first);
        second.await.unwrap();
        assert_eq!(gate.stats().peak_in_flight, 1);
        assert_eq!(gate.stats().waiting, 0);
    }

    #[tokio::test]
    async fn raising_the_limit_lets_waiters_in() {
        let gate = Arc::new(Gate::new(Some(1)));
        let _first = gate.acquire().await;
        let g = Arc::clone(&gate);
        let second = tokio::spawn(async move {
            let _slot = g.acquire().await;
        });
        settle_until(|| gate.stats().waiting == 1).await;
        assert_eq!(gate.stats().waiting, 1);
        gate.set_limit(Some(2));
        second.await.unwrap();
        assert_eq!(gate.stats().peak_in_flight, 2);
    }
}
