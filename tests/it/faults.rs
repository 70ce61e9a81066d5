//! Chaos and fault runs: the real `recsched` binary, a real SQLite file and
//! the simulator on loopback, under a failing vendor, a database held
//! locked by another writer, a read-only file and a full disk. Each test
//! prints its counts; each is short enough for CI (under a minute), and a
//! longer soak runs only with `RECSCHED_SOAK=1`.
//!
//! `rows` puts hand-damaged rows (sqlite3 with its defaults) beside a
//! healthy policy.
//!
//! (`kill -9` at random moments lives in `daemon::chaos`.)

mod body;
mod config;
mod disk;
mod flaky;
pub mod hostile;
mod hosts;
mod lock;
mod metrics_listener;
mod redirect;
mod retry_after;
mod rows;
mod token;

use crate::common::daemon::{wait_for, Daemon, Rig};
use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use recsched::simulator::LoggedRequest;

pub use crate::daemon::{add_policy, now, row_at, sim_in, until};

/// A one-shot 6-field cron (UTC) firing at `at`'s second.
pub fn cron_at(at: DateTime<Utc>) -> String {
    format!(
        "{} {} {} {} {} *",
        at.second(),
        at.minute(),
        at.hour(),
        at.day(),
        at.month()
    )
}

/// A whole second at least `ahead` from now.
pub fn second_after(ahead: Duration) -> DateTime<Utc> {
    (now() + ahead)
        .duration_trunc(Duration::seconds(1))
        .unwrap()
        + Duration::seconds(1)
}

/// `n` user ids `{prefix}-000`, `{prefix}-001`, ...
pub fn users(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i:03}")).collect()
}

pub fn refs(users: &[String]) -> Vec<&str> {
    users.iter().map(String::as_str).collect()
}

/// Waits until the daemon has loaded, reconciled and entered its loop.
pub async fn running(daemon: &Daemon) {
    wait_for(
        std::time::Duration::from_secs(20),
        "the daemon to log `recsched running`",
        || async { daemon.log().contains("recsched running").then_some(()) },
    )
    .await;
}

/// Every start request the simulator received.
pub fn start_requests(rig: &Rig) -> Vec<LoggedRequest> {
    rig.sim
        .requests()
        .into_iter()
        .filter(|r| r.path.ends_with("/start-screen-interaction-recording"))
        .collect()
}

/// The `userId` of a logged request.
pub fn user_of(r: &LoggedRequest) -> Option<String> {
    r.query.as_deref()?.split('&').find_map(|pair| {
        pair.strip_prefix("userId=")
            .map(|u| u.replace("%2D", "-").replace("%2d", "-"))
    })
}
