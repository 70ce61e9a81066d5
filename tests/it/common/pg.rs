//! A real PostgreSQL server for the tests, started by the harness itself:
//! no Docker, no service to set up first.
//!
//! The server is found on `PATH` or under `/usr/lib/postgresql/*/bin`
//! (Debian's `postgresql` package). PostgreSQL refuses to run as root, and
//! tests run as root here and in CI, so `initdb` and the server then run as
//! `nobody` (through `setpriv`), in a temporary directory handed to that
//! user. The server listens on 127.0.0.1 on a port picked free by binding
//! port 0, and on a Unix socket in the same directory; `pg_ctl start -w`
//! and then a connection loop wait, with a deadline, until it accepts
//! connections. Tests share one server (each gets a database of its own);
//! the last [`PgDb`] dropped stops it.
//!
//! Without PostgreSQL binaries, [`pg`] returns `None` and the calling test
//! passes after saying why, unless `CI` is set: then it panics, so a CI
//! machine that lost its PostgreSQL install is caught.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use recsched::secret::Secret;
use recsched::simulator::Faults;
use recsched::store::{RecordingFilter, RecordingRow, Settings, Store};
use sqlx::{Connection, PgConnection};
use tempfile::TempDir;

use super::daemon::{Daemon, Rig};

/// The running server shared by the tests alive now.
static SERVER: Mutex<Weak<PgServer>> = Mutex::new(Weak::new());
/// Names databases uniquely within this test process.
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// A PostgreSQL server in a temporary directory; stopped on drop.
pub struct PgServer {
    dir: TempDir,
    bin: PathBuf,
    port: u16,
    /// `setpriv ...` when running as root, so the server runs as `nobody`.
    run_as: Vec<String>,
}

/// A database of its own on the shared server.
pub struct PgDb {
    server: Arc<PgServer>,
    /// `postgres://postgres@127.0.0.1:PORT/NAME`.
    pub url: String,
    pub name: String,
}

/// A fresh database for one test, or `None` (with the reason printed)
/// when PostgreSQL is not installed and `CI` is unset.
pub async fn pg() -> Option<PgDb> {
    let Some(bin) = find_bin() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false");
        assert!(
            !ci,
            "PostgreSQL tests need initdb and pg_ctl (PATH or /usr/lib/postgresql/*/bin); \
             CI is set, so their absence is an error: install Debian's `postgresql` \
             (.ci/run does)"
        );
        eprintln!(
            "skipped: no PostgreSQL binaries (initdb, pg_ctl) on PATH or in \
             /usr/lib/postgresql/*/bin; `apt-get install postgresql` to run this test"
        );
        return None;
    };
    let server = shared_server(bin);
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = server.connect("postgres").await;
    // FILE_COPY (PostgreSQL 15 and later) copies the small template's
    // files instead of writing them all to the WAL: about 30 ms instead of
    // 200 to 500 ms a database on this machine, for every PostgreSQL test.
    let created = sqlx::raw_sql(&format!("CREATE DATABASE {name} STRATEGY = FILE_COPY"))
        .execute(&mut admin)
        .await;
    if created.is_err() {
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .expect("create a test database");
    }
    admin.close().await.ok();
    let url = server.url(&name);
    Some(PgDb { server, url, name })
}

fn shared_server(bin: PathBuf) -> Arc<PgServer> {
    let mut slot = SERVER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(server) = slot.upgrade() {
        return server;
    }
    let server = Arc::new(PgServer::start(bin));
    *slot = Arc::downgrade(&server);
    server
}

/// The directory holding `initdb` and `pg_ctl`.
fn find_bin() -> Option<PathBuf> {
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| b.join("initdb").exists() && b.join("pg_ctl").exists())
        .collect();
    // The newest major version.
    debian.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    if let Some(bin) = debian.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn id_of(flag: &str) -> u32 {
    let out = Command::new("id")
        .args([flag, "nobody"])
        .output()
        .expect("run `id`");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("user nobody exists")
}

