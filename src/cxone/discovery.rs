//! Finding a tenant's endpoints from its issuer, the way NICE's own SDK
//! does, so an operator need not know the API host of their area.
//!
//! With `cxone.issuer` set and `cxone.api_base` empty, the client
//! 1. reads `<issuer>/.well-known/openid-configuration` for the
//!    `token_endpoint` (the password grant posts there; the access-key
//!    endpoint is on the same host);
//! 2. gets a token, and takes the tenant id from its `tenantId` claim
//!    (or from `cxone.tenant_id` when that is set);
//! 3. reads `<issuer>/.well-known/cxone-configuration?tenantId=<id>` for
//!    the API host: its `api_endpoint` when it gives one, else
//!    `https://api-<area>.<domain>`.
//!
//! Every request keeps the client's rules (no redirect, https unless
//! loopback, 64 KiB bodies, the same timeouts), and every URL a document
//! names is checked like a configured one before it is used. Parsing the
//! documents is pure ([`token_endpoint_of`], [`api_base_of`]).
//!
//! Re-discovery: after [`REDISCOVER_AFTER_FAILURES`] transport failures
//! in a row on the API host, or a 404 from it on a start or a directory
//! search, the client discovers again (at most once per
//! [`REDISCOVER_EVERY`]), so a tenant moved to another host is followed.
//! What was found is published ([`Client::subscribe_discovered`]); the
//! daemon caches it and hands it back with [`Client::adopt`] when the
//! issuer cannot be reached at start.

use super::body::{is_oversized, read_capped, MAX_BODY_BYTES};
use super::classify::redirect_target;
use super::error::CxoneError;
use super::{endpoint, jwt, Client, Endpoints};
use chrono::{DateTime, Utc};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// Path of the OpenID document under the issuer.
pub const OPENID_PATH: &str = "/.well-known/openid-configuration";
/// Path of CXone's own document under the issuer.
pub const CXONE_CONFIG_PATH: &str = "/.well-known/cxone-configuration";
/// Transport failures in a row on the API host that make the client
/// discover again.
pub const REDISCOVER_AFTER_FAILURES: u32 = 3;
/// Re-discovery runs at most this often.
pub const REDISCOVER_EVERY: Duration = Duration::from_secs(30);
/// Without endpoints, a request tries discovery at most this often.
const RETRY_FIRST_EVERY: Duration = Duration::from_secs(5);

/// What discovery found. Holds no secret; cached as JSON by the daemon.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Discovered {
    /// The issuer it was found from (a cache for another issuer is not used).
    pub issuer: String,
    /// The issuer's `token_endpoint`.
    pub token_endpoint: String,
    /// The endpoint tokens are asked for in the mode in force (the
    /// password grant's or the access-key one); empty for a static token.
    pub token_url: String,
    pub tenant_id: String,
    /// Where the tenant id came from: `token` or `cxone.tenant_id`.
    pub tenant_from: String,
    /// The API base the recording and directory calls use.
    pub api_base: String,
    /// `api_endpoint`, or `area` and `domain`.
    pub api_from: String,
    /// When it was found (UTC).
    pub at: DateTime<Utc>,
}

/// Discovery's part of a client: the issuer and its state.
pub(super) struct Discovery {
    issuer: reqwest::Url,
    /// `cxone.tenant_id`, when set.
    tenant: Option<String>,
    /// Whether `cxone.token_url` / `cxone.access_key_url` were set, in
    /// which case they win over what the issuer says.
    token_url_fixed: bool,
    /// Single flight, and when discovery was last tried.
    attempt: tokio::sync::Mutex<Tried>,
    /// Transport failures in a row on the API host.
    failures: AtomicU32,
    published: watch::Sender<Option<Discovered>>,
}

impl Discovery {
    pub(super) fn new(issuer: reqwest::Url, tenant: Option<String>, token_url_fixed: bool) -> Self {
        Self {
            issuer,
            tenant,
            token_url_fixed,
            attempt: tokio::sync::Mutex::new(Tried::default()),
            failures: AtomicU32::new(0),
            published: watch::Sender::new(None),
        }
    }
}

