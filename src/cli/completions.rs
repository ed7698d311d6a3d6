//! `magos completions SHELL` and `magos man`: shell completions and man pages made
//! from the same clap definitions as the command line itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use super::{Cli, Exit};

/// `magos completions` arguments.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to write completions for
    #[arg(value_name = "SHELL")]
    pub shell: Shell,
}

/// `magos man` arguments.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write magos.1 and a page per subcommand (magos-run.1, ...) into DIR
    /// instead of printing magos.1
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

/// Prints the completion script for a shell.
pub fn completions(args: &CompletionsArgs) -> anyhow::Result<Exit> {
    let mut cmd = Cli::command();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut cmd, "magos", &mut script);
    super::out(&String::from_utf8_lossy(&script))?;
    Ok(Exit::Success)
}

/// Prints the main man page, or writes every page into a folder.
pub fn man(args: &ManArgs) -> anyhow::Result<Exit> {
    let pages = pages(Cli::command())?;
    match &args.out {
        None => {
            let (_, main) = pages.first().context("no man page")?;
            super::out(&String::from_utf8_lossy(main))?;
        }
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for (name, page) in &pages {
                write_page(dir, name, page)?;
                super::out(&format!("{}\n", dir.join(name).display()))?;
            }
        }
    }
    Ok(Exit::Success)
}

/// Every page as `(file name, roff)`: `magos.1` first, then one per visible
/// subcommand at any depth (`magos-config-check.1`: clap names a built subcommand
/// `magos-config-check`, the convention of git and podman pages).
fn pages(cmd: clap::Command) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let mut pages = Vec::new();
    collect(&cmd, &mut pages)?;
    Ok(pages)
}

fn collect(cmd: &clap::Command, pages: &mut Vec<(String, Vec<u8>)>) -> anyhow::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone());
    let mut page = Vec::new();
    man.render(&mut page).context("cannot render a man page")?;
    pages.push((man.get_filename(), page));
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        collect(sub, pages)?;
    }
    Ok(())
}

/// Writes a page through a temporary file renamed into place.
fn write_page(dir: &Path, name: &str, page: &[u8]) -> anyhow::Result<()> {
    let target = dir.join(name);
    let mut tmp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot write into {}", dir.display()))?;
    std::io::Write::write_all(&mut tmp, page)
        .with_context(|| format!("cannot write {}", target.display()))?;
    tmp.persist(&target)
        .with_context(|| format!("cannot write {}", target.display()))?;
    set_readable(&target)?;
    Ok(())
}

/// A temporary file is private (0600); a man page is for everyone.
#[cfg(unix)]
fn set_readable(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))
        .with_context(|| format!("cannot make {} readable", path.display()))
}

#[cfg(not(unix))]
fn set_readable(_: &Path) -> anyhow::Result<()> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_per_visible_subcommand_main_first() {
        let pages = pages(Cli::command()).unwrap();
        let names: Vec<&str> = pages.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names[0], "magos.1");
        for want in [
            "magos-check.1",
            "magos-config-check.1",
            "magos-completions.1",
        ] {
            assert!(names.contains(&want), "{want} missing from {names:?}");
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        let main = String::from_utf8_lossy(&pages[0].1);
        assert!(main.contains(".TH magos 1"), "{main}");
        assert!(main.contains("completions"), "{main}");
    }

    #[test]
    fn completions_know_the_subcommands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "magos", &mut script);
            let script = String::from_utf8(script).unwrap();
            for word in ["check", "update", "completions", "log-format"] {
                assert!(script.contains(word), "{shell}: {word} missing");
            }
        }
    }
}
