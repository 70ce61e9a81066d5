//! Connecting to PostgreSQL and migrating.
//!
//! The URL (`database.url`, or the file named by `database.url_file`) may
//! hold a password: it is read here, handed to sqlx, and never printed;
//! errors and logs name the database by user, host, port and name only.
//! Migrations run under sqlx's advisory lock, so instances starting
//! together migrate once.

use std::str::FromStr;
use std::sync::Arc;

use crate::store::migrations;
use sqlx::migrate::MigrateError;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection};

use super::{PgStore, Site};
use crate::secret::Secret;
use crate::store::{Settings, StoreError};

impl PgStore {
    /// Connects and applies any pending migration.
    pub async fn open(url: &Secret, settings: &Settings) -> Result<Self, StoreError> {
        let store = Self::connect(url, settings, false).await?;
        migrations::migrator(migrations::POSTGRES)
            .await
            .map_err(|e| from_migrate(store.target(), e))?
            .run(&store.pool)
            .await
            .map_err(|e| from_migrate(store.target(), e))?;
        tracing::debug!(database = %store.target(), "database open and migrated");
        Ok(store)
    }

    /// Connects with every transaction read-only; refuses a schema this
    /// build does not know. Never migrates.
    pub async fn open_read_only(url: &Secret, settings: &Settings) -> Result<Self, StoreError> {
        let store = Self::connect(url, settings, true).await?;
        store.check_schema_current().await?;
        Ok(store)
    }

    async fn connect(
        url: &Secret,
        settings: &Settings,
        read_only: bool,
    ) -> Result<Self, StoreError> {
        let mut options = PgConnectOptions::from_str(url.expose()).map_err(|e| {
            StoreError::BadUrl(format!(
                "not a PostgreSQL URL like postgres://recsched@db.example/recsched ({})",
                redact_parse_error(&e)
            ))
        })?;
        options = options.application_name("recsched");
        if read_only {
            options = options.options([("default_transaction_read_only", "on")]);
        }
        let target = describe(&options);
        // One plain connection first: the pool would retry a refused or
        // unauthorised connection until its timeout and report only that.
        let probe = PgConnection::connect_with(&options).await.map_err(|e| {
            match StoreError::from_pg(&target, "opening the database", e) {
                StoreError::Postgres {
                    target,
                    context,
                    source,
                } => StoreError::Unreachable {
                    target,
                    context,
                    source,
                },
                other => other,
            }
        })?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(settings.max_connections.max(2))
            .acquire_timeout(settings.busy_timeout)
            .connect_lazy_with(options);
        Ok(Self {
            pool,
            site: Site {
                target: Arc::from(target),
                owner: None,
                lease: settings.lease,
                margin: settings.lease_margin(),
            },
        })
    }

    async fn check_schema_current(&self) -> Result<(), StoreError> {
        let latest = migrations::latest(migrations::POSTGRES);
        let path = std::path::PathBuf::from(self.target());
        let applied: Option<i64> =
            match sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
                .fetch_one(&self.pool)
                .await
            {
                Ok(v) => v,
                // undefined_table: never migrated
                Err(e)
                    if e.as_database_error().and_then(|d| d.code()).as_deref() == Some("42P01") =>
                {
                    return Err(StoreError::NotMigrated { path })
                }
                Err(e) => {
                    return Err(StoreError::from_pg(
                        self.target(),
                        "reading the schema version",
                        e,
                    ))
                }
            };
        match applied {
            Some(v) if v > latest => Err(StoreError::NewerSchema { path, version: v }),
            Some(v) if v == latest => Ok(()),
            _ => Err(StoreError::NotMigrated { path }),
        }
    }
}

/// `postgres://user@host:port/database`: enough to know which database,
/// never the password.
fn describe(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or(options.get_username())
    )
}

/// sqlx's URL parse errors name the problem, not the URL; keep only the
/// message kind all the same, in case a future version quotes it.
fn redact_parse_error(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Configuration(inner) => {
            let text = inner.to_string();
            if text.contains('@') || text.contains("://") {
                "the URL does not parse".to_owned()
            } else {
                text
            }
        }
        _ => "the URL does not parse".to_owned(),
    }
}

fn from_migrate(target: &str, source: MigrateError) -> StoreError {
    let path = std::path::PathBuf::from(target);
    match source {
        MigrateError::VersionMissing(version) => StoreError::NewerSchema { path, version },
        MigrateError::Execute(err) | MigrateError::ExecuteMigration(err, _) => {
            match StoreError::from_pg(target, "migrating", err) {
                StoreError::Postgres { source, .. } => StoreError::Migrate {
                    path,
                    source: MigrateError::Execute(source),
                },
                classified => classified,
            }
        }
        source => StoreError::Migrate { path, source },
    }
}
