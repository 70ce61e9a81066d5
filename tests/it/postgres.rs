//! The PostgreSQL backend against a real server the harness starts
//! itself (`common::pg`): the store's contract, the CLI, the daemon end to
//! end, several active instances on one database, and the fence that
//! keeps an instance that lost a row from touching it again.
//!
//! Each test asks [`pg`] for a database of its own; without PostgreSQL
//! binaries (and `CI` unset) it returns `None` and the test passes after
//! printing why.

mod cli;
mod daemon;
mod fencing;
mod instances;
mod parity;
mod rows;
mod split;
mod store;

use crate::common::pg::pg;
