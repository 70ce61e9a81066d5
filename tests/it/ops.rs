//! The operator's surface: the shipped systemd unit and install files,
//! checked by systemd's own tools, `recsched status` against seeded
//! databases and a running daemon, and the shipped alert rules and
//! dashboard against promtool and a real scrape.

mod monitoring;
mod package;
mod status;
mod unit;
