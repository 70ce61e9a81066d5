//! The operator's surface: the shipped systemd unit, checked by systemd's
//! own tools, and `recsched status` against seeded databases and a
//! running daemon.

mod status;
mod unit;
