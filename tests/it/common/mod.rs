//! Helpers shared by the integration-test modules.

pub mod daemon;
pub mod sim;
