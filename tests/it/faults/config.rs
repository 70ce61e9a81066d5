//! Case 10 of issue 12: what an operator types into the configuration.
//!
//! A secret or an id made of digits (`00123`) reaches the vendor as typed,
//! not as the number 123; a numeric value outside its range (`inf`, `NaN`,
//! `1e-30`, an overflow) is the one mistake that stops the daemon from
//! starting: `recsched check` and `recsched run` both name the key and
//! exit 1, without a panic and without sending anything.

use super::hostile::{assert_no_panic, assert_on_time};
use super::hosts::{pid_writing, Peers};
use super::{add_policy, cron_at, refs, running, second_after, users};
use crate::common::daemon::{wait_for, Rig};
use chrono::Duration;
use recsched::simulator::SimConfig;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_and_ids_made_of_digits_reach_the_vendor_as_typed() {
    // What the simulator accepts, and so what the daemon must send: each
    // would parse as a number (00123 -> 123, 1e3 -> 1000, 0042 -> 42).
    let mut rig = Rig::with_config(SimConfig {
        client_id: "0042".into(),
        client_secret: "00123".into(),
        access_key_id: "1e3".into(),
        access_key_secret: "007".into(),
        ..SimConfig::default()
    })
    .await;
    // Numeric keys still read numbers from the environment.
    rig.set("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "256");
    rig.set("RECSCHED_CXONE__REQUEST_TIMEOUT_SECONDS", "7.5");
    let staff = users("digits", 3);
    let at = second_after(Duration::seconds(3));
    add_policy(&rig, "digits", &cron_at(at), 20, "expire", &refs(&staff)).await;

    let mut daemon = rig.spawn();
    let peers = Peers::watch(pid_writing(&daemon.log));
    running(&daemon).await;
    wait_for(
        std::time::Duration::from_secs(20),
        "the window recorded",
        || async {
            let rows = rig.rows().await;
            (rows.iter().filter(|r| r.contact_id.is_some()).count() == staff.len()).then_some(())
        },
    )
    .await;
    daemon.assert_running();
    peers.assert_only(&[rig.sim.addr()]);

    let tokens: Vec<u16> = rig
        .sim
        .requests()
        .iter()
        .filter(|r| r.path == "/auth/token")
        .map(|r| r.status)
        .collect();
    assert!(
        !tokens.is_empty() && tokens.iter().all(|s| *s == 200),
        "token answers {tokens:?}: the credentials did not arrive as typed"
    );
    assert_on_time(&rig.recordings(), &staff, at);
    let (status, log) = daemon.term(std::time::Duration::from_secs(15));
    assert!(status.success(), "exit {status}:\n{log}");
    assert_no_panic(&log);
    println!(
        "credentials 0042/00123/1e3/007 from the environment: {} token request(s), all 200; \
         {} users recorded on time",
        tokens.len(),
        staff.len()
    );
}

/// One bad value: where it is set, and the line that must name it.
struct Bad {
    file: &'static str,
    env: &'static [(&'static str, &'static str)],
    named: &'static str,
}

const BAD: &[Bad] = &[
    Bad {
        file: "[cxone]\nrequest_timeout_seconds = inf\n",
        env: &[],
        named: "config: cxone.request_timeout_seconds = inf: must be between 0.1 and 300",
    },
    Bad {
        file: "",
        env: &[("RECSCHED_SCHEDULE__MAX_REQUESTS_PER_SECOND", "1e-30")],
        named: "config: schedule.max_requests_per_second = 1e-30: must be 0 (no limit) or \
                between 0.1 and 10000",
    },
    Bad {
        file: "",
        env: &[("RECSCHED_CXONE__CONNECT_TIMEOUT_SECONDS", "NaN")],
        named: "config: cxone.connect_timeout_seconds = NaN: must be between 0.1 and 60",
    },
    Bad {
        file: "[schedule]\nstop_margin_seconds = 9223372036854775807\n",
        env: &[],
        named:
            "config: schedule.stop_margin_seconds = 9223372036854775807: must be between 0 and 300",
    },
    Bad {
        file: "",
        env: &[("RECSCHED_DATABASE__BUSY_TIMEOUT_SECONDS", "inf")],
        named: "database.busy_timeout_seconds",
    },
    Bad {
        file: "[retry]\nbase_ms = 1000\ncap_ms = 5\n",
        env: &[],
        named: "config: retry.cap_ms = 5: must be between 10 and 600000",
    },
    Bad {
        file: "",
        env: &[("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "-1")],
        named: "schedule.max_concurrency",
    },
];

/// Runs the binary on `config` with the rig's database and simulator plus
/// `env`; its exit code and everything it printed. Kills it after 20 s:
/// a daemon that does not refuse a bad value would otherwise run on.
fn run(rig: &Rig, config: &Path, env: &[(&str, &str)], command: &str) -> (Option<i32>, String) {
    let out = rig.dir.path().join(format!("{command}.out"));
    let file = std::fs::File::create(&out).unwrap();
    let c = rig.sim.config();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recsched"));
    for (k, _) in std::env::vars() {
        if k.starts_with("RECSCHED_") {
            cmd.env_remove(k);
        }
    }
    cmd.arg("--config")
        .arg(config)
        .arg(command)
        .env("RUST_LOG", "warn,recsched=debug")
        .env("RECSCHED_DATABASE__PATH", &rig.db)
        .env("RECSCHED_CXONE__API_BASE", rig.sim.url())
        .env("RECSCHED_CXONE__TOKEN_URL", rig.sim.token_url())
        .env("RECSCHED_CXONE__CLIENT_ID", &c.client_id)
        .env("RECSCHED_CXONE__CLIENT_SECRET", &c.client_secret)
        .env("RECSCHED_CXONE__ACCESS_KEY_ID", &c.access_key_id)
        .env("RECSCHED_CXONE__ACCESS_KEY_SECRET", &c.access_key_secret)
        .env("RECSCHED_METRICS__LISTEN", "")
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::from(file.try_clone().unwrap()))
        .stderr(Stdio::from(file));
    let mut child = cmd.spawn().expect("recsched starts");
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&out).unwrap_or_default())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_value_out_of_range_is_named_by_check_and_run_and_nothing_is_sent() {
    let rig = Rig::new().await;
    // A window due while the refused daemons would be running.
    let staff = users("refused", 2);
    let at = second_after(Duration::seconds(1));
    add_policy(&rig, "due", &cron_at(at), 30, "expire", &refs(&staff)).await;
    let config = rig.dir.path().join("bad.toml");
    for bad in BAD {
        std::fs::write(&config, bad.file).unwrap();
        for command in ["check", "run"] {
            let (code, out) = run(&rig, &config, bad.env, command);
            let what = format!("recsched {command} with {:?} {:?}", bad.file, bad.env);
            assert_eq!(code, Some(1), "{what}: exit {code:?}:\n{out}");
            assert!(
                out.lines().any(|l| l.contains(bad.named)),
                "{what} does not say `{}`:\n{out}",
                bad.named
            );
            assert_no_panic(&out);
        }
    }
    // Refused before opening anything: the vendor (the only host it is
    // configured with) heard nothing, and no row was written.
    let requests = rig.sim.requests();
    assert!(
        requests.is_empty(),
        "requests sent by a refused daemon: {requests:?}"
    );
    assert!(rig.rows().await.is_empty());
    println!(
        "{} bad values: each named by `recsched check` and `recsched run` (exit 1, no panic, \
         nothing sent)",
        BAD.len()
    );
}
