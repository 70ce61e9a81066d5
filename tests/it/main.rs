//! Integration tests: one binary, one link step.

mod cli;
mod common;
mod cxone;
mod simulator;
mod store;
