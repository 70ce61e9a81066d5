//! The shipped `config/recsched.toml` loads, names every default, and the
//! environment beats it when the binary runs.

use std::path::Path;

use recsched::config;

fn shipped() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config/recsched.toml"))
}

#[test]
fn the_shipped_config_loads_and_matches_the_built_in_defaults() {
    let from_file = config::load(Some(shipped()), Vec::new()).unwrap();
    let defaults = config::load(None, Vec::new()).unwrap();
    assert_eq!(
        from_file.database.path,
        Path::new("/var/lib/recsched/recsched.db")
    );
    // Everything but the systemd path is the built-in default.
    assert_eq!(
        from_file.database.busy_timeout,
        defaults.database.busy_timeout
    );
    assert_eq!(
        format!("{:?}", from_file.cxone),
        format!("{:?}", defaults.cxone)
    );
    assert_eq!(
        format!("{:?}", from_file.schedule),
        format!("{:?}", defaults.schedule)
    );
    assert_eq!(from_file.retry, defaults.retry);
    assert_eq!(from_file.metrics.listen, defaults.metrics.listen);
    assert_eq!(from_file.directory, defaults.directory);
    assert_eq!(from_file.history, defaults.history);
    assert!(from_file.cxone.client_secret.is_none());
    assert!(from_file.cxone.access_key_secret.is_none());
    assert!(from_file.cxone.bearer_token.is_none());
}

#[test]
fn the_shipped_config_shows_every_key() {
    let text = std::fs::read_to_string(shipped()).unwrap();
    for key in [
        "path",
        "busy_timeout_seconds",
        "api_base",
        "path_prefix",
        "auth",
        "issuer",
        "tenant_id",
        "token_url",
        "access_key_url",
        "client_id",
        "client_secret",
        "client_secret_file",
        "access_key_id",
        "access_key_secret",
        "access_key_secret_file",
        "bearer_token",
        "bearer_token_file",
        "user_param",
        "duration_param",
        "contact_param",
        "request_timeout_seconds",
        "connect_timeout_seconds",
        "token_renew_margin_seconds",
        "pool_max_idle_per_host",
        "segment_limit_seconds",
        "max_concurrency",
        "max_requests_per_second",
        "reload_poll_ms",
        "shutdown_grace_seconds",
        "missed_lookback_seconds",
        "stop_grace_seconds",
        "stop_margin_seconds",
        "claim_ahead_seconds",
        "base_ms",
        "cap_ms",
        "max_server_errors",
        "listen",
        "refresh_seconds",
        "page_size",
        "team_timeout_seconds",
        "search_path",
        "statuses",
        "team_field",
        "keep_days",
        "keep_attempts_days",
    ] {
        assert!(
            text.lines()
                .any(|l| l.trim_start_matches("# ").starts_with(&format!("{key} = "))),
            "config/recsched.toml does not show `{key}`"
        );
    }
}

/// The comment block above `key = ` (or `# key = `) in `section`, joined
/// into one line.
fn comment_above(text: &str, section: &str, key: &str) -> Option<String> {
    let is_key = |l: &str| {
        let l = l.trim_start_matches('#').trim_start();
        l.split_once(" = ")
            .is_some_and(|(k, _)| k.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    };
    let lines: Vec<&str> = text.lines().collect();
    let mut current = "";
    for (i, line) in lines.iter().enumerate() {
        if let Some(name) = line.strip_prefix('[') {
            current = name.trim_end_matches(']');
        }
        let bare = line.trim_start_matches('#').trim_start();
        if current == section && bare.starts_with(&format!("{key} = ")) {
            let block: Vec<&str> = lines[..i]
                .iter()
                .rev()
                .take_while(|l| l.starts_with('#') && !is_key(l))
                .map(|l| l.trim_start_matches('#').trim())
                .collect();
            return Some(block.into_iter().rev().collect::<Vec<_>>().join(" "));
        }
    }
    None
}

#[test]
fn the_shipped_config_states_every_range() {
    let text = std::fs::read_to_string(shipped()).unwrap();
    let ranges = config::Config::default().check_ranges().ranges;
    assert!(ranges.len() >= 15, "{ranges:?}");
    for (key, range) in ranges {
        let (section, name) = key.split_once('.').unwrap();
        let comment = comment_above(&text, section, name)
            .unwrap_or_else(|| panic!("config/recsched.toml does not show `{key}`"));
        assert!(
            comment.to_lowercase().contains(&range),
            "config/recsched.toml: the comment above `{key}` does not say `{range}`: {comment}"
        );
    }
}

#[test]
fn the_binary_reads_the_shipped_file_and_the_environment_beats_it() {
    // The file says /var/lib/recsched/recsched.db; RECSCHED_DATABASE__PATH wins.
    let r = super::Recsched::new();
    std::fs::copy(shipped(), &r.config).unwrap();
    let run = r.ok(&["migrate"]);
    assert!(run.stdout.contains(&r.db.display().to_string()), "{run:?}");
    assert!(r.db.exists());
    let run = r.ok(&["check"]);
    assert!(
        run.stdout.contains(&r.config.display().to_string()),
        "{run:?}"
    );
}
