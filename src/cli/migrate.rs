//! `recsched migrate`: create the database (private to the user running
//! it) and apply the schema's migrations, without starting the daemon.
//!
//! Installers and operators run it once before adding policies; running
//! it again is harmless. Which user runs it matters: the file is created
//! mode 0600 and owned by that user, so run it as the service user.

use std::process::ExitCode;

use crate::config::Config;
use crate::store::Store;

use super::output::print_text;

/// Flags of `recsched migrate` (none; its help text is on `Command::Migrate`).
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {}

pub async fn run(_args: MigrateArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let path = &config.database.path;
    let postgres = config.database.postgres_url()?.is_some();
    let existed = postgres || path.exists();
    let store = Store::open(&config.database).await?;
    store.close().await;
    let what = if existed {
        "schema is up to date"
    } else {
        "created (mode 0600); schema is up to date"
    };
    print_text(&format!(
        "database {}: {what}\n",
        config.database.describe()
    ))?;
    Ok(ExitCode::SUCCESS)
}
