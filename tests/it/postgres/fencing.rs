//! Fencing on PostgreSQL: an instance that has lost an open row (its
//! lease ran out and another instance took the row over) sends no further
//! request for it, writes nothing to it, and says so.
//!
//! - In-process on driven time: rows taken over under a running instance;
//!   it learns of it from a write the store refuses, or from its lease
//!   renewal, and stops at once.
//! - The real binary, three instances: one SIGSTOPped right after it
//!   claimed a burst, for longer than its lease; the others take the burst
//!   over; after SIGCONT the stalled one sends nothing. Each instance's
//!   requests go through a tap of its own (a forwarding proxy in front of
//!   the one simulator), so every request is attributed to its instance.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::Duration;
use recsched::recording::RecordingState;
use recsched::simulator::{Faults, UserFault};
use tokio::sync::watch;

use crate::common::daemon::{wait_for, Daemon};
use crate::common::driven::Driven;
use crate::common::pg::PgRig;
use crate::daemon::{row_at, sim_in, t0};
use crate::faults::{cron_at, running, second_after};

/// Requests to the simulator (starts and stops) made since `from`, per
/// user: `(path, user)`.
fn requests_since(rig: &Driven, from: chrono::DateTime<chrono::Utc>) -> Vec<(String, String)> {
    rig.sim
        .requests()
        .into_iter()
        .filter(|r| r.at >= from && r.path.contains("screen-interaction-recording"))
        .map(|r| (r.path.clone(), user_of(r.query.as_deref().unwrap_or(""))))
        .collect()
}

/// The `userId` of a start or stop query string.
fn user_of(query: &str) -> String {
    reqwest::Url::parse(&format!("http://x/?{query}"))
        .ok()
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "userId")
                .map(|(_, v)| v.into_owned())
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn rows_taken_over_from_a_running_instance_get_no_further_request_from_it() {
    // u2's starts are refused (425) with Retry-After 12 s: its next start
    // would leave at 09:00:12.
    let faults = Faults {
        retry_after_secs: Some(12),
        user_faults: [("u2".to_owned(), UserFault::Locked)].into(),
        ..Faults::default()
    };
    let Some(mut rig) = Driven::on_postgres(faults, t0()).await else {
        return;
    };
    let at = |secs: i64| t0() + Duration::seconds(secs);
    // Windows open at 09:00:00 (t0 + 2 s): u1's lasts 5 s and is stopped,
    // u2's a minute.
    rig.add_policy("short", "0 0 9 * * *", 5, "stop", &["u1"])
        .await;
    rig.add_policy("long", "0 0 9 * * *", 60, "stop", &["u2"])
        .await;
    rig.start().await;
    rig.run_until(at(3)).await;
    let rows = rig.rows().await;
    let u1 = row_at(&rows, "u1", at(2))[0].clone();
    let u2 = row_at(&rows, "u2", at(2))[0].clone();
    assert_eq!(u1.state, RecordingState::Recording, "{u1:?}\n{}", rig.log());
    assert_eq!(
        (u2.state, u2.attempts),
        (RecordingState::Pending, 1),
        "{u2:?}"
    );

    // Another instance has both rows now (as a takeover leaves them).
    let taken_at = rig.now();
    rig.sql(
        "UPDATE recordings SET owner = 'other-host-1-abcdef', \
         lease_until = now() + interval '1 hour'",
    )
    .await;
    // 09:00:05, u1's end: the write that marks it stopping is refused, so
    // no stop is sent. 09:00:08 (t0 + 10 s), lease renewal (every 10 s of
    // the 30 s lease): u2's row is found lost, which cuts the wait for its
    // 09:00:12 retry.
    rig.run_until(at(40)).await;
    let log = rig.log();
    assert_eq!(requests_since(&rig, taken_at), [], "{log}");
    assert!(
        log.contains("lost open rows to another instance (a write found its lease run out)"),
        "{log}"
    );
    assert!(
        log.contains("lost open rows to another instance (their lease ran out"),
        "{log}"
    );
    // Neither row was written after the takeover.
    let rows = rig.rows().await;
    for before in [&u1, &u2] {
        let now = row_at(&rows, before.user_id.as_str(), at(2))[0];
        assert_eq!(
            (now.state, now.attempts, now.contact_id),
            (before.state, before.attempts, before.contact_id),
            "{now:?}"
        );
        let audit = rig.store.attempts_for(now.id).await.unwrap();
        assert_eq!(audit.len(), 1, "{audit:?}");
    }
    rig.stop().await;
}

