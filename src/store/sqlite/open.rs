//! Opening the database: create the file private to the service user,
//! connect with the pragmas the daemon relies on, migrate.
//!
//! Separate from the queries because this is where the file system meets
//! SQLite, and where most operator mistakes show up (missing directory,
//! read-only file, a file that is not a database, a schema from a newer
//! build). Each one becomes a [`StoreError`] naming the path and the fix.

use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::store::migrations;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;

use super::{Site, SqliteStore};
use crate::store::{Settings, StoreError};

/// Connections per pool. SQLite runs one writer at a time anyway; a few
/// connections let status reads and the executor's writes overlap (WAL
/// readers do not block the writer).
const MAX_CONNECTIONS: u32 = 4;

impl SqliteStore {
    /// Opens the database for the daemon and the CLI's writing commands:
    /// creates the file with mode 0600 if it is missing, turns on WAL,
    /// foreign keys, `synchronous = FULL` and the busy timeout, then applies
    /// any pending migration (all in one `BEGIN IMMEDIATE` transaction, so
    /// two processes starting together migrate once).
    ///
    /// `synchronous = FULL` rather than `NORMAL`: in WAL mode `NORMAL` may
    /// lose the last commits on power loss, and a lost write-ahead row is a
    /// window started twice. The price is one fsync per commit, which is
    /// why bursts go through [`SqliteStore::claim_many`].
    pub async fn open(settings: &Settings) -> Result<Self, StoreError> {
        let path = settings.path.as_path();
        check_directory(path)?;
        create_private(path)?;
        let options = connect_options(settings)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full);
        let store = Self::connect(path, options).await?;
        store.migrate().await?;
        tracing::debug!(path = %path.display(), "database open and migrated");
        Ok(store)
    }

    /// Opens an existing, already migrated database without the right to
    /// write (for `status` and other read-only commands). Never creates or
    /// migrates anything; every write through this handle fails with
    /// [`StoreError::ReadOnly`].
    pub async fn open_read_only(settings: &Settings) -> Result<Self, StoreError> {
        let path = settings.path.as_path();
        check_directory(path)?;
        match std::fs::metadata(path) {
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(StoreError::FileMissing {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(StoreError::Io {
                    path: path.to_path_buf(),
                    context: "cannot read the file's metadata",
                    source,
                })
            }
        }
        let store = Self::connect(path, connect_options(settings).read_only(true)).await?;
        store.check_schema_current().await?;
        Ok(store)
    }

    async fn connect(path: &Path, options: SqliteConnectOptions) -> Result<Self, StoreError> {
        let read_only_seen = Arc::new(ReadOnlySeen::new());
        let pool = connect(path, options, read_only_seen.clone()).await?;
        Ok(Self {
            pool,
            site: Site {
                path: Arc::from(path),
                read_only_seen,
            },
        })
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self
            .begin_write("locking the database to migrate it")
            .await?;
        migrations::migrator(migrations::SQLITE)
            .await
            .map_err(|e| StoreError::from_migrate(self.path(), e))?
            .run(&mut tx)
            .await
            .map_err(|e| StoreError::from_migrate(self.path(), e))?;
        tx.commit()
            .await
            .map_err(self.err("committing the migration"))
    }

    /// For read-only handles: refuse a schema this build does not know.
    async fn check_schema_current(&self) -> Result<(), StoreError> {
        let latest = migrations::latest(migrations::SQLITE);
        let applied: Option<i64> =
            sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
                .map_err(|e| match self.err("")(e) {
                    StoreError::Sqlx { path, .. } => StoreError::NotMigrated { path },
                    other => other,
                })?;
        let path = self.path().to_path_buf();
        match applied {
            Some(v) if v > latest => Err(StoreError::NewerSchema { path, version: v }),
            Some(v) if v == latest => Ok(()),
            _ => Err(StoreError::NotMigrated { path }),
        }
    }
}

fn connect_options(settings: &Settings) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(&settings.path)
        .create_if_missing(false)
        .foreign_keys(true)
        .busy_timeout(settings.busy_timeout)
}

