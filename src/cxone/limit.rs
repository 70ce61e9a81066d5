//! Caps on what the client sends: at most N requests in flight and at most
//! R requests started per second (PRODUCT.md behaviour 10).
//!
//! The rate cap is a pacing queue: each request reserves the next free
//! slot `1/R` after the previous one and waits for it. That is all the
//! daemon needs (no bursts above the rate, fairness by arrival), so it is
//! a dozen lines rather than a rate-limiting crate.

use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Request caps; `None` means unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Limits {
    pub max_concurrency: Option<usize>,
    pub max_requests_per_second: Option<f64>,
}

#[derive(Debug)]
pub(crate) struct Limiter {
    /// One permit per request allowed in flight.
    slots: Option<Arc<Semaphore>>,
    /// Gap between request starts, and when the next one may start.
    pacing: Option<(Duration, Mutex<Instant>)>,
}

impl Limiter {
    pub(crate) fn new(limits: Limits) -> Self {
        Self {
            slots: limits
                .max_concurrency
                .filter(|n| *n > 0)
                .map(|n| Arc::new(Semaphore::new(n))),
            pacing: limits
                .max_requests_per_second
                .filter(|r| r.is_finite() && *r > 0.0)
                .map(|r| (Duration::from_secs_f64(1.0 / r), Mutex::new(Instant::now()))),
        }
    }

    /// Waits until one more request may go out; hold the permit until its
    /// answer is read. `None` from the outer option: `shutdown` came first
    /// and the request must not be sent.
    pub(crate) async fn admit_unless(
        &self,
        shutdown: &CancellationToken,
    ) -> Option<Option<OwnedSemaphorePermit>> {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => None,
            permit = self.admit() => Some(permit),
        }
    }

    /// Waits until one more request may go out.
    pub(crate) async fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = match &self.slots {
            // The semaphore is never closed, so acquire cannot fail.
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        if let Some((gap, next)) = &self.pacing {
            let at = {
                let mut next = next.lock().await;
                let at = (*next).max(Instant::now());
                *next = at + *gap;
                at
            };
            tokio::time::sleep_until(at).await;
        }
        permit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacing_spaces_request_starts() {
        let l = Limiter::new(Limits {
            max_concurrency: None,
            max_requests_per_second: Some(10.0),
        });
        let t0 = Instant::now();
        for _ in 0..5 {
            l.admit().await;
        }
        // Five starts at 0, 100, 200, 300, 400 ms.
        assert_eq!(t0.elapsed(), Duration::from_millis(400));
    }

    #[tokio::test]
    async fn concurrency_is_capped_by_permits() {
        let l = Limiter::new(Limits {
            max_concurrency: Some(2),
            max_requests_per_second: None,
        });
        let a = l.admit().await;
        let b = l.admit().await;
        assert!(a.is_some() && b.is_some());
        let third = tokio::time::timeout(Duration::from_millis(20), l.admit()).await;
        assert!(
            third.is_err(),
            "a third request got in while two were in flight"
        );
        drop(a);
        assert!(l.admit().await.is_some());
    }
}
