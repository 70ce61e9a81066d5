//! A policy to insert, the same for every backend.
//!
//! The store reads policies as plain [`PolicyRow`]s and never judges them:
//! parsing and reporting a bad cron, zone or length is the `policy`
//! module's job, and a bad row must not hide the good ones. So the policy
//! columns have no CHECK constraints in either schema.

#[cfg(doc)]
use crate::policy::PolicyRow;

/// A policy to insert. Plain fields, as in [`PolicyRow`]: validating them
/// is the caller's job (the CLI parses a `Policy` first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPolicy {
    pub name: String,
    pub enabled: bool,
    pub cron: String,
    pub timezone: String,
    pub window_seconds: i64,
    pub end_mode: String,
    /// Duplicates are stored once.
    pub users: Vec<String>,
}
