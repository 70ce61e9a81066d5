//! [`StoreError`]: every failure of the store layer, in the store's terms.
//!
//! Kept apart from the queries so the classification of SQLite result
//! codes (busy, full, read-only...) lives in one place; PostgreSQL's
//! SQLSTATEs are classified beside it, in `from_pg`. Each variant names
//! its subject (the database file, the policy, the row and column) and,
//! where an operator can fix it, what to do. Callers match on [`Busy`]
//! to retry; everything else is reported.
//!
//! [`Busy`]: StoreError::Busy

use std::path::{Path, PathBuf};

use crate::recording::RecordingState;

use super::{BadRow, RecordingId};

/// One error enum for the store layer.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLITE_BUSY or SQLITE_LOCKED after the busy timeout ran out: another
    /// writer held the database. Safe to retry.
    #[error(
        "database {}: still locked by another writer after the busy timeout while {context}; \
         retry, or raise database.busy_timeout_seconds if this keeps happening",
        path.display()
    )]
    Busy {
        path: PathBuf,
        context: &'static str,
    },

    #[error("database {}: disk is full; free space and restart", path.display())]
    Full { path: PathBuf },

    #[error(
        "database {}: the file or its directory is read-only; give the service user write \
         access to both (WAL needs to create {0}-wal and {0}-shm beside it) and check the \
         filesystem is mounted read-write",
        path.display()
    )]
    ReadOnly { path: PathBuf },

    #[error(
        "database {}: directory {} does not exist; create it (systemd: StateDirectory=recsched) \
         or fix database.path",
        path.display(),
        dir.display()
    )]
    DirectoryMissing { path: PathBuf, dir: PathBuf },

    #[error(
        "database {}: the file does not exist; start the daemon once to create it, or fix \
         database.path",
        path.display()
    )]
    FileMissing { path: PathBuf },

    #[error(
        "database {}: cannot create the file; check the directory is writable by the service user",
        path.display()
    )]
    Create {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("database {}: {context}", path.display())]
    Io {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: std::io::Error,
    },

    #[error(
        "database {}: cannot open the file; check it and its directory are readable and writable \
         by the service user",
        path.display()
    )]
    CantOpen {
        path: PathBuf,
        #[source]
        source: Option<sqlx::Error>,
    },

    #[error(
        "database {}: the file is not a SQLite database (or is encrypted); fix database.path",
        path.display()
    )]
    NotADatabase { path: PathBuf },

    #[error(
        "database {}: migration failed and was rolled back, the file is unchanged; restore a \
         backup or report this error",
        path.display()
    )]
    Migrate {
        path: PathBuf,
        #[source]
        source: sqlx::migrate::MigrateError,
    },

    #[error(
        "database {}: it was migrated by a newer recsched (migration {version} is unknown to this \
         build); upgrade recsched or restore a backup",
        path.display()
    )]
    NewerSchema { path: PathBuf, version: i64 },

    #[error(
        "database {}: its schema is older than this build; start the daemon once to migrate it",
        path.display()
    )]
    NotMigrated { path: PathBuf },

    #[error("no policy named `{0}`; check the `name` column of table `policies`")]
    PolicyNotFound(String),

    #[error("a policy named `{0}` already exists; choose another name or remove that one first")]
    DuplicatePolicy(String),

    #[error("recording {0} does not exist")]
    RecordingNotFound(RecordingId),

    /// The state diagram has no such move; see `RecordingState::can_move_to`.
    #[error("recording {id}: cannot move from state {from} to {to}")]
    IllegalMove {
        id: RecordingId,
        from: RecordingState,
        to: RecordingState,
    },

    /// The fence (PostgreSQL): this instance no longer owns the row with a
    /// live lease, so its write was refused and nothing of it was kept.
    /// The row is another instance's (or will be, once taken over); this
    /// one must send nothing more for it.
    #[error(
        "recording {id}: no longer this instance's (its lease ran out, or another instance \
         took it over); nothing was written"
    )]
    Lost { id: RecordingId },

    /// A stored value that does not read back into its type, where the
    /// caller needed that very row (reads of many rows skip it instead and
    /// return it beside the good ones, see [`Rows`]).
    ///
    /// [`Rows`]: super::Rows
    #[error(
        "{}, column {}: {}; fix or delete the row (sqlite3 or psql)",
        .0.subject(), .0.column, .0.problem
    )]
    BadRow(BadRow),

    /// PostgreSQL: the server could not be reached or refused us.
    #[error(
        "database {target}: cannot connect while {context}; check database.url (or \
         database.url_file), that the server runs and accepts connections from this host, and \
         the user's password"
    )]
    Unreachable {
        target: String,
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// PostgreSQL: a serialization failure, a deadlock with another
    /// instance's transaction, or no pooled connection free in time. Safe
    /// to retry.
    #[error(
        "database {target}: {context} collided with another transaction or found no free \
         connection in time; retry"
    )]
    Conflict {
        target: String,
        context: &'static str,
    },

    /// PostgreSQL: any other failure, with the server's message.
    #[error("database {target}: {context}")]
    Postgres {
        target: String,
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },

    /// `database.url` (or the file named by `database.url_file`) is not a
    /// PostgreSQL URL, or cannot be read.
    #[error("database.url: {0}")]
    BadUrl(String),

    #[error("database {}: {context}: {source}", path.display())]
    Sqlx {
        path: PathBuf,
        context: &'static str,
        #[source]
        source: sqlx::Error,
    },
}

