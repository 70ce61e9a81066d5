//! The client's settings: where the API is, how to authenticate, and the
//! names the vendor's page spells two ways (see API.md "Ambiguities").

use super::credentials::AuthMode;
use crate::config::{Range, RangeCheck};
use crate::secret::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Default path prefix of the start and stop endpoints.
pub const DEFAULT_PATH_PREFIX: &str = "/interaction-recording-management-service/v1/interactions";
/// Default OAuth2 token endpoint of CXone.
pub const DEFAULT_TOKEN_URL: &str = "https://cxone.niceincontact.com/auth/token";
/// CXone's issuer (its authentication host) outside government clouds.
pub const DEFAULT_ISSUER: &str = "https://cxone.niceincontact.com";
/// Path of the access-key token endpoint on the authentication host.
pub const ACCESS_KEY_PATH: &str = "/authentication/v1/token/access-key";

/// `[cxone]` in the config file.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Base URL of the API, e.g. `https://api-c32.nice-incontact.com`.
    pub api_base: String,
    /// Path prefix of the start/stop endpoints.
    pub path_prefix: String,
    /// How to get a token: `password`, `access-key` or `bearer`; unset,
    /// the keys that are set choose ([`super::AuthPlan`]).
    pub auth: Option<AuthMode>,
    /// OAuth2 token endpoint (password and refresh_token grants); empty:
    /// discovered from `issuer`, else `<issuer>/auth/token` (default
    /// issuer: `https://cxone.niceincontact.com`).
    pub token_url: String,
    /// The access-key token endpoint; empty: on the discovered token
    /// endpoint's host, else `<issuer>/authentication/v1/token/access-key`.
    pub access_key_url: String,
    /// CXone's issuer (e.g. `https://cxone.niceincontact.com`); with
    /// `api_base` empty, the endpoints are discovered from it.
    pub issuer: String,
    /// The tenant id discovery asks for; empty: the token's `tenantId`
    /// claim.
    pub tenant_id: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// A file holding the client secret (e.g. under `$CREDENTIALS_DIRECTORY`).
    pub client_secret_file: Option<PathBuf>,
    pub access_key_id: String,
    pub access_key_secret: Option<Secret>,
    /// A file holding the access key secret.
    pub access_key_secret_file: Option<PathBuf>,
    /// A static bearer token, for operators who manage tokens themselves.
    /// When set, no token request is ever made.
    pub bearer_token: Option<Secret>,
    /// A file holding the static bearer token.
    pub bearer_token_file: Option<PathBuf>,
    /// Query parameter names (the page spells the user `userId` and `user-id`).
    pub user_param: String,
    pub duration_param: String,
    pub contact_param: String,
    /// Whole-request timeout, seconds (default 10; 0.1 to 300).
    pub request_timeout_seconds: f64,
    /// TCP/TLS connect timeout, seconds (default 5; 0.1 to 60).
    pub connect_timeout_seconds: f64,
    /// Renew a token this many seconds before it expires (default 60, at
    /// most 3600).
    pub token_renew_margin_seconds: u64,
    /// Most simultaneous connections kept idle per host (default 256, at
    /// most 10,000).
    pub pool_max_idle_per_host: usize,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            api_base: String::new(),
            path_prefix: DEFAULT_PATH_PREFIX.to_owned(),
            auth: None,
            token_url: String::new(),
            access_key_url: String::new(),
            issuer: String::new(),
            tenant_id: String::new(),
            client_id: String::new(),
            client_secret: None,
            client_secret_file: None,
            access_key_id: String::new(),
            access_key_secret: None,
            access_key_secret_file: None,
            bearer_token: None,
            bearer_token_file: None,
            user_param: "userId".to_owned(),
            duration_param: "recordingDuration".to_owned(),
            contact_param: "contactId".to_owned(),
            request_timeout_seconds: 10.0,
            connect_timeout_seconds: 5.0,
            token_renew_margin_seconds: 60,
            pool_max_idle_per_host: 256,
        }
    }
}

impl Settings {
    pub const REQUEST_TIMEOUT_SECONDS: Range<f64> =
        Range::new("cxone.request_timeout_seconds", 0.1, 300.0);
    pub const CONNECT_TIMEOUT_SECONDS: Range<f64> =
        Range::new("cxone.connect_timeout_seconds", 0.1, 60.0);
    pub const TOKEN_RENEW_MARGIN_SECONDS: Range<u64> =
        Range::new("cxone.token_renew_margin_seconds", 0, 3600);
    pub const POOL_MAX_IDLE_PER_HOST: Range<usize> =
        Range::new("cxone.pool_max_idle_per_host", 0, 10_000);

    /// Checks every numeric key against its range.
    pub fn check_ranges(&self, check: &mut RangeCheck) {
        check.check(Self::REQUEST_TIMEOUT_SECONDS, self.request_timeout_seconds);
        check.check(Self::CONNECT_TIMEOUT_SECONDS, self.connect_timeout_seconds);
        check.check(
            Self::TOKEN_RENEW_MARGIN_SECONDS,
            self.token_renew_margin_seconds,
        );
        check.check(Self::POOL_MAX_IDLE_PER_HOST, self.pool_max_idle_per_host);
    }

    /// The issuer: `issuer`, or CXone's default one.
    pub fn issuer_or_default(&self) -> &str {
        match self.issuer.trim() {
            "" => DEFAULT_ISSUER,
            given => given.trim_end_matches('/'),
        }
    }

    /// Whether the endpoints are discovered: `issuer` set, `api_base` empty.
    pub fn discovers(&self) -> bool {
        !self.issuer.trim().is_empty() && self.api_base.trim().is_empty()
    }

    /// The whole-request timeout. Loading the config keeps it in its
    /// range; settings built in code that are not get the default.
    pub fn request_timeout(&self) -> Duration {
        seconds_in(
            Self::REQUEST_TIMEOUT_SECONDS,
            self.request_timeout_seconds,
            10.0,
        )
    }

    /// The connect timeout, kept in its range as [`Settings::request_timeout`].
    pub fn connect_timeout(&self) -> Duration {
        seconds_in(
            Self::CONNECT_TIMEOUT_SECONDS,
            self.connect_timeout_seconds,
            5.0,
        )
    }
}

/// `secs` as a duration when it is in `range`, else `default`: never a
/// panic from `Duration::from_secs_f64`.
fn seconds_in(range: Range<f64>, secs: f64, default: f64) -> Duration {
    let secs = if range.check(secs).is_ok() {
        secs
    } else {
        default
    };
    Duration::try_from_secs_f64(secs).unwrap_or_default()
}
