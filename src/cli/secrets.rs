//! `magos secrets …`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use clap::{Subcommand, ValueEnum};
use serde::Serialize;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::secrets::keys::{IdentityCache, KeySources};
use crate::secrets::{self, Format, SopsError};

/// `magos secrets` subcommands.
#[derive(Debug, Subcommand)]
pub enum SecretsCommand {
    /// Check that every SOPS file of the repository decrypts and its MAC verifies
    ///
    /// Finds every SOPS file under the repository folder (format from the file
    /// name, as sops does), decrypts it in memory with the available age
    /// identities (SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or secrets.age_key_file,
    /// SOPS_AGE_KEY_CMD, <config dir>/sops/age/keys.txt) and verifies its MAC.
    /// Values are never printed. Exits 0 when every file is good (or there is
    /// none), 1 when some file fails, 2 on an error.
    Check {
        /// The repository folder [default: the current folder]
        #[arg(long, value_name = "DIR")]
        repo: Option<PathBuf>,
        /// Output format
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        output: OutputFormat,
    },
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document for programs.
    Json,
}

pub(super) fn run(
    cmd: &SecretsCommand,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    match cmd {
        SecretsCommand::Check { repo, output } => {
            let loaded = super::load_config(file, env, overrides, verbosity)?;
            let root = match repo {
                Some(r) => r.clone(),
                None => std::env::current_dir()?,
            };
            if !root.is_dir() {
                anyhow::bail!("repository folder {} does not exist", root.display());
            }
            let sources = KeySources::from_env(env, loaded.config.secrets.age_key_file.as_deref());
            let report = check(&root, &sources)?;
            let text = match output {
                OutputFormat::Table => render_table(&report),
                OutputFormat::Json => serde_json::to_string_pretty(&report)? + "\n",
            };
            super::out(&text)?;
            Ok(if report.failed == 0 {
                Exit::Success
            } else {
                Exit::Found
            })
        }
    }
}

/// The result of checking one file (wire type of `--output json`).
#[derive(Debug, Serialize)]
struct FileReport {
    /// Path relative to the repository folder.
    file: String,
    /// The format it was read as.
    format: Format,
    /// Whether every value decrypted.
    decrypts: bool,
    /// Whether the MAC verified; `null` when it could not be checked.
    mac_verified: Option<bool>,
    /// What went wrong, never a value.
    error: Option<String>,
}

/// The whole check (wire type of `--output json`).
#[derive(Debug, Serialize)]
struct Report {
    /// The repository folder.
    repo: String,
    /// One entry per SOPS file, sorted by path.
    files: Vec<FileReport>,
    /// Files that decrypt and verify.
    ok: usize,
    /// Files that do not.
    failed: usize,
}

fn check(root: &Path, sources: &KeySources) -> anyhow::Result<Report> {
    let found = secrets::scan::find(root)?;
    let mut cache = IdentityCache::new();
    let mut files = Vec::new();
    for f in found {
        let file = f.relative.display().to_string();
        let recipient = secrets::recipients(&f.text, f.format)
            .ok()
            .and_then(|r| r.into_iter().next());
        let result = match cache.get(sources, recipient.as_deref()) {
            Err(e) => Err(Problem::Keys(e)),
            Ok(ids) => secrets::decrypt(&f.text, f.format, &ids).map_err(Problem::Sops),
        };
        let (decrypts, mac_verified, error) = match result {
            Ok(_) => (true, Some(true), None),
            Err(Problem::Keys(e)) => (false, None, Some(e)),
            Err(Problem::Sops(e)) => {
                let (decrypts, mac) = match e {
                    SopsError::MacAuth | SopsError::MacMismatch | SopsError::MacMissing => {
                        (true, Some(false))
                    }
                    _ => (false, None),
                };
                tracing::debug!(file = %f.path.display(), "{e}");
                (decrypts, mac, Some(e.to_string()))
            }
        };
        files.push(FileReport {
            file,
            format: f.format,
            decrypts,
            mac_verified,
            error,
        });
    }
    let ok = files.iter().filter(|f| f.error.is_none()).count();
    Ok(Report {
        repo: root.display().to_string(),
        failed: files.len() - ok,
        ok,
        files,
    })
}

enum Problem {
    Keys(String),
    Sops(SopsError),
}

fn render_table(report: &Report) -> String {
    let mut text = String::new();
    if report.files.is_empty() {
        let _ = writeln!(text, "no SOPS files found in {}", report.repo);
        return text;
    }
    let rows: Vec<[String; 5]> = report
        .files
        .iter()
        .map(|f| {
            [
                f.file.clone(),
                f.format.to_string(),
                if f.decrypts { "yes" } else { "no" }.to_owned(),
                match f.mac_verified {
                    Some(true) => "verified",
                    Some(false) => "FAILED",
                    None => "-",
                }
                .to_owned(),
                f.error.clone().unwrap_or_default(),
            ]
        })
        .collect();
    let header = ["FILE", "FORMAT", "DECRYPTS", "MAC", "PROBLEM"];
    let mut widths = header.map(str::len);
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut line = |cells: [&str; 5]| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i == 4 {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ", w = widths[i]);
            }
        }
        let _ = writeln!(text, "{}", l.trim_end());
    };
    line(header);
    for r in &rows {
        line([&r[0], &r[1], &r[2], &r[3], &r[4]]);
    }
    let _ = writeln!(
        text,
        "\n{} SOPS file{}: {} good, {} failing",
        report.files.len(),
        if report.files.len() == 1 { "" } else { "s" },
        report.ok,
        report.failed
    );
    text
}