/// When discovery was last tried, for any reason and because the host
/// looked wrong.
#[derive(Debug, Default, Clone, Copy)]
struct Tried {
    any: Option<Instant>,
    again: Option<Instant>,
}

/// What an exchange with the API host says about the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HostSign {
    /// An answer that is not a 404: the host is right.
    Answered,
    /// No answer at all (transport error, timeout).
    Unreachable,
    /// A 404 on a call that should exist.
    NotFound,
}

impl Client {
    /// Whether this client finds its endpoints from `cxone.issuer`.
    pub fn discovers(&self) -> bool {
        self.discovery.is_some()
    }

    /// The API base in use, once known.
    pub fn api_base(&self) -> Option<reqwest::Url> {
        self.current_endpoints().map(|e| e.api_base.clone())
    }

    /// Each new discovery result, as it is found.
    pub fn subscribe_discovered(&self) -> watch::Receiver<Option<Discovered>> {
        match &self.discovery {
            Some(d) => d.published.subscribe(),
            None => watch::Sender::new(None).subscribe(),
        }
    }

    /// Gets a token now (a request, unless one is cached or the token is
    /// static) and returns its `tenantId` claim if it has one: the dry run
    /// of `recsched check --online`. The token itself never leaves.
    pub async fn probe_token(&self) -> Result<Option<String>, CxoneError> {
        let token = self.tokens.bearer().await?;
        Ok(jwt::tenant_id(token.expose()).ok())
    }

    /// Uses `cached` (an earlier discovery) while the issuer cannot be
    /// reached. Ignored when endpoints are already known or when it was
    /// found from another issuer; its URLs are checked again.
    pub fn adopt(&self, cached: &Discovered) -> Result<bool, CxoneError> {
        let Some(d) = &self.discovery else {
            return Ok(false);
        };
        if self.current_endpoints().is_some() || cached.issuer != d.issuer.as_str() {
            return Ok(false);
        }
        let api = parse_checked("the cached API base", &cached.api_base)?;
        if !cached.token_url.is_empty() && !d.token_url_fixed {
            let token = parse_checked("the cached token endpoint", &cached.token_url)?;
            self.tokens.set_endpoint(token, "cxone.issuer");
        }
        self.set_endpoints(api)?;
        Ok(true)
    }

    /// Discovers the endpoints now (single flight: a caller that finds a
    /// discovery running waits for it and returns its result).
    pub async fn discover(&self) -> Result<Discovered, CxoneError> {
        let Some(d) = &self.discovery else {
            return Err(CxoneError::Config(
                "discovery needs cxone.issuer set and cxone.api_base empty".into(),
            ));
        };
        let mut tried = d.attempt.lock().await;
        tried.any = Some(Instant::now());
        let found = self.discover_once(d).await;
        drop(tried);
        match &found {
            Ok(found) => {
                d.failures.store(0, Ordering::Relaxed);
                let changed = d.published.borrow().as_ref().is_none_or(|old| {
                    old.api_base != found.api_base || old.token_url != found.token_url
                });
                if changed {
                    tracing::info!(
                        issuer = %found.issuer,
                        api_base = %found.api_base,
                        api_from = %found.api_from,
                        token_url = %found.token_url,
                        tenant_id = %found.tenant_id,
                        tenant_from = %found.tenant_from,
                        "discovered the CXone endpoints"
                    );
                } else {
                    tracing::debug!(api_base = %found.api_base, "discovery found the same endpoints");
                }
                d.published.send_replace(Some(found.clone()));
            }
            Err(e) => tracing::warn!(issuer = %d.issuer, error = %e, "CXone discovery failed"),
        }
        found
    }

