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
pub mod endpoint;
mod error;
mod limit;
pub mod retrying;
mod settings;
pub mod token_answer;

pub use crate::recording::Operation;
pub use auth::{Credentials, Renewal, RenewalObserver};
pub use classify::{classify, Answer, Started, Stopped, MAX_INTERACTION_ID_CHARS};
pub use error::{classify_status, Action, CxoneError};
use limit::Limiter;
pub use limit::Limits;
pub use settings::{Settings, DEFAULT_PATH_PREFIX, DEFAULT_TOKEN_URL};

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

/// A typed client of the start/stop API. Cheap to share behind an `Arc`.
pub struct Client {
    http: reqwest::Client,
    start_url: reqwest::Url,
    stop_url: reqwest::Url,
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
        let credentials = resolve_credentials(settings, credentials_dir)?;
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
        let base = settings.api_base.trim_end_matches('/');
        if base.is_empty() {
            return Err(CxoneError::Config(
                "cxone.api_base is empty: set it to the CXone API base URL (RECSCHED_CXONE__API_BASE)".into(),
            ));
        }
        let prefix = settings.path_prefix.trim_end_matches('/');
        let url = |op: &str| {
            let url = reqwest::Url::parse(&format!("{base}{prefix}/{op}")).map_err(|e| {
                CxoneError::Config(format!(
                    "cxone.api_base `{base}` with cxone.path_prefix `{prefix}` is not a URL: {e}"
                ))
            })?;
            endpoint::checked("cxone.api_base", url)
        };
        Ok(Self {
            start_url: url("start-screen-interaction-recording")?,
            stop_url: url("stop-screen-interaction-recording")?,
            user_param: settings.user_param.clone(),
            duration_param: settings.duration_param.clone(),
            contact_param: settings.contact_param.clone(),
            tokens: TokenSource::new(
                http.clone(),
                credentials,
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

    /// Asks the vendor to record `user` for `duration`. One exchange.
    pub async fn start(&self, user: &UserId, duration: RecordingDuration) -> Attempt<Started> {
        let secs = duration.as_secs().to_string();
        let query = [
            (self.user_param.as_str(), user.as_str()),
            (self.duration_param.as_str(), secs.as_str()),
        ];
        let attempt = self
            .exchange(Operation::Start, &self.start_url, &query, Some(duration))
            .await;
        attempt.map(|answer| match answer {
            Answer::Started(s) => Ok(s),
            Answer::Stopped(_) => Err(CxoneError::Config("a start was answered as a stop".into())),
        })
    }

    /// Asks the vendor to stop `user`'s recording `contact`. One exchange.
    pub async fn stop(&self, user: &UserId, contact: ContactId) -> Attempt<Stopped> {
        let contact = contact.to_string();
        let query = [
            (self.user_param.as_str(), user.as_str()),
            (self.contact_param.as_str(), contact.as_str()),
        ];
        let attempt = self
            .exchange(Operation::Stop, &self.stop_url, &query, None)
            .await;
        attempt.map(|answer| match answer {
            Answer::Stopped(s) => Ok(s),
            Answer::Started(_) => Err(CxoneError::Config("a stop was answered as a start".into())),
        })
    }

    async fn exchange(
        &self,
        operation: Operation,
        url: &reqwest::Url,
        query: &[(&str, &str)],
        requested: Option<RecordingDuration>,
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
        let token = match self.tokens.bearer().await {
            Ok(t) => t,
            Err(e) => return unsent(e),
        };
        // Held until the answer is read: it is what caps requests in flight.
        let Some(_permit) = self.limiter.admit_unless(&self.shutdown).await else {
            return unsent(CxoneError::Shutdown);
        };
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
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let err = self.transport_error(&e);
                return finish(None, String::new(), Err(err), Some(token));
            }
        };
        let status = response.status().as_u16();
        let headers = response.headers().clone();
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

fn resolve_credentials(
    settings: &Settings,
    credentials_dir: Option<&Path>,
) -> Result<Credentials, CxoneError> {
    let bearer = secret_from(
        "cxone.bearer_token",
        settings.bearer_token.as_ref(),
        settings.bearer_token_file.as_deref(),
        credentials_dir,
    )?;
    if let Some(token) = bearer {
        return Ok(Credentials::Static(token));
    }
    let missing = |what: &str, key: &str| {
        CxoneError::Config(format!(
            "CXone {what} missing: set {key} in the config file, RECSCHED_{} in the environment, \
             or {key}_file (e.g. a systemd credential); or set cxone.bearer_token",
            key.replace('.', "__").to_uppercase()
        ))
    };
    let client_secret = secret_from(
        "cxone.client_secret",
        settings.client_secret.as_ref(),
        settings.client_secret_file.as_deref(),
        credentials_dir,
    )?
    .ok_or_else(|| missing("client secret", "cxone.client_secret"))?;
    let access_key_secret = secret_from(
        "cxone.access_key_secret",
        settings.access_key_secret.as_ref(),
        settings.access_key_secret_file.as_deref(),
        credentials_dir,
    )?
    .ok_or_else(|| missing("access key secret", "cxone.access_key_secret"))?;
    if settings.client_id.is_empty() {
        return Err(missing("client id", "cxone.client_id"));
    }
    if settings.access_key_id.is_empty() {
        return Err(missing("access key id", "cxone.access_key_id"));
    }
    let token_url = reqwest::Url::parse(&settings.token_url).map_err(|e| {
        CxoneError::Config(format!(
            "cxone.token_url `{}` is not a URL: {e}",
            settings.token_url
        ))
    })?;
    let token_url = endpoint::checked("cxone.token_url", token_url)?;
    Ok(Credentials::Password {
        token_url,
        client_id: settings.client_id.clone(),
        client_secret,
        access_key_id: settings.access_key_id.clone(),
        access_key_secret,
    })
}

/// A secret given inline or in a file (not both). Trailing newlines of a
/// file are dropped (editors and `echo` add one).
fn secret_from(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
    credentials_dir: Option<&Path>,
) -> Result<Option<Secret>, CxoneError> {
    let inline = inline.filter(|s| !s.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(CxoneError::Config(format!(
            "both {key} and {key}_file are set: keep one"
        ))),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let path = match credentials_dir {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_path_buf(),
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CxoneError::Config(format!(
                    "{key}_file {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(CxoneError::Config(format!(
                    "{key}_file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(Secret::new(text)))
        }
    }
}
