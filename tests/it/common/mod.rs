//! Helpers shared by the integration-test modules.

pub mod bin;
pub mod daemon;
pub mod pg;
pub mod sim;
