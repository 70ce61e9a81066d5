//! The real `recsched` binary against a database in a temporary
//! directory, the way an operator runs it.
//!
//! Every run gets `--config` pointing at a file of its own (so a
//! `/etc/recsched/recsched.toml` on the test machine is never read), none
//! of the caller's `RECSCHED_*` or `RUST_LOG` variables, and
//! `RECSCHED_DATABASE__PATH` set to the temporary database.

use std::path::PathBuf;
use std::process::Output;

use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use tempfile::TempDir;

/// The binary Cargo built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_recsched");

/// A temporary directory holding a config file and (once migrated) a database.
pub struct Recsched {
    dir: TempDir,
    /// The database the binary is pointed at (`RECSCHED_DATABASE__PATH`).
    pub db: PathBuf,
    /// The config file passed with `--config` (empty unless a test writes it).
    pub config: PathBuf,
}

/// What one run printed, and how it ended.
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn from(output: Output) -> Self {
        Self {
            code: output.status.code(),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.stdout))
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl Recsched {
    /// A directory with an empty config file; no database yet.
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("recsched.toml");
        std::fs::write(&config, "# test config: built-in defaults\n").unwrap();
        let db = dir.path().join("recsched.db");
        Self { dir, db, config }
    }

    /// As [`Recsched::new`], after `recsched migrate`.
    pub fn migrated() -> Self {
        let r = Self::new();
        r.ok(&["migrate"]);
        r
    }

    /// The command, ready to run `args`; add environment before running.
    pub fn command(&self, args: &[&str]) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        for (key, _) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            if key_text.starts_with("RECSCHED_") || key_text == "RUST_LOG" {
                cmd.env_remove(&key);
            }
        }
        cmd.env("RECSCHED_DATABASE__PATH", &self.db)
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .current_dir(self.dir.path());
        cmd
    }

    /// Runs `args`, whatever the outcome.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::from(self.command(args).output().expect("run recsched"))
    }

    /// Runs `args`, which must succeed; returns what it printed.
    pub fn ok(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(run.code, Some(0), "recsched {args:?} failed:\n{run:?}");
        run
    }

    /// Runs `args`, which must exit with status 1.
    pub fn fails(&self, args: &[&str]) -> Run {
        let run = self.run(args);
        assert_eq!(
            run.code,
            Some(1),
            "recsched {args:?} did not fail:\n{run:?}"
        );
        run
    }

    /// A connection of its own, like an operator's sqlite3 session.
    pub async fn sql(&self) -> SqliteConnection {
        SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&self.db))
            .await
            .unwrap()
    }
}
