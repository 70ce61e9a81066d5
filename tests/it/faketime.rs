//! The real binary while its wall clock steps: libfaketime (Debian package
//! `faketime`) shifts CLOCK_REALTIME alone (`FAKETIME_DONT_FAKE_MONOTONIC`)
//! by the offset in a file the test rewrites, as NTP stepping the host's
//! clock would. The simulator runs in this process on the real clock, like
//! a vendor on another host.
//!
//! Without libfaketime each test says it was skipped and passes, unless
//! `CI=true`: there it fails, since `.ci/run` installs the package.

use crate::common::daemon::{wait_for, Daemon, Rig};
use crate::common::pg::PgRig;
use crate::daemon::{add_policy, now, row_at};
use crate::faults::{cron_at, running, second_after};
use chrono::{DateTime, Duration, Utc};
use recsched::clock::parse_utc;
use recsched::daemon::LAST_SEEN_KEY;
use recsched::recording::RecordingState;
use std::path::{Path, PathBuf};

/// Where Debian and others install the library, below `/usr/lib` and the
/// like (`x86_64-linux-gnu/faketime/libfaketime.so.1` on Debian).
fn libfaketime() -> Option<PathBuf> {
    const NAME: &str = "faketime/libfaketime.so.1";
    for root in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
        let root = Path::new(root);
        if root.join(NAME).is_file() {
            return Some(root.join(NAME));
        }
        let Ok(dirs) = std::fs::read_dir(root) else {
            continue;
        };
        for dir in dirs.flatten() {
            let candidate = dir.path().join(NAME);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// The daemon's wall-clock offset, as libfaketime reads it.
struct FakeTime {
    file: PathBuf,
}

impl FakeTime {
    /// Makes every daemon `rig` starts run under libfaketime at offset 0.
    /// `None` (the test is skipped) when the library is not installed and
    /// `CI` is not `true`.
    fn install(rig: &mut Rig, test: &str) -> Option<Self> {
        let Some(lib) = libfaketime() else {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "libfaketime is not installed: `apt-get install faketime` (.ci/run does)"
            );
            eprintln!("SKIPPED {test}: libfaketime not installed (apt-get install faketime)");
            return None;
        };
        let file = rig.dir.path().join("faketime.rc");
        let fake = Self { file };
        fake.set("+0");
        rig.set("LD_PRELOAD", lib.to_str().expect("a UTF-8 path"));
        rig.set("FAKETIME_TIMESTAMP_FILE", fake.file.to_str().unwrap());
        rig.set("FAKETIME_NO_CACHE", "1");
        rig.set("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        // No shared memory segment to leak when a test kills the daemon.
        rig.set("FAKETIME_DISABLE_SHM", "1");
        Some(fake)
    }

    /// Sets the offset (`+1800`, `-3600`: seconds); the daemon's next
    /// clock read sees it. Written aside and renamed, so a read never sees
    /// half a file.
    fn set(&self, offset: &str) {
        let tmp = self.file.with_extension("tmp");
        std::fs::write(&tmp, format!("{offset}\n")).unwrap();
        std::fs::rename(&tmp, &self.file).unwrap();
    }
}

/// The daemon's heartbeat, as stored.
async fn last_seen(rig: &Rig) -> Option<DateTime<Utc>> {
    rig.store
        .get_state(LAST_SEEN_KEY)
        .await
        .ok()
        .flatten()
        .and_then(|v| parse_utc(&v).ok())
}

fn stop(daemon: Daemon) -> String {
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_30_minute_step_forward_while_waiting_sends_the_start_within_2_s_of_the_window() {
    let mut rig = Rig::new().await;
    let Some(fake) = FakeTime::install(&mut rig, "faketime::a_30_minute_step_forward") else {
        return;
    };
    let step = Duration::minutes(30);
    let daemon = rig.spawn();
    running(&daemon).await;
    // On the daemon's clock once stepped, the window opens 8 s from now:
    // time to load the policy (polled every 200 ms), and to notice the
    // step (within 5 s).
    let w = second_after(step + Duration::seconds(8));
    add_policy(&rig, "ahead", &cron_at(w), 60, "expire", &["f1"]).await;
    wait_for(
        std::time::Duration::from_secs(10),
        "the policy loaded",
        || async { daemon.log().contains("policies reloaded").then_some(()) },
    )
    .await;
    fake.set(&format!("+{}", step.num_seconds()));
    let made = wait_for(
        std::time::Duration::from_secs(30),
        "the start for the window",
        || async { rig.recordings().into_iter().find(|r| r.user_id == "f1") },
    )
    .await;
    let log = stop(daemon);
    // The simulator's clock is the real one: the daemon's is 30 min ahead.
    let sent = made.started_at + step;
    assert!(
        sent >= w - Duration::milliseconds(100) && sent - w < Duration::seconds(2),
        "start at {sent} on the daemon's clock, window at {w}\n{log}"
    );
    let rows = rig.rows().await;
    let r = row_at(&rows, "f1", w);
    assert_eq!(r.len(), 1, "{rows:?}");
    assert_eq!(
        r[0].contact_id.map(|c| c.get()),
        Some(made.contact_id as i64)
    );
    let at = rig.store.attempts_for(r[0].id).await.unwrap()[0].at;
    assert!(
        at >= w && at - w < Duration::seconds(2),
        "attempt at {at}, window at {w}"
    );
    assert!(
        log.contains("the wall clock stepped forward by 30 min"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_hour_step_back_starts_no_window_twice_and_the_heartbeat_keeps_its_period() {
    let mut rig = Rig::new().await;
    let Some(fake) = FakeTime::install(&mut rig, "faketime::a_1_hour_step_back") else {
        return;
    };
    add_policy(&rig, "every-5s", "*/5 * * * * *", 5, "expire", &["b1"]).await;
    let daemon = rig.spawn();
    running(&daemon).await;
    // A window recorded before the step.
    let first = wait_for(
        std::time::Duration::from_secs(15),
        "a window started before the step",
        || async {
            let rows = rig.rows().await;
            rows.into_iter().find(|r| r.contact_id.is_some())
        },
    )
    .await;
    fake.set("-3600");
    let stepped_at = now();
    // Heartbeats after the step: values on the stepped clock, every 5 s.
    let mut beats: Vec<DateTime<Utc>> = Vec::new();
    while now() - stepped_at < Duration::seconds(12) {
        if let Some(seen) = last_seen(&rig).await {
            if seen < stepped_at - Duration::minutes(30) && beats.last() != Some(&seen) {
                beats.push(seen);
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let log = stop(daemon);
    assert!(
        beats.len() >= 2,
        "heartbeats after the step: {beats:?}\n{log}"
    );
    for pair in beats.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::seconds(4) && gap <= Duration::seconds(6),
            "heartbeat period {gap} after the step: {beats:?}"
        );
    }
    assert!(log.contains("the wall clock stepped back by 1 h"), "{log}");
    let rows = rig.rows().await;
    let sim = rig.recordings();
    // The window started before the step was started once.
    let starts = rig
        .store
        .attempts_for(first.id)
        .await
        .unwrap()
        .iter()
        .filter(|a| a.operation.as_str() == "start")
        .count();
    assert_eq!(starts, 1, "{first:?}\n{log}");
    // Every vendor recording belongs to exactly one row, and every row
    // that started holds a recording of its own.
    for m in &sim {
        let holders = rows
            .iter()
            .filter(|r| r.contact_id.map(|c| c.get()) == Some(m.contact_id as i64))
            .count();
        assert_eq!(holders, 1, "{m:?} in {rows:?}\n{log}");
    }
    let started = rows.iter().filter(|r| r.contact_id.is_some()).count();
    assert_eq!(sim.len(), started, "{sim:?}\n{rows:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_postgres_a_1_hour_step_back_keeps_the_lease_renewal_period() {
    let Some(mut pg) = PgRig::new().await else {
        return;
    };
    let Some(fake) = FakeTime::install(&mut pg.rig, "faketime::on_postgres_a_1_hour_step_back")
    else {
        return;
    };
    // Renewed every second.
    pg.set("RECSCHED_DATABASE__LEASE_SECONDS", "3");
    let w = second_after(Duration::seconds(2));
    pg.add_policy("long", &cron_at(w), 60, "expire", &["l1"])
        .await;
    let daemon = pg.spawn();
    wait_for(
        std::time::Duration::from_secs(20),
        "the window to be recording",
        || async {
            let rows = pg.rows().await;
            rows.into_iter()
                .find(|r| r.state == RecordingState::Recording)
                .map(drop)
        },
    )
    .await;
    fake.set("-3600");
    let stepped_at = now();
    // lease_until is the database server's now() plus the lease: each
    // renewal moves it on. Record each new value as it appears.
    let mut conn = pg.db.conn().await;
    let mut renewals: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
    while now() - stepped_at < Duration::seconds(6) {
        let until: Option<DateTime<Utc>> =
            sqlx::query_scalar("SELECT lease_until FROM recordings WHERE user_id = 'l1'")
                .fetch_one(&mut conn)
                .await
                .unwrap();
        if let Some(until) = until {
            if renewals.last().map(|(_, u)| *u) != Some(until) {
                renewals.push((now(), until));
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(conn);
    let log = stop(daemon);
    // Every second or so, as before the step, never stalled by it.
    assert!(
        renewals.len() >= 4,
        "lease renewals in the 6 s after the step: {renewals:?}\n{log}"
    );
    for pair in renewals.windows(2) {
        let gap = pair[1].0 - pair[0].0;
        assert!(
            gap <= Duration::milliseconds(2_000),
            "{gap} between renewals after the step: {renewals:?}"
        );
    }
    assert!(log.contains("the wall clock stepped back by 1 h"), "{log}");
}
