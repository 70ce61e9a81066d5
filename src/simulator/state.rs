//! The simulator's shared state: everything one running simulator knows,
//! behind one lock.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rand::rngs::SmallRng;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::auth::Tokens;
use super::directory::Directory;
use super::faults::{Draw, Faults};
use super::gate::Gate;
use super::ledger::Ledger;
use super::SimConfig;
use crate::clock::Clock;

/// Most request-log entries kept; older ones are dropped first, so a
/// long benchmark cannot grow the log without bound.
pub const REQUEST_LOG_LIMIT: usize = 100_000;

/// One request as `GET /_sim/requests` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    pub method: String,
    pub path: String,
    /// The raw (still percent-encoded) query string, if any.
    pub query: Option<String>,
    pub status: u16,
    /// When the request arrived.
    #[serde(serialize_with = "utc")]
    pub at: DateTime<Utc>,
}

fn utc<S: serde::Serializer>(at: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&crate::clock::format_utc(*at))
}

/// State shared by every handler of one simulator.
pub struct Shared {
    /// Credentials and token lifetime; fixed for the server's life.
    pub config: SimConfig,
    pub clock: Arc<dyn Clock>,
    /// The API base, `http://127.0.0.1:PORT`, for the token answer.
    pub base_url: String,
    /// The limited workers of `Faults::max_concurrency`.
    pub gate: Gate,
    /// Cancelled when the server begins to shut down, so requests stuck
    /// in injected latency or waiting for a slot end at once instead of
    /// holding the graceful shutdown up.
    pub stopping: CancellationToken,
    /// A std mutex, not tokio's: every critical section is a few map
    /// operations with no `.await` inside, so it never blocks the runtime
    /// for long, it is cheaper, and it can be taken from synchronous code
    /// (the handle's accessors, the tests).
    inner: Mutex<Inner>,
}

/// The mutable part of [`Shared`].
pub struct Inner {
    pub faults: Faults,
    /// Drawn once per start/stop request, in arrival order.
    pub fault_rng: SmallRng,
    pub ledger: Ledger,
    pub tokens: Tokens,
    /// The users and their teams, for the user search.
    pub directory: Directory,
    pub requests: VecDeque<LoggedRequest>,
    /// Token requests redirected since the fault set took effect (for
    /// `Faults::token_redirect_limit`).
    pub token_redirects: u64,
}

impl Shared {
    pub fn new(
        config: SimConfig,
        clock: Arc<dyn Clock>,
        base_url: String,
        stopping: CancellationToken,
    ) -> Self {
        let faults = config.faults.clone();
        Self {
            gate: Gate::new(faults.max_concurrency),
            inner: Mutex::new(Inner {
                fault_rng: faults.rng(),
                ledger: Ledger::new(faults.seed),
                tokens: Tokens::default(),
                directory: Directory::seeded(&config.teams),
                requests: VecDeque::new(),
                token_redirects: 0,
                faults,
            }),
            config,
            clock,
            base_url,
            stopping,
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The fault set in force and this request's draw, taken together
    /// so the draw order is the arrival order.
    pub fn draw(&self) -> (Faults, Draw) {
        let mut inner = self.lock();
        let draw = Draw::take(&mut inner.fault_rng);
        (inner.faults.clone(), draw)
    }

    /// Replaces the fault set wholesale and restarts its RNG from its seed.
    /// The caller has validated it.
    pub fn set_faults(&self, faults: Faults) {
        let limit = faults.max_concurrency;
        {
            let mut inner = self.lock();
            inner.fault_rng = faults.rng();
            inner.token_redirects = 0;
            inner.faults = faults;
        }
        self.gate.set_limit(limit);
    }

    /// Where this token request is to be redirected, if the fault set
    /// says so (and its limit is not yet used up).
    pub fn token_redirect(&self) -> Option<String> {
        let mut inner = self.lock();
        let to = inner.faults.token_redirect.clone()?;
        if inner
            .faults
            .token_redirect_limit
            .is_some_and(|limit| inner.token_redirects >= limit)
        {
            return None;
        }
        inner.token_redirects = inner.token_redirects.saturating_add(1);
        Some(to)
    }

    pub fn log(&self, entry: LoggedRequest) {
        let mut inner = self.lock();
        if inner.requests.len() >= REQUEST_LOG_LIMIT {
            inner.requests.pop_front();
        }
        inner.requests.push_back(entry);
    }
}
