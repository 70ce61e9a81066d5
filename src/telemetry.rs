//! telemetry: filled in by issue 3.
