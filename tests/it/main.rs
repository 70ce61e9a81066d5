//! Integration tests: one binary, one link step.
fn main() {}

mod common;
mod simulator;
