//! `recsched manpages DIR`: write the manual pages, rendered from the
//! clap definitions, for a hand install.
//!
//! The pages come from the same doc comments as `--help` (clap_mangen), so
//! they cannot drift from the binary they describe. The .deb ships the
//! pages this command writes (`packaging/build-deb` runs it), so a hand
//! install and the package get the same text. Section 8: recsched is a
//! daemon and its administration commands.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;

use super::output::print_text;
use super::Cli;

/// The manual section of every page: system administration.
pub const SECTION: &str = "8";

/// Flags of `recsched manpages`.
#[derive(Debug, Clone, clap::Args)]
pub struct ManpagesArgs {
    /// Directory to write the pages into; created if missing. Existing
    /// pages of the same name are replaced.
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
}

/// One rendered page: its file name (`recsched-policy-add.8`) and roff text.
#[derive(Debug)]
pub struct Page {
    pub file_name: String,
    pub roff: Vec<u8>,
}

/// Every page: `recsched(8)`, then one per subcommand at every depth
/// (`recsched-policy(8)`, `recsched-policy-add(8)`, ...).
pub fn pages() -> std::io::Result<Vec<Page>> {
    // `help` is clap's own subcommand, not ours: `--help` is on every page.
    let mut root = Cli::command().disable_help_subcommand(true);
    // Building fills in each subcommand's display name (recsched-policy-add).
    root.build();
    let mut pages = Vec::new();
    render(&root, &mut pages)?;
    Ok(pages)
}

fn render(cmd: &clap::Command, pages: &mut Vec<Page>) -> std::io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .section(SECTION)
        .manual("recsched manual");
    let mut roff = Vec::new();
    man.render(&mut roff)?;
    pages.push(Page {
        file_name: man.get_filename(),
        roff,
    });
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        render(sub, pages)?;
    }
    Ok(())
}

pub fn run(args: ManpagesArgs) -> anyhow::Result<ExitCode> {
    let dir = &args.dir;
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the directory {}", dir.display()))?;
    let pages = pages().context("rendering the manual pages")?;
    let mut written = String::new();
    for page in &pages {
        let path = dir.join(&page.file_name);
        write_page(&path, &page.roff)?;
        written.push_str(&format!("{}\n", path.display()));
    }
    print_text(&written)?;
    Ok(ExitCode::SUCCESS)
}

/// Writes one page beside its final name and renames it into place, so a
/// failed write never leaves a truncated page where `man` would find it.
fn write_page(path: &Path, roff: &[u8]) -> anyhow::Result<()> {
    let partial = path.with_extension(format!("{SECTION}.partial"));
    let result = std::fs::File::create(&partial)
        .and_then(|mut file| file.write_all(roff).and_then(|()| file.flush()))
        .and_then(|()| std::fs::rename(&partial, path));
    if let Err(e) = result {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_page_per_command_named_after_its_path() {
        let pages = pages().unwrap();
        let names: Vec<&str> = pages.iter().map(|p| p.file_name.as_str()).collect();
        assert_eq!(names[0], "recsched.8");
        assert!(names.contains(&"recsched-policy-add.8"), "{names:?}");
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        for page in &pages {
            let text = String::from_utf8_lossy(&page.roff);
            assert!(text.contains("\n.TH "), "{}: {text}", page.file_name);
        }
    }
}
