//! The shipped monitoring (`monitoring/`): the alert rules pass `promtool
//! check rules` and their unit tests, every alert says what it means and
//! what to do, the dashboard's queries are valid PromQL, a scrape of the
//! real daemon passes `promtool check metrics`, and every metric name the
//! rules and the dashboard use is one the daemon exposes.
//!
//! promtool comes from Debian's `prometheus` package, which `.ci/run`
//! installs: under CI (`CI=true`) a missing promtool fails these tests,
//! elsewhere they say so and skip the promtool step.

use crate::common::daemon::{wait_for, Rig};
use crate::common::pg::PgRig;
use chrono::{Duration as Span, Timelike};
use recsched::clock::{Clock, SystemClock};
use recsched::cxone::{self, Client, Limits};
use recsched::metrics::Metrics;
use recsched::recording::{RecordingDuration, UserId};
use recsched::secret::Secret;
use recsched::simulator::{self, Faults, SimConfig, UserFault};
use serde_json::Value;
use std::collections::BTreeSet;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

fn shipped(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("monitoring")
        .join(name)
}

fn read(name: &str) -> String {
    std::fs::read_to_string(shipped(name)).unwrap_or_else(|e| panic!("monitoring/{name}: {e}"))
}

/// Whether promtool can run here. Missing under CI is a failure (`.ci/run`
/// installs it); elsewhere a note, and the caller skips its promtool step.
fn have_promtool() -> bool {
    let found = Command::new("promtool")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "promtool is missing under CI: .ci/run installs Debian's `prometheus` package for it"
        );
        eprintln!("note: promtool not found, promtool checks skipped (apt-get install prometheus)");
    }
    found
}

/// Runs promtool with `args` (and `stdin`); panics with its output unless
/// it succeeds.
fn promtool(args: &[&str], stdin: Option<&str>) {
    let mut child = Command::new("promtool")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    let mut input = child.stdin.take().expect("promtool's stdin");
    input
        .write_all(stdin.unwrap_or_default().as_bytes())
        .expect("promtool reads its input");
    drop(input);
    let out = child.wait_with_output().expect("promtool ends");
    assert!(
        out.status.success(),
        "promtool {args:?} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every `recsched_*` metric name in `text`, histogram series
/// (`_bucket`, `_sum`, `_count`) named by their family.
fn names_used(text: &str) -> BTreeSet<String> {
    let is_name = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
    let mut out = BTreeSet::new();
    for (at, _) in text.match_indices("recsched_") {
        if text[..at].chars().next_back().is_some_and(is_name) {
            continue;
        }
        let name: String = text[at..].chars().take_while(|&c| is_name(c)).collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name);
        out.insert(family.to_owned());
    }
    out
}

/// The families a scrape (text format 0.0.4) declares, by `# TYPE`.
fn names_exposed(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(str::to_owned)
        .collect()
}

/// Each alert of `alerts.yml` as (name, its lines up to the next alert).
fn alerts(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        if let Some(name) = line.trim_start().strip_prefix("- alert: ") {
            out.push((name.trim().to_owned(), String::new()));
        } else if let Some((_, body)) = out.last_mut() {
            body.push_str(line);
            body.push('\n');
        }
    }
    out
}

/// The panels of the dashboard that query (rows hold none).
fn panels(dashboard: &Value) -> Vec<&Value> {
    dashboard["panels"]
        .as_array()
        .expect("the dashboard has panels")
        .iter()
        .filter(|p| p["type"] != "row")
        .collect()
}

/// The dashboard's queries with Grafana's variables given values, as
/// PromQL that promtool can parse.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for p in panels(dashboard) {
        for t in p["targets"].as_array().into_iter().flatten() {
            let expr = t["expr"].as_str().unwrap_or_default();
            let promql = expr
                .replace("$__rate_interval", "5m")
                .replace("$job", "recsched")
                .replace("$instance", ".*");
            out.push((format!("{} {}", p["title"], t["refId"]), promql));
        }
    }
    out
}

#[test]
fn the_alert_rules_pass_promtool_and_their_unit_tests() {
    if !have_promtool() {
        return;
    }
    let alerts = shipped("alerts.yml");
    promtool(&["check", "rules", alerts.to_str().unwrap()], None);
    let tests = shipped("alerts_test.yml");
    promtool(&["test", "rules", tests.to_str().unwrap()], None);
}

