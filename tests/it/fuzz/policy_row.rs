//! The policy row parser: a `policies` row and its users, as an operator
//! may leave them with sqlite3 or psql.
//!
//! Input, one column a line: name, enabled (`1` or not), cron, timezone,
//! window_seconds (an integer; anything else is taken from the bytes),
//! end_mode, users (comma-separated).

use recsched::policy::{load, problems, Policy, PolicyRow};

pub fn row(data: &[u8]) -> PolicyRow {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let mut next = || lines.next().unwrap_or_default().to_owned();
    let name = next();
    let enabled = next().trim() == "1";
    let cron = next();
    let timezone = next();
    let window = next();
    let window_seconds = window.trim().parse::<i64>().unwrap_or_else(|_| {
        let mut bytes = [0u8; 8];
        for (b, w) in bytes.iter_mut().zip(window.bytes()) {
            *b = w;
        }
        i64::from_le_bytes(bytes)
    });
    let end_mode = next();
    let users = next()
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    PolicyRow {
        id: 1,
        name,
        enabled,
        cron,
        timezone,
        window_seconds,
        end_mode,
        users,
        teams: Vec::new(),
    }
}

pub fn check(data: &[u8]) {
    let row = row(data);
    let found = problems(&row);
    match Policy::from_row(&row) {
        Ok(policy) => {
            assert!(found.is_empty(), "parsed, yet problems: {found:?}");
            assert_eq!(policy.id.get(), row.id);
        }
        Err(first) => {
            assert!(!found.is_empty(), "refused, yet no problems: {first}");
            // Every problem can be shown to an operator.
            for p in &found {
                let _ = (p.to_string(), p.column());
            }
        }
    }
    let (policies, errors) = load(vec![row]);
    assert_eq!(policies.len() + usize::from(!errors.is_empty()), 1);
}

super::fuzz_target!("policy_row", check);
