//! planner: filled in by its issue.
