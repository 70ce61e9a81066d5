//! The CXone client: start and stop one user's screen recording, with
//! tokens, and classify every answer.
//!
//! One call is one HTTP exchange ([`Client::start`], [`Client::stop`]); it
//! always returns an [`Exchange`] for the audit trail beside its typed
//! result. Retrying is the caller's choice: [`retrying`] drives calls with
//! the pure [`crate::retry`] policy up to a deadline. User ids and contact
//! ids reach the query string through reqwest's encoder, never through
//! string formatting, so a user id can never add a parameter (PRODUCT.md
//! behaviour 9). TLS is verified (rustls with the webpki roots).
//!
//! Nothing the vendor sends can make the client talk to another host or
//! hold unbounded data: no redirect is followed (a 3xx is a final error
//! naming where it pointed), plain `http://` is refused for any host but
//! this machine ([`endpoint`]), and a body is read to 64 KiB at most
//! ([`body`]).

mod auth;
pub mod body;
mod classify;
mod credentials;
pub mod directory;
pub mod discovery;
pub mod endpoint;
mod error;
mod jwt;
mod limit;
pub mod retrying;
mod settings;
pub mod token_answer;

pub use crate::recording::Operation;
pub use auth::{Renewal, RenewalObserver};
pub use classify::{classify, Answer, Started, Stopped, MAX_INTERACTION_ID_CHARS};
pub use credentials::{AuthMode, AuthPlan, Credentials};
pub use discovery::Discovered;
pub use error::{classify_status, Action, CxoneError};
use limit::Limiter;
pub use limit::Limits;
pub use settings::{
    Settings, ACCESS_KEY_PATH, DEFAULT_ISSUER, DEFAULT_PATH_PREFIX, DEFAULT_TOKEN_URL,
};

use crate::clock::Clock;
use crate::recording::{ContactId, RecordingDuration, UserId};
use crate::secret::Secret;
use auth::TokenSource;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The audit facts of one HTTP exchange.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub operation: Operation,
    /// When the request left.
    pub at: DateTime<Utc>,
    /// The HTTP status; `None` on a transport error or timeout.
    pub status: Option<u16>,
    pub latency: Duration,
    /// The response body, cut to 2 KiB.
    pub body: String,
    /// For a start, the duration asked for.
    pub requested: Option<RecordingDuration>,
}

/// One exchange and what it meant.
#[derive(Debug)]
pub struct Attempt<T> {
    pub exchange: Exchange,
    pub result: Result<T, CxoneError>,
    /// The bearer token this exchange used, so a 401 can invalidate exactly it.
    token: Option<Secret>,
}

/// Asked right before each request leaves, once its token is in hand and
/// its turn under the request caps has come: `false` withdraws it
/// ([`CxoneError::Withdrawn`]) and nothing is sent. The daemon's gate
/// checks that the request's recording row is still this instance's, with
/// enough of its lease left (PostgreSQL).
pub trait Gate: Sync {
    fn ready(&self) -> futures::future::BoxFuture<'_, bool>;
}

/// A gate that always lets the request go.
#[derive(Debug, Clone, Copy, Default)]
pub struct Open;

impl Gate for Open {
    fn ready(&self) -> futures::future::BoxFuture<'_, bool> {
        Box::pin(std::future::ready(true))
    }
}

/// A typed client of the start/stop API. Cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    /// Where the calls go; `None` until discovery has found the API host.
    /// A std lock: only ever held to clone the `Arc`.
    endpoints: std::sync::RwLock<Option<Arc<Endpoints>>>,
    /// `cxone.path_prefix`, for endpoints built after discovery.
    path_prefix: String,
    /// Set when the endpoints are discovered from `cxone.issuer`.
    discovery: Option<discovery::Discovery>,
    user_param: String,
    duration_param: String,
    contact_param: String,
    tokens: TokenSource,
    clock: Arc<dyn Clock>,
    request_timeout: Duration,
    limiter: Limiter,
    /// Requests still waiting for their turn are not sent once this is
    /// cancelled (requests in flight always finish).
    shutdown: tokio_util::sync::CancellationToken,
}

