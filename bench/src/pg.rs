//! A throwaway PostgreSQL server for the `--postgres` scenario, started by
//! the bench itself (the same way the tests start theirs, written again
//! here: the bench does not import test code).
//!
//! The binaries are found under `/usr/lib/postgresql/*/bin` (Debian's
//! `postgresql` package, newest major version) or on `PATH`. PostgreSQL
//! refuses to run as root, so when the bench runs as root `initdb` and the
//! server run as `nobody` through `setpriv`, in a temporary directory
//! handed to that user. The server listens on 127.0.0.1 on a port found
//! free by binding port 0, and on a Unix socket in the same directory.
//! `pg_ctl start -w` and then a connection loop with a deadline wait until
//! it accepts. Durability stays at PostgreSQL's defaults (`fsync=on`,
//! `synchronous_commit=on`), as the SQLite runs keep `synchronous=FULL`.
//! Dropping the [`PgServer`] stops it and removes its directory.

use anyhow::Context as _;
use sqlx::{Connection, PgConnection};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A PostgreSQL server in a temporary directory; stopped on drop.
pub struct PgServer {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    /// `setpriv ...` when running as root, so the server runs as `nobody`.
    run_as: Vec<String>,
}

/// The directory holding `initdb`, `pg_ctl` and `postgres`, or why there
/// is none.
pub fn find_bin() -> Result<PathBuf, String> {
    let has_all = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|p| dir.join(p).exists())
    };
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|b| has_all(b))
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
        return Ok(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .find(|dir| has_all(dir))
        .ok_or_else(|| {
            "no PostgreSQL binaries (initdb, pg_ctl, postgres) on PATH or in \
             /usr/lib/postgresql/*/bin; `apt-get install postgresql` to run this scenario"
                .to_owned()
        })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn id_of(flag: &str) -> anyhow::Result<u32> {
    let out = Command::new("id")
        .args([flag, "nobody"])
        .output()
        .context("cannot run `id`")?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .context("there is no user `nobody` to run PostgreSQL as")
}

/// A port nothing listens on right now.
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("bind 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

impl PgServer {
    /// Initialises a cluster in a fresh directory under `base` and starts
    /// it; returns once `pg_ctl start -w` says it is up.
    pub fn start(bin: PathBuf, base: &Path) -> anyhow::Result<Self> {
        let dir = base.join(format!("recsched-bench-pg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot make {}", dir.display()))?;
        // From here on, drop stops the server (if any) and removes `dir`.
        let mut server = Self {
            dir,
            bin,
            port: 0,
            run_as: Vec::new(),
        };
        if is_root() {
            let (uid, gid) = (id_of("-u")?, id_of("-g")?);
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid))
                .context("cannot hand the PostgreSQL directory to nobody")?;
            server.run_as = vec![
                "setpriv".to_owned(),
                format!("--reuid={uid}"),
                format!("--regid={gid}"),
                "--clear-groups".to_owned(),
                "--inh-caps=-all".to_owned(),
            ];
        }
        server.port = free_port()?;
        let data = server.data();
        let data = data.to_str().context("non-UTF-8 temporary directory")?;
        server.run(
            "initdb",
            &[
                "-D",
                data,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-locale",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        )?;
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            server.port,
            server.dir.display()
        );
        let log = server.log();
        server.run(
            "pg_ctl",
            &[
                "-D",
                data,
                "-l",
                log.to_str().unwrap_or_default(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        Ok(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn log(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// The server's major version, as `postgres --version` prints it.
    pub fn version(&self) -> String {
        Command::new(self.bin.join("postgres"))
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_else(|e| format!("unknown version ({e})"))
    }

    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut cmd = match self.run_as.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        cmd.current_dir(&self.dir).env("LC_ALL", "C");
        cmd
    }

    /// Runs one of the server's programs as the server's user; fails with
    /// its output (and the server log).
    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let out = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.bin.join(program).display()))?;
        if !out.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            anyhow::bail!(
                "{program} failed ({}):\n{}\n{}\nserver log:\n{log}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// `postgres://postgres@127.0.0.1:PORT/DATABASE` (trust auth, no password).
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Connects to `database`, retrying every 50 ms until the server
    /// accepts or `within` passes.
    pub async fn connect(&self, database: &str, within: Duration) -> anyhow::Result<PgConnection> {
        let url = self.url(database);
        let deadline = Instant::now() + within;
        loop {
            match PgConnection::connect(&url).await {
                Ok(conn) => return Ok(conn),
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    return Err(e).with_context(|| {
                        format!(
                            "PostgreSQL on port {} did not accept within {within:?}",
                            self.port
                        )
                    })
                }
            }
        }
    }

    /// Creates an empty database `name` on this (fresh) server.
    pub async fn create_database(&self, name: &str) -> anyhow::Result<()> {
        let mut admin = self.connect("postgres", Duration::from_secs(30)).await?;
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await
            .with_context(|| format!("cannot create database {name}"))?;
        admin.close().await.ok();
        Ok(())
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.port != 0 && self.data().join("postmaster.pid").exists() {
            let data = self.data();
            let _ = self
                .command("pg_ctl")
                .arg("-D")
                .arg(&data)
                .args(["-m", "fast", "-w", "-t", "60", "stop"])
                .output();
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!(
                "recsched-bench: could not remove {}: {e}",
                self.dir.display()
            );
        }
    }
}