#[test]
fn every_alert_says_what_it_means_and_what_to_do() {
    let text = read("alerts.yml");
    let alerts = alerts(&text);
    // The issue's list, one alert (at least) each.
    for (wanted, uses) in [
        ("RecschedDown", "up{job=\"recsched\"}"),
        ("RecschedUnhealthy", "recsched_healthy"),
        ("RecschedStartsFailing", "recsched_starts_total"),
        ("RecschedStartLagHigh", "recsched_fire_lag_seconds_bucket"),
        ("RecschedInvalidRows", "recsched_invalid_rows"),
        (
            "RecschedTokenRenewalFailing",
            "recsched_token_renewals_total",
        ),
        ("RecschedCoverageLow", "recsched_recorded_seconds_total"),
        ("RecschedLeasesLost", "recsched_leases_lost_total"),
    ] {
        let found = alerts.iter().find(|(name, _)| name == wanted);
        let (_, body) = found.unwrap_or_else(|| panic!("no alert {wanted} in alerts.yml"));
        assert!(body.contains(uses), "{wanted} does not use {uses}:\n{body}");
    }
    for (name, body) in &alerts {
        for key in ["expr:", "severity:", "summary:", "description:"] {
            assert!(body.contains(key), "alert {name} has no {key}:\n{body}");
        }
        let description = body
            .split("description:")
            .nth(1)
            .unwrap_or_default()
            .split_whitespace()
            .count();
        assert!(
            description >= 20,
            "alert {name}: a description of {description} words cannot say what it means and what to do"
        );
    }
}

#[test]
fn the_dashboard_is_valid_promql_over_the_issue_s_panels() {
    let dashboard: Value =
        serde_json::from_str(&read("grafana-dashboard.json")).expect("the dashboard is JSON");
    assert_eq!(dashboard["uid"], "recsched-overview");
    for p in panels(&dashboard) {
        let title = &p["title"];
        assert!(title.as_str().is_some_and(|t| !t.is_empty()), "{p}");
        assert!(
            p["description"].as_str().is_some(),
            "{title}: no description"
        );
        assert_eq!(p["datasource"]["uid"], "${datasource}", "{title}");
        assert!(
            p["targets"].as_array().is_some_and(|t| !t.is_empty()),
            "{title}: no query"
        );
    }
    // The issue's panels: starts and ends by outcome, retries by status,
    // lag and latency histograms, active recordings, coverage ratio,
    // invalid rows and reloads.
    let queries = dashboard_queries(&dashboard);
    let all: String = queries.iter().map(|(_, q)| q.as_str()).collect();
    for wanted in [
        "sum by (outcome) (increase(recsched_starts_total",
        "sum by (outcome) (increase(recsched_ends_total",
        "sum by (operation, status) (increase(recsched_retries_total",
        "recsched_fire_lag_seconds_bucket",
        "recsched_request_duration_seconds_bucket",
        "recsched_active_recordings",
        "recsched_recorded_seconds_total",
        "recsched_planned_seconds_total",
        "sum by (table) (recsched_invalid_rows",
        "sum by (outcome) (increase(recsched_reloads_total",
    ] {
        assert!(all.contains(wanted), "no panel queries {wanted}");
    }
    if !have_promtool() {
        return;
    }
    // promtool parses PromQL in rule files: one recording rule per query.
    let mut rules = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, (what, promql)) in queries.iter().enumerate() {
        rules.push_str(&format!(
            "      # {}\n      - record: dashboard:query_{i}\n        expr: {}\n",
            what.replace('\n', " "),
            serde_json::to_string(promql).unwrap()
        ));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("dashboard-queries.yml");
    std::fs::write(&file, &rules).unwrap();
    promtool(&["check", "rules", file.to_str().unwrap()], None);
}

fn sim_settings(sim: &simulator::SimHandle, client_secret: &str) -> cxone::Settings {
    let c = sim.config();
    cxone::Settings {
        api_base: sim.url().to_owned(),
        token_url: sim.token_url(),
        client_id: c.client_id.clone(),
        client_secret: Some(Secret::new(client_secret.to_owned())),
        access_key_id: c.access_key_id.clone(),
        access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
        request_timeout_seconds: 5.0,
        ..cxone::Settings::default()
    }
}

#[tokio::test]
async fn token_renewals_are_counted_by_outcome() {
    let sim = simulator::spawn(SimConfig::default()).await.unwrap();
    let metrics = Arc::new(Metrics::new());
    let counter = recsched::cli::run::token_counter(metrics.clone());
    let user = UserId::parse("t1").unwrap();
    let secs = RecordingDuration::from_secs(60).unwrap();
    let renewed = |m: &Metrics| m.count(&m.token_renewals, "renewed");
    let failed = |m: &Metrics| m.count(&m.token_renewals, "failed");

    let secret = sim.config().client_secret.clone();
    let good = Client::new(
        &sim_settings(&sim, &secret),
        None,
        Limits::default(),
        Arc::new(SystemClock),
    )
    .unwrap()
    .on_token_renewal(counter.clone());
    let started = good.start(&user, secs).await.result.unwrap();
    // The second call uses the cached token: no renewal.
    assert!(good.stop(&user, started.contact_id).await.result.is_ok());
    assert_eq!((renewed(&metrics), failed(&metrics)), (1, 0));

    let revoked = Client::new(
        &sim_settings(&sim, "revoked-secret"),
        None,
        Limits::default(),
        Arc::new(SystemClock),
    )
    .unwrap()
    .on_token_renewal(counter);
    assert!(revoked.start(&user, secs).await.result.is_err());
    assert!(revoked.start(&user, secs).await.result.is_err());
    assert_eq!((renewed(&metrics), failed(&metrics)), (1, 2));
    let text = metrics.encode_text();
    assert!(
        text.contains("recsched_token_renewals_total{outcome=\"failed\"} 2"),
        "{text}"
    );
}

