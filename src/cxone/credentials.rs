//! Which way the client gets its bearer token (`cxone.auth`), and the
//! secrets that way needs, read from the settings or from files.
//!
//! Three modes, one per way CXone tenants hand out access:
//! - `password`: CXone's OAuth2 password grant: an OAuth client
//!   (`client_id`, `client_secret`) plus an access key as the user.
//! - `access-key`: the access key alone, posted as JSON to the access-key
//!   token endpoint; for tenants with no OAuth client registration.
//! - `bearer`: a token the operator manages; never requested or renewed.
//!
//! When `cxone.auth` is not set the mode follows from the keys that are,
//! as it did before the key existed: a bearer token wins, then a client id
//! (password), then an access key id alone (access-key). [`AuthPlan`]
//! says which mode is in force, why, and which of its keys are missing, so
//! `recsched check` can say so without reading a secret's value.

use super::error::CxoneError;
use super::settings::Settings;
use crate::secret::Secret;
use std::fmt;
use std::path::Path;

/// `cxone.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// OAuth2 password grant (client id and secret, access key as user).
    Password,
    /// The access-key token endpoint (access key id and secret, JSON).
    AccessKey,
    /// A static bearer token.
    Bearer,
}

impl AuthMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Password => "password",
            Self::AccessKey => "access-key",
            Self::Bearer => "bearer",
        }
    }
}

impl std::str::FromStr for AuthMode {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw.trim() {
            "password" => Ok(Self::Password),
            "access-key" => Ok(Self::AccessKey),
            "bearer" => Ok(Self::Bearer),
            other => Err(format!(
                "`{other}` is not an auth mode: use password, access-key or bearer"
            )),
        }
    }
}

/// From its name, with an error that lists the names (serde's own names
/// the Rust variants).
impl<'de> serde::Deserialize<'de> for AuthMode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for AuthMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resolved credentials (secrets already read from config or files). The
/// endpoint they are posted to is the token source's business.
#[derive(Debug, Clone)]
pub enum Credentials {
    /// A token the operator manages; never renewed.
    Static(Secret),
    /// CXone's OAuth2 password grant.
    Password {
        client_id: String,
        client_secret: Secret,
        access_key_id: String,
        access_key_secret: Secret,
    },
    /// The access-key token endpoint.
    AccessKey {
        access_key_id: String,
        access_key_secret: Secret,
    },
}

impl Credentials {
    pub fn mode(&self) -> AuthMode {
        match self {
            Self::Static(_) => AuthMode::Bearer,
            Self::Password { .. } => AuthMode::Password,
            Self::AccessKey { .. } => AuthMode::AccessKey,
        }
    }
}

/// The mode in force, why, and what it still lacks. Never holds a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPlan {
    pub mode: AuthMode,
    /// Why this mode: `cxone.auth = "access-key"`, or the key that chose it.
    pub chosen_by: String,
    /// Keys the mode needs that are not set (a secret counts as set when
    /// it or its `_file` key is).
    pub missing: Vec<&'static str>,
    /// Keys that are set but unused in this mode, for a warning.
    pub ignored: Vec<&'static str>,
}

