//! A recording policy parsed from its database row.
//!
//! A [`PolicyRow`] is what the store reads (plain columns, nothing
//! checked); [`Policy`] is what the planner and daemon use (every field
//! already valid). A row that does not parse becomes a [`PolicyError`]
//! naming the policy, the column and what is wrong, and never stops the
//! other policies from loading. Depends on `recording` only.

/// One `policies` row with its `policy_users`, exactly as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PolicyRow {
    pub id: i64,
    pub name: String,
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub window_seconds: i64,
    pub end_mode: String,
    pub users: Vec<String>,
}
