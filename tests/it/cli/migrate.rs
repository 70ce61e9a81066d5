//! `recsched migrate`, and commands that need a database before it exists.

use std::os::unix::fs::PermissionsExt;

use super::Recsched;

#[test]
fn migrate_creates_a_private_file_and_can_run_again() {
    let r = Recsched::new();
    let first = r.ok(&["migrate"]);
    assert!(
        first.stdout.contains(&r.db.display().to_string()),
        "{first:?}"
    );
    assert!(first.stdout.contains("created"), "{first:?}");
    let mode = std::fs::metadata(&r.db).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);

    let again = r.ok(&["migrate"]);
    assert!(again.stdout.contains("up to date"), "{again:?}");
    assert!(!again.stdout.contains("created"), "{again:?}");
}

#[test]
fn commands_never_create_the_database_and_say_how_to() {
    let r = Recsched::new();
    for args in [
        &["policy", "list"][..],
        &["check"],
        &["recordings"],
        &[
            "policy", "add", "--name", "a", "--cron", "@daily", "--window", "60", "--user", "u1",
        ],
        &["policy", "enable", "a"],
    ] {
        let run = r.fails(args);
        assert!(run.stderr.contains("recsched migrate"), "{args:?}: {run:?}");
        assert!(run.stderr.contains(&r.db.display().to_string()), "{run:?}");
    }
    assert!(!r.db.exists());
}
