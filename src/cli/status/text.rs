//! The status screen in words an operator knows: one section after
//! another, tables where there are rows, and what to do where something
//! is wrong. A pure function of the [`Status`] model.

use super::model::{Daemon, DaemonState, Status};
use crate::cli::output::{human_secs, one_line, truncated, Table};

/// Longest error shown in the text form; `--json` has all of it.
const ERROR_WIDTH: usize = 100;

/// The one screen.
pub fn render(status: &Status) -> String {
    let mut out = format!(
        "recsched status at {}, database {}\n",
        status.at, status.database
    );

    out.push_str(&format!("\nDaemon: {}\n", words(&status.daemon)));

    let now = &status.recording_now;
    out.push_str(&format!(
        "\nRecording now: {}\n",
        count_line(now.total, now.rows.len())
    ));
    if now.total == 0 {
        out.push_str("nobody is being recorded\n");
    } else {
        let mut table = Table::new(&[
            "USER",
            "POLICY",
            "STATE",
            "SINCE (UTC)",
            "UNTIL (UTC)",
            "CONTACT",
        ]);
        for r in &now.rows {
            table.row(vec![
                r.user_id.clone(),
                r.policy.clone(),
                r.state.to_owned(),
                r.since.clone(),
                format!("{}{}", r.until, if r.past_end { " (passed)" } else { "" }),
                r.contact_id.map(|c| c.to_string()).unwrap_or_default(),
            ]);
        }
        out.push_str(&table.render());
        let passed = now.rows.iter().filter(|r| r.past_end).count();
        if passed > 0 {
            out.push_str(&format!(
                "{passed} of these are past their end (passed): the daemon marks them \
                 expired on its next pass, or when it starts again\n"
            ));
        }
    }

    out.push_str("\nOpening next:\n");
    if status.opens_next.is_empty() {
        out.push_str("no window of an enabled, valid policy is coming\n");
    } else {
        let mut table = Table::new(&["POLICY", "START (UTC)", "START (LOCAL)", "LENGTH", "USERS"]);
        for w in &status.opens_next {
            table.row(vec![
                w.policy.clone(),
                w.start.clone(),
                format!("{} {} ({})", w.start_local, w.abbreviation, w.timezone),
                human_secs(i64::from(w.window_seconds)),
                w.users.to_string(),
            ]);
        }
        out.push_str(&table.render());
    }

    let failed = &status.failed_last_24h;
    out.push_str(&format!(
        "\nFailed in the last 24 h: {}; missed (service was down): {}\n",
        count_line(failed.total, failed.rows.len()),
        failed.missed
    ));
    if !failed.rows.is_empty() {
        let mut table = Table::new(&["SEGMENT START (UTC)", "USER", "POLICY", "TRIES", "WHY"]);
        for r in &failed.rows {
            table.row(vec![
                r.segment_start.clone(),
                r.user_id.clone(),
                r.policy.clone(),
                r.attempts.to_string(),
                truncated(
                    &one_line(r.last_error.as_deref().unwrap_or("")),
                    ERROR_WIDTH,
                ),
            ]);
        }
        out.push_str(&table.render());
    }
    if failed.total > 0 || failed.missed > 0 {
        out.push_str("(all of them: recsched recordings --state failed, or --state missed)\n");
    }

    let bad = &status.invalid_policies;
    if bad.total == 0 {
        out.push_str("\nInvalid policies: none, every policy row validates\n");
    } else {
        out.push_str(&format!(
            "\nInvalid policies (the daemon skips them): {} {}{}\n",
            bad.total,
            if bad.total == 1 {
                "problem"
            } else {
                "problems"
            },
            shown(bad.total, bad.rows.len()),
        ));
        for p in &bad.rows {
            out.push_str(&p.message);
            out.push('\n');
        }
        out.push_str("(fix the rows, then `recsched check` must print ok)\n");
    }

    let bad = &status.bad_rows;
    if bad.total == 0 {
        out.push_str("\nBad rows: none, every row reads back\n");
    } else {
        out.push_str(&format!(
            "\nBad rows (do not read back; skipped): {}{}\n",
            bad.total,
            shown(bad.total, bad.rows.len()),
        ));
        for r in &bad.rows {
            out.push_str(&r.message);
            out.push('\n');
        }
    }

    let totals: Vec<String> = status
        .last_24h
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    out.push_str(&format!("\nLast 24 h: {}\n", totals.join(", ")));
    out
}

/// "running (heartbeat 3 s ago)" and its siblings.
fn words(daemon: &Daemon) -> String {
    let heartbeat = daemon.last_heartbeat.as_deref().unwrap_or("");
    let age = daemon.heartbeat_age_seconds.map(ago).unwrap_or_default();
    match daemon.state {
        DaemonState::Running => format!("running (heartbeat {age})"),
        DaemonState::NotRunning => format!(
            "not running? last heartbeat {heartbeat} ({age}); \
             see `systemctl status recsched` and `journalctl -u recsched`"
        ),
        DaemonState::NeverRan => "never ran on this database (no heartbeat); start it with \
             `systemctl start recsched` or `recsched run`"
            .to_owned(),
        DaemonState::Unknown => format!(
            "unknown: the heartbeat `{}` in table daemon_state is not a time",
            one_line(heartbeat)
        ),
    }
}

/// An age the way people say it: `3 s ago`, `5 min ago`, `2 h ago`,
/// `3 days ago`, rounded down.
fn ago(secs: i64) -> String {
    match secs {
        s if s < 60 => format!("{s} s ago"),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 2 * 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

/// "3" or "12 (10 shown; raise --limit)".
fn count_line(total: usize, rows: usize) -> String {
    format!("{total}{}", shown(total, rows))
}

/// " (10 shown; raise --limit)" when a list was cut, else nothing.
fn shown(total: usize, rows: usize) -> String {
    if rows < total {
        format!(" ({rows} shown; raise --limit)")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(state: DaemonState, heartbeat: Option<&str>, age: Option<i64>) -> Daemon {
        Daemon {
            state,
            last_heartbeat: heartbeat.map(str::to_owned),
            heartbeat_age_seconds: age,
        }
    }

    #[test]
    fn the_daemon_line_says_what_its_heartbeat_means() {
        let d = seen(
            DaemonState::Running,
            Some("2026-03-29T09:59:57.000Z"),
            Some(3),
        );
        assert_eq!(words(&d), "running (heartbeat 3 s ago)");
        let d = seen(
            DaemonState::NotRunning,
            Some("2026-03-29T09:55:00.000Z"),
            Some(300),
        );
        assert!(
            words(&d)
                .starts_with("not running? last heartbeat 2026-03-29T09:55:00.000Z (5 min ago)"),
            "{}",
            words(&d)
        );
        assert!(words(&seen(DaemonState::NeverRan, None, None)).starts_with("never ran"));
        let d = seen(DaemonState::Unknown, Some("yester\nday"), None);
        assert_eq!(
            words(&d),
            "unknown: the heartbeat `yester\\nday` in table daemon_state is not a time"
        );
    }

    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(ago(0), "0 s ago");
        assert_eq!(ago(59), "59 s ago");
        assert_eq!(ago(300), "5 min ago");
        assert_eq!(ago(7200), "2 h ago");
        assert_eq!(ago(47 * 3600), "47 h ago");
        assert_eq!(ago(3 * 86_400), "3 days ago");
    }

    #[test]
    fn a_cut_list_says_how_much_is_shown() {
        assert_eq!(count_line(3, 3), "3");
        assert_eq!(count_line(12, 10), "12 (10 shown; raise --limit)");
    }
}