    async fn discover_once(&self, d: &Discovery) -> Result<Discovered, CxoneError> {
        let openid = self.get_document(&d.issuer, OPENID_PATH, &[]).await?;
        let token_endpoint = token_endpoint_of(&openid).map_err(|why| fail(OPENID_PATH, why))?;
        let token_endpoint = endpoint::checked("the issuer's token_endpoint", token_endpoint)?;
        if !d.token_url_fixed {
            if let Some(url) = mode_token_url(self.auth_mode(), &token_endpoint) {
                self.tokens.set_endpoint(url, "cxone.issuer");
            }
        }
        let token_url = self
            .tokens
            .endpoint()
            .map(|u| u.to_string())
            .unwrap_or_default();
        let (tenant_id, tenant_from) = match &d.tenant {
            Some(t) => (t.clone(), "cxone.tenant_id"),
            None => {
                let token = self.tokens.bearer().await?;
                let tenant =
                    jwt::tenant_id(token.expose()).map_err(|why| CxoneError::Discovery {
                        message: format!("{why}; set cxone.tenant_id to the tenant's id"),
                        retryable: false,
                    })?;
                (tenant, "token")
            }
        };
        let document = self
            .get_document(&d.issuer, CXONE_CONFIG_PATH, &[("tenantId", &tenant_id)])
            .await?;
        let (api_base, api_from) =
            api_base_of(&document).map_err(|why| fail(CXONE_CONFIG_PATH, why))?;
        let api_base = endpoint::checked("the discovered API base", api_base)?;
        self.set_endpoints(api_base.clone())?;
        Ok(Discovered {
            issuer: d.issuer.to_string(),
            token_endpoint: token_endpoint.to_string(),
            token_url,
            tenant_id,
            tenant_from: tenant_from.to_owned(),
            api_base: api_base.to_string(),
            api_from: api_from.to_owned(),
            at: self.clock.now(),
        })
    }

    /// `GET <issuer><path>?<query>`, read as JSON.
    async fn get_document(
        &self,
        issuer: &reqwest::Url,
        path: &str,
        query: &[(&str, &str)],
    ) -> Result<serde_json::Value, CxoneError> {
        let base = issuer.as_str().trim_end_matches('/');
        let mut url = reqwest::Url::parse(&format!("{base}{path}"))
            .map_err(|e| CxoneError::Config(format!("cxone.issuer `{issuer}`: {e}")))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let response = self
            .http
            .get(url.clone())
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| CxoneError::Discovery {
                message: format!("GET {url}: {}", super::describe_transport(&e)),
                retryable: true,
            })?;
        let status = response.status().as_u16();
        if (300..400).contains(&status) {
            let redirected = CxoneError::Redirected {
                status,
                to: redirect_target(response.headers()),
                setting: "cxone.issuer",
            };
            return Err(CxoneError::Discovery {
                message: format!("GET {url}: {redirected}"),
                retryable: false,
            });
        }
        if !(200..300).contains(&status) {
            let hint = match status {
                404 if path == CXONE_CONFIG_PATH => {
                    "; check cxone.issuer and the tenant id (cxone.tenant_id)"
                }
                404 => "; check cxone.issuer",
                _ => "",
            };
            return Err(CxoneError::Discovery {
                message: format!("GET {url} answered HTTP {status}{hint}"),
                retryable: !matches!(status, 400..=499) || status == 429 || status == 408,
            });
        }
        let body = read_capped(response)
            .await
            .map_err(|e| CxoneError::Discovery {
                message: format!(
                    "GET {url}: reading the answer: {}",
                    super::describe_transport(&e)
                ),
                retryable: true,
            })?;
        parse_document(&body).map_err(|why| fail(path, why))
    }

    /// Points the recording calls at `api_base`.
    pub(super) fn set_endpoints(&self, api_base: reqwest::Url) -> Result<(), CxoneError> {
        let built = Endpoints::new(api_base, &self.path_prefix)?;
        *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(built));
        Ok(())
    }

    /// The endpoints to use now; without them (discovery has not yet
    /// succeeded) tries discovery first, at most every few seconds.
    pub(super) async fn endpoints(&self) -> Result<Arc<Endpoints>, CxoneError> {
        if let Some(e) = self.current_endpoints() {
            return Ok(e);
        }
        if let Some(d) = &self.discovery {
            let due =
                d.attempt.try_lock().ok().is_some_and(|tried| {
                    tried.any.is_none_or(|t| t.elapsed() >= RETRY_FIRST_EVERY)
                });
            if due {
                let _ = self.discover().await;
            }
        }
        self.current_endpoints()
            .ok_or_else(|| CxoneError::Discovery {
                message:
                    "the API host is not known yet: discovery from cxone.issuer has not succeeded"
                        .into(),
                retryable: true,
            })
    }

    pub(super) fn current_endpoints(&self) -> Option<Arc<Endpoints>> {
        self.endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Notes what an exchange said about the API host, and discovers
    /// again when it looks wrong (see the module docs).
    pub(super) async fn note_host(&self, sign: HostSign) {
        let Some(d) = &self.discovery else { return };
        let rediscover = match sign {
            HostSign::Answered => {
                d.failures.store(0, Ordering::Relaxed);
                false
            }
            HostSign::Unreachable => {
                d.failures.fetch_add(1, Ordering::Relaxed) + 1 >= REDISCOVER_AFTER_FAILURES
            }
            HostSign::NotFound => true,
        };
        if !rediscover {
            return;
        }
        // Single flight and at most every REDISCOVER_EVERY: whoever finds
        // a discovery running, or a recent one, goes on without.
        let due = match d.attempt.try_lock() {
            Ok(mut tried) if tried.again.is_none_or(|t| t.elapsed() >= REDISCOVER_EVERY) => {
                tried.again = Some(Instant::now());
                true
            }
            _ => false,
        };
        if due {
            tracing::info!(
                ?sign,
                "the API host looks wrong; discovering the endpoints again"
            );
            let _ = self.discover().await;
        }
    }
}