/// One scrape of `url` (`/metrics` in the text format, as curl gets it).
async fn scrape(http: &reqwest::Client, url: &str) -> String {
    let answer = http.get(format!("{url}/metrics")).send().await.unwrap();
    assert_eq!(
        answer.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    answer.text().await.unwrap()
}

/// The value of the sample `series` (name and labels as printed).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_passes_promtool_and_has_every_name_the_rules_and_dashboard_use() {
    // "locked" meets 425 on every start until its window ends: retries,
    // then a failed start.
    let faults = Faults {
        user_faults: [("locked".to_owned(), UserFault::Locked)].into(),
        ..Faults::default()
    };
    let mut rig = Rig::with_faults(faults).await;
    rig.set("RECSCHED_METRICS__LISTEN", "127.0.0.1:0");
    // One 6 s window opening 3 s from now (and again 30 s later, should
    // a loaded machine start the daemon too late for the first).
    let first = SystemClock.now() + Span::seconds(3);
    let cron = format!(
        "{},{} * * * * *",
        first.second(),
        (first.second() + 30) % 60
    );
    let mut sql = String::new();
    for (name, mode, users) in [
        ("mon-stop", "stop", &["s1", "locked"][..]),
        ("mon-expire", "expire", &["e1"][..]),
    ] {
        sql.push_str(&format!(
            "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) \
             VALUES ('{name}', '{cron}', 'UTC', 6, '{mode}');"
        ));
        for u in users {
            sql.push_str(&format!(
                "INSERT INTO policy_users (policy_id, user_id) \
                 SELECT id, '{u}' FROM policies WHERE name = '{name}';"
            ));
        }
    }
    rig.sql(&sql).await;
    let daemon = rig.spawn();
    let url = metrics_url(&daemon).await;
    let http = reqwest::Client::new();
    let text = wait_for(
        Duration::from_secs(45),
        "a stop, an expiry and a failed start in the metrics",
        || async {
            let text = scrape(&http, &url).await;
            let done = |series: &str| sample(&text, series).is_some_and(|v| v >= 1.0);
            (done("recsched_ends_total{outcome=\"stopped\"}")
                && done("recsched_ends_total{outcome=\"expired\"}")
                && done("recsched_starts_total{outcome=\"failed\"}"))
            .then_some(text)
        },
    )
    .await;

    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let value =
        |series: &str| sample(&text, series).unwrap_or_else(|| panic!("{series} missing:\n{text}"));
    assert_eq!(value("recsched_healthy"), 1.0, "{text}");
    assert!(
        value("recsched_starts_total{outcome=\"started\"}") >= 2.0,
        "{text}"
    );
    assert!(
        value("recsched_retries_total{operation=\"start\",status=\"425\"}") >= 1.0,
        "{text}"
    );
    assert!(value("recsched_fire_lag_seconds_count") >= 2.0, "{text}");
    assert!(value("recsched_request_duration_seconds_count{operation=\"start\"}") >= 2.0);
    assert_eq!(value("recsched_policies"), 2.0);
    assert_eq!(value("recsched_invalid_rows{table=\"policies\"}"), 0.0);
    assert!(value("recsched_reloads_total{outcome=\"ok\"}") >= 1.0);
    assert!(value("recsched_token_renewals_total{outcome=\"renewed\"}") >= 1.0);
    assert_eq!(
        value("recsched_token_renewals_total{outcome=\"failed\"}"),
        0.0
    );
    assert_eq!(value("recsched_leases_lost_total"), 0.0);
    // Every segment claimed counts its 6 s, the failed one included; each
    // ended recording counts at most its 6 s.
    let planned = value("recsched_planned_seconds_total");
    assert!(planned >= 18.0 && planned % 6.0 == 0.0, "{text}");
    let ended = value("recsched_ends_total{outcome=\"stopped\"}")
        + value("recsched_ends_total{outcome=\"expired\"}");
    let recorded = value("recsched_recorded_seconds_total");
    assert!(recorded > 0.0 && recorded <= 6.0 * ended, "{text}");

    // Every name the shipped rules and dashboard use is exposed.
    let exposed = names_exposed(&text);
    for file in ["alerts.yml", "grafana-dashboard.json"] {
        let used = names_used(&read(file));
        assert!(used.len() >= 8, "{file} uses only {used:?}");
        let missing: Vec<_> = used.difference(&exposed).collect();
        assert!(
            missing.is_empty(),
            "monitoring/{file} uses {missing:?}, which the daemon does not expose:\n{text}"
        );
    }

    let (status, log) = daemon.term(Duration::from_secs(15));
    assert!(status.success(), "{log}");
    if have_promtool() {
        promtool(&["check", "metrics"], Some(&text));
    }
}