impl Client {
    /// Builds a client. Secrets come from the settings or from the files
    /// they name; a relative file name is looked up in `credentials_dir`
    /// (systemd's `$CREDENTIALS_DIRECTORY`) when one is given.
    pub fn new(
        settings: &Settings,
        credentials_dir: Option<&Path>,
        limits: Limits,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, CxoneError> {
        let credentials = credentials::resolve(settings, credentials_dir)?;
        let token_endpoint = token_endpoint(settings, &credentials)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("recsched/", env!("CARGO_PKG_VERSION")))
            .timeout(settings.request_timeout())
            .connect_timeout(settings.connect_timeout())
            .pool_max_idle_per_host(settings.pool_max_idle_per_host)
            // Plain http stays possible for loopback only (`endpoint`).
            .https_only(false)
            // A redirect would carry the bearer token or the secrets to
            // wherever `Location` points: a 3xx is answered as an error.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| CxoneError::Config(format!("cannot build the HTTP client: {e}")))?;
        let discovery = if settings.discovers() {
            let issuer = parse_setting("cxone.issuer", settings.issuer.trim())?;
            let tenant = match settings.tenant_id.trim() {
                "" => None,
                t if jwt::is_tenant(t) => Some(t.to_owned()),
                _ => {
                    return Err(CxoneError::Config(
                        "cxone.tenant_id must be a plain id (printable, no spaces)".into(),
                    ))
                }
            };
            Some(discovery::Discovery::new(
                issuer,
                tenant,
                token_endpoint.is_some() || credentials.mode() == AuthMode::Bearer,
            ))
        } else {
            None
        };
        let endpoints = match settings.api_base.trim() {
            "" if discovery.is_some() => None,
            "" => {
                return Err(CxoneError::Config(
                    "cxone.api_base is empty: set it to the CXone API base URL \
                     (RECSCHED_CXONE__API_BASE), or set cxone.issuer to discover it"
                        .into(),
                ))
            }
            base => Some(Arc::new(Endpoints::new(
                parse_setting("cxone.api_base", base)?,
                &settings.path_prefix,
            )?)),
        };
        Ok(Self {
            endpoints: std::sync::RwLock::new(endpoints),
            path_prefix: settings.path_prefix.clone(),
            discovery,
            user_param: settings.user_param.clone(),
            duration_param: settings.duration_param.clone(),
            contact_param: settings.contact_param.clone(),
            tokens: TokenSource::new(
                http.clone(),
                credentials,
                token_endpoint,
                Duration::from_secs(settings.token_renew_margin_seconds),
                clock.clone(),
            ),
            http,
            clock,
            request_timeout: settings.request_timeout(),
            limiter: Limiter::new(limits),
            shutdown: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// How this client gets its tokens.
    pub fn auth_mode(&self) -> AuthMode {
        self.tokens.mode()
    }

    /// Where this client asks for tokens (`None` for a static token).
    pub fn token_endpoint(&self) -> Option<reqwest::Url> {
        self.tokens.endpoint()
    }

    /// From the moment `shutdown` is cancelled, requests waiting for their
    /// turn under the caps are not sent (they fail with
    /// [`CxoneError::Shutdown`]); requests in flight finish.
    pub fn with_shutdown(mut self, shutdown: tokio_util::sync::CancellationToken) -> Self {
        self.shutdown = shutdown;
        self
    }

    /// From now on, `observer` hears of every token renewal's outcome
    /// (the daemon counts them; a static token is never renewed).
    pub fn on_token_renewal(mut self, observer: RenewalObserver) -> Self {
        self.tokens.observe(observer);
        self
    }

    /// Makes ready what a burst of requests opening at `at` would
    /// otherwise wait for at its instant: the API host (discovery, where
    /// configured) and a token that is not due for renewal before `at`
    /// (renewed now if it would be). Sends nothing to the recording API.
    /// An error is returned for the caller to log; the burst's own
    /// requests try again.
    pub async fn warm(&self, at: DateTime<Utc>) -> Result<(), CxoneError> {
        self.endpoints().await?;
        self.tokens.bearer_at(at).await.map(drop)
    }

    /// Asks the vendor to record `user` for `duration`. One exchange.
    pub async fn start(&self, user: &UserId, duration: RecordingDuration) -> Attempt<Started> {
        self.start_gated(user, duration, &Open).await
    }

    /// [`Client::start`], sent only if `gate` still agrees once the
    /// request's turn has come (after the token and the request caps).
    pub async fn start_gated(
        &self,
        user: &UserId,
        duration: RecordingDuration,
        gate: &dyn Gate,
    ) -> Attempt<Started> {
        let secs = duration.as_secs().to_string();
        let query = [
            (self.user_param.as_str(), user.as_str()),
            (self.duration_param.as_str(), secs.as_str()),
        ];
        let attempt = self
            .exchange(Operation::Start, &query, Some(duration), gate)
            .await;
        attempt.map(|answer| match answer {
            Answer::Started(s) => Ok(s),
            Answer::Stopped(_) => Err(CxoneError::Config("a start was answered as a stop".into())),
        })
    }

    /// Asks the vendor to stop `user`'s recording `contact`. One exchange.
    pub async fn stop(&self, user: &UserId, contact: ContactId) -> Attempt<Stopped> {
        self.stop_gated(user, contact, &Open).await
    }

    /// [`Client::stop`], sent only if `gate` still agrees once the
    /// request's turn has come.
    pub async fn stop_gated(
        &self,
        user: &UserId,
        contact: ContactId,
        gate: &dyn Gate,
    ) -> Attempt<Stopped> {
        let contact = contact.to_string();
        let query = [
            (self.user_param.as_str(), user.as_str()),
            (self.contact_param.as_str(), contact.as_str()),
        ];
        let attempt = self.exchange(Operation::Stop, &query, None, gate).await;
        attempt.map(|answer| match answer {
            Answer::Stopped(s) => Ok(s),
            Answer::Started(_) => Err(CxoneError::Config("a stop was answered as a start".into())),
        })
    }

    async fn exchange(
        &self,
        operation: Operation,
        query: &[(&str, &str)],
        requested: Option<RecordingDuration>,
        gate: &dyn Gate,
    ) -> Attempt<Answer> {
        // A request that never leaves still reports its (empty) exchange.
        let unsent = |error| Attempt {
            exchange: Exchange {
                operation,
                at: self.clock.now(),
                status: None,
                latency: Duration::ZERO,
                body: String::new(),
                requested,
            },
            result: Err(error),
            token: None,
        };
        let endpoints = match self.endpoints().await {
            Ok(e) => e,
            Err(e) => return unsent(e),
        };
        let url = match operation {
            Operation::Start => &endpoints.start,
            Operation::Stop => &endpoints.stop,
        };
        let token = match self.tokens.bearer().await {
            Ok(t) => t,
            Err(e) => return unsent(e),
        };
        // Held until the answer is read: it is what caps requests in flight.
        let Some(_permit) = self.limiter.admit_unless(&self.shutdown).await else {
            return unsent(CxoneError::Shutdown);
        };
        // Last word to the caller, as late as can be: waiting for the token
        // or a turn may have taken long (or the process was stopped).
        if !gate.ready().await {
            return unsent(CxoneError::Withdrawn);
        }
        // The exchange's time is when the request leaves, after the caps.
        let at = self.clock.now();
        let started = Instant::now();
        let finish = |status, body, result, token| Attempt {
            exchange: Exchange {
                operation,
                at,
                status,
                latency: started.elapsed(),
                body,
                requested,
            },
            result,
            token,
        };
        let sent = self
            .http
            .post(url.clone())
            .query(query)
            .bearer_auth(token.expose())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&e);
                self.note_host(discovery::HostSign::Unreachable).await;
                return finish(None, String::new(), Err(err), Some(token));
            }
        };
        let status = response.status().as_u16();
        // A stop's 404 is "already ended", not a wrong host.
        let sign = if status == 404 && operation == Operation::Start {
            discovery::HostSign::NotFound
        } else {
            discovery::HostSign::Answered
        };
        self.note_host(sign).await;
        // Taken, not cloned: reading the body needs no headers, and a
        // copy per answer was a few allocations per start in a burst.
        let headers = std::mem::take(response.headers_mut());
        let body = match body::read_capped(response).await {
            Ok(b) => b,
            Err(e) => {
                let err = self.transport_error(&e);
                return finish(Some(status), String::new(), Err(err), Some(token));
            }
        };
        let result = classify(operation, status, &headers, &body, self.clock.now());
        finish(Some(status), classify::kept(&body), result, Some(token))
    }

