//! Pure time arithmetic: from policies and instants to what must be
//! recorded when.
//!
//! - [`starts`](window_starts): when a policy's windows open, with the
//!   DST rule;
//! - [`windows`]: a policy's windows meeting a horizon;
//! - [`coverage`]: per user, the union of the windows of the enabled
//!   policies naming them, less their exclusions;
//! - [`segments`]: coverage minus what is already recorded, cut into
//!   vendor recordings of 5 s ..= the segment limit;
//! - [`due`]: whether a segment is upcoming, to start now (and how late),
//!   or missed.
//!
//! Everything here is a function of its arguments: no clock reads (time
//! is always a parameter), no tokio, sqlx or reqwest, no I/O. It depends
//! on `policy` and `recording` only, so every DST and overlap case is a
//! unit test that runs in microseconds.

mod catch_up;
mod coverage;
mod exclude;
mod interval;
mod segments;
mod starts;
mod windows;

pub use catch_up::{due, Due};
pub use coverage::{coverage, Contribution, Coverage};
pub use exclude::subtract;
pub use interval::Interval;
pub use segments::{segments, Segment, SegmentLimit};
pub use starts::{window_starts, WindowStarts};
pub use windows::{windows, Window};
