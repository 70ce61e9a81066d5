//! Integration tests: one binary, one link step.

mod cli;
mod common;
mod cxone;
mod daemon;
mod faketime;
mod faults;
mod fuzz;
mod operators;
mod ops;
mod postgres;
mod simulator;
mod store;
mod tenants;