impl From<BadRow> for StoreError {
    fn from(row: BadRow) -> Self {
        Self::BadRow(row)
    }
}

// Primary SQLite result codes (the low byte of an extended code).
// https://www.sqlite.org/rescode.html
const SQLITE_BUSY: i32 = 5;
const SQLITE_LOCKED: i32 = 6;
const SQLITE_READONLY: i32 = 8;
const SQLITE_IOERR: i32 = 10;
const SQLITE_FULL: i32 = 13;
const SQLITE_CANTOPEN: i32 = 14;
const SQLITE_NOTADB: i32 = 26;

/// Whether the file can be opened for writing now (a probe; writes nothing).
fn writable(path: &Path) -> bool {
    std::fs::OpenOptions::new().append(true).open(path).is_ok()
}

/// The primary SQLite result code of a database error, if it is one.
pub(crate) fn primary_code(err: &sqlx::Error) -> Option<i32> {
    let code = err.as_database_error()?.code()?;
    code.parse::<i32>().ok().map(|c| c & 0xff)
}

impl StoreError {
    /// Classifies a sqlx error that happened on `path` while doing
    /// `context` (phrased as "claiming a segment", "reading policies").
    pub(crate) fn from_sqlx(path: &Path, context: &'static str, source: sqlx::Error) -> Self {
        let path = path.to_path_buf();
        match &source {
            sqlx::Error::PoolTimedOut => return Self::Busy { path, context },
            sqlx::Error::Io(e) if e.kind() == std::io::ErrorKind::StorageFull => {
                return Self::Full { path }
            }
            sqlx::Error::Io(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ReadOnlyFilesystem | std::io::ErrorKind::PermissionDenied
                ) =>
            {
                return Self::ReadOnly { path }
            }
            _ => {}
        }
        match primary_code(&source) {
            Some(SQLITE_BUSY | SQLITE_LOCKED) => Self::Busy { path, context },
            Some(SQLITE_FULL) => Self::Full { path },
            Some(SQLITE_READONLY) => Self::ReadOnly { path },
            Some(SQLITE_CANTOPEN) => Self::CantOpen {
                path,
                source: Some(source),
            },
            Some(SQLITE_NOTADB) => Self::NotADatabase { path },
            // An I/O error on write is most often a file that became
            // unwritable under us (chmod, chattr +i, a remount): say so when
            // the file itself refuses to be opened for writing.
            Some(SQLITE_IOERR) if !writable(&path) => Self::ReadOnly { path },
            _ => Self::Sqlx {
                path,
                context,
                source,
            },
        }
    }

