//! Layers the settings: built-in defaults, then the TOML file, then
//! `RECSCHED_*` environment variables (`__` between levels, e.g.
//! `RECSCHED_CXONE__API_BASE`); later sources win. Each module owns its
//! own settings struct; this module only composes them. Loading has no
//! side effects (it never writes a file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// Where the config file is looked for when `--config` is not given.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/recsched/recsched.toml";

/// Everything recsched can be told.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database: crate::store::Settings,
    pub cxone: crate::cxone::Settings,
    pub schedule: crate::daemon::Settings,
    pub retry: crate::retry::RetryPolicy,
    pub metrics: crate::metrics::Settings,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config file {path}: cannot read it: {source}")]
    Unreadable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config: {0}")]
    Invalid(String),
}

/// Which file to read: the one given, else the default path when it
/// exists, else none (built-in defaults).
pub fn choose_file(given: Option<&Path>) -> Option<PathBuf> {
    match given {
        Some(p) => Some(p.to_path_buf()),
        None => {
            let default = Path::new(DEFAULT_CONFIG_PATH);
            default.exists().then(|| default.to_path_buf())
        }
    }
}

/// Loads the config from `file` (if any) and `env` (the process
/// environment, passed in so tests can give their own).
pub fn load(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Unreadable {
            path: path.to_path_buf(),
            source,
        })?;
        builder = builder
            .add_source(config::File::from_str(&text, config::FileFormat::Toml).required(true));
    }
    let vars: HashMap<String, String> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with("RECSCHED_"))
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("RECSCHED")
            .prefix_separator("_")
            .separator("__")
            .try_parsing(true)
            .source(Some(vars)),
    );
    let where_ = file
        .map(|p| format!(" (file {} and RECSCHED_* variables)", p.display()))
        .unwrap_or_else(|| " (RECSCHED_* variables)".to_owned());
    let cfg: Config = builder
        .build()
        .and_then(|c| c.try_deserialize())
        .map_err(|e| ConfigError::Invalid(format!("{e}{where_}")))?;
    cfg.validate()?;
    Ok(cfg)
}

impl Config {
    /// Checks what serde cannot: ranges that span several fields or have a
    /// meaning beyond their type.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limit = self.schedule.segment_limit_seconds;
        if !(crate::recording::RecordingDuration::MIN_SECS
            ..=crate::recording::RecordingDuration::MAX_SECS)
            .contains(&limit)
        {
            return Err(ConfigError::Invalid(format!(
                "schedule.segment_limit_seconds = {limit}: must be between 5 and 13200 (the API's limits)"
            )));
        }
        let lease = self.database.lease;
        if lease < std::time::Duration::from_secs(1) {
            return Err(ConfigError::Invalid(format!(
                "database.lease_seconds = {}: must be at least 1 (it is renewed every third of it)",
                lease.as_secs_f64()
            )));
        }
        if self.schedule.max_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "schedule.max_concurrency = 0: must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let c = load(None, env(&[])).unwrap();
        assert_eq!(c.schedule.segment_limit_seconds, 12_600);
        assert_eq!(c.cxone.user_param, "userId");
        assert_eq!(
            c.cxone.path_prefix,
            "/interaction-recording-management-service/v1/interactions"
        );
    }

    #[test]
    fn environment_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "[cxone]\napi_base = \"https://file.example\"\nclient_id = \"from-file\"\n[schedule]\nmax_concurrency = 8\n",
        )
        .unwrap();
        let c = load(
            Some(&path),
            env(&[
                ("RECSCHED_CXONE__API_BASE", "https://env.example"),
                ("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "256"),
                ("OTHER_THING", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cxone.api_base, "https://env.example");
        assert_eq!(c.cxone.client_id, "from-file");
        assert_eq!(c.schedule.max_concurrency, 256);
    }

    #[test]
    fn unknown_keys_and_bad_ranges_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(&path, "[schedule]\nsegment_limt_seconds = 5\n").unwrap();
        let e = load(Some(&path), env(&[])).unwrap_err().to_string();
        assert!(e.contains("segment_limt_seconds"), "{e}");
        let e = load(
            None,
            env(&[("RECSCHED_SCHEDULE__SEGMENT_LIMIT_SECONDS", "20000")]),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("schedule.segment_limit_seconds = 20000"), "{e}");
        let e = load(Some(&dir.path().join("missing.toml")), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.toml"), "{e}");
    }

    #[test]
    fn a_database_url_from_the_environment_selects_postgres_and_never_prints() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "[database]\nurl = \"postgres://file@h/db\"\nlease_seconds = 9\n",
        )
        .unwrap();
        let c = load(
            Some(&path),
            env(&[(
                "RECSCHED_DATABASE__URL",
                "postgres://recsched:pa55word@db.example:5433/rs?sslmode=verify-full",
            )]),
        )
        .unwrap();
        let url = c.database.postgres_url().unwrap().unwrap();
        assert!(url.expose().contains("pa55word"));
        assert_eq!(c.database.lease, std::time::Duration::from_secs(9));
        assert!(!format!("{c:?}").contains("pa55word"));
        assert_eq!(
            c.database.describe(),
            "postgres://recsched@db.example:5433/rs"
        );
        let e = load(None, env(&[("RECSCHED_DATABASE__LEASE_SECONDS", "0.5")]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("database.lease_seconds"), "{e}");
    }

    #[test]
    fn secrets_in_config_never_print() {
        let c = load(
            None,
            env(&[("RECSCHED_CXONE__CLIENT_SECRET", "s3cr3t-value")]),
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("s3cr3t-value"));
        assert_eq!(c.cxone.client_secret.unwrap().expose(), "s3cr3t-value");
    }
}
