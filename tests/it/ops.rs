//! The operator's surface: `recsched status` against seeded databases
//! and a running daemon.

mod status;
