//! The daemon in-process, on driven time: `daemon::run_with` against the
//! simulator and a SQLite file in a temporary directory, the daemon and
//! the simulator sharing one [`ManualClock`] (the simulator sees time
//! pass, but not the daemon host's wall-clock steps).
//!
//! Time moves only when the test moves it, and only while the daemon
//! waits: [`Driven::run_until`] waits until every task of the daemon is
//! waiting for the clock ([`Activity`]) and no sleeper is due, then moves
//! the clock to the next sleeper's deadline, and again, up to the instant
//! asked for. So a window opens at exactly its instant, a retry waits
//! exactly its backoff, and no correctness check depends on how fast this
//! machine is: HTTP, SQLite and the reload watcher's polling run on real
//! time, which the clock does not see.
//!
//! Tests using this rig run on tokio's current-thread runtime (the
//! default of `#[tokio::test]`): the daemon's log is captured by a
//! subscriber set for this thread ([`Driven::log`]), and no task runs in
//! parallel with the one checking that all are idle.

use super::pg::{pg, PgDb};
use chrono::{DateTime, Utc};
use recsched::clock::{Clock, ManualClock};
use recsched::cxone::{self, Client};
use recsched::daemon::{self, Activity, Context, DaemonError, Hooks};
use recsched::retry::RetryPolicy;
use recsched::secret::Secret;
use recsched::simulator::{self, Faults, Recording, SimConfig, SimHandle};
use recsched::store::{self, RecordingFilter, RecordingRow, Store};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{Connection, SqliteConnection};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tempfile::TempDir;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long (real time) the daemon may take to settle after a move of
/// the clock before the test fails: a hang, never a margin.
const SETTLE_WITHIN: Duration = Duration::from_secs(60);

/// The daemon's log, as text.
#[derive(Clone, Default)]
pub struct Log(Arc<Mutex<Vec<u8>>>);

impl Log {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Where plain SQL for the database goes, from any thread.
enum Target {
    Sqlite(PathBuf),
    Postgres(String),
}

impl Target {
    /// Runs `statements` on a connection of its own, on a runtime of its
    /// own (for callers outside any runtime).
    fn sql_blocking(&self, statements: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            match self {
                Self::Sqlite(path) => {
                    let mut conn = SqliteConnection::connect_with(
                        &SqliteConnectOptions::new()
                            .filename(path)
                            .busy_timeout(Duration::from_secs(15)),
                    )
                    .await
                    .unwrap();
                    sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
                    conn.close().await.unwrap();
                }
                Self::Postgres(url) => {
                    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
                    sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
                    conn.close().await.unwrap();
                }
            }
        });
    }
}

/// The database a [`Driven`] daemon runs on.
enum Db {
    /// A SQLite file in a temporary directory.
    Sqlite { _dir: TempDir, path: PathBuf },
    /// A database of its own on the harness's PostgreSQL server.
    Postgres(PgDb),
}

impl Db {
    fn target(&self) -> Target {
        match self {
            Self::Sqlite { path, .. } => Target::Sqlite(path.clone()),
            Self::Postgres(db) => Target::Postgres(db.url.clone()),
        }
    }
}

/// A simulator, a migrated database, a manual clock, and (once started)
/// the daemon.
pub struct Driven {
    db: Db,
    /// The test's own handle on the database.
    pub store: Store,
    pub sim: SimHandle,
    pub clock: ManualClock,
    /// The daemon's `[schedule]`; change before [`Driven::start`].
    pub schedule: daemon::Settings,
    /// The daemon's `[retry]`; change before [`Driven::start`].
    pub retry: RetryPolicy,
    /// What the daemon reports (metrics, liveness) and the test's seams.
    pub hooks: Hooks,
    /// SQL run, on a connection of its own, at the instant the daemon
    /// reports ready: after it loaded the policies and before its reload
    /// watcher starts (an operator's edit landing in that gap). The daemon
    /// waits for it to commit.
    pub at_ready: Option<String>,
    log: Log,
    _log_guard: tracing::subscriber::DefaultGuard,
    running: Option<Running>,
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), DaemonError>>,
}

impl Driven {
    /// No faults; the clock reads `at`.
    pub async fn new(at: DateTime<Utc>) -> Self {
        Self::with_faults(Faults::default(), at).await
    }

    pub async fn with_faults(faults: Faults, at: DateTime<Utc>) -> Self {
        Self::with_config(
            SimConfig {
                faults,
                ..SimConfig::default()
            },
            at,
        )
        .await
    }

