//! A policy to insert, the same for every backend.
//!
//! The store reads policies as plain [`PolicyRow`]s and never judges what
//! they mean: parsing and reporting a bad cron, zone or length is the
//! `policy` module's job, and a bad row must not hide the good ones. So the
//! policy columns have no CHECK constraints in either schema. What the
//! store does judge is whether a row reads back at all (a value of the
//! right type, text that is UTF-8, a `policy_users` row that names a
//! policy); one that does not is skipped and named (`BadRow`), and nothing
//! is converted.

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
