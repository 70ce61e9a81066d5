//! Helpers shared by the integration-test modules.

pub mod sim;
pub mod daemon;
