//! An in-process stand-in for the NICE CXone screen-recording API, faithful
//! to `API.md`, with fault injection.
//!
//! # Why it exists
//! The client, the daemon, the demo and the benchmarks need a vendor that
//! keeps state (one recording per user, recordings that end by themselves,
//! stops that find nothing) and that misbehaves on demand (425 with
//! `Retry-After`, 500, 504 before and after the call took effect, 202, odd
//! bodies, slowness, few workers) and, for the hostile-vendor tests, in
//! ways a real vendor should not (an absurd or tiny token lifetime, a
//! redirect to another host, `Retry-After: 0` for ever, a body without
//! end, an over-long `interactionId`). Operators use it for dry runs
//! (`recsched simulate`).
//!
//! # Invariant
//! It shares no types with the `cxone` client: the API is read here a
//! second time, from `API.md`, so a misreading cannot sit on both sides of
//! a test. It depends only on [`crate::clock`], so expiry and token
//! lifetimes follow whatever clock it is given.
//!
//! # Layout
//! - `faults`: the fault knobs and the pure decision from one
//!   seeded draw per request.
//! - `ledger`: the recordings and the API's rules over them, pure.
//! - `params`: reading the query parameters, both spellings.
//! - `auth`: `POST /auth/token`, the access-key endpoint and the bearer
//!   check.
//! - `gate`: the limited workers of `max_concurrency`.
//! - `api`: the start and stop handlers.
//! - `wellknown`: the issuer's two discovery documents.
//! - `directory`: the UserHub user search over seeded teams.
//! - `control`: the `/_sim/*` endpoints and the request log.
//! - `state`: the one lock everything shares.
//!
//! # Use
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! let sim = recsched::simulator::spawn(Default::default()).await?;
//! println!("API at {}, tokens at {}", sim.url(), sim.token_url());
//! sim.shutdown().await
//! # }
//! ```

mod api;
mod auth;
mod control;
mod directory;
mod faults;
mod gate;
mod ledger;
mod params;
mod state;
mod wellknown;

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use directory::{MAX_TOP as SEARCH_MAX_TOP, SEARCH as SEARCH_PATH};
pub use faults::{Faults, FaultsError, UserFault};
pub use gate::GateStats;
pub use ledger::{EndReason, Recording};
pub use params::{MAX_DURATION_SECS, MIN_DURATION_SECS};
pub use state::LoggedRequest;
pub use wellknown::{CXONE as CXONE_CONFIGURATION_PATH, OPENID as OPENID_CONFIGURATION_PATH};

use crate::clock::{Clock, SystemClock};
use state::Shared;

/// Where the access-key token endpoint is served (API.md, "Around the
/// recording API"); written out here again, not taken from `cxone`.
pub const ACCESS_KEY_PATH: &str = "/authentication/v1/token/access-key";

/// What a simulator accepts and how it misbehaves. The credentials are
/// fake and only need to match what the client under test is given.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SimConfig {
    /// Expected in `Authorization: Basic` at `/auth/token`.
    pub client_id: String,
    pub client_secret: String,
    /// Expected as `username` of a password grant.
    pub access_key_id: String,
    /// Expected as `password` of a password grant.
    pub access_key_secret: String,
    /// Lifetime of an access token, seconds.
    pub token_ttl_secs: u64,
    /// The `tenantId` claim of every access token (and what
    /// `/.well-known/cxone-configuration?tenantId=` expects).
    pub tenant_id: String,
    /// The directory's teams when the simulator starts: team id -> user
    /// ids (each user in one team; a user named twice ends in the last).
    pub teams: BTreeMap<String, Vec<String>>,
    /// Faults in force when the simulator starts.
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            client_id: "sim-client".to_owned(),
            client_secret: "sim-client-secret".to_owned(),
            access_key_id: "sim-key".to_owned(),
            access_key_secret: "sim-key-secret".to_owned(),
            token_ttl_secs: 3600,
            tenant_id: "11111111-2222-4333-8444-555555555555".to_owned(),
            teams: BTreeMap::new(),
            faults: Faults::default(),
        }
    }
}

/// Secrets stay out of `Debug` even though they are fake: the same
/// struct may one day be printed next to real settings.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("client_id", &self.client_id)
            .field("client_secret", &"[redacted]")
            .field("access_key_id", &self.access_key_id)
            .field("access_key_secret", &"[redacted]")
            .field("token_ttl_secs", &self.token_ttl_secs)
            .field("tenant_id", &self.tenant_id)
            .field("teams", &self.teams.len())
            .field("faults", &self.faults)
            .finish()
    }
}

/// Serves the simulator on an already-bound `listener` until `shutdown`
/// completes, reading time from the system clock.
pub async fn serve(
    listener: TcpListener,
    config: SimConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = shared_for(&listener, config, Arc::new(SystemClock))?;
    serve_shared(listener, shared, shutdown).await
}

/// Binds `127.0.0.1:0`, then serves in a background task; the server is
/// accepting connections as soon as this returns.
pub async fn spawn(config: SimConfig) -> io::Result<SimHandle> {
    spawn_with_clock(config, Arc::new(SystemClock)).await
}

