//! recsched opens NICE CXone screen-recording windows on a schedule.
//!
//! # Flow
//! Data flows one way: a `policies` row becomes a parsed [`policy::Policy`];
//! the [`planner`] turns policies into per-user coverage and then into
//! segments (one vendor recording each); the [`daemon`] commits a
//! write-ahead `recordings` row for a due segment through the [`store`],
//! then sends the start with the [`cxone`] client, then writes the answer
//! (contact id, state) back to the same row and an `attempts` row for the
//! exchange. Nothing downstream re-validates what was parsed upstream.
//!
//! # Layout
//! - [`recording`]: the vocabulary of one recording (user id, duration,
//!   contact id, state, the operation of an exchange with the vendor and
//!   how much of its body is kept), shared by `cxone` and `store`.
//!   Depends on nothing.
//! - [`secret`]: a string whose `Debug`/`Display` print `[redacted]`.
//! - [`clock`]: the only reader of wall-clock time and the only way to
//!   wait: wall-clock and monotonic readings, sleeps on the monotonic one,
//!   a system clock and a manual clock tests drive.
//! - [`retry`]: pure backoff arithmetic (attempt, `Retry-After`, jitter,
//!   deadline) -> next delay or give up.
//! - [`policy`]: policy rows parsed into typed values; `PolicyError`.
//! - [`planner`]: pure time arithmetic: window starts (DST rules),
//!   coverage, segments, catch-up.
//! - [`store`]: the durable state through sqlx: one `Store` handle, one
//!   contract over two backends, SQLite (embedded default) and PostgreSQL
//!   (several active instances with leases, writes fenced by them). Each
//!   table's queries and row decoders are written once (`store/tables/`),
//!   generic over a backend; each backend states only where it differs
//!   (`store/dialect.rs`); migrations per backend; `StoreError`.
//! - [`cxone`]: the vendor client: tokens (password, access-key or
//!   bearer), endpoint discovery from the issuer, team members from the
//!   directory, start, stop, outcome classification; `CxoneError`.
//! - [`simulator`]: an axum stand-in for the vendor API, faithful to
//!   `API.md`, with fault injection. Shares no types with `cxone`, so a
//!   misreading of the API cannot end up on both sides of a test.
//! - [`daemon`]: the only home of timers and tasks: the scheduling loop
//!   (`run_loop`, which watches for wall-clock steps), one planning pass
//!   (`dispatch`, acting on the pure `decide`), claims made seconds ahead
//!   of a window and sent at its instant (`ahead`), the jobs that start and
//!   end recordings, the open rows this process looks after
//!   (`open_rows`), `reconcile`, the one writer of recording rows, and
//!   housekeeping on monotonic tickers.
//! - [`config`]: layers defaults, the TOML file and `RECSCHED_*` variables.
//! - [`metrics`]: Prometheus registry and the `/metrics` + `/healthz`
//!   listener.
//! - [`report`]: the coverage report's arithmetic (planned, recorded,
//!   excluded seconds and gaps per user, day or policy); pure.
//! - [`cli`]: clap commands, one module each (`status` as a model, a
//!   text renderer and the command).
//! - [`telemetry`]: the tracing subscriber.
//!
//! `policy`, `recording`, `planner` and `retry` compile without tokio,
//! sqlx or reqwest.
//!
//! The benchmark is a crate of its own in this workspace (`bench/`): it
//! uses this public API, `daemon::first_pass` for the pure planning, and
//! the store's single-row writes behind the `test-support` feature.

pub mod cli;
pub mod clock;
pub mod config;
pub mod cxone;
pub mod daemon;
pub mod metrics;
pub mod planner;
pub mod policy;
pub mod recording;
pub mod report;
pub mod retry;
pub mod secret;
pub mod simulator;
pub mod store;
pub mod telemetry;
