//! Bearer tokens for the API: a static token from config, CXone's OAuth2
//! password grant with refresh, or the access-key token endpoint.
//!
//! The cache sits behind one async mutex held across the renewal request,
//! so when many requests find the token stale at once, exactly one renews
//! it and the rest wait for and share the result (no thundering herd).
//! Secrets only leave this module on the wire; errors carry the status,
//! never a credential or a token. A token's lifetime comes from
//! [`token_answer`], clamped, and it is renewed half-way through its life
//! at the latest. An access-key token is renewed the same way, by posting
//! the access key again: its endpoint has no refresh grant without an
//! OAuth client, so a `refresh_token` in its answer is not used. Whoever
//! watches (the daemon's metrics) hears of each renewal's outcome through
//! a [`RenewalObserver`], so this module knows nothing of them.
//!
//! The endpoint is held apart from the credentials because discovery may
//! find it, or move it, while the daemon runs ([`TokenSource::set_endpoint`]).

use super::body::read_capped;
use super::classify::redirect_target;
use super::credentials::Credentials;
use super::error::CxoneError;
use super::token_answer;
use crate::clock::Clock;
use crate::secret::Secret;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use std::sync::Arc;
use std::time::Duration;

/// How one token renewal went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renewal {
    /// A new token was obtained (by refresh, or with the access key).
    Renewed,
    /// Neither grant gave a token; the request that needed it fails.
    Failed,
}

/// Told of every renewal's outcome, on the task that renewed; keep it
/// quick (count it, do not wait on it).
pub type RenewalObserver = Arc<dyn Fn(Renewal) + Send + Sync>;

struct Cached {
    access: Secret,
    refresh: Option<Secret>,
    /// From this instant on, the token is renewed before use: its expiry
    /// less the renewal margin ([`token_answer::renewal_margin`]).
    renew_at: DateTime<Utc>,
}

/// Hands out a valid bearer token, renewing it when needed.
pub struct TokenSource {
    http: reqwest::Client,
    credentials: Credentials,
    /// Where tokens are asked for, and the setting that names it (for
    /// errors); `None` until discovery has found it. A std lock: it is
    /// only ever held to copy the URL.
    endpoint: std::sync::RwLock<Option<(reqwest::Url, &'static str)>>,
    /// The configured margin (`cxone.token_renew_margin_seconds`); each
    /// token's own margin is at most half its lifetime.
    margin: Duration,
    clock: Arc<dyn Clock>,
    /// The one cached token. An async mutex, held across a renewal on
    /// purpose: concurrent callers queue behind the one renewal.
    cache: tokio::sync::Mutex<Option<Cached>>,
    /// Hears of each renewal; none by default.
    observer: Option<RenewalObserver>,
}

impl TokenSource {
    /// A token source posting to `endpoint` (named by `setting` in
    /// errors); `None` for a static token or until discovery sets it.
    pub fn new(
        http: reqwest::Client,
        credentials: Credentials,
        endpoint: Option<(reqwest::Url, &'static str)>,
        margin: Duration,
        clock: Arc<dyn Clock>,
    ) -> Self {
        Self {
            http,
            credentials,
            endpoint: std::sync::RwLock::new(endpoint),
            margin,
            clock,
            cache: tokio::sync::Mutex::new(None),
            observer: None,
        }
    }

    /// From now on, `observer` hears of every renewal's outcome.
    pub fn observe(&mut self, observer: RenewalObserver) {
        self.observer = Some(observer);
    }

    /// The mode these credentials use.
    pub fn mode(&self) -> super::AuthMode {
        self.credentials.mode()
    }

    /// The token endpoint in use, if known.
    pub fn endpoint(&self) -> Option<reqwest::Url> {
        self.endpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|(url, _)| url.clone())
    }

    /// Points token requests at `url` from now on (discovery found it);
    /// a cached token stays valid.
    pub fn set_endpoint(&self, url: reqwest::Url, setting: &'static str) {
        *self.endpoint.write().unwrap_or_else(|e| e.into_inner()) = Some((url, setting));
    }

    /// A token that is not yet due for renewal.
    pub async fn bearer(&self) -> Result<Secret, CxoneError> {
        self.bearer_at(self.clock.now()).await
    }

    /// A token that will not be due for renewal at `at` (renewed now if it
    /// would be): what a burst opening at `at` needs in hand.
    pub async fn bearer_at(&self, at: DateTime<Utc>) -> Result<Secret, CxoneError> {
        if let Credentials::Static(token) = &self.credentials {
            return Ok(token.clone());
        }
        let mut cache = self.cache.lock().await;
        let now = at.max(self.clock.now());
        if let Some(c) = cache.as_ref() {
            if now < c.renew_at {
                return Ok(c.access.clone());
            }
        }
        let refresh = cache.as_ref().and_then(|c| c.refresh.clone());
        let fresh = self.renew(refresh.as_ref()).await;
        if let Some(observer) = &self.observer {
            observer(match fresh {
                Ok(_) => Renewal::Renewed,
                Err(_) => Renewal::Failed,
            });
        }
        let fresh = fresh?;
        let token = fresh.access.clone();
        *cache = Some(fresh);
        Ok(token)
    }

