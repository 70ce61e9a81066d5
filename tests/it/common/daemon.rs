//! The real `recsched` binary as a daemon, against an in-process simulator
//! and a SQLite file in a temporary directory: an end-to-end rig.
//!
//! Nothing here sleeps to "let things settle": waits poll a condition with
//! a deadline ([`wait_for`]).

use recsched::recording::RecordingState;
use recsched::simulator::{self, Faults, Recording, SimConfig, SimHandle};
use recsched::store::{self, RecordingFilter, RecordingRow, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tempfile::TempDir;

/// A simulator, a migrated database and the settings to reach both.
pub struct Rig {
    pub dir: TempDir,
    pub db: PathBuf,
    pub sim: SimHandle,
    pub store: Store,
    /// Extra `RECSCHED_*` settings for every daemon started.
    pub env: Vec<(String, String)>,
    /// Give the daemon its secrets as systemd credentials (files in this
    /// directory, `cxone.*_file` keys) rather than in the environment.
    pub credentials: Option<PathBuf>,
}

impl Rig {
    pub async fn new() -> Self {
        Self::with_faults(Faults::default()).await
    }

    pub async fn with_faults(faults: Faults) -> Self {
        Self::with_config(SimConfig {
            faults,
            ..SimConfig::default()
        })
        .await
    }

    pub async fn with_config(config: SimConfig) -> Self {
        let sim = simulator::spawn(config).await.expect("simulator binds");
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("recsched.db");
        let store = Store::open(&store::Settings {
            path: db.clone(),
            ..store::Settings::default()
        })
        .await
        .unwrap();
        Self {
            dir,
            db,
            sim,
            store,
            env: Vec::new(),
            credentials: None,
        }
    }

    pub fn set(&mut self, key: &str, value: &str) {
        self.env.push((key.to_owned(), value.to_owned()));
    }

    /// Starts `recsched run`; its log goes to a file in the rig's directory.
    pub fn spawn(&self) -> Daemon {
        let n = std::fs::read_dir(self.dir.path())
            .map(|d| d.count())
            .unwrap_or(0);
        let log = self.dir.path().join(format!("daemon-{n}.log"));
        let config = self.dir.path().join("empty.toml");
        std::fs::write(&config, "").unwrap();
        let c = self.sim.config();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_recsched"));
        cmd.arg("--config").arg(&config).arg("run");
        for (k, _) in std::env::vars() {
            if k.starts_with("RECSCHED_") {
                cmd.env_remove(k);
            }
        }
        cmd.env("RUST_LOG", "warn,recsched=debug")
            .env("RECSCHED_DATABASE__PATH", &self.db)
            .env("RECSCHED_CXONE__API_BASE", self.sim.url())
            .env("RECSCHED_CXONE__TOKEN_URL", self.sim.token_url())
            .env("RECSCHED_CXONE__CLIENT_ID", &c.client_id)
            .env("RECSCHED_CXONE__CLIENT_SECRET", &c.client_secret)
            .env("RECSCHED_CXONE__ACCESS_KEY_ID", &c.access_key_id)
            .env("RECSCHED_CXONE__ACCESS_KEY_SECRET", &c.access_key_secret)
            .env("RECSCHED_SCHEDULE__RELOAD_POLL_MS", "200")
            .env("RECSCHED_METRICS__LISTEN", "")
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env_remove("JOURNAL_STREAM");
        if let Some(dir) = &self.credentials {
            std::fs::write(dir.join("client_secret"), format!("{}\n", c.client_secret)).unwrap();
            std::fs::write(dir.join("access_key_secret"), &c.access_key_secret).unwrap();
            cmd.env_remove("RECSCHED_CXONE__CLIENT_SECRET")
                .env_remove("RECSCHED_CXONE__ACCESS_KEY_SECRET")
                .env("CREDENTIALS_DIRECTORY", dir)
                .env("RECSCHED_CXONE__CLIENT_SECRET_FILE", "client_secret")
                .env(
                    "RECSCHED_CXONE__ACCESS_KEY_SECRET_FILE",
                    "access_key_secret",
                );
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let file = std::fs::File::create(&log).unwrap();
        cmd.stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .stdin(Stdio::null());
        Daemon {
            child: cmd.spawn().expect("recsched binary starts"),
            log,
        }
    }

    /// Runs plain SQL on a connection of its own, as an operator's sqlite3
    /// session would.
    pub async fn sql(&self, statements: &str) {
        let mut conn = SqliteConnection::connect_with(
            &SqliteConnectOptions::new()
                .filename(&self.db)
                .busy_timeout(Duration::from_secs(15)),
        )
        .await
        .unwrap();
        sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
        conn.close().await.unwrap();
    }

    /// Every recording row, oldest segment first.
    pub async fn rows(&self) -> Vec<RecordingRow> {
        let mut rows = self
            .store
            .recordings(&RecordingFilter {
                limit: Some(1_000_000),
                ..RecordingFilter::default()
            })
            .await
            .unwrap();
        rows.sort_by_key(|r| (r.segment_start, r.user_id.clone()));
        rows
    }

    pub fn recordings(&self) -> Vec<Recording> {
        self.sim.recordings()
    }
}

/// A running `recsched run`.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9`.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `kill -TERM`, then waits (at most `within`) for the exit status.
    pub fn term(mut self, within: Duration) -> (ExitStatus, String) {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {within:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `kill -HUP`.
    /// The process id, to send it other signals (SIGSTOP, SIGCONT).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn hup(&self) {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    }

    /// Panics with the log if the process has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("daemon exited with {status}:\n{}", self.log());
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it returns `Some`, or panics with
/// `what` after `within`.
pub async fn wait_for<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {within:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Rows that reached a state that says "started" (a contact id is known).
pub fn started(rows: &[RecordingRow]) -> Vec<&RecordingRow> {
    rows.iter()
        .filter(|r| {
            matches!(
                r.state,
                RecordingState::Recording
                    | RecordingState::Stopping
                    | RecordingState::Stopped
                    | RecordingState::Expired
            )
        })
        .collect()
}
