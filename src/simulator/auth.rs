//! The simulated token endpoints and the bearer check of the API.
//!
//! `POST /authentication/v1/token/access-key` takes a JSON body
//! `{"accessKeyId": "...", "accessKeySecret": "..."}` (wrong key: 401; a
//! body that is not that: 400) and answers like the OAuth2 endpoint below.
//!
//! `POST /auth/token` takes the client's credentials as HTTP Basic
//! (`client_id:client_secret`; wrong or missing: 401) and a form body with
//! either `grant_type=password` (`username` = access key id, `password` =
//! access key secret) or `grant_type=refresh_token`; anything else is 400,
//! as OAuth2 (RFC 6749 section 5.2) has it. Tokens are random strings that
//! carry nothing; the simulator remembers when each access token expires
//! and checks it against the clock, so a test can expire a token with a
//! manual clock instead of waiting. Refresh tokens do not expire and may be
//! used more than once: the vendor documents neither, and the simulator
//! should not fail a client for a rule nobody wrote down.
//!
//! Access tokens are shaped as JWTs, as CXone's are: their claims carry
//! the simulator's `tenantId` (what discovery needs), the issuer and the
//! expiry. The signature is random bytes: nobody verifies it.

use std::collections::{HashMap, HashSet};

use axum::extract::rejection::{FormRejection, JsonRejection};
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use chrono::{DateTime, Utc};
use rand::RngCore;
use serde_json::json;
use std::sync::Arc;

use super::state::Shared;

/// Issued tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    /// access token -> the instant it stops being valid.
    access: HashMap<String, DateTime<Utc>>,
    refresh: HashSet<String>,
}

/// A freshly issued pair.
#[derive(Debug, Clone)]
pub struct Grant {
    pub access_token: String,
    pub refresh_token: String,
}

impl Tokens {
    /// Issues a new access token valid for `ttl_secs` from `now`, and a
    /// refresh token. Expired access tokens are forgotten here, so the map
    /// stays small however long the simulator runs.
    pub fn issue(
        &mut self,
        now: DateTime<Utc>,
        ttl_secs: u64,
        claims: &serde_json::Value,
    ) -> Grant {
        self.access.retain(|_, expires| *expires > now);
        let ttl = chrono::Duration::seconds(i64::try_from(ttl_secs).unwrap_or(i64::MAX / 1000));
        let expires = now
            .checked_add_signed(ttl)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let mut claims = claims.clone();
        if let Some(map) = claims.as_object_mut() {
            map.insert("exp".into(), json!(expires.timestamp()));
            map.insert("iat".into(), json!(now.timestamp()));
            map.insert("jti".into(), json!(random_token()));
        }
        let grant = Grant {
            access_token: jwt(&claims),
            refresh_token: random_token(),
        };
        self.access.insert(grant.access_token.clone(), expires);
        self.refresh.insert(grant.refresh_token.clone());
        grant
    }

    /// Whether `token` was issued and has not expired at `now`.
    pub fn is_valid(&self, token: &str, now: DateTime<Utc>) -> bool {
        self.access.get(token).is_some_and(|expires| now < *expires)
    }

    pub fn knows_refresh(&self, token: &str) -> bool {
        self.refresh.contains(token)
    }
}

/// 32 random bytes from the OS-seeded thread RNG, URL-safe base64.
fn random_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWT-shaped token: header, `claims`, random signature.
fn jwt(claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"RS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    format!("{header}.{body}.{}", random_token())
}

/// The claims of every access token this simulator issues.
fn claims(shared: &Shared) -> serde_json::Value {
    json!({
        "iss": shared.base_url,
        "tenantId": shared.config.tenant_id,
        "sub": shared.config.access_key_id,
    })
}

/// `POST /authentication/v1/token/access-key`.
pub async fn access_key(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<serde_json::Value>, JsonRejection>,
) -> Response {
    if let Some(to) = shared.token_redirect() {
        return super::api::redirect(&to);
    }
    let Ok(Json(body)) = body else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "invalid_request", "error_description": "the body is not JSON"})),
        )
            .into_response();
    };
    let field = |name: &str| body.get(name).and_then(serde_json::Value::as_str);
    let config = &shared.config;
    if field("accessKeyId") != Some(config.access_key_id.as_str())
        || field("accessKeySecret") != Some(config.access_key_secret.as_str())
    {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "invalid_grant", "error_description": "unknown access key id or secret"})),
        )
            .into_response();
    }
    let now = shared.clock.now();
    let claims = claims(&shared);
    let grant = shared
        .lock()
        .tokens
        .issue(now, config.token_ttl_secs, &claims);
    answer(&shared, &grant)
}

