//! The operator's surface: the shipped systemd unit and install files,
//! checked by systemd's own tools, and `recsched status` against seeded
//! databases and a running daemon.

mod package;
mod status;
mod unit;
