//! Every command's `--help` works and documents its flags.

use super::Recsched;

#[test]
fn every_command_has_help_that_names_its_flags() {
    let r = Recsched::new();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &[],
            &[
                "migrate",
                "check",
                "policy",
                "recordings",
                "next",
                "--config",
            ],
        ),
        (&["migrate"], &["0600"]),
        (&["check"], &["--json"]),
        (
            &["policy"],
            &[
                "add",
                "list",
                "show",
                "enable",
                "disable",
                "remove",
                "add-user",
                "remove-user",
            ],
        ),
        (
            &["policy", "add"],
            &[
                "--name",
                "--cron",
                "--tz",
                "--window",
                "--end-mode",
                "--user",
                "--disabled",
            ],
        ),
        (&["policy", "list"], &["--json"]),
        (&["policy", "show"], &["--json", "<NAME>", "next 3 windows"]),
        (&["policy", "enable"], &["<NAME>"]),
        (&["policy", "disable"], &["<NAME>"]),
        (&["policy", "remove"], &["<NAME>", "recordings", "kept"]),
        (&["policy", "add-user"], &["<NAME>", "<USER>"]),
        (&["policy", "remove-user"], &["<NAME>", "<USER>"]),
        (
            &["next"],
            &[
                "<POLICY>", "--cron", "--tz", "--window", "--count", "--from", "--json",
            ],
        ),
        (
            &["recordings"],
            &["--user", "--state", "--since", "--limit", "--json"],
        ),
        (
            &["prune"],
            &["--dry-run", "--json", "keep_days", "keep_attempts_days"],
        ),
    ];
    for (command, flags) in cases {
        let mut args = command.to_vec();
        args.push("--help");
        let run = r.ok(&args);
        for flag in *flags {
            assert!(
                run.stdout.contains(flag),
                "`recsched {}` does not mention {flag}:\n{}",
                args.join(" "),
                run.stdout
            );
        }
    }
}

#[test]
fn policy_remove_says_it_deletes_in_its_one_line_help() {
    let r = Recsched::new();
    let run = r.ok(&["policy", "--help"]);
    let line = run
        .stdout
        .lines()
        .find(|l| l.trim_start().starts_with("remove "))
        .unwrap();
    assert!(line.contains("Delete"), "{line}");
    assert!(line.contains("kept"), "{line}");
}
