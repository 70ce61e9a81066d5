//! cxone: filled in by its issue.