/// The metrics URL a daemon logged, without `/metrics`.
async fn metrics_url(daemon: &crate::common::daemon::Daemon) -> String {
    wait_for(
        Duration::from_secs(20),
        "the metrics URL in the log",
        || async {
            let log = daemon.log();
            let at = log.find("http://127.0.0.1:")?;
            let url: String = log[at..]
                .chars()
                .take_while(|c| !c.is_whitespace())
                .collect();
            Some(url.trim_end_matches("/metrics").to_owned())
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_taken_over_and_lost_are_counted_on_postgres() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    // Renewed every second (a third of the lease): tokio-cron-scheduler
    // keeps whole seconds, so a shorter lease would not renew at all.
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "3");
    rig.set("RECSCHED_METRICS__LISTEN", "127.0.0.1:0");
    let first = SystemClock.now() + Span::seconds(3);
    let cron = format!(
        "{},{} * * * * *",
        first.second(),
        (first.second() + 30) % 60
    );
    rig.add_policy("mon-leases", &cron, 20, "expire", &["l1"])
        .await;
    let daemon = rig.spawn();
    let url = metrics_url(&daemon).await;
    let http = reqwest::Client::new();
    let counter = |text: &str, name: &str| sample(text, name).unwrap_or(-1.0);
    // The listener answers before the daemon has reconciled, and reconcile
    // adopts a dead instance's row without counting a takeover: the row
    // goes in once the daemon is past it.
    crate::faults::running(&daemon).await;

    // A dead instance's open row, its lease run out: taken over.
    rig.db
        .sql(
            "INSERT INTO recordings (user_id, policy_id, segment_start, segment_end, \
             requested_seconds, end_mode, state, owner, lease_until) \
             VALUES ('orphan', 1, now() - interval '1 second', now() + interval '9 seconds', \
             10, 'stop', 'pending', 'dead-host-1-abcdef', now() - interval '1 second')",
        )
        .await;
    wait_for(Duration::from_secs(20), "a takeover counted", || async {
        let text = scrape(&http, &url).await;
        (counter(&text, "recsched_leases_taken_over_total") >= 1.0).then_some(())
    })
    .await;

    // This instance's own recording, taken by another: lost.
    let row = wait_for(Duration::from_secs(40), "l1 recording", || async {
        rig.rows()
            .await
            .into_iter()
            .find(|r| r.user_id.as_str() == "l1" && r.contact_id.is_some())
    })
    .await;
    let text = scrape(&http, &url).await;
    assert_eq!(counter(&text, "recsched_leases_lost_total"), 0.0, "{text}");
    rig.db
        .sql(&format!(
            "UPDATE recordings SET owner = 'thief-host-2-abcdef', \
             lease_until = now() + interval '1 hour' WHERE id = {}",
            row.id.get()
        ))
        .await;
    let text = wait_for(Duration::from_secs(20), "a lost lease counted", || async {
        let text = scrape(&http, &url).await;
        (counter(&text, "recsched_leases_lost_total") >= 1.0).then_some(text)
    })
    .await;
    assert_eq!(counter(&text, "recsched_leases_lost_total"), 1.0, "{text}");
    let (status, log) = daemon.term(Duration::from_secs(15));
    assert!(status.success(), "{log}");
}

#[test]
fn names_are_read_from_expressions_by_family() {
    let used = names_used(
        "sum(rate(recsched_fire_lag_seconds_bucket{x=\"1\"}[5m])) / recsched_starts_total \
         and up{job=\"recsched\"} + my_recsched_thing + recsched_request_duration_seconds_count",
    );
    let want: BTreeSet<String> = [
        "recsched_fire_lag_seconds",
        "recsched_starts_total",
        "recsched_request_duration_seconds",
    ]
    .map(str::to_owned)
    .into();
    assert_eq!(used, want);
    let exposed = names_exposed(
        "# HELP recsched_a_total A.\n# TYPE recsched_a_total counter\nrecsched_a_total 1\n",
    );
    assert_eq!(exposed, ["recsched_a_total".to_owned()].into());
}
