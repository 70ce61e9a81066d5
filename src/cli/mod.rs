//! The command line: one module per subcommand.

pub mod simulate;
