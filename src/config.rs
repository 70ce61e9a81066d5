//! config: filled in by issue 3.
