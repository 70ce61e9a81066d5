//! `systemd/recsched.service`, checked by systemd's own `systemd-analyze`
//! when it is installed (it is on the CI image): `verify` must find
//! nothing wrong, and `security --offline=yes` must rate the sandbox 2.0
//! or lower ("OK"). Without the tool each test says it was skipped and
//! passes. The directives the daemon relies on are checked by reading the
//! file, everywhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use recsched::daemon::liveness::STALE_AFTER;

use crate::common::bin::BIN;

/// The highest exposure level `systemd-analyze security` may give.
const MAX_EXPOSURE: f64 = 2.0;

/// The binary path the shipped unit starts.
const INSTALLED_BIN: &str = "/usr/local/bin/recsched";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd/recsched.service")
}

fn unit_text() -> String {
    std::fs::read_to_string(unit_path()).expect("systemd/recsched.service is readable")
}

/// Runs `systemd-analyze args`; `None` when the tool is not installed.
fn systemd_analyze(args: &[&std::ffi::OsStr]) -> Option<Output> {
    match Command::new("systemd-analyze").args(args).output() {
        Ok(output) => Some(output),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => panic!("cannot run systemd-analyze: {e}"),
    }
}

fn skipped(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}; it runs where systemd-analyze is installed (CI)");
}

/// Every `Key=value` of the unit, in order, comments and sections dropped.
fn directives(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with('['))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn values<'a>(all: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    all.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn unit_carries_what_the_daemon_and_the_docs_rely_on() {
    let all = directives(&unit_text());
    let one = |key: &str| {
        let found = values(&all, key);
        assert_eq!(found.len(), 1, "{key}= should be set once: {found:?}");
        found[0].to_owned()
    };
    assert_eq!(one("Type"), "notify");
    // Windows are planned on the wall clock: start after it is set.
    for key in ["After", "Wants"] {
        assert!(
            one(key).split_whitespace().any(|u| u == "time-sync.target"),
            "{key}= lacks time-sync.target"
        );
    }
    assert_eq!(one("NotifyAccess"), "main");
    assert_eq!(
        one("ExecStart"),
        format!("{INSTALLED_BIN} --config /etc/recsched/recsched.toml run")
    );
    assert_eq!(one("ExecReload"), "/bin/kill -HUP $MAINPID");
    assert_eq!(one("Restart"), "on-failure");
    assert_eq!(one("RestartSec"), "5s");
    assert_eq!(one("StateDirectory"), "recsched");
    assert_eq!(one("StateDirectoryMode"), "0700");
    assert_eq!(one("UMask"), "0077");
    assert_eq!(
        values(&all, "Environment"),
        [
            "RECSCHED_DATABASE__PATH=/var/lib/recsched/recsched.db",
            "MALLOC_ARENA_MAX=2"
        ]
    );
    // The credential names are the relative file names the config's
    // cxone.*_file keys give (resolved in $CREDENTIALS_DIRECTORY).
    assert_eq!(
        values(&all, "LoadCredential"),
        [
            "client_secret:/etc/recsched/client_secret",
            "access_key_secret:/etc/recsched/access_key_secret"
        ]
    );
    let example =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("config/recsched.toml"))
            .unwrap();
    assert!(example.contains("client_secret_file = \"client_secret\""));
    assert!(example.contains("access_key_secret_file = \"access_key_secret\""));

    // The watchdog interval is the staleness limit of /healthz and `status`.
    assert_eq!(one("WatchdogSec"), "30s");
    assert_eq!(STALE_AFTER.num_seconds(), 30);
    // The stop timeout leaves the daemon its shutdown grace, and more.
    let grace = recsched::daemon::Settings::default().shutdown_grace_seconds;
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    assert!(stop >= 2 * grace, "TimeoutStopSec={stop}s, grace {grace}s");
}

/// `systemd-analyze verify` on a copy whose `ExecStart=` names the test
/// binary (verify refuses a unit whose binary does not exist, and
/// `/usr/local/bin/recsched` does not exist on a build machine).
///
/// Tolerated output, and only this: lines about *other* unit files.
/// verify loads the units ours refers to (`network-online.target`,
/// `multi-user.target`) from the host, and a host whose own units carry
/// a warning prints it naming that file under `/lib/systemd`,
/// `/usr/lib/systemd`, `/etc/systemd` or `/run/systemd`. Anything naming
/// our unit, or anything else at all, fails the test.
#[test]
fn unit_passes_systemd_analyze_verify() {
    let original = unit_text();
    let from = format!("ExecStart={INSTALLED_BIN} ");
    assert!(
        original.contains(&from),
        "ExecStart= moved: update this test"
    );
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("recsched.service");
    std::fs::write(&copy, original.replace(&from, &format!("ExecStart={BIN} "))).unwrap();

    let Some(output) = systemd_analyze(&["verify".as_ref(), copy.as_os_str()]) else {
        return skipped(
            "unit_passes_systemd_analyze_verify",
            "systemd-analyze not found",
        );
    };
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let host_unit = |line: &str| {
        [
            "/lib/systemd/",
            "/usr/lib/systemd/",
            "/etc/systemd/",
            "/run/systemd/",
        ]
        .iter()
        .any(|dir| line.starts_with(dir))
    };
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty() && !host_unit(l))
        .collect();
    assert!(
        ours.is_empty(),
        "systemd-analyze verify complains about the unit:\n{text}"
    );
    if !text.trim().is_empty() {
        eprintln!("systemd-analyze verify, about the host's own units (tolerated):\n{text}");
    }
    assert!(
        output.status.success() || text.lines().any(host_unit),
        "systemd-analyze verify failed without saying why ({})",
        output.status
    );
    println!("systemd-analyze verify: recsched.service is clean");
}

#[test]
fn unit_is_rated_ok_by_systemd_analyze_security() {
    let test = "unit_is_rated_ok_by_systemd_analyze_security";
    let Some(help) = systemd_analyze(&["security".as_ref(), "--help".as_ref()]) else {
        return skipped(test, "systemd-analyze not found");
    };
    if !String::from_utf8_lossy(&help.stdout).contains("--offline") {
        return skipped(
            test,
            "this systemd-analyze has no --offline (systemd < 250)",
        );
    }
    let path = unit_path();
    let output = systemd_analyze(&[
        "security".as_ref(),
        "--offline=yes".as_ref(),
        path.as_os_str(),
    ])
    .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "systemd-analyze security failed ({}):\n{text}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let level =
        exposure(&text).unwrap_or_else(|| panic!("no \"Overall exposure level\" line in:\n{text}"));
    println!("systemd-analyze security --offline=yes: overall exposure level {level}");
    assert!(
        level <= MAX_EXPOSURE,
        "exposure {level} is above {MAX_EXPOSURE}; what counts against it:\n{}",
        text.lines()
            .filter(|l| l.starts_with('✗'))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The number in "→ Overall exposure level for recsched.service: 1.1 OK 🙂".
fn exposure(text: &str) -> Option<f64> {
    let line = text
        .lines()
        .find(|l| l.contains("Overall exposure level"))?;
    let (_, rest) = line.rsplit_once(": ")?;
    rest.split_whitespace().next()?.parse().ok()
}

#[test]
fn exposure_is_read_from_the_summary_line() {
    let text = "✗ PrivateNetwork= ... 0.5\n\
                → Overall exposure level for recsched.service: 1.1 OK 🙂\n";
    assert_eq!(exposure(text), Some(1.1));
    assert_eq!(exposure("nothing"), None);
}