impl AuthPlan {
    /// Which mode `settings` selects and which of its keys are missing.
    pub fn of(settings: &Settings) -> Self {
        let bearer_set = secret_set(&settings.bearer_token, &settings.bearer_token_file);
        let client_secret_set = secret_set(&settings.client_secret, &settings.client_secret_file);
        let key_secret_set = secret_set(
            &settings.access_key_secret,
            &settings.access_key_secret_file,
        );
        let (mode, chosen_by) = match settings.auth {
            Some(mode) => (mode, format!("cxone.auth = \"{mode}\"")),
            None if bearer_set => (AuthMode::Bearer, "cxone.bearer_token is set".to_owned()),
            None if !settings.client_id.is_empty() => {
                (AuthMode::Password, "cxone.client_id is set".to_owned())
            }
            None if !settings.access_key_id.is_empty() => (
                AuthMode::AccessKey,
                "cxone.access_key_id is set without cxone.client_id".to_owned(),
            ),
            None => (AuthMode::Password, "the default".to_owned()),
        };
        let mut missing = Vec::new();
        let mut ignored = Vec::new();
        let mut need = |set: bool, key: &'static str| {
            if !set {
                missing.push(key);
            }
        };
        match mode {
            AuthMode::Password => {
                need(!settings.client_id.is_empty(), "cxone.client_id");
                need(client_secret_set, "cxone.client_secret");
                need(!settings.access_key_id.is_empty(), "cxone.access_key_id");
                need(key_secret_set, "cxone.access_key_secret");
            }
            AuthMode::AccessKey => {
                need(!settings.access_key_id.is_empty(), "cxone.access_key_id");
                need(key_secret_set, "cxone.access_key_secret");
            }
            AuthMode::Bearer => need(bearer_set, "cxone.bearer_token"),
        }
        let mut unused = |set: bool, key: &'static str| {
            if set {
                ignored.push(key);
            }
        };
        match mode {
            AuthMode::Password => unused(bearer_set, "cxone.bearer_token"),
            AuthMode::AccessKey => {
                unused(!settings.client_id.is_empty(), "cxone.client_id");
                unused(client_secret_set, "cxone.client_secret");
                unused(bearer_set, "cxone.bearer_token");
            }
            AuthMode::Bearer => {}
        }
        Self {
            mode,
            chosen_by,
            missing,
            ignored,
        }
    }

    /// One line for `recsched check`.
    pub fn describe(&self) -> String {
        let mut line = format!("cxone: auth {} ({})", self.mode, self.chosen_by);
        if self.missing.is_empty() {
            line.push_str("; every key it needs is set");
        } else {
            line.push_str(&format!(
                "; missing {}: `recsched run` refuses to start until {} set",
                self.missing.join(", "),
                if self.missing.len() == 1 {
                    "it is"
                } else {
                    "they are"
                }
            ));
        }
        if !self.ignored.is_empty() {
            line.push_str(&format!(
                "; unused in this mode: {}",
                self.ignored.join(", ")
            ));
        }
        line
    }
}

fn secret_set(inline: &Option<Secret>, file: &Option<std::path::PathBuf>) -> bool {
    inline.as_ref().is_some_and(|s| !s.is_empty()) || file.is_some()
}

/// Reads the secrets of the mode [`AuthPlan::of`] selects. Secrets come
/// from the settings or from the files they name; a relative file name is
/// looked up in `credentials_dir` (systemd's `$CREDENTIALS_DIRECTORY`).
pub fn resolve(
    settings: &Settings,
    credentials_dir: Option<&Path>,
) -> Result<Credentials, CxoneError> {
    let plan = AuthPlan::of(settings);
    if let Some(first) = plan.missing.first() {
        return Err(missing(&plan, first));
    }
    let read = |key: &str, inline: &Option<Secret>, file: &Option<std::path::PathBuf>| {
        secret_from(key, inline.as_ref(), file.as_deref(), credentials_dir)?
            .ok_or_else(|| missing(&plan, key))
    };
    Ok(match plan.mode {
        AuthMode::Bearer => Credentials::Static(read(
            "cxone.bearer_token",
            &settings.bearer_token,
            &settings.bearer_token_file,
        )?),
        AuthMode::Password => Credentials::Password {
            client_id: settings.client_id.clone(),
            client_secret: read(
                "cxone.client_secret",
                &settings.client_secret,
                &settings.client_secret_file,
            )?,
            access_key_id: settings.access_key_id.clone(),
            access_key_secret: read(
                "cxone.access_key_secret",
                &settings.access_key_secret,
                &settings.access_key_secret_file,
            )?,
        },
        AuthMode::AccessKey => Credentials::AccessKey {
            access_key_id: settings.access_key_id.clone(),
            access_key_secret: read(
                "cxone.access_key_secret",
                &settings.access_key_secret,
                &settings.access_key_secret_file,
            )?,
        },
    })
}

/// "CXone client secret missing (auth password, chosen by ...): set ...".
fn missing(plan: &AuthPlan, key: &str) -> CxoneError {
    let env = format!("RECSCHED_{}", key.replace('.', "__").to_uppercase());
    let what = key.trim_start_matches("cxone.").replace('_', " ");
    let secret = !matches!(key, "cxone.client_id" | "cxone.access_key_id");
    let file = if secret {
        format!(", or {key}_file (e.g. a systemd credential)")
    } else {
        String::new()
    };
    CxoneError::Config(format!(
        "CXone {what} missing for auth {} ({}): set {key} in the config file or {env} in the \
         environment{file}; or choose another mode with cxone.auth (password, access-key, bearer)",
        plan.mode, plan.chosen_by
    ))
}