impl PgServer {
    fn start(bin: PathBuf) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("recsched-pg-")
            .tempdir()
            .expect("temporary directory for PostgreSQL");
        let run_as = if is_root() {
            let (uid, gid) = (id_of("-u"), id_of("-g"));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .expect("hand the PostgreSQL directory to nobody");
            vec![
                "setpriv".to_owned(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                "--inh-caps=-all".to_owned(),
            ]
        } else {
            Vec::new()
        };
        let port = free_port();
        let server = Self {
            dir,
            bin,
            port,
            run_as,
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        // Durability does not matter for a throwaway test database; speed
        // on two cores does.
        let options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c max_connections=400 \
             -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            server.dir.path().display()
        );
        let log = server.dir.path().join("server.log");
        server.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap_or_default(),
                "-l",
                log.to_str().unwrap_or_default(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        server
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs as the server's user; panics with
    /// its output (and the server log) on failure.
    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let out = cmd
            .args(args)
            .current_dir(self.dir.path())
            .env("LC_ALL", "C")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", exe.display()));
        if !out.status.success() {
            let log =
                std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
            panic!(
                "{program} failed ({}):\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Connects to `database`, retrying until the server accepts (deadline 30 s).
    async fn connect(&self, database: &str) -> PgConnection {
        let url = self.url(database);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match PgConnection::connect(&url).await {
                Ok(conn) => return conn,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => panic!("PostgreSQL on port {} never accepted: {e}", self.port),
            }
        }
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        let _ = cmd
            .arg("-D")
            .arg(&data)
            .args(["-m", "immediate", "-w", "stop"])
            .current_dir(self.dir.path())
            .output();
    }
}

/// A port nothing listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

impl PgDb {
    /// Settings pointing the store at this database.
    pub fn settings(&self) -> Settings {
        Settings {
            url: Some(Secret::new(self.url.clone())),
            ..Settings::default()
        }
    }

    /// A migrated store on this database (a pool of its own).
    pub async fn store(&self) -> Store {
        Store::open(&self.settings())
            .await
            .expect("open PostgreSQL store")
    }

    /// A connection of its own, like an operator's psql session.
    pub async fn conn(&self) -> PgConnection {
        self.server.connect(&self.name).await
    }

    /// Runs plain SQL on a connection of its own.
    pub async fn sql(&self, statements: &str) {
        let mut conn = self.conn().await;
        sqlx::raw_sql(statements)
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("{statements}: {e}"));
        conn.close().await.ok();
    }
}

/// The end-to-end rig ([`Rig`]: simulator, real binary) pointed at a
/// PostgreSQL database instead of its SQLite file.
pub struct PgRig {
    pub rig: Rig,
    pub db: PgDb,
    /// The test's own handle on the database.
    pub store: Store,
}

impl PgRig {
    /// `None` when PostgreSQL is not installed (see [`pg`]).
    pub async fn new() -> Option<Self> {
        Self::with_faults(Faults::default()).await
    }

    pub async fn with_faults(faults: Faults) -> Option<Self> {
        let db = pg().await?;
        let mut rig = Rig::with_faults(faults).await;
        rig.set("RECSCHED_DATABASE__URL", &db.url);
        let store = db.store().await;
        Some(Self { rig, db, store })
    }

    /// An extra `RECSCHED_*` setting for every daemon started.
    pub fn set(&mut self, key: &str, value: &str) {
        self.rig.set(key, value);
    }

    /// Starts `recsched run` on the database.
    pub fn spawn(&self) -> Daemon {
        self.rig.spawn()
    }

    /// Inserts a policy with plain SQL, as an operator's psql would.
    pub async fn add_policy(
        &self,
        name: &str,
        cron: &str,
        window: i64,
        end_mode: &str,
        users: &[&str],
    ) {
        let mut conn = self.db.conn().await;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO policies (name, cron, timezone, window_seconds, end_mode) \
             VALUES ($1, $2, 'UTC', $3, $4) RETURNING id",
        )
        .bind(name)
        .bind(cron)
        .bind(window)
        .bind(end_mode)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO policy_users (policy_id, user_id) SELECT $1, u FROM UNNEST($2::text[]) u",
        )
        .bind(id)
        .bind(users)
        .execute(&mut conn)
        .await
        .unwrap();
        conn.close().await.ok();
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

    /// `(id, owner, state)` of every row.
    pub async fn owners(&self) -> Vec<(i64, Option<String>, String)> {
        let mut conn = self.db.conn().await;
        let rows = sqlx::query_as("SELECT id, owner, state FROM recordings ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        conn.close().await.ok();
        rows
    }
}
