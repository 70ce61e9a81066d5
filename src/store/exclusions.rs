//! The `exclusions` table's vocabulary, the same for every backend: a row
//! to insert. Rows read back as plain [`ExclusionRow`]s; what they mean
//! (dates, instants, zones) is the `policy` module's to judge, so a bad
//! value is named there, and one that does not read back at all (a value
//! of the wrong type, text that is not UTF-8, a `policy_id` naming no
//! policy) is named here as a `BadRow` and skipped.
//!
//! Exclusion edits move the policy revision (schema triggers), so the
//! daemon reloads them with the policies.

use super::BadRow;
use crate::policy::ExclusionError;
#[cfg(doc)]
use crate::policy::ExclusionRow;

/// An exclusion to insert. Plain fields, as in [`ExclusionRow`]:
/// validating them is the caller's job (the CLI parses an `Exclusion`
/// first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewExclusion {
    /// `None`: every policy.
    pub policy_id: Option<i64>,
    /// `None`: every user.
    pub user_id: Option<String>,
    pub starts_at: String,
    pub ends_at: String,
    pub timezone: Option<String>,
    pub reason: Option<String>,
}

impl BadRow {
    /// An exclusion row the `policy` parser refuses (a bad date, zone or
    /// user id), as a bad `exclusions` row: it is skipped the same way.
    pub fn from_exclusion(error: &ExclusionError) -> Self {
        Self::new(
            "exclusions",
            error.id,
            error.column.as_str(),
            &error.problem,
        )
    }
}
