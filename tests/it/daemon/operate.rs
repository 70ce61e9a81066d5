//! Being a good systemd citizen: READY after migrations and reconcile,
//! watchdog pings, a STATUS line, RELOADING on SIGHUP (the real binary);
//! and Prometheus metrics and health on a loopback port (in-process, on
//! driven time).

use super::{add_policy, starts, t0};
use crate::common::daemon::{wait_for, Rig};
use crate::common::driven::Driven;
use chrono::Duration;
use recsched::cli::run::serve_metrics;
use recsched::metrics;
use std::sync::Arc;
use std::time::Instant;
use tokio::net::UnixDatagram;
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_ready_after_reconcile_then_watchdog_status_and_reload() {
    let mut rig = Rig::new().await;
    add_policy(&rig, "always", "*/2 * * * * *", 10, "expire", &["n1"]).await;
    let sock_path = rig.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    rig.set("NOTIFY_SOCKET", sock_path.to_str().unwrap());
    rig.set("WATCHDOG_USEC", "600000");
    let daemon = rig.spawn();

    let mut messages: Vec<(Instant, String)> = Vec::new();
    let mut buf = vec![0u8; 4096];
    // Until READY=1.
    loop {
        let m = recv(&sock, &mut buf).await;
        messages.push((Instant::now(), m.clone()));
        if m.contains("READY=1") {
            break;
        }
    }
    assert_eq!(
        messages
            .iter()
            .filter(|(_, m)| m.contains("WATCHDOG=1"))
            .count(),
        0,
        "pings before READY: {messages:?}"
    );
    // READY comes after migrations and reconcile.
    let log = daemon.log();
    assert!(log.contains("reconciled"), "READY before reconcile:\n{log}");
    assert!(rig.store.policy_revision().await.is_ok());

    // Watchdog pings from the loop, and a STATUS line.
    let ready_at = Instant::now();
    while ready_at.elapsed() < std::time::Duration::from_secs(2) {
        let m = recv(&sock, &mut buf).await;
        messages.push((Instant::now(), m));
    }
    let pings = messages
        .iter()
        .filter(|(_, m)| m.contains("WATCHDOG=1"))
        .count();
    assert!(
        pings >= 4,
        "{pings} pings in 2 s with a 0.6 s watchdog: {messages:?}"
    );
    let status: Vec<&String> = messages
        .iter()
        .map(|(_, m)| m)
        .filter(|m| m.starts_with("STATUS="))
        .collect();
    assert!(!status.is_empty(), "{messages:?}");
    assert!(
        status
            .iter()
            .any(|s| s.contains("recording") && s.contains("failed")),
        "{status:?}"
    );
    println!("status lines: {status:?}");

    // SIGHUP: RELOADING=1, then READY=1 again.
    daemon.hup();
    let mut reloading = false;
    let deadline = Instant::now() + std::time::Duration::from_secs(5);
    loop {
        assert!(
            Instant::now() < deadline,
            "no RELOADING/READY after SIGHUP: {messages:?}"
        );
        let m = recv(&sock, &mut buf).await;
        if m.contains("RELOADING=1") {
            assert!(m.contains("MONOTONIC_USEC="), "{m}");
            reloading = true;
        } else if reloading && m.contains("READY=1") {
            break;
        }
        messages.push((Instant::now(), m));
    }
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
    // STOPPING=1 on the way out.
    let mut rest = Vec::new();
    while let Ok(Ok(n)) =
        tokio::time::timeout(std::time::Duration::from_millis(200), sock.recv(&mut buf)).await
    {
        rest.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert!(rest.iter().any(|m| m.contains("STOPPING=1")), "{rest:?}");
}

#[tokio::test]
async fn metrics_and_health_are_served_on_loopback() {
    let mut rig = Driven::new(t0()).await;
    rig.add_policy("m", "*/10 * * * * *", 5, "stop", &["m1", "m2"])
        .await;
    rig.start().await;
    let cancel = CancellationToken::new();
    let addr = serve_metrics(
        &metrics::Settings {
            listen: "127.0.0.1:0".into(),
        },
        &rig.hooks,
        Arc::new(rig.clock.clone()),
        cancel.clone(),
    )
    .await
    .unwrap()
    .expect("a metrics address");
    let url = format!("http://{addr}");
    let t0 = rig.now();
    let w = starts(t0 + Duration::seconds(1), t0 + Duration::seconds(20), 10, 0)[0];
    rig.run_until(w + Duration::seconds(6)).await;
    let http = reqwest::Client::new();
    let health = http.get(format!("{url}/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.text().await.unwrap(), "ok\n");
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} missing:\n{text}"))
    };
    assert!(
        value("recsched_starts_total{outcome=\"started\"}") >= 2.0,
        "{text}"
    );
    assert!(
        value("recsched_ends_total{outcome=\"stopped\"}") >= 2.0,
        "{text}"
    );
    assert!(value("recsched_fire_lag_seconds_count") >= 2.0, "{text}");
    assert!(value("recsched_request_duration_seconds_count{operation=\"start\"}") >= 2.0);
    assert_eq!(value("recsched_policies"), 1.0);
    assert_eq!(value("recsched_invalid_policies"), 0.0);
    assert!(value("recsched_last_reload_timestamp_seconds") > 1.7e9);
    // Fire-to-request lag on the daemon's own clock: under 150 ms.
    let le = value("recsched_fire_lag_seconds_bucket{le=\"0.128\"}");
    assert!(le >= 2.0, "starts later than 128 ms:\n{text}");
    cancel.cancel();
    rig.stop().await;
}

async fn recv(sock: &UnixDatagram, buf: &mut [u8]) -> String {
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.recv(buf))
        .await
        .expect("a notify message within 10 s")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_come_from_a_credentials_directory_and_never_reach_the_log() {
    let config = recsched::simulator::SimConfig {
        client_secret: "cred-CLIENT-s3cret".into(),
        access_key_secret: "cred-KEY-s3cret".into(),
        ..recsched::simulator::SimConfig::default()
    };
    let mut rig = Rig::with_config(config).await;
    let creds = rig.dir.path().join("credentials");
    std::fs::create_dir(&creds).unwrap();
    rig.credentials = Some(creds);
    rig.set("RUST_LOG", "trace");
    add_policy(&rig, "c", "*/2 * * * * *", 10, "expire", &["c1"]).await;
    let daemon = rig.spawn();
    wait_for(
        std::time::Duration::from_secs(10),
        "a recording made with credentials from files",
        || async {
            rig.recordings()
                .iter()
                .any(|r| r.user_id == "c1")
                .then_some(())
        },
    )
    .await;
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "{log}");
    assert!(log.contains("recording"), "{log}");
    for secret in ["cred-CLIENT-s3cret", "cred-KEY-s3cret"] {
        assert!(!log.contains(secret), "{secret} in the log");
    }
    assert!(
        !log.to_lowercase().contains("bearer "),
        "a token in the log"
    );
}
