//! `recsched check --online`: the dry run of an install. Discovers the
//! endpoints (when `cxone.issuer` is set and `cxone.api_base` empty) and
//! asks for one token, then says what it found. Prints URLs, the mode and
//! the tenant id; never a secret or a token. Sends no recording request.

use std::sync::Arc;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::cxone::{Client, Limits};

/// What the online check found, one line each, or the lines so far and
/// the error that stopped it.
pub async fn run(config: &Config) -> Result<Vec<String>, (Vec<String>, String)> {
    let mut lines = Vec::new();
    let credentials_dir = std::env::var_os("CREDENTIALS_DIRECTORY").map(std::path::PathBuf::from);
    let client = match Client::new(
        &config.cxone,
        credentials_dir.as_deref(),
        Limits::default(),
        Arc::new(SystemClock),
    ) {
        Ok(c) => c,
        Err(e) => return Err((lines, e.to_string())),
    };
    if client.discovers() {
        match client.discover().await {
            Ok(d) => {
                lines.push(format!(
                    "online: issuer {} names token_endpoint {}",
                    d.issuer, d.token_endpoint
                ));
                lines.push(format!(
                    "online: tenant {} (from {})",
                    d.tenant_id,
                    if d.tenant_from == "token" {
                        "the token's tenantId claim"
                    } else {
                        "cxone.tenant_id"
                    }
                ));
                lines.push(format!(
                    "online: API base {} (from the document's {})",
                    d.api_base, d.api_from
                ));
            }
            Err(e) => return Err((lines, e.to_string())),
        }
    } else if let Some(base) = client.api_base() {
        lines.push(format!(
            "online: API base {base} (cxone.api_base; not called)"
        ));
    }
    let mode = client.auth_mode();
    match client.probe_token().await {
        Ok(tenant) => {
            let from = client
                .token_endpoint()
                .map(|u| format!(" from {u}"))
                .unwrap_or_else(|| " (static, not requested)".to_owned());
            let tenant = tenant
                .map(|t| format!("; its tenantId claim is {t}"))
                .unwrap_or_default();
            lines.push(format!("online: auth {mode}: token obtained{from}{tenant}"));
        }
        Err(e) => return Err((lines, format!("auth {mode}: {e}"))),
    }
    Ok(lines)
}
