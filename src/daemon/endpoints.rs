//! Discovery of the CXone endpoints at start, and their cache.
//!
//! With `cxone.issuer` set and `cxone.api_base` empty the client finds
//! its endpoints itself ([`crate::cxone::discovery`]); this module runs
//! the first discovery when the daemon starts and keeps every result in
//! `daemon_state` (key [`DISCOVERED_KEY`]), so that a daemon restarted
//! while the issuer cannot be reached still knows where the API is. It
//! then goes on trying in the background, with backoff, until a fresh
//! discovery succeeds; a request that finds no endpoint at all fails as
//! retryable and is retried within its window.

use crate::cxone::{Client, Discovered};
use crate::store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The `daemon_state` key of the last discovery, as JSON.
pub const DISCOVERED_KEY: &str = "cxone_discovered";

/// First and longest wait between discovery attempts after a failure.
const RETRY_FIRST: Duration = Duration::from_secs(5);
const RETRY_MAX: Duration = Duration::from_secs(300);

/// Discovers the endpoints now (falling back on the cache), then keeps
/// the cache up to date until `cancel`. Does nothing unless the client
/// discovers.
pub async fn start(client: Arc<Client>, store: Store, cancel: CancellationToken) {
    if !client.discovers() {
        return;
    }
    let mut found = client.subscribe_discovered();
    // Every result from now on, the first included, goes to the cache.
    let cache_store = store.clone();
    let cache_cancel = cancel.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                changed = found.changed() => if changed.is_err() { return },
                () = cache_cancel.cancelled() => return,
            }
            let Some(d) = found.borrow_and_update().clone() else {
                continue;
            };
            save(&cache_store, &d).await;
        }
    });
    if client.discover().await.is_ok() {
        return;
    }
    match cached(&store).await {
        Some(d) => match client.adopt(&d) {
            Ok(true) => tracing::warn!(
                api_base = %d.api_base,
                discovered_at = %crate::clock::format_utc(d.at),
                "discovery failed at start; using the endpoints discovered earlier until it succeeds"
            ),
            Ok(false) => tracing::warn!(
                cached_issuer = %d.issuer,
                "discovery failed at start; the cached endpoints are for another issuer and are not used"
            ),
            Err(e) => tracing::warn!(error = %e, "discovery failed at start; the cached endpoints are not usable"),
        },
        None => tracing::warn!(
            "discovery failed at start and nothing is cached: requests wait for it (retried in the background)"
        ),
    }
    tokio::spawn(async move {
        let mut wait = RETRY_FIRST;
        loop {
            tokio::select! {
                () = tokio::time::sleep(wait) => {}
                () = cancel.cancelled() => return,
            }
            if client.discover().await.is_ok() {
                return;
            }
            wait = (wait * 2).min(RETRY_MAX);
        }
    });
}

/// The last discovery the cache holds, if it reads back.
pub async fn cached(store: &Store) -> Option<Discovered> {
    let text = match store.get_state(DISCOVERED_KEY).await {
        Ok(text) => text?,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the cached CXone endpoints");
            return None;
        }
    };
    match serde_json::from_str(&text) {
        Ok(d) => Some(d),
        Err(e) => {
            tracing::warn!(error = %e, key = DISCOVERED_KEY, "the cached CXone endpoints do not read back; ignored");
            None
        }
    }
}

async fn save(store: &Store, d: &Discovered) {
    let Ok(text) = serde_json::to_string(d) else {
        return;
    };
    if let Err(e) = store.set_state_value(DISCOVERED_KEY, &text).await {
        tracing::warn!(error = %e, "cannot cache the discovered CXone endpoints");
    }
}