/// `POST /auth/token`.
pub async fn token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    form: Result<Form<Vec<(String, String)>>, FormRejection>,
) -> Response {
    if let Some(to) = shared.token_redirect() {
        return super::api::redirect(&to);
    }
    let config = &shared.config;
    match basic_credentials(&headers) {
        Some((id, secret)) if id == config.client_id && secret == config.client_secret => {}
        _ => {
            return (
                StatusCode::UNAUTHORIZED,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"sim\"")],
                Json(json!({"error": "invalid_client"})),
            )
                .into_response()
        }
    }
    let Ok(Form(fields)) = form else {
        return oauth_error("invalid_request", "the body is not a form");
    };
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let now = shared.clock.now();
    let claims = claims(&shared);
    let grant = {
        let mut inner = shared.lock();
        match field("grant_type") {
            Some("password") => {
                if field("username") != Some(config.access_key_id.as_str())
                    || field("password") != Some(config.access_key_secret.as_str())
                {
                    return oauth_error("invalid_grant", "unknown access key id or secret");
                }
            }
            Some("refresh_token") => {
                if !field("refresh_token").is_some_and(|t| inner.tokens.knows_refresh(t)) {
                    return oauth_error("invalid_grant", "unknown refresh token");
                }
            }
            Some(_) => {
                return oauth_error("unsupported_grant_type", "use password or refresh_token")
            }
            None => return oauth_error("invalid_request", "grant_type is required"),
        }
        inner.tokens.issue(now, config.token_ttl_secs, &claims)
    };
    answer(&shared, &grant)
}

/// The token answer for a fresh `grant`, dressed by the token faults.
fn answer(shared: &Shared, grant: &Grant) -> Response {
    let config = &shared.config;
    let (expires_in, advertised) = {
        let faults = &shared.lock().faults;
        (
            faults
                .token_expires_in
                .map_or_else(|| json!(config.token_ttl_secs), |e| json!(e)),
            faults.token_advertised_base.clone(),
        )
    };
    let base = advertised.unwrap_or_else(|| shared.base_url.clone());
    let base = base.trim_end_matches('/');
    Json(json!({
        "access_token": grant.access_token,
        "token_type": "bearer",
        "expires_in": expires_in,
        "refresh_token": grant.refresh_token,
        "scope": "RecordingApi",
        "resource_server_base_uri": format!("{base}/"),
        "refresh_token_server_uri": format!("{base}/auth/token"),
    }))
    .into_response()
}

fn oauth_error(error: &str, description: &str) -> Response {
    (
        StatusCode::BAD_REQUEST,
        Json(json!({"error": error, "error_description": description})),
    )
        .into_response()
}

/// `(id, secret)` from `Authorization: Basic base64(id:secret)`.
fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    Some((id.to_owned(), secret.to_owned()))
}

/// Whether the request carries a valid, unexpired bearer token.
pub fn has_valid_bearer(shared: &Shared, headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let Some((scheme, token)) = value.split_once(' ') else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    let now = shared.clock.now();
    shared.lock().tokens.is_valid(token.trim(), now)
}

/// The 401 of an API call.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        Json(json!({"message": "caller not authenticated", "httpStatus": "Unauthorized"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_access_token_is_valid_until_its_ttl_has_passed() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut tokens = Tokens::default();
        let g = tokens.issue(t0, 60, &json!({"tenantId": "t1"}));
        assert!(tokens.is_valid(&g.access_token, t0));
        assert!(tokens.is_valid(&g.access_token, t0 + chrono::Duration::seconds(59)));
        assert!(!tokens.is_valid(&g.access_token, t0 + chrono::Duration::seconds(60)));
        assert!(!tokens.is_valid("made-up", t0));
        assert!(tokens.knows_refresh(&g.refresh_token));
        assert!(!tokens.knows_refresh(&g.access_token));
    }

    #[test]
    fn tokens_are_random_and_distinct() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let mut tokens = Tokens::default();
        let (a, b) = (
            tokens.issue(t0, 60, &json!({})),
            tokens.issue(t0, 60, &json!({})),
        );
        assert_ne!(a.access_token, b.access_token);
        assert_ne!(a.access_token, a.refresh_token);
        assert!(a.access_token.len() >= 40);
    }

    #[test]
    fn access_tokens_are_jwts_carrying_the_claims() {
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let g = Tokens::default().issue(t0, 60, &json!({"tenantId": "t-42"}));
        let parts: Vec<&str> = g.access_token.split('.').collect();
        assert_eq!(parts.len(), 3, "{}", g.access_token);
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["tenantId"], "t-42");
        assert_eq!(claims["exp"], t0.timestamp() + 60);
    }

    #[test]
    fn basic_credentials_are_read_case_insensitively() {
        let mut h = HeaderMap::new();
        let value = format!("basic {}", STANDARD.encode("id:se:cret"));
        h.insert(header::AUTHORIZATION, value.parse().unwrap());
        assert_eq!(
            basic_credentials(&h),
            Some(("id".to_owned(), "se:cret".to_owned()))
        );
        h.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_credentials(&h), None);
    }
}
