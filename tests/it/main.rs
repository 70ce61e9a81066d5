//! Integration tests: one binary, one link step.

mod common;
mod cxone;
mod simulator;
mod store;
