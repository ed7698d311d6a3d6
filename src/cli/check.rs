//! `magos check`: for every annotated service, the current reference, the
//! policy's choice and whether an update is available. Nothing is written.
//!
//! The registry questions are asked here, frugally: each watched repository's
//! tags once per run, then a `HEAD` only for the tag a policy elected (the
//! platform manifest only when the policy names a platform). What the services
//! are and what their policies decide comes through [`Policies`], which the
//! pure core implements.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::Serialize;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::registry::{Check, Digest, ImageRef, Platform, RegistryClient, Settings};

/// `magos check` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// The checked-out GitOps repository [default: the current directory]
    #[arg(long, value_name = "DIR")]
    pub repo: Option<PathBuf>,
    /// Report format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Runs `magos check`: loads the configuration, asks the registries about every
/// service `policies` lists, prints the report. Exit 0 when every service was
/// checked, 2 when any could not be (the others are still reported).
pub fn run(
    args: &CheckArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
    policies: &dyn Policies,
) -> anyhow::Result<Exit> {
    let loaded = super::load_config(file, env, overrides, verbosity)?;
    let settings = Settings::load(&loaded.config.registries, env)?;
    let dir = args.repo.clone().unwrap_or_else(|| PathBuf::from("."));
    let services = policies.watched(&dir)?;
    let client = RegistryClient::new(settings);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(check_services(
        &client,
        policies,
        &services,
        SystemTime::now(),
    ));
    super::out(&render(&rows, args.output)?)?;
    Ok(exit_for(&rows))
}

/// One annotated service, as the stacks and their annotations describe it.
#[derive(Debug, Clone)]
pub struct Watched {
    /// The implementor's handle for this service (e.g. an index into its list).
    pub id: usize,
    /// The stack (compose project).
    pub stack: String,
    /// The service name.
    pub service: String,
    /// Where the `image:` line is, `file:line`.
    pub location: String,
    /// The image reference as written, possibly pinned (`app:1.2@sha256:…`).
    pub image: String,
    /// The repository whose tags the policy picks from, as a reference (the
    /// image's own, or the policy's `repo`).
    pub watch: String,
    /// The platform the policy pins, if it names one.
    pub platform: Option<String>,
}

/// What a policy decided for one service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// Run this tag.
    Tag {
        /// The tag.
        tag: String,
        /// Why, in one line.
        reason: String,
    },
    /// Keep what is written (the digest policy).
    Keep {
        /// Why, in one line.
        reason: String,
    },
    /// No tag qualifies.
    Nothing {
        /// Why, in one line.
        reason: String,
    },
}

/// The stacks-and-policies side of `magos check`.
pub trait Policies: Sync {
    /// The annotated services of the repository checked out at `dir`.
    fn watched(&self, dir: &Path) -> anyhow::Result<Vec<Watched>>;
    /// The policy's decision for `service` among every tag of its watched
    /// repository, at `now`.
    fn decide(&self, service: &Watched, tags: &[String], now: SystemTime) -> Choice;
}

/// One line of the report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// The stack.
    pub stack: String,
    /// The service.
    pub service: String,
    /// `file:line` of the image line.
    pub location: String,
    /// The reference as written.
    pub current: String,
    /// `repo:tag@digest` the policy chose, when it chose one.
    pub chosen: Option<String>,
    /// Whether the chosen pin differs from the written one; `None` when nothing
    /// was chosen or an error stopped the check.
    pub update: Option<bool>,
    /// The policy's reason.
    pub reason: String,
    /// What went wrong, for this service only.
    pub error: Option<String>,
}

/// Checks every service against the registries; one service's error never
/// stops the others.
pub async fn check_services(
    client: &RegistryClient,
    policies: &dyn Policies,
    services: &[Watched],
    now: SystemTime,
) -> Vec<Row> {
    let check = client.check();
    let rows = services.iter().map(|s| check_one(&check, policies, s, now));
    futures_util::future::join_all(rows).await
}

