//! `magos config …`.

use std::fmt::Write as _;
use std::path::Path;

use clap::Subcommand;

use super::Exit;
use crate::config::{Env, Overrides};

/// `magos config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate the configuration and print it as Magos will use it
    ///
    /// Every layer is applied (file, .env beside it, environment, flags); each value
    /// that is not a default is followed by where it came from. Secrets (tokens in
    /// URLs, the GitHub App key) are shown as <redacted>. Exits 2 on an invalid
    /// configuration, naming the file, line and key.
    Check,
}

pub(super) fn run(
    cmd: &ConfigCommand,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    match cmd {
        ConfigCommand::Check => {
            let loaded = super::load_config(file, env, overrides, verbosity)?;
            super::out(&render(&loaded)?)?;
            Ok(Exit::Success)
        }
    }
}

/// The effective configuration as commented YAML.
fn render(loaded: &crate::config::Loaded) -> anyhow::Result<String> {
    let mut text = String::new();
    match &loaded.file {
        Some(p) => writeln!(text, "# configuration file: {}", p.display())?,
        None => writeln!(text, "# configuration file: none (built-in defaults)")?,
    }
    if let Some(p) = &loaded.dotenv {
        writeln!(text, "# .env file: {}", p.display())?;
    }
    let yaml = serde_yaml_ng::to_string(&loaded.config)?;
    let mut path: Vec<(usize, String)> = Vec::new();
    for line in yaml.lines() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        let key = trimmed
            .split_once(':')
            .map(|(k, _)| k)
            .filter(|k| !k.starts_with('-'));
        let mut annotated = line.to_owned();
        if let Some(key) = key {
            path.retain(|(i, _)| *i < indent);
            path.push((indent, key.to_owned()));
            let dotted = path
                .iter()
                .map(|(_, k)| k.as_str())
                .collect::<Vec<_>>()
                .join(".");
            if let Some(source) = loaded.sources.get(dotted.as_str()) {
                annotated = format!("{line}  # from {source}");
            }
        }
        writeln!(text, "{annotated}")?;
    }
    Ok(text)
}
