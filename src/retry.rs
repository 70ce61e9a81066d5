//! retry: filled in by issue 3.