/// What a tap saw of a request: its path and the user it names.
#[derive(Clone)]
struct Seen {
    path: String,
    user: String,
}

#[derive(Clone)]
struct TapState {
    target: String,
    http: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// While `true`, token requests wait.
    hold_token: watch::Receiver<bool>,
}

/// A forwarding proxy in front of the simulator for one instance, so its
/// requests can be told from the others'.
struct Tap {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    hold_token: watch::Sender<bool>,
}

impl Tap {
    async fn new(target: &str) -> Self {
        let (hold_token, held) = watch::channel(false);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let state = TapState {
            target: target.trim_end_matches('/').to_owned(),
            http: reqwest::Client::new(),
            seen: seen.clone(),
            hold_token: held,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = axum::Router::new().fallback(forward).with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self {
            url,
            seen,
            hold_token,
        }
    }

    /// Start and stop requests.
    fn calls(&self) -> Vec<Seen> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path.contains("screen-interaction-recording"))
            .cloned()
            .collect()
    }

    fn token_requests(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.path == "/auth/token")
            .count()
    }
}

async fn forward(State(tap): State<TapState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let path = parts.uri.path().to_owned();
    let query = parts.uri.query().unwrap_or("").to_owned();
    tap.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        user: user_of(&query),
    });
    if path == "/auth/token" {
        let mut held = tap.hold_token.clone();
        let _ = held.wait_for(|hold| !hold).await;
    }
    let body = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_default();
    let mut url = format!("{}{path}", tap.target);
    if !query.is_empty() {
        url = format!("{url}?{query}");
    }
    let mut out = tap.http.request(parts.method, url).body(body);
    for (name, value) in &parts.headers {
        if name != "host" && name != "content-length" {
            out = out.header(name, value);
        }
    }
    let Ok(answer) = out.send().await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    let status = answer.status();
    let mut headers = HeaderMap::new();
    for (name, value) in answer.headers() {
        if name != "content-length" && name != "transfer-encoding" {
            headers.insert(name.clone(), value.clone());
        }
    }
    let bytes: Bytes = answer.bytes().await.unwrap_or_default();
    (status, headers, bytes).into_response()
}

/// The `instance` field of the daemon's "recsched running" line.
fn instance_of(log: &str) -> Option<String> {
    let line = log.lines().find(|l| l.contains("recsched running"))?;
    let rest = line.split("instance=").nth(1)?;
    Some(rest.split_whitespace().next()?.trim_matches('"').to_owned())
}

/// Starts an instance whose requests go through `tap`.
async fn spawn_through(rig: &mut PgRig, tap: &Tap) -> (Daemon, String) {
    rig.set("RECSCHED_CXONE__API_BASE", &tap.url);
    rig.set(
        "RECSCHED_CXONE__TOKEN_URL",
        &format!("{}/auth/token", tap.url),
    );
    let daemon = rig.spawn();
    running(&daemon).await;
    let id = instance_of(&daemon.log()).expect("the running line names the instance");
    (daemon, id)
}

