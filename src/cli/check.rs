//! `magos check`: for every annotated service, the current reference, the
//! policy's choice and whether an update is available. Nothing is written.
//!
//! The work is the pin pass's ([`crate::pin`]); this module finds the
//! repository, prints the report and chooses the exit code.

use std::fmt::Write as _;
use std::path::Path;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::core::diag::{Diagnostic, Severity};
use crate::engine::Engine;
use crate::engine::pin::Problem;

pub use crate::pin::{Choice, Policies, Row, Step, Watched, check_services};

const CHECK_EXAMPLES: &str = "Examples:
  magos check --repo ~/gitops
  magos check --output json

The repository is --repo, else repo.url: a local folder is read in place; a
remote (or a bare repository) is fetched into Magos's own clone first.

Exit codes: 0 every service was checked, 2 an error (a service that could not
be checked is reported, the others still are; an invalid annotation or a stack
that cannot be loaded is logged with its file and line).";

/// `magos check` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = CHECK_EXAMPLES)]
pub struct CheckArgs {
    /// The GitOps repository: a local folder, or a git URL [default: repo.url]
    #[arg(long, value_name = "DIR|URL")]
    pub repo: Option<String>,
    /// Report format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// Runs `magos check`: loads the configuration, runs a pin pass over the
/// repository, prints the report. Exit 0 when every service was checked, 2 when
/// any could not be (the others are still reported) or the repository has an
/// error diagnostic (logged).
pub fn run(
    args: &CheckArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let overrides = Overrides {
        repo: args.repo.clone().or_else(|| overrides.repo.clone()),
        ..overrides.clone()
    };
    let loaded = super::load_config(file, env, &overrides, verbosity)?;
    let config = &loaded.config;
    let engine = Engine::new(config, env)?;
    let pass = engine.pass_at(&engine.location()?)?;
    // The rows carry the services that could not be checked; the log gets the
    // repository's error diagnostics.
    for p in Problem::of(&pass) {
        if let Problem::Invalid(d) = p {
            tracing::error!("{d}");
        }
    }
    super::out(&render(&pass.rows, args.output)?)?;
    Ok(exit_for(&pass.rows, &pass.diagnostics))
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
                            (None, _) if r.rejected.is_some() => "rejected".to_owned(),
                            (None, Some(true)) => "yes".to_owned(),
                            (None, Some(false)) => "no".to_owned(),
                            (None, None) => "-".to_owned(),
                        },
                        match (&r.error, &r.rejected) {
                            (Some(e), _) => e.to_string(),
                            (None, Some(rej)) => format!(
                                "{} failed a soak at {}: {}; `magos rejected --clear {}` allows it again",
                                rej.tag.as_deref().unwrap_or(&rej.digest),
                                at_utc(rej.at),
                                rej.reason,
                                rej.key()
                            ),
                            (None, None) => r.reason.clone(),
                        },
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
                    out.push_str(cell);
                    if i + 1 < cells.len() {
                        // Padded by hand: a format width above 65,535 panics,
                        // and an image reference can be that long.
                        let pad = widths[i].saturating_sub(cell.chars().count()) + 2;
                        out.extend(std::iter::repeat_n(' ', pad));
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

/// Unix seconds as `2026-01-02 03:04:05 UTC`.
pub fn at_utc(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| at.to_string())
}

/// The exit code for a report: 0 when every service was checked, 2 when any
/// could not be or the repository has errors (`diagnostics`: an invalid
/// annotation, a stack that cannot be loaded).
pub fn exit_for(rows: &[Row], diagnostics: &[Diagnostic]) -> Exit {
    if rows.iter().any(|r| r.error.is_some())
        || diagnostics.iter().any(|d| d.severity == Severity::Error)
    {
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
            tag: update.map(|_| "1.1".to_owned()),
            digest: update.map(|_| {
                crate::core::reference::Digest::parse(&format!("sha256:{}", "a".repeat(64)))
                    .unwrap()
            }),
            update,
            reason: "highest version in ^1".into(),
            error: error.map(|e| crate::pin::CheckError::Rule(e.to_owned())),
            signature: None,
            candidates: Vec::new(),
            rejected: None,
        }
    }

    #[test]
    fn a_rejected_digest_shows_as_rejected_with_its_reason_and_time() {
        let mut r = row(Some(false), None);
        r.rejected = Some(crate::core::rollback::Rejected {
            image: "ghcr.io/o/app".into(),
            digest: format!("sha256:{}", "a".repeat(64)),
            tag: Some("1.1".into()),
            reason: "its healthcheck reported unhealthy".into(),
            at: 86_400,
        });
        let table = render(&[r], Output::Table).unwrap();
        let line = table.lines().nth(1).unwrap();
        assert!(line.contains(" rejected "), "{table}");
        assert!(
            line.contains(
                "1.1 failed a soak at 1970-01-02 00:00:00 UTC: its healthcheck reported unhealthy"
            ),
            "{table}"
        );
        assert!(
            line.contains("magos rejected --clear ghcr.io/o/app@sha256:"),
            "{table}"
        );
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
        assert_eq!(exit_for(&rows, &[]), Exit::Error);
        assert_eq!(exit_for(&rows[..1], &[]), Exit::Success);
        assert_eq!(render(&[], Output::Json).unwrap(), "[]\n");
    }

    /// An invalid annotation (an error diagnostic) makes the exit code 2; a
    /// warning does not.
    #[test]
    fn an_error_diagnostic_fails_the_check() {
        use crate::core::diag::Pos;
        let rows = [row(Some(true), None)];
        let bad = Diagnostic::error(
            "web/compose.yaml",
            Pos {
                line: 4,
                column: 30,
            },
            "unknown policy `nope`",
        );
        let meh = Diagnostic::warning("web/compose.yaml", Pos::START, "variable `X` is not set");
        assert_eq!(exit_for(&rows, std::slice::from_ref(&meh)), Exit::Success);
        assert_eq!(exit_for(&rows, &[meh, bad]), Exit::Error);
    }

    /// Found by an adversarial run: a reference longer than 65,535 characters
    /// made the table's format width panic.
    #[test]
    fn a_huge_reference_renders() {
        let mut r = row(None, Some("invalid reference"));
        r.current = format!("ghcr.io/o/{}:1", "a".repeat(70_000));
        let table = render(&[r.clone(), row(Some(false), None)], Output::Table).unwrap();
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[1].contains(&r.current));
        // Columns still line up.
        assert_eq!(lines[1].find(" error "), lines[2].find(" no    "));
    }
}
