//! The `recsched` binary: parse arguments, set up logging, hand over to
//! the command. The only place errors are printed rather than matched.

use clap::Parser;
use recsched::cli::Cli;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let under_systemd = std::env::var_os("JOURNAL_STREAM").is_some();
    recsched::telemetry::init(cli.log_format, cli.log.as_deref(), under_systemd);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(recsched::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
