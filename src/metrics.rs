//! Prometheus metrics and the health check, served on their own loopback
//! listener (`metrics.listen`, default `127.0.0.1:9187`; empty = off), so
//! they are never exposed with anything else. The listener is hardened
//! against clients that connect and stall: each has 5 s to send its request
//! head, at most 64 are served at once, and a listener that is not on
//! loopback is warned about.
//!
//! The registry belongs to one daemon (no process-wide recorder), so tests
//! read their own. Labels stay bounded: operation, outcome, HTTP status
//! code, table; never a user id. Every label value an alert compares with
//! is exported from the start, at 0, so `rate()` and `increase()` see the
//! first event.
//!
//! `/metrics` speaks both formats a scraper may ask for: OpenMetrics when
//! the `Accept` header names it (Prometheus does), else Prometheus' text
//! format 0.0.4, which `promtool check metrics` and `curl` read
//! ([`to_text_format`]). The shipped alert rules and dashboard
//! (`monitoring/`) use only names registered here; a test checks it.

use chrono::{DateTime, Utc};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
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
    /// One of [`ROW_TABLES`].
    pub table: &'static str,
}

/// The tables whose bad rows [`Metrics::invalid_rows`] counts; each is
/// exported from the start (at 0), so an alert can be written on it.
pub const ROW_TABLES: [&str; 6] = [
    "policies",
    "policy_users",
    "policy_teams",
    "team_members",
    "recordings",
    "exclusions",
];

/// Outcomes of a token renewal ([`Metrics::token_renewed`]).
const TOKEN_RENEWED: &str = "renewed";
const TOKEN_FAILED: &str = "failed";

/// Outcomes of a policy load ([`Metrics::reloaded`]).
const RELOAD_OK: &str = "ok";
const RELOAD_FAILED: &str = "failed";

/// A counter of seconds, fractional.
pub type SecondsCounter = Counter<f64, AtomicU64>;

/// A CXone team id. Teams are named by operators in `policy_teams` and
/// are few, so the label set stays small; a team no policy names any
/// more is removed.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TeamLabel {
    pub team: String,
}