fn signal(daemon: &Daemon, signal: &str) {
    let pid = daemon.pid().to_string();
    let ok = std::process::Command::new("kill")
        .args([signal, &pid])
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_stalled_past_its_lease_sends_nothing_after_waking_and_each_segment_goes_once() {
    let Some(mut rig) = PgRig::new().await else {
        return;
    };
    let lease = std::time::Duration::from_secs(2);
    rig.set("RECSCHED_DATABASE__LEASE_SECONDS", "2");
    let target = rig.rig.sim.url().to_owned();
    let (tap_a, tap_b, tap_c) = (
        Tap::new(&target).await,
        Tap::new(&target).await,
        Tap::new(&target).await,
    );
    let users = ["u0", "u1", "u2", "u3"];
    // Long enough for a start sent after the takeover (at most 4 s in).
    let w = second_after(Duration::seconds(3));
    let length = 10;
    rig.add_policy("burst", &cron_at(w), length, "stop", &users)
        .await;

    // A alone claims the burst. Its token request is held at its tap, so
    // the stall lands after the claim and before any request leaves, as
    // a SIGSTOP right after the claim's commit would.
    tap_a.hold_token.send_replace(true);
    let (a, id_a) = spawn_through(&mut rig, &tap_a).await;
    wait_for(
        std::time::Duration::from_secs(20),
        "A to claim the burst",
        || async {
            let owners = rig.owners().await;
            let mine = owners
                .iter()
                .filter(|(_, owner, _)| owner.as_deref() == Some(id_a.as_str()))
                .count();
            (mine == users.len()).then_some(())
        },
    )
    .await;
    signal(&a, "-STOP");
    let stalled_at = Instant::now();

    // B and C take the burst over once A's lease has run out, and start it.
    let (b, id_b) = spawn_through(&mut rig, &tap_b).await;
    let (c, id_c) = spawn_through(&mut rig, &tap_c).await;
    wait_for(
        std::time::Duration::from_secs(20),
        "B and C to take the burst over and start it",
        || async {
            let rows = rig.rows().await;
            (rows.len() == users.len()
                && rows
                    .iter()
                    .all(|r| r.state == RecordingState::Recording && r.contact_id.is_some()))
            .then_some(rows)
        },
    )
    .await;
    // A stays stopped for longer than its lease, whatever B and C took.
    let wake = stalled_at + lease + std::time::Duration::from_millis(500);
    tokio::time::sleep_until(wake.into()).await;
    signal(&a, "-CONT");
    let woke_at = Instant::now();
    tap_a.hold_token.send_replace(false);
    wait_for(
        std::time::Duration::from_secs(10),
        "A to learn it lost the burst",
        || async { a.log().contains("lost open rows").then_some(()) },
    )
    .await;

    // B and C stop what they started at the window's end.
    let end = w + Duration::seconds(length);
    let rows = wait_for(
        std::time::Duration::from_secs(30),
        "the burst to be stopped at its end",
        || async {
            let rows = rig.rows().await;
            rows.iter()
                .all(|r| r.state == RecordingState::Stopped)
                .then_some(rows)
        },
    )
    .await;
    let owners: BTreeMap<i64, String> = rig
        .owners()
        .await
        .into_iter()
        .map(|(id, owner, _)| (id, owner.unwrap_or_default()))
        .collect();
    let (status_a, log_a) = a.term(std::time::Duration::from_secs(15));
    let (status_b, log_b) = b.term(std::time::Duration::from_secs(15));
    let (status_c, log_c) = c.term(std::time::Duration::from_secs(15));
    let logs = format!("A:\n{log_a}\nB:\n{log_b}\nC:\n{log_c}");
    assert!(
        status_a.success() && status_b.success() && status_c.success(),
        "{logs}"
    );

    // A sent nothing: not before its stall (its token was held), not after
    // waking (its rows were another's by then), neither start nor stop.
    assert_eq!(tap_a.calls().len(), 0, "{logs}");
    assert!(tap_a.token_requests() >= 1, "A did reach for a token");
    assert!(log_a.contains("lost open rows"), "{logs}");
    // Each segment was started and stopped by one instance, its owner.
    let sim = rig.rig.recordings();
    for user in users {
        let row = row_at(&rows, user, w)[0];
        let owner = &owners[&row.id.get()];
        assert!(*owner == id_b || *owner == id_c, "{row:?} owned by {owner}");
        for (tap, id) in [(&tap_b, &id_b), (&tap_c, &id_c)] {
            let calls: Vec<_> = tap.calls().into_iter().filter(|s| s.user == user).collect();
            if id != owner {
                assert!(
                    calls.is_empty(),
                    "{user}: the non-owner sent {}",
                    calls.len()
                );
                continue;
            }
            let starts = calls.iter().filter(|s| s.path.contains("start")).count();
            let stops = calls.iter().filter(|s| s.path.contains("stop")).count();
            assert_eq!((starts, stops), (1, 1), "{user} by its owner\n{logs}");
        }
        // One recording at the vendor, and the row holds its contact id.
        let recorded = sim_in(&sim, user, w, end);
        assert_eq!(recorded.len(), 1, "{user}: {recorded:?}");
        assert_eq!(
            row.contact_id.map(|c| c.get()),
            Some(recorded[0].contact_id as i64),
            "{row:?}"
        );
    }
    assert!(woke_at > stalled_at + lease);
}