/// When a connection of this pool last answered "read-only", so that every
/// connection opened before then is closed instead of handed out again.
///
/// SQLite opens a file read-only when it cannot open it for writing
/// (`chattr +i`, a read-only remount, a chmod), and a connection that did
/// so keeps answering SQLITE_READONLY after the file is writable again:
/// only a new connection sees the mended file. Where the error is seen,
/// which pooled connection answered is not known, so every connection at
/// least that old is retired; a read-only spell costs at most one
/// reconnect per pooled connection.
#[derive(Debug)]
pub(crate) struct ReadOnlySeen {
    origin: Instant,
    /// Nanoseconds from `origin` to the last read-only answer, plus one;
    /// 0 = never.
    last: AtomicU64,
}

impl ReadOnlySeen {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// A connection of this pool has just answered "read-only".
    pub(super) fn note(&self) {
        let at = nanos(self.origin.elapsed()).saturating_add(1);
        self.last.fetch_max(at, Ordering::Relaxed);
    }

    /// Whether a connection opened `age` ago predates the last read-only
    /// answer (and so may be one of the connections stuck read-only).
    fn predates(&self, age: Duration) -> bool {
        let last = self.last.load(Ordering::Relaxed);
        last != 0 && nanos(self.origin.elapsed().saturating_sub(age)) < last
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

async fn connect(
    path: &Path,
    options: SqliteConnectOptions,
    read_only_seen: Arc<ReadOnlySeen>,
) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(MAX_CONNECTIONS)
        // A write that fails on a full disk or an I/O error is rolled back
        // by SQLite itself; sqlx's own ROLLBACK then fails and the
        // connection keeps thinking it is inside a transaction, so every
        // later BEGIN on it would fail until a restart (sqlx 0.8.6). Such a
        // connection is closed instead of handed out; the pool opens a
        // fresh one.
        //
        // A connection opened before the file last answered "read-only" is
        // closed too (see [`ReadOnlySeen`]).
        .before_acquire(move |conn, meta| {
            let stale = read_only_seen.predates(meta.age);
            if stale {
                tracing::debug!("closing a database connection opened before a read-only answer");
            }
            Box::pin(async move {
                use sqlx::TransactionManager as _;
                type Manager = <sqlx::Sqlite as sqlx::Database>::TransactionManager;
                Ok(!stale && Manager::get_transaction_depth(conn) == 0)
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| StoreError::from_sqlx(path, "opening the database", e))
}

/// The file's directory must exist: creating it is the installer's job
/// (systemd `StateDirectory=`), and a typo in `database.path` should not
/// silently make a new tree.
fn check_directory(path: &Path) -> Result<(), StoreError> {
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(StoreError::DirectoryMissing {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(StoreError::DirectoryMissing {
            path: path.to_path_buf(),
            dir: dir.to_path_buf(),
        }),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            context: "cannot read its directory",
            source,
        }),
    }
}

/// Creates the file with mode 0600 (before SQLite would create it with
/// 0644), or checks that an existing one can be written. SQLite gives the
/// `-wal` and `-shm` files the database file's permissions.
fn create_private(path: &Path) -> Result<(), StoreError> {
    let read_only = || StoreError::ReadOnly {
        path: path.to_path_buf(),
    };
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Ok(_) => {
            tracing::info!(path = %path.display(), "created database file");
            return Ok(());
        }
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) if is_read_only(&e) => return Err(read_only()),
        Err(e) if e.kind() == ErrorKind::StorageFull => {
            return Err(StoreError::Full {
                path: path.to_path_buf(),
            })
        }
        Err(source) => {
            return Err(StoreError::Create {
                path: path.to_path_buf(),
                source,
            })
        }
    }
    match OpenOptions::new().read(true).write(true).open(path) {
        Ok(file) => {
            if let Ok(meta) = file.metadata() {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        path = %path.display(),
                        mode = format!("{mode:o}"),
                        "database file is readable by other users; chmod 600 it"
                    );
                }
            }
            Ok(())
        }
        Err(e) if is_read_only(&e) => Err(read_only()),
        Err(source) => Err(StoreError::Io {
            path: path.to_path_buf(),
            context: "cannot open the file for writing",
            source,
        }),
    }
}

fn is_read_only(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        ErrorKind::PermissionDenied | ErrorKind::ReadOnlyFilesystem
    )
}