/// Every metric recsched exports.
pub struct Metrics {
    registry: Registry,
    /// Segments by how their start ended: started, failed, missed.
    pub starts: Family<OutcomeLabel, Counter>,
    /// Recordings by how they ended: stopped (our stop was answered),
    /// expired (the vendor's timer ended it).
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
    /// Policy loads by outcome (`RELOAD_OK`, `RELOAD_FAILED`).
    pub reloads: Family<OutcomeLabel, Counter>,
    pub store_errors: Counter,
    /// Planning passes completed (each plans every user; idle CPU is
    /// mostly these).
    pub passes: Counter,
    /// Token renewals by outcome (`TOKEN_RENEWED`, `TOKEN_FAILED`).
    pub token_renewals: Family<OutcomeLabel, Counter>,
    /// Open rows this instance tracked that another instance took over
    /// (PostgreSQL: this instance stalled past its lease).
    pub leases_lost: Counter,
    /// Open rows this instance took over from another whose lease ran out
    /// or was released (PostgreSQL).
    pub leases_taken_over: Counter,
    /// Seconds of every segment claimed, including those then missed or
    /// failed.
    pub planned_seconds: SecondsCounter,
    /// Seconds recorded: from the start's answer to the recording's end.
    pub recorded_seconds: SecondsCounter,
    /// 1 while `/healthz` answers ok, else 0; set at each scrape.
    pub healthy: Gauge,
    /// When each running recording's start was answered.
    answered: Answered,
    /// Per team: seconds since its membership was last read whole.
    pub team_membership_age_seconds: Family<TeamLabel, Gauge<f64, AtomicU64>>,
    /// Per team: members as last read.
    pub team_members: Family<TeamLabel, Gauge>,
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
        let reloads = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "reloads",
            "Policy loads (the first at start, then one per edit or SIGHUP), by outcome",
            reloads.clone(),
        );
        for outcome in [RELOAD_OK, RELOAD_FAILED] {
            // Exported at 0 from the start.
            let _ = reloads.get_or_create(&OutcomeLabel { outcome });
        }
        let token_renewals = Family::<OutcomeLabel, Counter>::default();
        registry.register(
            "token_renewals",
            "Requests for a new API token, by outcome",
            token_renewals.clone(),
        );
        for outcome in [TOKEN_RENEWED, TOKEN_FAILED] {
            let _ = token_renewals.get_or_create(&OutcomeLabel { outcome });
        }
        let leases_lost = Counter::default();
        registry.register(
            "leases_lost",
            "Open rows this instance held that another instance took over (PostgreSQL)",
            leases_lost.clone(),
        );
        let leases_taken_over = Counter::default();
        registry.register(
            "leases_taken_over",
            "Open rows taken over from another instance whose lease ran out or was released \
             (PostgreSQL)",
            leases_taken_over.clone(),
        );
        let planned_seconds = SecondsCounter::default();
        registry.register(
            "planned_seconds",
            "Seconds of the segments claimed, the missed and failed ones included",
            planned_seconds.clone(),
        );
        let recorded_seconds = SecondsCounter::default();
        registry.register(
            "recorded_seconds",
            "Seconds recorded, from the start's answer to the recording's end, counted at the end",
            recorded_seconds.clone(),
        );
        let healthy = Gauge::default();
        registry.register(
            "healthy",
            "1 while /healthz answers ok, else 0",
            healthy.clone(),
        );
        let team_membership_age_seconds = Family::<TeamLabel, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "team_membership_age_seconds",
            "Seconds since each team's members were last read from the directory",
            team_membership_age_seconds.clone(),
        );
        let team_members = Family::<TeamLabel, Gauge>::default();
        registry.register(
            "team_members",
            "Members of each team as last read from the directory",
            team_members.clone(),
        );
        Self {
            registry,
            team_membership_age_seconds,
            team_members,
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
            reloads,
            store_errors,
            passes,
            token_renewals,
            leases_lost,
            leases_taken_over,
            planned_seconds,
            recorded_seconds,
            healthy,
            answered: Answered::default(),
        }
    }

    /// The OpenMetrics exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in Prometheus' text format 0.0.4.
    pub fn encode_text(&self) -> String {
        to_text_format(&self.encode())
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

    /// Policies were (re)loaded.
    pub fn reloaded(&self) {
        self.count_one(&self.reloads, RELOAD_OK);
    }

    /// Policies could not be reloaded; the previous set stays.
    pub fn reload_failed(&self) {
        self.count_one(&self.reloads, RELOAD_FAILED);
    }

    /// A new API token was obtained.
    pub fn token_renewed(&self) {
        self.count_one(&self.token_renewals, TOKEN_RENEWED);
    }

    /// No new API token could be obtained.
    pub fn token_renewal_failed(&self) {
        self.count_one(&self.token_renewals, TOKEN_FAILED);
    }

    fn count_one(&self, family: &Family<OutcomeLabel, Counter>, outcome: &'static str) {
        family.get_or_create(&OutcomeLabel { outcome }).inc();
    }

    /// `rows` open rows this instance tracked are now another's.
    pub fn leases_lost(&self, rows: usize) {
        self.leases_lost.inc_by(count(rows));
    }

    /// This instance took `rows` open rows over from others.
    pub fn leases_taken_over(&self, rows: usize) {
        self.leases_taken_over.inc_by(count(rows));
    }

    /// A segment spanning `span` was claimed (to start, or as missed).
    pub fn planned(&self, span: chrono::Duration) {
        self.planned_seconds.inc_by(seconds(span));
    }

    /// Recording `id`'s start request left at `sent` and was answered
    /// `latency` later.
    pub fn recording_began(&self, id: i64, sent: DateTime<Utc>, latency: Duration) {
        let latency = chrono::Duration::from_std(latency).unwrap_or(chrono::Duration::zero());
        self.answered
            .insert(id, sent.checked_add_signed(latency).unwrap_or(sent));
    }

    /// Recording `id` ended at `end` (its segment's end, or the instant it
    /// was ended early): counts its recorded seconds. A recording whose
    /// start another process answered counts from its segment's start.
    pub fn recording_ended(&self, id: i64, segment_start: DateTime<Utc>, end: DateTime<Utc>) {
        let from = self.answered.remove(id).unwrap_or(segment_start);
        self.recorded_seconds.inc_by(seconds(end - from));
    }
}

/// `n` as a counter increment.
fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// A span in seconds, to the millisecond; never negative.
fn seconds(span: chrono::Duration) -> f64 {
    // Exact for any span below 2^53 ms (285,000 years).
    span.num_milliseconds().max(0) as f64 / 1000.0
}

