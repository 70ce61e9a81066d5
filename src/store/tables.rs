//! The queries and row decoders of each table, written once for both
//! backends: `impl<D: Backend> Db<D>` blocks whose SQL uses `$1`, `$2`...
//! placeholders and binds every value, and decoders that read a row
//! through [`Cols`](super::db::Cols), which names the table, row and
//! column of a value that does not read back.
//!
//! Adding a table: its vocabulary (what a new row holds, what a row reads
//! back into) beside `recordings.rs` in `store/`; its queries and decoder
//! here, in one file; its `CREATE TABLE` in both `migrations/` trees; a
//! forwarding method on [`Store`](super::Store); its tests in the contract
//! suite, which runs them on both backends. A statement that cannot be the
//! same text on both (a lock, an array, a type check) becomes one more
//! [`Dialect`](super::dialect::Dialect) item, or a method of the one
//! backend that has it.

pub(crate) mod attempts;
pub(crate) mod daemon_state;
pub(crate) mod exclusions;
pub(crate) mod policies;
pub(crate) mod recordings;
pub(crate) mod report;
pub(crate) mod retention;
pub(crate) mod teams;
#[cfg(feature = "test-support")]
pub(crate) mod test_support;