async fn check_one(check: &Check, policies: &dyn Policies, s: &Watched, now: SystemTime) -> Row {
    let mut row = Row {
        stack: s.stack.clone(),
        service: s.service.clone(),
        location: s.location.clone(),
        current: s.image.clone(),
        chosen: None,
        update: None,
        reason: String::new(),
        error: None,
    };
    let result: Result<(), String> = async {
        let current = ImageRef::parse(&s.image).map_err(|e| e.to_string())?;
        let watch = ImageRef::parse(&s.watch).map_err(|e| e.to_string())?;
        let platform = s
            .platform
            .as_deref()
            .map(Platform::parse)
            .transpose()
            .map_err(|e| e.to_string())?;
        let tags = check.tags(&watch).await.map_err(|e| e.to_string())?;
        match policies.decide(s, &tags, now) {
            Choice::Tag { tag, reason } => {
                row.reason = reason;
                let candidate = watch.with_tag(&tag);
                let digest: Digest = match &platform {
                    Some(p) => check.platform_digest(&candidate, p).await,
                    None => check.digest(&candidate).await,
                }
                .map_err(|e| e.to_string())?;
                // The pin written back is the image's own line with the chosen
                // tag and digest (the watched repository may be a mirror).
                row.update =
                    Some(current.tag() != Some(tag.as_str()) || current.digest() != Some(&digest));
                row.chosen = Some(format!("{}:{tag}@{digest}", watch.repository_key()));
            }
            Choice::Keep { reason } => {
                row.reason = reason;
                row.update = Some(false);
            }
            Choice::Nothing { reason } => row.reason = reason,
        }
        Ok(())
    }
    .await;
    if let Err(e) = result {
        row.error = Some(e);
    }
    row
}

/// How the report is printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Aligned columns.
    #[default]
    Table,
    /// One JSON array.
    Json,
}

/// The report as text.
pub fn render(rows: &[Row], output: Output) -> anyhow::Result<String> {
    match output {
        Output::Json => Ok(serde_json::to_string_pretty(rows)? + "\n"),
        Output::Table => {
            let header = ["STACK", "SERVICE", "CURRENT", "CHOSEN", "UPDATE", "REASON"];
            let lines: Vec<[String; 6]> = rows
                .iter()
                .map(|r| {
                    [
                        r.stack.clone(),
                        r.service.clone(),
                        r.current.clone(),
                        r.chosen.clone().unwrap_or_else(|| "-".to_owned()),
                        match (&r.error, r.update) {
                            (Some(_), _) => "error".to_owned(),
                            (None, Some(true)) => "yes".to_owned(),
                            (None, Some(false)) => "no".to_owned(),
                            (None, None) => "-".to_owned(),
                        },
                        r.error.clone().unwrap_or_else(|| r.reason.clone()),
                    ]
                })
                .collect();
            let mut widths = header.map(str::len);
            for l in &lines {
                for (w, cell) in widths.iter_mut().zip(l) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let mut text = String::new();
            let mut line = |cells: &[&str]| -> anyhow::Result<()> {
                let mut out = String::new();
                for (i, cell) in cells.iter().enumerate() {
                    if i + 1 == cells.len() {
                        out.push_str(cell);
                    } else {
                        write!(out, "{cell:<w$}  ", w = widths[i])?;
                    }
                }
                writeln!(text, "{}", out.trim_end())?;
                Ok(())
            };
            line(&header)?;
            for l in &lines {
                line(&l.iter().map(String::as_str).collect::<Vec<_>>())?;
            }
            Ok(text)
        }
    }
}

/// The exit code for a report: 0 when every service was checked, 2 when any
/// could not be.
pub fn exit_for(rows: &[Row]) -> Exit {
    if rows.iter().any(|r| r.error.is_some()) {
        Exit::Error
    } else {
        Exit::Success
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(update: Option<bool>, error: Option<&str>) -> Row {
        Row {
            stack: "web".into(),
            service: "app".into(),
            location: "web/compose.yaml:4".into(),
            current: "ghcr.io/o/app:1.0".into(),
            chosen: update.map(|_| format!("ghcr.io/o/app:1.1@sha256:{}", "a".repeat(64))),
            update,
            reason: "highest version in ^1".into(),
            error: error.map(str::to_owned),
        }
    }

    #[test]
    fn table_and_json() {
        let rows = [
            row(Some(true), None),
            row(None, Some("registry ghcr.io unreachable")),
        ];
        let table = render(&rows, Output::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("STACK  SERVICE  CURRENT"), "{table}");
        assert!(lines[1].contains(" yes ") && lines[1].ends_with("highest version in ^1"));
        assert!(lines[2].contains(" error ") && lines[2].ends_with("unreachable"));
        let json: serde_json::Value =
            serde_json::from_str(&render(&rows, Output::Json).unwrap()).unwrap();
        assert_eq!(json[0]["update"], true);
        assert_eq!(json[1]["error"], "registry ghcr.io unreachable");
        assert_eq!(exit_for(&rows), Exit::Error);
        assert_eq!(exit_for(&rows[..1]), Exit::Success);
        assert_eq!(render(&[], Output::Json).unwrap(), "[]\n");
    }
}
