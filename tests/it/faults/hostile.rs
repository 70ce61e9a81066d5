//! What every fault run asserts besides its own case (issue 12): "another
//! host" that must hear nothing, the daemon stays up, every other
//! policy's users are recorded on time, the bad input is named, nothing
//! panicked.

use super::{now, until};
use crate::common::daemon::{wait_for, Daemon, Rig};
use crate::daemon::sim_in;
use chrono::{DateTime, Duration, Utc};
use recsched::simulator::Recording;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A listener on `127.0.0.2` standing for a host other than the
/// configured ones. It answers nothing; it counts connections and keeps
/// the start of what each one sent, so a failure shows what leaked.
pub struct Elsewhere {
    addr: std::net::SocketAddr,
    connections: Arc<AtomicUsize>,
    received: Arc<Mutex<Vec<String>>>,
    task: JoinHandle<()>,
}

impl Elsewhere {
    pub async fn bind() -> Self {
        let listener = TcpListener::bind(("127.0.0.2", 0))
            .await
            .expect("bind 127.0.0.2 (all of 127.0.0.0/8 is loopback on Linux)");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(Mutex::new(Vec::new()));
        let (count, log) = (connections.clone(), received.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let log = log.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0u8; 4096];
                    let n = tokio::time::timeout(
                        std::time::Duration::from_secs(2),
                        socket.read(&mut buf),
                    )
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(0);
                    log.lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned());
                });
            }
        });
        Self {
            addr,
            connections,
            received,
            task,
        }
    }

    /// `http://127.0.0.2:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn host(&self) -> String {
        self.addr.ip().to_string()
    }

    /// Panics, with what arrived, if anything connected.
    pub fn assert_untouched(&self) {
        let n = self.connections.load(Ordering::SeqCst);
        assert_eq!(
            n,
            0,
            "{n} connection(s) reached another host ({}): {:?}",
            self.addr,
            self.received.lock().unwrap()
        );
    }
}

impl Drop for Elsewhere {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The daemon's log has no panic.
pub fn assert_no_panic(log: &str) {
    assert!(!log.contains("panicked"), "a panic in the log:\n{log}");
}

/// Waits until the log has a line containing every one of `words`, and
/// returns that line: the bad input named where an operator looks.
pub async fn named_in_log(daemon: &Daemon, words: &[&str]) -> String {
    wait_for(
        std::time::Duration::from_secs(15),
        &format!("a log line naming {words:?}"),
        || async {
            daemon
                .log()
                .lines()
                .find(|l| words.iter().all(|w| l.contains(w)))
                .map(str::to_owned)
        },
    )
    .await
}

/// How late a start may reach the vendor and still be "on time" on this
/// shared 2-core machine (a start leaves within milliseconds when idle).
pub const ON_TIME: Duration = Duration::seconds(2);

/// Every user in `users` had exactly one vendor recording started in
/// `[opens, opens + ON_TIME)`, and its row holds that contact id. Waits
/// for the rows to hold contact ids, then checks when the vendor started
/// each recording.
pub async fn assert_recorded_on_time(rig: &Rig, users: &[String], opens: DateTime<Utc>) {
    until(opens).await;
    wait_for(
        std::time::Duration::from_secs(10),
        "every healthy user's row to hold its contact id",
        || async {
            let rows = rig.rows().await;
            users
                .iter()
                .all(|u| {
                    rows.iter()
                        .any(|r| r.user_id.as_str() == u && r.contact_id.is_some())
                })
                .then_some(())
        },
    )
    .await;
    let rows = rig.rows().await;
    let sim = rig.recordings();
    for u in users {
        let made = sim_in(&sim, u, opens, opens + ON_TIME);
        assert_eq!(
            made.len(),
            1,
            "{u}: not one recording started within {ON_TIME} of {opens} (now {}): {:?}",
            now(),
            sim.iter().filter(|r| &r.user_id == u).collect::<Vec<_>>()
        );
        let row = rows
            .iter()
            .find(|r| r.user_id.as_str() == u && r.segment_start == opens)
            .unwrap_or_else(|| panic!("no row for {u} at {opens}"));
        assert_eq!(
            row.contact_id.map(|c| c.get()),
            Some(made[0].contact_id as i64),
            "{row:?}"
        );
    }
}

/// Every user in `users` has exactly one recording, started in
/// `[window, window + ON_TIME)`, read from the simulator alone (for runs
/// whose rows may not be readable).
pub fn assert_on_time(sim: &[Recording], users: &[String], window: DateTime<Utc>) {
    for u in users {
        let mine: Vec<_> = sim.iter().filter(|r| &r.user_id == u).collect();
        assert_eq!(mine.len(), 1, "{u}: {mine:?}");
        let late = mine[0].started_at - window;
        assert!(
            late >= Duration::zero() && late < ON_TIME,
            "{u} started {} ms after its window opened at {window}",
            late.num_milliseconds()
        );
    }
}
