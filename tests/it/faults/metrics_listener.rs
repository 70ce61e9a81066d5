//! Case 11 of issue 12: clients of `/metrics` that connect and stall.
//!
//! The listener serves at most 64 connections at once and gives each 5 s
//! to send its request head; a flood of idle clients and one that never
//! finishes its headers therefore holds the listener for about 5 s at
//! most, never the schedule, and a listener on a non-loopback address is
//! warned about in the log.

use super::hostile::{assert_no_panic, assert_on_time};
use super::hosts::{accepted_on, pid_writing, Peers};
use super::{add_policy, cron_at, refs, running, second_after, users};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Instant;

/// `recsched::metrics::MAX_CONNECTIONS`, restated: the test checks the
/// number, not the constant.
const CAP: usize = 64;

/// `GET path` on a connection of its own; the status line and body.
fn get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(addr)?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut answer = String::new();
    s.read_to_string(&mut answer)?;
    Ok(answer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_clients_hold_metrics_for_seconds_and_the_schedule_not_at_all() {
    let mut rig = Rig::new().await;
    rig.set("RECSCHED_METRICS__LISTEN", "0.0.0.0:0");
    let staff = users("scraped", 3);
    // Opens while the listener is flooded.
    let at = second_after(Duration::seconds(3));
    add_policy(&rig, "scraped", &cron_at(at), 20, "expire", &refs(&staff)).await;

    let mut daemon = rig.spawn();
    let pid = pid_writing(&daemon.log);
    let peers = Peers::watch(pid);
    running(&daemon).await;
    let log = daemon.log();
    let port: u16 = log
        .split("http://0.0.0.0:")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no metrics URL on 0.0.0.0 in the log:\n{log}"));
    assert!(
        log.lines().any(|l| l.contains("WARN")
            && l.contains("not on loopback")
            && l.contains(&format!("0.0.0.0:{port}"))),
        "no warning naming the non-loopback listener:\n{log}"
    );
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let health = tokio::task::spawn_blocking(move || get(addr, "/healthz"));
    let health = health.await.unwrap().unwrap();
    assert!(health.starts_with("HTTP/1.1 200"), "{health}");

    // One client that never finishes its request head, then enough idle
    // ones to fill every slot and one more.
    let opened = Instant::now();
    let mut slow = TcpStream::connect(addr).unwrap();
    slow.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    let idle: Vec<TcpStream> = (0..CAP)
        .map(|_| TcpStream::connect(addr).unwrap())
        .collect();
    let held = wait_for(
        std::time::Duration::from_secs(4),
        "the listener to take its 64 connections",
        || async { (accepted_on(pid, port) >= CAP).then(|| accepted_on(pid, port)) },
    )
    .await;
    assert_eq!(held, CAP, "connections served at once");

    // A scrape waits for a slot, and gets one once the stalled clients
    // are cut off.
    let scrape = tokio::task::spawn_blocking(move || get(addr, "/metrics"));
    let cut = tokio::task::spawn_blocking(move || {
        slow.set_read_timeout(Some(std::time::Duration::from_secs(20)))?;
        let mut buf = [0u8; 64];
        let read = slow.read(&mut buf);
        Ok::<_, std::io::Error>((read.map(|n| buf[..n].to_vec()), opened.elapsed()))
    });
    let (read, cut_after) = cut.await.unwrap().unwrap();
    match read {
        Ok(bytes) if bytes.is_empty() => {}
        Ok(bytes) => panic!(
            "the stalled client got an answer: {:?}",
            String::from_utf8_lossy(&bytes)
        ),
        Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
        Err(e) => panic!("the stalled client is still open after 20 s: {e}"),
    }
    assert!(
        cut_after >= std::time::Duration::from_secs(4),
        "the stalled client was cut off after {cut_after:?}, before its 5 s"
    );
    let answer = scrape.await.unwrap().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.contains("recsched_starts_total"),
        "/metrics during the flood: {answer}"
    );
    assert!(
        accepted_on(pid, port) <= CAP,
        "more than {CAP} connections served at once"
    );
    drop(idle);

    // The window that opened during the flood was recorded on time.
    wait_for(
        std::time::Duration::from_secs(20),
        "the window recorded",
        || async {
            let rows = rig.rows().await;
            (rows.iter().filter(|r| r.contact_id.is_some()).count() == staff.len()).then_some(())
        },
    )
    .await;
    assert_on_time(&rig.recordings(), &staff, at);
    daemon.assert_running();
    peers.assert_only(&[rig.sim.addr()]);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert!(
        log.contains("read header from client timeout"),
        "the log does not say why the stalled clients were cut off:\n{log}"
    );
    assert_no_panic(&log);
    println!(
        "/metrics on 0.0.0.0:{port} (warned): {CAP} connections held at once; a client \
         stalled in its headers cut off after {:.1} s; /metrics answered; {} users recorded \
         on time",
        cut_after.as_secs_f64(),
        staff.len()
    );
}
