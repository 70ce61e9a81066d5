//! The issuer's two discovery documents, pointing back at this simulator.
//!
//! - `GET /.well-known/openid-configuration`: `issuer`, `token_endpoint`
//!   (`{url}/auth/token`) and the other OpenID fields a client may read.
//! - `GET /.well-known/cxone-configuration?tenantId=<id>`: `api_endpoint`
//!   (this simulator, or `Faults::discovery_api_endpoint`), `area`,
//!   `domain`, `auth_endpoint`, `ui_endpoint`; 404 for a tenant id that
//!   is not the simulator's (`SimConfig::tenant_id`), 400 without one.
//!
//! `Faults::discovery_unavailable` answers both with 503.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::state::Shared;

pub const OPENID: &str = "/.well-known/openid-configuration";
pub const CXONE: &str = "/.well-known/cxone-configuration";

fn unavailable(shared: &Shared) -> Option<Response> {
    shared.lock().faults.discovery_unavailable.then(|| {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": "temporarily unavailable"})),
        )
            .into_response()
    })
}

/// `GET /.well-known/openid-configuration`.
pub async fn openid(State(shared): State<Arc<Shared>>) -> Response {
    if let Some(r) = unavailable(&shared) {
        return r;
    }
    let base = &shared.base_url;
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/auth/authorize"),
        "token_endpoint": format!("{base}/auth/token"),
        "jwks_uri": format!("{base}/auth/jwks"),
        "response_types_supported": ["code", "token"],
        "grant_types_supported": ["password", "refresh_token", "authorization_code"],
    }))
    .into_response()
}

/// `GET /.well-known/cxone-configuration?tenantId=`.
pub async fn cxone(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<Vec<(String, String)>>, QueryRejection>,
) -> Response {
    if let Some(r) = unavailable(&shared) {
        return r;
    }
    let tenant = query.ok().and_then(|Query(pairs)| {
        pairs
            .into_iter()
            .find(|(k, _)| k == "tenantId")
            .map(|(_, v)| v)
    });
    match tenant {
        None => (
            StatusCode::BAD_REQUEST,
            Json(json!({"error": "tenantId is required"})),
        )
            .into_response(),
        Some(t) if t != shared.config.tenant_id => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "unknown tenant"})),
        )
            .into_response(),
        Some(_) => {
            let base = &shared.base_url;
            let advertised = shared.lock().faults.discovery_api_endpoint.clone();
            let mut doc = json!({
                "area": "sim1",
                "domain": "recsched-simulator.invalid",
                "auth_endpoint": base,
                "ui_endpoint": base,
            });
            match advertised.as_deref() {
                // Empty: no api_endpoint, so a client builds it from area
                // and domain.
                Some("") => {}
                Some(other) => doc["api_endpoint"] = json!(other),
                None => doc["api_endpoint"] = json!(base),
            }
            Json(doc).into_response()
        }
    }
}