    fn transport_error(&self, e: &reqwest::Error) -> CxoneError {
        if e.is_timeout() {
            CxoneError::Timeout(self.request_timeout)
        } else {
            CxoneError::Transport(describe_transport(e))
        }
    }
}

impl<T> Attempt<T> {
    fn map<U>(self, f: impl FnOnce(T) -> Result<U, CxoneError>) -> Attempt<U> {
        Attempt {
            exchange: self.exchange,
            result: self.result.and_then(f),
            token: self.token,
        }
    }
}

/// A transport error with its cause chain, on one line.
pub(crate) fn describe_transport(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Where the credentials' tokens come from, checked: the key set for the
/// mode (`cxone.token_url`, `cxone.access_key_url`); unset, `None` when
/// discovery will find it, else the issuer's (or CXone's default one's).
/// A static token has no endpoint.
fn token_endpoint(
    settings: &Settings,
    credentials: &Credentials,
) -> Result<Option<(reqwest::Url, &'static str)>, CxoneError> {
    let (given, key, path) = match credentials.mode() {
        AuthMode::Bearer => return Ok(None),
        AuthMode::Password => (settings.token_url.trim(), "cxone.token_url", "/auth/token"),
        AuthMode::AccessKey => (
            settings.access_key_url.trim(),
            "cxone.access_key_url",
            ACCESS_KEY_PATH,
        ),
    };
    let raw = match given {
        "" if settings.discovers() => return Ok(None),
        "" => format!("{}{path}", settings.issuer_or_default()),
        given => given.to_owned(),
    };
    Ok(Some((parse_setting(key, &raw)?, key)))
}

/// A URL setting, parsed and checked ([`endpoint::checked`]).
fn parse_setting(key: &str, raw: &str) -> Result<reqwest::Url, CxoneError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| CxoneError::Config(format!("{key} `{raw}` is not a URL: {e}")))?;
    endpoint::checked(key, url)
}

/// The URLs of the recording calls under one API base.
pub(crate) struct Endpoints {
    api_base: reqwest::Url,
    start: reqwest::Url,
    stop: reqwest::Url,
}

impl Endpoints {
    fn new(api_base: reqwest::Url, prefix: &str) -> Result<Self, CxoneError> {
        let base = api_base.as_str().trim_end_matches('/');
        let prefix = prefix.trim_end_matches('/');
        let url = |op: &str| {
            let url = reqwest::Url::parse(&format!("{base}{prefix}/{op}")).map_err(|e| {
                CxoneError::Config(format!(
                    "API base `{base}` with cxone.path_prefix `{prefix}` is not a URL: {e}"
                ))
            })?;
            endpoint::checked("cxone.api_base", url)
        };
        Ok(Self {
            start: url("start-screen-interaction-recording")?,
            stop: url("stop-screen-interaction-recording")?,
            api_base,
        })
    }
}
