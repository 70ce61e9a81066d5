//! Layers the settings: built-in defaults, then the TOML file, then
//! `RECSCHED_*` environment variables (`__` between levels, e.g.
//! `RECSCHED_CXONE__API_BASE`); later sources win. Each module owns its
//! own settings struct; this module only composes them. Loading has no
//! side effects (it never writes a file).

pub mod range;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use range::{Range, RangeCheck};

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
    pub directory: crate::cxone::directory::Settings,
    pub history: crate::store::History,
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
    /// Numeric keys outside their ranges, one line each.
    #[error("{}", .0.iter().map(|p| format!("config: {p}")).collect::<Vec<_>>().join("\n"))]
    OutOfRange(Vec<String>),
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
            // Every value stays the text it was given: a secret or an id
            // such as `00123` must not become the number 123. Numeric keys
            // still accept "256", parsed when the struct is filled in.
            .try_parsing(false)
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
    /// Checks what serde cannot: every numeric key against its range (all
    /// of them, so one run names every problem), and ranges that span
    /// several fields.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let check = self.check_ranges();
        if check.problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigError::OutOfRange(check.problems))
        }
    }

    /// Every numeric key, its range and whether its value is inside.
    pub fn check_ranges(&self) -> RangeCheck {
        let mut check = RangeCheck::default();
        self.database.check_ranges(&mut check);
        self.cxone.check_ranges(&mut check);
        self.schedule.check_ranges(&mut check);
        self.retry.check_ranges(&mut check);
        self.directory.check_ranges(&mut check);
        self.history.check_ranges(&mut check);
        check
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

    #[test]
    fn environment_values_stay_the_text_they_were_given() {
        let c = load(
            None,
            env(&[
                ("RECSCHED_CXONE__CLIENT_SECRET", "00123"),
                ("RECSCHED_CXONE__CLIENT_ID", "0042"),
                ("RECSCHED_CXONE__ACCESS_KEY_ID", "1e3"),
                ("RECSCHED_CXONE__ACCESS_KEY_SECRET", "true"),
                ("RECSCHED_CXONE__API_BASE", "8080"),
                ("RECSCHED_DATABASE__URL", "postgres://u:0.50@h/d"),
            ]),
        )
        .unwrap();
        assert_eq!(c.cxone.client_secret.unwrap().expose(), "00123");
        assert_eq!(c.cxone.client_id, "0042");
        assert_eq!(c.cxone.access_key_id, "1e3");
        assert_eq!(c.cxone.access_key_secret.unwrap().expose(), "true");
        assert_eq!(c.cxone.api_base, "8080");
        assert_eq!(c.database.url.unwrap().expose(), "postgres://u:0.50@h/d");
    }

    #[test]
    fn numeric_keys_still_read_numbers_from_the_environment() {
        let c = load(
            None,
            env(&[
                ("RECSCHED_SCHEDULE__MAX_CONCURRENCY", "256"),
                ("RECSCHED_SCHEDULE__MAX_REQUESTS_PER_SECOND", "2.5"),
                ("RECSCHED_CXONE__REQUEST_TIMEOUT_SECONDS", "30"),
                ("RECSCHED_DATABASE__BUSY_TIMEOUT_SECONDS", "1.5"),
                ("RECSCHED_RETRY__MAX_SERVER_ERRORS", "5"),
            ]),
        )
        .unwrap();
        assert_eq!(c.schedule.max_concurrency, 256);
        assert_eq!(c.schedule.max_requests_per_second, 2.5);
        assert_eq!(c.cxone.request_timeout_seconds, 30.0);
        assert_eq!(
            c.database.busy_timeout,
            std::time::Duration::from_millis(1500)
        );
        assert_eq!(c.retry.max_server_errors, 5);
    }

    #[test]
    fn every_value_out_of_range_is_named_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.toml");
        std::fs::write(
            &path,
            "[cxone]\nrequest_timeout_seconds = inf\nconnect_timeout_seconds = nan\n\
             [retry]\nbase_ms = 1000\ncap_ms = 500\n",
        )
        .unwrap();
        let e = load(
            Some(&path),
            env(&[
                ("RECSCHED_SCHEDULE__MAX_REQUESTS_PER_SECOND", "1e-30"),
                ("RECSCHED_SCHEDULE__RELOAD_POLL_MS", "0"),
                (
                    "RECSCHED_SCHEDULE__STOP_MARGIN_SECONDS",
                    "18446744073709551615",
                ),
                ("RECSCHED_SCHEDULE__CLAIM_AHEAD_SECONDS", "61"),
            ]),
        )
        .unwrap_err()
        .to_string();
        for want in [
            "config: cxone.request_timeout_seconds = inf: must be between 0.1 and 300",
            "config: cxone.connect_timeout_seconds = NaN: must be between 0.1 and 60",
            "config: schedule.max_requests_per_second = 1e-30: must be 0 (no limit) or between 0.1 and 10000",
            "config: schedule.reload_poll_ms = 0: must be between 50 and 60000",
            "config: schedule.stop_margin_seconds = 18446744073709551615: must be between 0 and 300",
            "config: schedule.claim_ahead_seconds = 61: must be between 0 and 60",
            "config: retry.cap_ms = 500: must be at least retry.base_ms (1000)",
        ] {
            assert!(e.lines().any(|l| l == want), "{want}\nnot in:\n{e}");
        }
    }

    #[test]
    fn values_that_are_not_numbers_name_their_key() {
        for (key, value, named) in [
            (
                "RECSCHED_SCHEDULE__MAX_CONCURRENCY",
                "-1",
                "schedule.max_concurrency",
            ),
            (
                "RECSCHED_SCHEDULE__MAX_CONCURRENCY",
                "lots",
                "schedule.max_concurrency",
            ),
            (
                "RECSCHED_CXONE__REQUEST_TIMEOUT_SECONDS",
                "10s",
                "cxone.request_timeout_seconds",
            ),
            (
                "RECSCHED_DATABASE__BUSY_TIMEOUT_SECONDS",
                "inf",
                "database.busy_timeout_seconds",
            ),
            (
                "RECSCHED_DATABASE__LEASE_SECONDS",
                "-3",
                "database.lease_seconds",
            ),
            (
                "RECSCHED_RETRY__MAX_SERVER_ERRORS",
                "99999999999",
                "retry.max_server_errors",
            ),
        ] {
            let e = load(None, env(&[(key, value)])).unwrap_err().to_string();
            assert!(e.contains(named), "{key}={value}: {e}");
        }
    }

    #[test]
    fn the_defaults_are_inside_every_range() {
        let c = Config::default();
        let check = c.check_ranges();
        assert!(check.problems.is_empty(), "{:?}", check.problems);
        assert!(check.ranges.len() >= 15, "{:?}", check.ranges);
    }
}