fn fail(path: &str, why: String) -> CxoneError {
    CxoneError::Discovery {
        message: format!("{path}: {why}"),
        retryable: true,
    }
}

fn parse_checked(what: &str, raw: &str) -> Result<reqwest::Url, CxoneError> {
    let url = reqwest::Url::parse(raw)
        .map_err(|e| CxoneError::Config(format!("{what} `{raw}` is not a URL: {e}")))?;
    endpoint::checked(what, url)
}

/// A discovery document as JSON, within the body cap.
fn parse_document(body: &[u8]) -> Result<serde_json::Value, String> {
    if is_oversized(body) {
        return Err(format!("the answer is longer than {MAX_BODY_BYTES} bytes"));
    }
    let value: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    if value.is_object() {
        Ok(value)
    } else {
        Err("the answer is not a JSON object".to_owned())
    }
}

/// The `token_endpoint` of an OpenID configuration document.
pub fn token_endpoint_of(document: &serde_json::Value) -> Result<reqwest::Url, String> {
    match document.get("token_endpoint") {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => reqwest::Url::parse(s.trim())
            .map_err(|e| format!("token_endpoint `{}` is not a URL: {e}", shown(s))),
        _ => Err("the document has no token_endpoint".to_owned()),
    }
}

/// The API base a `cxone-configuration` document names: its
/// `api_endpoint` when it gives one, else `https://api-<area>.<domain>`;
/// and which of the two it was.
pub fn api_base_of(document: &serde_json::Value) -> Result<(reqwest::Url, &'static str), String> {
    let text = |key: &str| {
        document
            .get(key)
            .and_then(serde_json::Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    if let Some(api) = text("api_endpoint") {
        let url = reqwest::Url::parse(api)
            .map_err(|e| format!("api_endpoint `{}` is not a URL: {e}", shown(api)))?;
        return Ok((url, "api_endpoint"));
    }
    match (text("area"), text("domain")) {
        (Some(area), Some(domain)) => {
            let label = |s: &str| {
                !s.is_empty()
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
                    && !s.starts_with(['.', '-'])
                    && !s.ends_with(['.', '-'])
            };
            if !label(area) || !label(domain) {
                return Err(format!(
                    "area `{}` and domain `{}` do not make a host name",
                    shown(area),
                    shown(domain)
                ));
            }
            let url = reqwest::Url::parse(&format!("https://api-{area}.{domain}"))
                .map_err(|e| format!("https://api-{area}.{domain} is not a URL: {e}"))?;
            Ok((url, "area and domain"))
        }
        _ => Err("the document has neither api_endpoint nor area and domain".to_owned()),
    }
}

/// Where tokens are asked for in `mode`, given the issuer's token
/// endpoint: that endpoint for the password grant, the access-key path on
/// its host for an access key, nowhere for a static token.
fn mode_token_url(mode: super::AuthMode, token_endpoint: &reqwest::Url) -> Option<reqwest::Url> {
    match mode {
        super::AuthMode::Password => Some(token_endpoint.clone()),
        super::AuthMode::AccessKey => {
            let mut url = token_endpoint.clone();
            url.set_path(super::ACCESS_KEY_PATH);
            url.set_query(None);
            url.set_fragment(None);
            Some(url)
        }
        super::AuthMode::Bearer => None,
    }
}

/// A value from a document, cut short for an error message.
fn shown(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_api_base_is_the_api_endpoint_when_given() {
        let (url, from) = api_base_of(&json!({
            "api_endpoint": "https://api-na1.niceincontact.com",
            "area": "na1", "domain": "niceincontact.com"
        }))
        .unwrap();
        assert_eq!(url.as_str(), "https://api-na1.niceincontact.com/");
        assert_eq!(from, "api_endpoint");
    }

    #[test]
    fn else_it_is_built_from_area_and_domain() {
        let (url, from) = api_base_of(&json!({
            "area": "b32", "domain": "nicecxone-gov.com", "api_endpoint": ""
        }))
        .unwrap();
        assert_eq!(url.as_str(), "https://api-b32.nicecxone-gov.com/");
        assert_eq!(from, "area and domain");
    }

    #[test]
    fn documents_that_name_no_host_say_why() {
        for (doc, why) in [
            (json!({}), "neither api_endpoint nor area and domain"),
            (json!({"area": "na1"}), "neither"),
            (
                json!({"area": "na1/x", "domain": "d.com"}),
                "do not make a host name",
            ),
            (
                json!({"area": "na1", "domain": "evil.com@x"}),
                "do not make a host name",
            ),
            (json!({"api_endpoint": "not a url"}), "is not a URL"),
        ] {
            let e = api_base_of(&doc).unwrap_err();
            assert!(e.contains(why), "{doc}: {e}");
        }
    }

    #[test]
    fn the_token_endpoint_is_read_and_the_access_key_path_goes_on_its_host() {
        let url = token_endpoint_of(
            &json!({"token_endpoint": "https://cxone.niceincontact.com/auth/token"}),
        )
        .unwrap();
        assert_eq!(
            mode_token_url(super::super::AuthMode::AccessKey, &url)
                .unwrap()
                .as_str(),
            "https://cxone.niceincontact.com/authentication/v1/token/access-key"
        );
        assert_eq!(
            mode_token_url(super::super::AuthMode::Password, &url).unwrap(),
            url
        );
        assert!(mode_token_url(super::super::AuthMode::Bearer, &url).is_none());
        assert!(token_endpoint_of(&json!({"issuer": "x"})).is_err());
        assert!(token_endpoint_of(&json!({"token_endpoint": 7})).is_err());
    }

    #[test]
    fn a_document_must_be_a_json_object_within_the_cap() {
        assert!(parse_document(b"{}").is_ok());
        assert!(parse_document(b"[1]")
            .unwrap_err()
            .contains("not a JSON object"));
        assert!(parse_document(b"<html>").unwrap_err().contains("not JSON"));
        let long = vec![b' '; MAX_BODY_BYTES + 1];
        assert!(parse_document(&long).unwrap_err().contains("longer than"));
    }
}