    pub async fn with_config(config: SimConfig, at: DateTime<Utc>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("recsched.db");
        let store = Store::open(&store::Settings {
            path: path.clone(),
            ..store::Settings::default()
        })
        .await
        .unwrap();
        Self::build(config, at, Db::Sqlite { _dir: dir, path }, store).await
    }

    /// On a PostgreSQL database of its own; `None` (the test passes after
    /// saying why) when PostgreSQL is not installed and `CI` is unset.
    pub async fn on_postgres(faults: Faults, at: DateTime<Utc>) -> Option<Self> {
        let db = pg().await?;
        let store = db.store().await;
        let config = SimConfig {
            faults,
            ..SimConfig::default()
        };
        Some(Self::build(config, at, Db::Postgres(db), store).await)
    }

    async fn build(config: SimConfig, at: DateTime<Utc>, db: Db, store: Store) -> Self {
        let log = Log::default();
        let writer = log.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_env_filter("warn,recsched=debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        let log_guard = tracing::subscriber::set_default(subscriber);
        let clock = ManualClock::new(at);
        let vendor = VendorClock {
            clock: clock.clone(),
            at,
            from: clock.instant(),
        };
        let sim = simulator::spawn_with_clock(config, Arc::new(vendor))
            .await
            .expect("simulator binds");
        Self {
            db,
            store,
            sim,
            clock,
            schedule: daemon::Settings {
                // Real time: how soon an edit is seen, not when it acts.
                reload_poll_ms: 50,
                ..daemon::Settings::default()
            },
            retry: RetryPolicy::default(),
            hooks: Hooks::default(),
            at_ready: None,
            log,
            _log_guard: log_guard,
            running: None,
        }
    }

    /// The daemon's clock.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub fn activity(&self) -> &Arc<Activity> {
        &self.hooks.activity
    }

    /// Everything the daemon logged so far.
    pub fn log(&self) -> String {
        self.log.text()
    }

    /// Starts the daemon and waits until it has reconciled (READY) and
    /// settled.
    pub async fn start(&mut self) {
        assert!(self.running.is_none(), "the daemon is already running");
        let c = self.sim.config();
        let settings = cxone::Settings {
            api_base: self.sim.url().to_owned(),
            token_url: self.sim.token_url(),
            client_id: c.client_id.clone(),
            client_secret: Some(Secret::new(c.client_secret.clone())),
            access_key_id: c.access_key_id.clone(),
            access_key_secret: Some(Secret::new(c.access_key_secret.clone())),
            ..cxone::Settings::default()
        };
        let clock: Arc<dyn Clock> = Arc::new(self.clock.clone());
        let cancel = CancellationToken::new();
        let client = Client::new(&settings, None, self.schedule.limits(), clock.clone())
            .expect("client for the simulator")
            .with_shutdown(cancel.clone());
        let ctx = Context {
            store: self.store.clone(),
            client: Arc::new(client),
            clock,
            schedule: self.schedule.clone(),
            retry: self.retry,
        };
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let at_ready = self.at_ready.take().map(|sql| (self.db.target(), sql));
        let task = tokio::spawn(daemon::run_with(
            ctx,
            cancel.clone(),
            self.hooks.clone(),
            move || {
                if let Some((target, sql)) = at_ready {
                    // On a thread and runtime of its own: this callback
                    // holds up the daemon (and this test's runtime).
                    std::thread::spawn(move || target.sql_blocking(&sql))
                        .join()
                        .expect("the SQL at ready ran");
                }
                let _ = ready_tx.send(());
            },
        ));
        if tokio::time::timeout(SETTLE_WITHIN, ready_rx)
            .await
            .map_or(true, |r| r.is_err())
        {
            let outcome = if task.is_finished() {
                format!("{:?}", task.await)
            } else {
                "still starting".to_owned()
            };
            panic!("the daemon did not get ready: {outcome}\n{}", self.log());
        }
        self.running = Some(Running { cancel, task });
        self.settle().await;
    }

    /// Stops the daemon as SIGTERM would and waits until it has returned.
    pub async fn stop(&mut self) {
        let Running { cancel, task } = self.running.take().expect("the daemon is running");
        cancel.cancel();
        let result = tokio::time::timeout(SETTLE_WITHIN, task)
            .await
            .unwrap_or_else(|_| panic!("the daemon did not stop\n{}", self.log()))
            .expect("the daemon task did not panic");
        if let Err(e) = result {
            panic!("the daemon failed: {e}\n{}", self.log());
        }
    }

