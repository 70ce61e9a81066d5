//! Operators' features (issue 17): exclusions (holidays, shutdowns,
//! leave) and the coverage report, on real databases and, end to end, on
//! the real binary against the simulator. Windows open a few seconds
//! ahead; each test takes seconds.

mod exclusions_cli;
mod exclusions_daemon;
mod report;

use crate::common::daemon::Rig;
use std::process::Command;

/// `recsched <args>` against the rig's database, as an operator runs it:
/// (exit code, stdout, stderr).
pub fn cli(rig: &Rig, args: &[&str]) -> (Option<i32>, String, String) {
    let config = rig.dir.path().join("cli.toml");
    std::fs::write(&config, "").unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_recsched"));
    for (key, _) in std::env::vars_os() {
        let text = key.to_string_lossy();
        if text.starts_with("RECSCHED_") || text == "RUST_LOG" {
            cmd.env_remove(&key);
        }
    }
    let out = cmd
        .env("RECSCHED_DATABASE__PATH", &rig.db)
        .arg("--config")
        .arg(&config)
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// An iCalendar file with one all-day event per `(summary, first, end)`
/// (`end` exclusive, as in iCalendar), written into the rig's directory.
pub fn ics(rig: &Rig, name: &str, events: &[(&str, &str, &str)]) -> std::path::PathBuf {
    let mut text =
        String::from("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//recsched tests//EN\r\n");
    for (i, (summary, first, end)) in events.iter().enumerate() {
        text.push_str(&format!(
            "BEGIN:VEVENT\r\nUID:{i}@tests\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:{summary}\r\n\
             DTSTART;VALUE=DATE:{first}\r\nDTEND;VALUE=DATE:{end}\r\nEND:VEVENT\r\n"
        ));
    }
    text.push_str("END:VCALENDAR\r\n");
    let path = rig.dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    path
}
