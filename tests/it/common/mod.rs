//! Helpers shared by the integration-test modules.

pub mod bin;
pub mod daemon;
pub mod driven;
pub mod pg;
pub mod sim;