/// No recording lasts longer than this (the API's 13200 s, with room for a
/// late stop): an answer older than it belongs to a row that left without
/// an end (taken over by another instance) and is swept out.
const ANSWER_KEPT: chrono::Duration = chrono::Duration::hours(4);

/// When each running recording's start was answered, by row id, so its
/// recorded seconds can be counted when it ends. Kept here rather than on
/// the daemon's open rows because only this count needs it. Bounded: an
/// entry leaves when its recording ends, and entries older than
/// [`ANSWER_KEPT`] are swept once the map has doubled since the last sweep.
#[derive(Debug)]
struct Answered {
    /// The answers, and the size at which the map is next swept.
    at: Mutex<(HashMap<i64, DateTime<Utc>>, usize)>,
}

/// The map's size below which it is never swept.
const ANSWERED_SWEEP_MIN: usize = 4096;

impl Default for Answered {
    fn default() -> Self {
        Self {
            at: Mutex::new((HashMap::new(), ANSWERED_SWEEP_MIN)),
        }
    }
}

impl Answered {
    fn insert(&self, id: i64, at: DateTime<Utc>) {
        let mut guard = self.at.lock().unwrap_or_else(|e| e.into_inner());
        let (map, sweep_at) = &mut *guard;
        if map.len() >= *sweep_at {
            map.retain(|_, answered| at - *answered < ANSWER_KEPT);
            *sweep_at = (map.len() * 2).max(ANSWERED_SWEEP_MIN);
        }
        map.insert(id, at);
    }

    fn remove(&self, id: i64) -> Option<DateTime<Utc>> {
        let mut guard = self.at.lock().unwrap_or_else(|e| e.into_inner());
        guard.0.remove(&id)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.at.lock().unwrap_or_else(|e| e.into_inner()).0.len()
    }
}