    /// Classifies a migration failure; a database error inside it (busy,
    /// full, read-only) is reported as that.
    pub(crate) fn from_migrate(path: &Path, source: sqlx::migrate::MigrateError) -> Self {
        use sqlx::migrate::MigrateError;
        match source {
            MigrateError::VersionMissing(version) => Self::NewerSchema {
                path: path.to_path_buf(),
                version,
            },
            MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _)
                if primary_code(&err).is_some_and(|c| c != SQLITE_NOTADB) =>
            {
                match Self::from_sqlx(path, "migrating", err) {
                    Self::Sqlx { source, .. } => Self::Migrate {
                        path: path.to_path_buf(),
                        source: MigrateError::Execute(source),
                    },
                    classified => classified,
                }
            }
            source => Self::Migrate {
                path: path.to_path_buf(),
                source,
            },
        }
    }

    /// Classifies a sqlx error from the PostgreSQL database `target` (its
    /// URL without the password) while doing `context`.
    pub(crate) fn from_pg(target: &str, context: &'static str, source: sqlx::Error) -> Self {
        let target = target.to_owned();
        match &source {
            sqlx::Error::PoolTimedOut => return Self::Conflict { target, context },
            sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolClosed => {
                return Self::Unreachable {
                    target,
                    context,
                    source,
                }
            }
            _ => {}
        }
        let code = source
            .as_database_error()
            .and_then(|d| d.code())
            .map(|c| c.into_owned());
        match code.as_deref() {
            // serialization_failure, deadlock_detected, lock_not_available
            Some("40001" | "40P01" | "55P03") => Self::Conflict { target, context },
            // connection exceptions, too many connections, server shutting
            // down, authentication, unknown database
            Some(c)
                if c.starts_with("08")
                    || c.starts_with("28")
                    || matches!(c, "53300" | "57P01" | "57P02" | "57P03" | "3D000") =>
            {
                Self::Unreachable {
                    target,
                    context,
                    source,
                }
            }
            _ => Self::Postgres {
                target,
                context,
                source,
            },
        }
    }

    /// A value read from `table` row `id`, column `column`, is not valid.
    pub(crate) fn bad_row(
        table: &'static str,
        id: i64,
        column: &'static str,
        problem: impl std::fmt::Display,
    ) -> Self {
        Self::BadRow(BadRow::new(table, id, column, problem))
    }

    /// Whether this error concerns one row and leaves the rest of a batch
    /// of writes to go on: an illegal move, a missing, unreadable or lost
    /// row. Any other error fails the whole batch.
    pub fn concerns_one_row(&self) -> bool {
        matches!(
            self,
            Self::IllegalMove { .. }
                | Self::RecordingNotFound(_)
                | Self::BadRow(_)
                | Self::Lost { .. }
        )
    }

    /// Whether retrying the same call later may succeed.
    pub fn is_busy(&self) -> bool {
        matches!(self, Self::Busy { .. } | Self::Conflict { .. })
    }

    /// Whether the database cannot be written now but may be once an
    /// operator mends it (a read-only file, a full disk).
    pub fn is_unwritable(&self) -> bool {
        matches!(self, Self::ReadOnly { .. } | Self::Full { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_file_and_the_fix() {
        let path = Path::new("/x/y.db");
        let full = StoreError::Full {
            path: path.to_path_buf(),
        };
        assert_eq!(
            full.to_string(),
            "database /x/y.db: disk is full; free space and restart"
        );
        let ro = StoreError::ReadOnly {
            path: path.to_path_buf(),
        };
        assert!(ro.to_string().contains("/x/y.db-wal"), "{ro}");
        let missing = StoreError::DirectoryMissing {
            path: path.to_path_buf(),
            dir: PathBuf::from("/x"),
        };
        assert!(missing
            .to_string()
            .starts_with("database /x/y.db: directory /x"));
    }

    #[test]
    fn pool_timeout_counts_as_busy() {
        let err = StoreError::from_sqlx(Path::new("a.db"), "claiming", sqlx::Error::PoolTimedOut);
        assert!(err.is_busy());
    }
}
