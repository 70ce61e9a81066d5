//! Prometheus metrics and the health check, served on their own loopback
//! listener (`metrics.listen`, default `127.0.0.1:9187`; empty = off), so
//! they are never exposed with anything else. The listener is hardened
//! against clients that connect and stall: each has 5 s to send its request
//! head, at most 64 are served at once, and a listener that is not on
//! loopback is warned about.
//!
//! The registry belongs to one daemon (no process-wide recorder), so tests
//! read their own. Labels stay bounded: operation, outcome, HTTP status
//! code; never a user id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

/// `[metrics]` in the config file.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Where `/metrics` and `/healthz` are served; empty turns them off.
    /// Keep it on loopback: any other address is warned about at start.
    pub listen: String,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9187".to_owned(),
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabel {
    pub operation: &'static str,
    /// The HTTP status, or `transport` when there was no answer.
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OperationLabel {
    pub operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TableLabel {
    /// `policies`, `policy_users`, `recordings` or `exclusions`.
    pub table: &'static str,
}

/// The tables whose bad rows [`Metrics::invalid_rows`] counts; each is
/// exported from the start (at 0), so an alert can be written on it.
pub const ROW_TABLES: [&str; 4] = ["policies", "policy_users", "recordings", "exclusions"];

/// Every metric recsched exports.
pub struct Metrics {
    registry: Registry,
    /// Segments by how their start ended: started, failed, missed.
    pub starts: Family<OutcomeLabel, Counter>,
    /// Recordings by how they ended: stopped, expired.
    pub ends: Family<OutcomeLabel, Counter>,
    /// Exchanges that will be retried, by status.
    pub retries: Family<StatusLabel, Counter>,
    pub active_recordings: Gauge,
    pub request_seconds: Family<OperationLabel, Histogram>,
    /// From a segment's planned start to its first request leaving.
    pub fire_lag_seconds: Histogram,
    pub invalid_policies: Gauge,
    /// Rows skipped because they do not read back or do not validate, by
    /// table ([`ROW_TABLES`]).
    pub invalid_rows: Family<TableLabel, Gauge>,
    pub policies: Gauge,
    pub last_reload_timestamp_seconds: Gauge<f64, AtomicU64>,
    pub store_errors: Counter,
    /// Planning passes completed (each plans every user; idle CPU is
    /// mostly these).
    pub passes: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("recsched");
        let starts = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "starts",
            "Segments by the outcome of their start",
            starts.clone(),
        );
        let ends = Family::<OutcomeLabel, Counter>::default();
        registry.register("ends", "Recordings by how they ended", ends.clone());
        let retries = Family::<StatusLabel, Counter>::default();
        registry.register(
            "retries",
            "Exchanges answered with a retryable error, by status",
            retries.clone(),
        );
        let active_recordings = Gauge::default();
        registry.register(
            "active_recordings",
            "Recordings running now",
            active_recordings.clone(),
        );
        let request_seconds = Family::<OperationLabel, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.005, 2.0, 14))
        });
        registry.register(
            "request_duration_seconds",
            "Latency of vendor API requests",
            request_seconds.clone(),
        );
        let fire_lag_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        registry.register(
            "fire_lag_seconds",
            "From a segment's planned start to its start request leaving",
            fire_lag_seconds.clone(),
        );
        let invalid_policies = Gauge::default();
        registry.register(
            "invalid_policies",
            "Policy rows that do not validate (skipped)",
            invalid_policies.clone(),
        );
        let invalid_rows = Family::<TableLabel, Gauge>::default();
        registry.register(
            "invalid_rows",
            "Rows that do not read back or do not validate, by table: a bad policies row skips \
             its policy, a bad policy_users row skips itself, a bad recordings row leaves its \
             user unrecorded until fixed (recsched check names them)",
            invalid_rows.clone(),
        );
        for table in ROW_TABLES {
            invalid_rows.get_or_create(&TableLabel { table }).set(0);
        }
        let policies = Gauge::default();
        registry.register("policies", "Enabled, valid policies", policies.clone());
        let last_reload_timestamp_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "last_reload_timestamp_seconds",
            "When policies were last (re)loaded, Unix time",
            last_reload_timestamp_seconds.clone(),
        );
        let store_errors = Counter::default();
        registry.register(
            "store_errors",
            "Database writes that failed after retrying",
            store_errors.clone(),
        );
        let passes = Counter::default();
        registry.register(
            "planning_passes",
            "Planning passes completed",
            passes.clone(),
        );
        Self {
            registry,
            starts,
            ends,
            retries,
            active_recordings,
            request_seconds,
            fire_lag_seconds,
            invalid_policies,
            invalid_rows,
            policies,
            last_reload_timestamp_seconds,
            store_errors,
            passes,
        }
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn start(&self, outcome: &'static str) {
        self.starts.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn end(&self, outcome: &'static str) {
        self.ends.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    pub fn count(&self, family: &Family<OutcomeLabel, Counter>, outcome: &'static str) -> u64 {
        family.get_or_create(&OutcomeLabel { outcome }).get()
    }
}

/// Health as `/healthz` reports it: `Err` holds the reason.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), String> + Send + Sync>;

/// A client that has not sent its whole request head within this long is
/// disconnected, so a slow or idle client cannot hold a connection slot.
/// Also bounds how long an idle keep-alive connection stays open.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections served at once. Beyond it, new clients wait in the
/// kernel's accept queue until a slot frees, which the header timeout
/// guarantees within [`HEADER_READ_TIMEOUT`] of a flood.
pub const MAX_CONNECTIONS: usize = 64;

/// Serves `/metrics` and `/healthz` on an already-bound listener until
/// `shutdown` completes, with [`HEADER_READ_TIMEOUT`] and
/// [`MAX_CONNECTIONS`]. Warns when the listener is not on loopback.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    health: HealthCheck,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    if !addr.ip().is_loopback() {
        tracing::warn!(
            %addr,
            "metrics listener is not on loopback: /metrics and /healthz can be read by anyone              who reaches this address; set metrics.listen to 127.0.0.1:PORT unless a firewall              keeps the port private"
        );
    }
    serve_with(
        listener,
        router(metrics, health),
        Limits {
            header_read_timeout: HEADER_READ_TIMEOUT,
            max_connections: MAX_CONNECTIONS,
        },
        shutdown,
    )
    .await
}

