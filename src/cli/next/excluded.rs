//! Which of a policy's coming windows its exclusions cut, and why, for
//! `recsched next POLICY` (and `policy show`).
//!
//! A window is marked with every exclusion of the policy that overlaps
//! it: for every user or for one, over the whole window or part of it,
//! with the exclusion's reason. The exclusions come resolved in the
//! policy's zone ([`crate::policy::exclusion::attach`]), exactly as the
//! planner cuts them, so what `next` marks is what the daemon skips.

use serde::Serialize;

use crate::clock::parse_utc;
use crate::policy::Policy;

use super::super::output::utc;
use super::WindowView;

/// One exclusion over (part of) one window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExcludedView {
    /// The `exclusions` row.
    pub id: i64,
    /// The part of the window excluded, UTC.
    pub start: String,
    pub end: String,
    /// The whole window.
    pub whole: bool,
    /// Only this user; `None`: every user of the policy.
    pub user: Option<String>,
    pub reason: Option<String>,
}

impl ExcludedView {
    /// "whole window: Christmas", "user ann, 12:00:00Z-14:00:00Z: leave".
    pub fn text(&self) -> String {
        let mut out = match &self.user {
            Some(u) => format!("user {u}, "),
            None => String::new(),
        };
        if self.whole {
            out.push_str("whole window");
        } else {
            let time = |t: &str| t.get(11..19).unwrap_or(t).to_owned();
            out.push_str(&format!("{}-{} UTC", time(&self.start), time(&self.end)));
        }
        out.push_str(": ");
        out.push_str(self.reason.as_deref().unwrap_or("(no reason given)"));
        out
    }
}

/// Marks each of `windows` with the exclusions of `policy` over it.
pub fn mark(windows: &mut [WindowView], policy: &Policy) {
    for w in windows {
        let (Ok(start), Ok(end)) = (parse_utc(&w.start), parse_utc(&w.end)) else {
            continue;
        };
        w.excluded = policy
            .exclusions
            .iter()
            .filter(|e| e.start < end && start < e.end)
            .map(|e| {
                let (from, to) = (e.start.max(start), e.end.min(end));
                ExcludedView {
                    id: e.id.get(),
                    start: utc(from),
                    end: utc(to),
                    whole: from == start && to == end,
                    user: e.user.as_ref().map(|u| u.as_str().to_owned()),
                    reason: e.reason.clone(),
                }
            })
            .collect();
    }
}