/// A secret given inline or in a file (not both). Trailing newlines of a
/// file are dropped (editors and `echo` add one).
fn secret_from(
    key: &str,
    inline: Option<&Secret>,
    file: Option<&Path>,
    credentials_dir: Option<&Path>,
) -> Result<Option<Secret>, CxoneError> {
    let inline = inline.filter(|s| !s.is_empty());
    match (inline, file) {
        (Some(_), Some(_)) => Err(CxoneError::Config(format!(
            "both {key} and {key}_file are set: keep one"
        ))),
        (Some(s), None) => Ok(Some(s.clone())),
        (None, None) => Ok(None),
        (None, Some(path)) => {
            let path = match credentials_dir {
                Some(dir) if path.is_relative() => dir.join(path),
                _ => path.to_path_buf(),
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                CxoneError::Config(format!(
                    "{key}_file {}: cannot read it: {e}",
                    path.display()
                ))
            })?;
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(CxoneError::Config(format!(
                    "{key}_file {} is empty",
                    path.display()
                )));
            }
            Ok(Some(Secret::new(text)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Settings {
        Settings::default()
    }

    #[test]
    fn without_cxone_auth_the_keys_choose_the_mode() {
        assert_eq!(AuthPlan::of(&settings()).mode, AuthMode::Password);
        let s = Settings {
            client_id: "c".into(),
            access_key_id: "k".into(),
            ..settings()
        };
        assert_eq!(AuthPlan::of(&s).mode, AuthMode::Password);
        let s = Settings {
            access_key_id: "k".into(),
            ..settings()
        };
        assert_eq!(AuthPlan::of(&s).mode, AuthMode::AccessKey);
        let s = Settings {
            client_id: "c".into(),
            bearer_token: Some(Secret::new("t")),
            ..settings()
        };
        assert_eq!(AuthPlan::of(&s).mode, AuthMode::Bearer);
    }

    #[test]
    fn an_explicit_mode_wins_and_names_what_it_lacks() {
        let s = Settings {
            auth: Some(AuthMode::AccessKey),
            client_id: "c".into(),
            ..settings()
        };
        let plan = AuthPlan::of(&s);
        assert_eq!(plan.mode, AuthMode::AccessKey);
        assert_eq!(plan.chosen_by, "cxone.auth = \"access-key\"");
        assert_eq!(
            plan.missing,
            ["cxone.access_key_id", "cxone.access_key_secret"]
        );
        assert_eq!(plan.ignored, ["cxone.client_id"]);
        let line = plan.describe();
        assert!(
            line.starts_with("cxone: auth access-key (cxone.auth"),
            "{line}"
        );
        assert!(line.contains("missing cxone.access_key_id, cxone.access_key_secret"));
    }

    #[test]
    fn a_secret_file_counts_as_set() {
        let s = Settings {
            auth: Some(AuthMode::AccessKey),
            access_key_id: "k".into(),
            access_key_secret_file: Some("key".into()),
            ..settings()
        };
        let plan = AuthPlan::of(&s);
        assert!(plan.missing.is_empty(), "{plan:?}");
        assert!(plan.describe().contains("every key it needs is set"));
    }

    #[test]
    fn resolving_reads_only_the_modes_secrets_and_names_a_missing_one() {
        let s = Settings {
            auth: Some(AuthMode::AccessKey),
            access_key_id: "k".into(),
            access_key_secret: Some(Secret::new("hunter2")),
            ..settings()
        };
        let c = resolve(&s, None).unwrap();
        assert_eq!(c.mode(), AuthMode::AccessKey);
        assert!(!format!("{c:?}").contains("hunter2"));

        let s = Settings {
            auth: Some(AuthMode::Password),
            access_key_id: "k".into(),
            access_key_secret: Some(Secret::new("hunter2")),
            ..settings()
        };
        let e = resolve(&s, None).unwrap_err().to_string();
        assert!(
            e.contains("CXone client id missing for auth password"),
            "{e}"
        );
        assert!(e.contains("RECSCHED_CXONE__CLIENT_ID"), "{e}");
        assert!(!e.contains("hunter2"), "{e}");

        let s = Settings {
            auth: Some(AuthMode::Bearer),
            ..settings()
        };
        let e = resolve(&s, None).unwrap_err().to_string();
        assert!(e.contains("bearer token missing"), "{e}");
        assert!(e.contains("cxone.bearer_token_file"), "{e}");
    }

    #[test]
    fn auth_reads_from_toml_in_kebab_case() {
        let s: Settings = toml::from_str("auth = \"access-key\"").unwrap();
        assert_eq!(s.auth, Some(AuthMode::AccessKey));
        let e = toml::from_str::<Settings>("auth = \"oauth\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("access-key"), "{e}");
    }
}
