//! The long-running service: the only home of timers and tasks.

mod settings;

pub use settings::Settings;