    /// A new token: by refresh when there is a refresh token, else (or
    /// when the refresh is refused) with the access key.
    async fn renew(&self, refresh: Option<&Secret>) -> Result<Cached, CxoneError> {
        match refresh {
            Some(r) => match self.grant(Grant::Refresh(r)).await {
                Ok(t) => Ok(t),
                Err(e) => {
                    tracing::info!(error = %e, "token refresh failed; asking for a new token with the access key");
                    self.grant(Grant::New).await
                }
            },
            None => self.grant(Grant::New).await,
        }
    }

    /// Marks `used` as rejected (the API answered 401), so the next
    /// [`bearer`](Self::bearer) renews it. A token already replaced by a
    /// concurrent caller is left alone.
    pub async fn invalidate(&self, used: &Secret) {
        let mut cache = self.cache.lock().await;
        if let Some(c) = cache.as_mut() {
            if &c.access == used {
                c.renew_at = DateTime::<Utc>::MIN_UTC;
            }
        }
    }

    async fn grant(&self, grant: Grant<'_>) -> Result<Cached, CxoneError> {
        let Some((token_url, setting)) = self
            .endpoint
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
        else {
            return Err(CxoneError::Token {
                message: "the token endpoint is not known yet (discovery has not succeeded)".into(),
                retryable: true,
            });
        };
        let request = self.http.post(token_url.clone());
        let (request, kind, hint) = match (&self.credentials, grant) {
            (Credentials::Static(_), _) => {
                return Err(CxoneError::Config("static token cannot be renewed".into()))
            }
            (
                Credentials::Password {
                    client_id,
                    client_secret,
                    access_key_id,
                    access_key_secret,
                },
                grant,
            ) => {
                let form: Vec<(&str, &str)> = match grant {
                    Grant::New => vec![
                        ("grant_type", "password"),
                        ("username", access_key_id),
                        ("password", access_key_secret.expose()),
                    ],
                    Grant::Refresh(r) => vec![
                        ("grant_type", "refresh_token"),
                        ("refresh_token", r.expose()),
                    ],
                };
                let basic = base64::engine::general_purpose::STANDARD
                    .encode(format!("{client_id}:{}", client_secret.expose()));
                (
                    request
                        .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
                        .form(&form),
                    grant.name(),
                    "cxone.client_id, cxone.client_secret, cxone.access_key_id and cxone.access_key_secret",
                )
            }
            (
                Credentials::AccessKey {
                    access_key_id,
                    access_key_secret,
                },
                _,
            ) => (
                request.json(&serde_json::json!({
                    "accessKeyId": access_key_id,
                    "accessKeySecret": access_key_secret.expose(),
                })),
                "access-key",
                "cxone.access_key_id and cxone.access_key_secret",
            ),
        };
        let response = request
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| CxoneError::Token {
                message: format!(
                    "{kind} grant at {token_url}: {}",
                    super::describe_transport(&e)
                ),
                retryable: true,
            })?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            // Never followed (the client has no redirect policy): the
            // secrets would be posted again to wherever it points.
            let redirected = CxoneError::Redirected {
                status,
                to: redirect_target(response.headers()),
                setting,
            };
            return Err(CxoneError::Token {
                message: format!("{kind} grant at {token_url}: {redirected}"),
                retryable: false,
            });
        }
        if !(200..300).contains(&status) {
            let retryable = !matches!(status, 400 | 401 | 403);
            let hint = if retryable {
                String::new()
            } else {
                format!("; check {hint}")
            };
            return Err(CxoneError::Token {
                message: format!("{kind} grant at {token_url} answered HTTP {status}{hint}"),
                retryable,
            });
        }
        let body = read_capped(response).await.map_err(|e| CxoneError::Token {
            message: format!(
                "{kind} grant at {token_url}: reading the answer: {}",
                super::describe_transport(&e)
            ),
            retryable: true,
        })?;
        let answer = token_answer::parse(&body).map_err(|why| CxoneError::Token {
            message: format!("{kind} grant at {token_url}: the answer is not a token: {why}"),
            retryable: true,
        })?;
        if let Some(note) = &answer.lifetime_note {
            tracing::warn!(%token_url, grant = kind, "token answer: {note}");
        }
        // The access-key endpoint has no refresh grant of its own.
        let refresh = match self.credentials {
            Credentials::AccessKey { .. } => None,
            _ => answer.refresh,
        };
        Ok(Cached {
            renew_at: token_answer::renew_at(self.clock.now(), answer.lifetime, self.margin),
            access: answer.access,
            refresh,
        })
    }
}

/// A new token from the credentials, or a refresh.
#[derive(Clone, Copy)]
enum Grant<'a> {
    New,
    Refresh(&'a Secret),
}

impl Grant<'_> {
    fn name(&self) -> &'static str {
        match self {
            Grant::New => "password",
            Grant::Refresh(_) => "refresh_token",
        }
    }
}