/// [`spawn`] with a clock of the caller's choosing, so expiry and token
/// lifetimes can be driven by a `ManualClock`.
pub async fn spawn_with_clock(config: SimConfig, clock: Arc<dyn Clock>) -> io::Result<SimHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;
    let shared = shared_for(&listener, config, clock)?;
    let cancel = CancellationToken::new();
    let stop = cancel.clone();
    let task = tokio::spawn(serve_shared(listener, Arc::clone(&shared), async move {
        stop.cancelled().await
    }));
    Ok(SimHandle {
        addr,
        url: shared.base_url.clone(),
        cancel,
        task,
        shared,
    })
}

fn shared_for(
    listener: &TcpListener,
    config: SimConfig,
    clock: Arc<dyn Clock>,
) -> io::Result<Arc<Shared>> {
    config
        .faults
        .validate()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let base_url = format!("http://{}", listener.local_addr()?);
    Ok(Arc::new(Shared::new(
        config,
        clock,
        base_url,
        CancellationToken::new(),
    )))
}

async fn serve_shared(
    listener: TcpListener,
    shared: Arc<Shared>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    tracing::info!(url = %shared.base_url, "simulator serving");
    let stopping = shared.stopping.clone();
    let signal = async move {
        shutdown.await;
        stopping.cancel();
    };
    axum::serve(listener, router(shared))
        .with_graceful_shutdown(signal)
        .await
}

fn router(shared: Arc<Shared>) -> Router {
    let mut app = Router::new()
        .route("/auth/token", post(auth::token))
        .route(ACCESS_KEY_PATH, post(auth::access_key))
        .route(wellknown::OPENID, get(wellknown::openid))
        .route(wellknown::CXONE, get(wellknown::cxone))
        .route(directory::SEARCH, post(directory::search));
    for prefix in api::PREFIXES {
        app = app
            .route(&format!("{prefix}{}", api::START), post(api::start))
            .route(&format!("{prefix}{}", api::STOP), post(api::stop));
    }
    app.route(
        "/_sim/config",
        get(control::get_config).put(control::put_config),
    )
    .route("/_sim/recordings", get(control::recordings))
    .route(
        "/_sim/requests",
        get(control::requests).delete(control::clear_requests),
    )
    .route("/_sim/stats", get(control::stats))
    .route("/_sim/teams", get(control::teams))
    .route(
        "/_sim/teams/{team}/{user}",
        axum::routing::put(control::put_team_user).delete(control::delete_team_user),
    )
    .layer(axum::middleware::from_fn_with_state(
        Arc::clone(&shared),
        control::log_request,
    ))
    .with_state(shared)
}

/// A running simulator. Dropping it stops the server.
pub struct SimHandle {
    addr: SocketAddr,
    url: String,
    /// Cancelling it starts the graceful shutdown.
    cancel: CancellationToken,
    task: JoinHandle<io::Result<()>>,
    /// The server's state, for the in-process accessors below.
    shared: Arc<Shared>,
}

impl SimHandle {
    /// The API base, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The token endpoint, `{url}/auth/token`.
    pub fn token_url(&self) -> String {
        format!("{}/auth/token", self.url)
    }

    /// The access-key token endpoint,
    /// `{url}/authentication/v1/token/access-key`.
    pub fn access_key_url(&self) -> String {
        format!("{}{ACCESS_KEY_PATH}", self.url)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it was started with (credentials for a client).
    pub fn config(&self) -> &SimConfig {
        &self.shared.config
    }

    /// A token that stops the server when cancelled.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// The faults in force (as `GET /_sim/config`).
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.clone()
    }

    /// Replaces the faults wholesale (as `PUT /_sim/config`).
    pub fn set_faults(&self, faults: Faults) -> Result<(), FaultsError> {
        faults.validate()?;
        self.shared.set_faults(faults);
        Ok(())
    }

    /// Every recording ever made (as `GET /_sim/recordings`).
    pub fn recordings(&self) -> Vec<Recording> {
        let now = self.shared.clock.now();
        self.shared.lock().ledger.all(now)
    }

    /// The request log (as `GET /_sim/requests`).
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.shared.lock().requests.iter().cloned().collect()
    }

    /// The directory's teams: team -> its users (as `GET /_sim/teams`).
    pub fn teams(&self) -> BTreeMap<String, Vec<String>> {
        self.shared.lock().directory.teams()
    }

    /// Puts `user` in `team`, active, moving it from any other team (as
    /// `PUT /_sim/teams/{team}/{user}`).
    pub fn add_to_team(&self, team: &str, user: &str) {
        self.shared.lock().directory.put(team, user);
    }

    /// Takes `user` out of `team`; `false` if it was not in it (as
    /// `DELETE /_sim/teams/{team}/{user}`).
    pub fn remove_from_team(&self, team: &str, user: &str) -> bool {
        self.shared.lock().directory.remove(team, user)
    }

    /// Sets a directory user's status (`ACTIVE`, `INACTIVE`, ...); `false`
    /// if the user is in no team.
    pub fn set_user_status(&self, user: &str, status: &str) -> bool {
        self.shared.lock().directory.set_status(user, status)
    }

    /// The issuer of the discovery documents: the simulator's own URL.
    pub fn issuer(&self) -> &str {
        &self.url
    }

    /// The worker gate's counters (as `GET /_sim/stats`).
    pub fn stats(&self) -> GateStats {
        self.shared.gate.stats()
    }

    /// Stops the server and waits until it has finished.
    pub async fn shutdown(mut self) -> io::Result<()> {
        self.cancel.cancel();
        (&mut self.task).await.map_err(io::Error::other)?
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimHandle").field("url", &self.url).finish()
    }
}