fn router(metrics: Arc<Metrics>, health: HealthCheck) -> axum::Router {
    use axum::http::{header, StatusCode};
    use axum::routing::get;
    axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let metrics = metrics.clone();
                async move {
                    (
                        [(
                            header::CONTENT_TYPE,
                            "text/plain; version=0.0.4; charset=utf-8",
                        )],
                        metrics.encode(),
                    )
                }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let health = health.clone();
                async move {
                    match health() {
                        Ok(()) => (StatusCode::OK, "ok\n".to_owned()),
                        Err(why) => (
                            StatusCode::SERVICE_UNAVAILABLE,
                            format!("unhealthy: {why}\n"),
                        ),
                    }
                }
            }),
        )
}

/// What one listener allows its clients.
#[derive(Debug, Clone, Copy)]
struct Limits {
    header_read_timeout: Duration,
    max_connections: usize,
}

/// The accept loop: a free slot first, then a connection, served over
/// HTTP/1 with the header timeout. On `shutdown`, stops accepting and
/// closes every connection.
async fn serve_with(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use hyper_util::service::TowerToHyperService;

    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                // Never closed; if it were, there is nothing left to serve.
                Err(_) => break,
            },
        };
        let stream = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors, or a client that reset
                    // before it was accepted: the next one may do.
                    tracing::warn!(error = %e, "metrics listener: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let service = TowerToHyperService::new(app.clone());
        connections.spawn(async move {
            let _slot = slot;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics connection closed");
            }
        });
    }
    connections.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_names_every_metric() {
        let m = Metrics::new();
        m.start("started");
        m.fire_lag_seconds.observe(0.012);
        m.request_seconds
            .get_or_create(&OperationLabel { operation: "start" })
            .observe(0.02);
        m.retries
            .get_or_create(&StatusLabel {
                operation: "start",
                status: "425".into(),
            })
            .inc();
        let text = m.encode();
        for name in [
            "recsched_starts_total{outcome=\"started\"} 1",
            "recsched_retries_total{operation=\"start\",status=\"425\"} 1",
            "recsched_active_recordings",
            "recsched_request_duration_seconds_bucket",
            "recsched_fire_lag_seconds_count 1",
            "recsched_invalid_policies",
            "recsched_invalid_rows{table=\"recordings\"} 0",
            "# HELP recsched_invalid_rows Rows that do not read back",
            "recsched_last_reload_timestamp_seconds",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }
}
