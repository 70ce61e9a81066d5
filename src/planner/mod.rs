//! Pure time arithmetic: from policies and instants to what must be
//! recorded when.
//!
//! - [`starts`](window_starts): when a policy's windows open, with the
//!   DST rule;
//! - [`windows`]: a policy's windows meeting a horizon;
//! - `walk`: the same windows merged into runs, at a cost bounded by the
//!   runs rather than by the starts (overlapping windows are jumped
//!   over), and by [`WALK_LIMIT`] starts per policy and pass;
//! - [`coverage`]: per user, the union of the windows of the enabled
//!   policies naming them, less their exclusions, one shared copy per
//!   set of policies ([`cover`]: the bounded walk of a planning pass);
//! - [`segments`]: coverage minus what is already recorded, cut into
//!   vendor recordings of 5 s ..= the segment limit; [`cut`] cuts them
//!   one at a time, so a pass cuts what is due and no more;
//! - [`due`]: whether a segment is upcoming, to start now (and how late),
//!   or missed.
//!
//! # What a pass costs
//! A planning pass walks each enabled policy's window starts once (at
//! most [`WALK_LIMIT`] ahead of now, and as many again for windows missed
//! before now, resumed by the next pass when that is not enough) and
//! cuts, per user, the segments due now and the next one. Nothing in it
//! grows with the horizon per user, nor with the number of window starts
//! inside overlapping windows.
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
mod walk;
mod windows;

pub use catch_up::{due, Due};
pub use coverage::{cover, coverage, Contribution, Coverage, CoverageMap, Covered};
pub use exclude::subtract;
pub use interval::Interval;
pub use segments::{cut, segments, Segment, SegmentLimit, Segments};
pub use starts::{window_starts, WindowStarts};
pub use walk::WALK_LIMIT;
pub use windows::{windows, Window};
