//! `recsched completions SHELL`: print a tab-completion script.
//!
//! Generated from the clap definitions (clap_complete), so every
//! subcommand, flag and fixed value (`--end-mode`, `--state`, ...) completes
//! as the binary parses it. The .deb ships the three scripts this command
//! prints, at the paths each shell reads (`packaging/build-deb`).

use std::process::ExitCode;

use clap::CommandFactory;

use super::output::print_text;
use super::Cli;

/// A shell recsched can print a completion script for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Shell {
    /// Bash (with the bash-completion package).
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
}

impl Shell {
    fn generator(self) -> clap_complete::Shell {
        match self {
            Self::Bash => clap_complete::Shell::Bash,
            Self::Zsh => clap_complete::Shell::Zsh,
            Self::Fish => clap_complete::Shell::Fish,
        }
    }
}

/// Flags of `recsched completions`.
#[derive(Debug, Clone, clap::Args)]
pub struct CompletionsArgs {
    /// The shell to print the script for.
    #[arg(value_enum, value_name = "SHELL")]
    pub shell: Shell,
}

/// The completion script for `shell`, for the command named `recsched`.
pub fn script(shell: Shell) -> String {
    let mut out = Vec::new();
    clap_complete::generate(shell.generator(), &mut Cli::command(), "recsched", &mut out);
    // The generators write only what they format from &str values.
    String::from_utf8_lossy(&out).into_owned()
}

pub fn run(args: CompletionsArgs) -> anyhow::Result<ExitCode> {
    print_text(&script(args.shell))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_script_completes_the_recsched_command() {
        assert!(script(Shell::Bash).contains("complete -F _recsched"));
        assert!(script(Shell::Zsh).starts_with("#compdef recsched"));
        assert!(script(Shell::Fish).contains("complete -c recsched"));
    }
}
