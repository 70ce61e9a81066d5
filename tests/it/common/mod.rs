//! Helpers shared by the integration-test modules.

pub mod bin;
pub mod daemon;
pub mod sim;