    /// Waits (real time) until the daemon does nothing but wait for the
    /// clock: every task idle and no sleeper due.
    pub async fn settle(&self) {
        let deadline = Instant::now() + SETTLE_WITHIN;
        loop {
            let now = self.clock.now();
            let due = self.clock.next_wake().is_some_and(|w| w <= now);
            if self.activity().working() == 0 && !due {
                // A task woken by one that has just gone idle (a claim's
                // answer from the writer) counts as waiting until it runs:
                // let every ready task run, then look again.
                tokio::task::yield_now().await;
                if self.activity().working() == 0 {
                    return;
                }
                continue;
            }
            if let Some(r) = &self.running {
                if r.task.is_finished() {
                    panic!("the daemon stopped by itself\n{}", self.log());
                }
            }
            assert!(
                Instant::now() < deadline,
                "the daemon did not settle within {SETTLE_WITHIN:?} ({} working, next wake {:?}, now {now})\n{}",
                self.activity().working(),
                self.clock.next_wake(),
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Lets time pass until the clock reads `at`, one sleeper's deadline at
    /// a time, letting the daemon settle before each move.
    pub async fn run_until(&self, at: DateTime<Utc>) {
        loop {
            self.settle().await;
            let now = self.clock.now();
            if now >= at {
                return;
            }
            let to = self.clock.next_wake().map_or(at, |w| w.min(at)).max(now);
            self.clock.advance_to(to);
        }
    }

    /// Lets `by` of time pass.
    pub async fn run_for(&self, by: chrono::Duration) {
        self.run_until(self.now() + by).await;
    }

    /// Runs plain SQL on a connection of its own, as an operator's sqlite3
    /// or psql session would.
    pub async fn sql(&self, statements: &str) {
        match &self.db {
            Db::Sqlite { path, .. } => {
                let mut conn = SqliteConnection::connect_with(
                    &SqliteConnectOptions::new()
                        .filename(path)
                        .busy_timeout(Duration::from_secs(15)),
                )
                .await
                .unwrap();
                sqlx::raw_sql(statements).execute(&mut conn).await.unwrap();
                conn.close().await.unwrap();
            }
            Db::Postgres(db) => db.sql(statements).await,
        }
    }

    /// The PostgreSQL database, when the rig runs on one.
    pub fn pg(&self) -> Option<&PgDb> {
        match &self.db {
            Db::Postgres(db) => Some(db),
            Db::Sqlite { .. } => None,
        }
    }

    /// Inserts a policy (UTC) and its users with plain SQL.
    pub async fn add_policy(
        &self,
        name: &str,
        cron: &str,
        window: i64,
        end_mode: &str,
        users: &[&str],
    ) {
        self.sql(&policy_sql(name, cron, window, end_mode, users))
            .await;
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

    /// Every recording the simulator made.
    pub fn recordings(&self) -> Vec<Recording> {
        self.sim.recordings()
    }
}

impl Drop for Driven {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            r.cancel.cancel();
            r.task.abort();
        }
    }
}

/// The vendor's clock: it moves as the daemon's does, but the daemon's
/// wall-clock steps ([`ManualClock::step`]) are the daemon host's alone.
struct VendorClock {
    clock: ManualClock,
    /// The wall-clock reading at `from`.
    at: DateTime<Utc>,
    from: tokio::time::Instant,
}

impl Clock for VendorClock {
    fn now(&self) -> DateTime<Utc> {
        let passed = self.clock.instant() - self.from;
        self.at + chrono::Duration::from_std(passed).unwrap_or(chrono::Duration::MAX)
    }

    fn instant(&self) -> tokio::time::Instant {
        self.clock.instant()
    }

    fn sleep_until(&self, deadline: tokio::time::Instant) -> recsched::clock::Sleep {
        self.clock.sleep_until(deadline)
    }
}

/// The SQL an operator would type to add a policy (UTC) and its users.
pub fn policy_sql(name: &str, cron: &str, window: i64, end_mode: &str, users: &[&str]) -> String {
    let mut sql = format!(
        "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) VALUES ('{name}', '{cron}', 'UTC', {window}, '{end_mode}');"
    );
    for u in users {
        sql.push_str(&format!(
            "INSERT INTO policy_users (policy_id, user_id) SELECT id, '{u}' FROM policies WHERE name = '{name}';"
        ));
    }
    sql
}