/// The OpenMetrics exposition rewritten in Prometheus' text format 0.0.4.
/// The two differ, for what recsched exports, in the counters alone:
/// OpenMetrics names a counter family `x` in `# HELP` and `# TYPE` and its
/// sample `x_total`, while the text format (and `promtool check metrics`,
/// which reports "x_total no help text" otherwise) names all three
/// `x_total`. `# UNIT` and `# EOF` do not exist in the text format.
pub fn to_text_format(openmetrics: &str) -> String {
    let counters: BTreeSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len() + 16 * counters.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let described = ["# HELP ", "# TYPE "]
            .into_iter()
            .find_map(|p| line.strip_prefix(p).map(|rest| (p, rest)));
        if let Some((prefix, rest)) = described {
            let (name, tail) = rest.split_once(' ').unwrap_or((rest, ""));
            if counters.contains(name) {
                out.push_str(prefix);
                out.push_str(name);
                out.push_str("_total ");
                out.push_str(tail);
                out.push('\n');
                continue;
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    out
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
            get({
                let health = health.clone();
                move |headers: axum::http::HeaderMap| {
                    let metrics = metrics.clone();
                    let health = health.clone();
                    async move {
                        metrics.healthy.set(i64::from(health().is_ok()));
                        if wants_openmetrics(&headers) {
                            ([(header::CONTENT_TYPE, OPENMETRICS)], metrics.encode())
                        } else {
                            ([(header::CONTENT_TYPE, TEXT_FORMAT)], metrics.encode_text())
                        }
                    }
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

/// The content type of [`Metrics::encode`].
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The content type of [`Metrics::encode_text`].
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether the scraper accepts OpenMetrics (Prometheus asks for it first).
fn wants_openmetrics(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"))
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
            "recsched_token_renewals_total{outcome=\"failed\"} 0",
            "recsched_reloads_total{outcome=\"ok\"} 0",
            "recsched_leases_lost_total 0",
            "recsched_planned_seconds_total 0",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
    }

    /// The families of `text` (0.0.4) whose samples lack a `# HELP` or a
    /// `# TYPE` line of their own name, as promtool reports them.
    fn undescribed(text: &str) -> Vec<String> {
        let described = |kind: &str, family: &str| {
            text.lines()
                .any(|l| l.starts_with(&format!("# {kind} {family} ")))
        };
        let mut out = Vec::new();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let name = line.split(['{', ' ']).next().unwrap_or_default().to_owned();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| text.contains(&format!("# TYPE {f} histogram")))
                .unwrap_or(&name)
                .to_owned();
            let complete = described("HELP", &family) && described("TYPE", &family);
            if !complete && !out.contains(&family) {
                out.push(family);
            }
        }
        out
    }

    #[test]
    fn the_text_format_describes_every_sample_under_its_own_name() {
        let m = Metrics::new();
        m.start("started");
        m.end("stopped");
        m.planned(chrono::Duration::seconds(10));
        m.fire_lag_seconds.observe(0.012);
        let om = m.encode();
        assert!(
            !undescribed(&om).is_empty(),
            "OpenMetrics names counter families without _total: {om}"
        );
        assert!(om.ends_with("# EOF\n"), "{om}");

        let text = m.encode_text();
        assert_eq!(undescribed(&text), Vec::<String>::new(), "{text}");
        assert!(text.contains("# HELP recsched_starts_total Segments by the outcome"));
        assert!(text.contains("# TYPE recsched_planning_passes_total counter"));
        assert!(text.contains("# TYPE recsched_fire_lag_seconds histogram"));
        assert!(text.contains("recsched_planned_seconds_total 10"));
        assert!(!text.contains("# EOF"), "{text}");
        // Only the description lines change.
        let samples = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| !l.starts_with('#'))
                .map(str::to_owned)
                .collect()
        };
        assert_eq!(samples(&om), samples(&text));
    }

    #[test]
    fn the_scraper_that_asks_for_openmetrics_gets_it() {
        use axum::http::{header::ACCEPT, HeaderMap, HeaderValue};
        let mut h = HeaderMap::new();
        assert!(!wants_openmetrics(&h));
        h.insert(ACCEPT, HeaderValue::from_static("text/plain;version=0.0.4"));
        assert!(!wants_openmetrics(&h));
        // What Prometheus sends.
        h.insert(
            ACCEPT,
            HeaderValue::from_static(
                "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                 version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
            ),
        );
        assert!(wants_openmetrics(&h));
    }

    fn at(s: &str) -> DateTime<Utc> {
        crate::clock::parse_utc(s).unwrap()
    }

    #[test]
    fn recorded_seconds_run_from_the_answer_to_the_end() {
        let m = Metrics::new();
        let start = at("2026-03-02T09:00:00.000Z");
        // Answered 1.5 s late, ended at the segment's end 60 s in.
        m.recording_began(
            7,
            at("2026-03-02T09:00:01.000Z"),
            Duration::from_millis(500),
        );
        m.recording_ended(7, start, at("2026-03-02T09:01:00.000Z"));
        assert_eq!(m.recorded_seconds.get(), 58.5);
        // Its answer is forgotten: an end without one (a recording another
        // process started) counts from the segment's start.
        m.recording_ended(7, start, at("2026-03-02T09:00:10.000Z"));
        assert_eq!(m.recorded_seconds.get(), 68.5);
        // An end before the answer counts nothing, never less than nothing.
        m.recording_began(8, at("2026-03-02T09:00:05.000Z"), Duration::ZERO);
        m.recording_ended(8, start, at("2026-03-02T09:00:04.000Z"));
        assert_eq!(m.recorded_seconds.get(), 68.5);
        assert_eq!(m.answered.len(), 0);

        m.planned(chrono::Duration::seconds(60));
        m.planned(chrono::Duration::milliseconds(-5));
        assert_eq!(m.planned_seconds.get(), 60.0);
    }

    #[test]
    fn answers_of_rows_that_left_without_an_end_are_swept() {
        let m = Metrics::new();
        let old = at("2026-03-02T09:00:00.000Z");
        for id in 0..4096 {
            m.recording_began(id, old, Duration::ZERO);
        }
        assert_eq!(m.answered.len(), 4096);
        // Five hours later the old answers cannot belong to a running
        // recording: the next insert sweeps them.
        m.recording_began(9999, old + chrono::Duration::hours(5), Duration::ZERO);
        assert_eq!(m.answered.len(), 1);
        // Recent answers stay.
        for id in 0..4096 {
            m.recording_began(id, old + chrono::Duration::hours(5), Duration::ZERO);
        }
        assert_eq!(m.answered.len(), 4097);
    }
}
