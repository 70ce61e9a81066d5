//! The schemas, embedded in the binary: each backend's migration files,
//! read at compile time with `include_str!`, handed to sqlx's [`Migrator`]
//! through its public [`MigrationSource`] trait.
//!
//! # Why not `sqlx::migrate!`
//! That macro is the only thing recsched would need sqlx's macros crate
//! for, and that crate builds sqlx a second time for the build host: the
//! largest single item of a clean build, paid by every CI run. What the
//! macro computes is simple and the same here: the version from the file
//! name, the SHA-384 checksum of the SQL (by [`Migration::new`]), so a
//! database migrated by either agrees. `include_str!` also makes cargo
//! rebuild when a migration file changes, which the macro did not.
//!
//! Invariant: each list names every file of its directory, in version
//! order (a unit test reads the directories and compares).

use std::borrow::Cow;

use futures::future::BoxFuture;
use sqlx::error::BoxDynError;
use sqlx::migrate::{Migration, MigrationSource, MigrationType, Migrator};

/// One migration file: its name (`0002_teams.sql`) and its SQL.
type File = (&'static str, &'static str);

/// `migrations/sqlite/`, in version order.
pub(crate) const SQLITE: &[File] = &[
    (
        "0001_initial.sql",
        include_str!("../../migrations/sqlite/0001_initial.sql"),
    ),
    (
        "0002_teams.sql",
        include_str!("../../migrations/sqlite/0002_teams.sql"),
    ),
    (
        "0003_exclusions.sql",
        include_str!("../../migrations/sqlite/0003_exclusions.sql"),
    ),
];

/// `migrations/postgres/`, in version order.
pub(crate) const POSTGRES: &[File] = &[
    (
        "0001_initial.sql",
        include_str!("../../migrations/postgres/0001_initial.sql"),
    ),
    (
        "0002_teams.sql",
        include_str!("../../migrations/postgres/0002_teams.sql"),
    ),
    (
        "0003_exclusions.sql",
        include_str!("../../migrations/postgres/0003_exclusions.sql"),
    ),
    (
        "0004_team_rowids.sql",
        include_str!("../../migrations/postgres/0004_team_rowids.sql"),
    ),
];

/// A backend's embedded migrations, as sqlx reads a migrations directory.
#[derive(Debug)]
struct Embedded(&'static [File]);

impl MigrationSource<'static> for Embedded {
    fn resolve(self) -> BoxFuture<'static, Result<Vec<Migration>, BoxDynError>> {
        Box::pin(async move { self.0.iter().map(|file| migration(*file)).collect() })
    }
}

/// `0002_teams.sql` -> version 2, description "teams"; as sqlx names them.
fn migration((name, sql): File) -> Result<Migration, BoxDynError> {
    let stem = name
        .strip_suffix(".sql")
        .ok_or_else(|| format!("migration {name}: not a .sql file"))?;
    let (version, description) = stem
        .split_once('_')
        .ok_or_else(|| format!("migration {name}: not named <version>_<description>.sql"))?;
    let version: i64 = version
        .parse()
        .map_err(|e| format!("migration {name}: version `{version}`: {e}"))?;
    Ok(Migration::new(
        version,
        Cow::Owned(description.replace('_', " ")),
        MigrationType::Simple,
        Cow::Borrowed(sql),
        sql.starts_with("-- no-transaction"),
    ))
}

/// The migrator of one backend's embedded files.
pub(crate) async fn migrator(
    files: &'static [File],
) -> Result<Migrator, sqlx::migrate::MigrateError> {
    Migrator::new(Embedded(files)).await
}

/// The newest version among `files` (0 if none).
pub(crate) fn latest(files: &[File]) -> i64 {
    files
        .iter()
        .filter_map(|(name, _)| name.split('_').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn on_disk(dir: &str) -> Vec<(String, String)> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        let mut files: Vec<(String, String)> = std::fs::read_dir(&path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "sql"))
            .map(|p| {
                let name = p.file_name().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read_to_string(&p).unwrap())
            })
            .collect();
        files.sort();
        files
    }

    fn embedded(files: &[File]) -> Vec<(String, String)> {
        files
            .iter()
            .map(|(n, s)| ((*n).to_owned(), (*s).to_owned()))
            .collect()
    }

    #[test]
    fn every_migration_file_is_embedded_in_version_order() {
        assert_eq!(embedded(SQLITE), on_disk("migrations/sqlite"));
        assert_eq!(embedded(POSTGRES), on_disk("migrations/postgres"));
    }

    #[tokio::test]
    async fn versions_descriptions_and_checksums_are_sqlx_s_own() {
        let m = migrator(POSTGRES).await.unwrap();
        let versions: Vec<i64> = m.iter().map(|m| m.version).collect();
        assert_eq!(versions, [1, 2, 3, 4]);
        assert_eq!(latest(POSTGRES), 4);
        assert_eq!(latest(SQLITE), 3);
        let rowids = m.iter().find(|m| m.version == 4).unwrap();
        assert_eq!(rowids.description, "team rowids");
        // What sqlx's own directory reader makes of the same file.
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations/postgres");
        let theirs = Migrator::new(dir).await.unwrap();
        for (ours, theirs) in m.iter().zip(theirs.iter()) {
            assert_eq!(ours.version, theirs.version);
            assert_eq!(ours.description, theirs.description);
            assert_eq!(ours.checksum, theirs.checksum);
            assert_eq!(ours.no_tx, theirs.no_tx);
        }
    }
}
