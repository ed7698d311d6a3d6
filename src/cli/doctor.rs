//! `magos doctor`: check rootless Podman networking for the managed containers,
//! and with `--heal` restart what a restart heals.

use std::fmt::Write as _;
use std::path::Path;

use clap::Args;
use serde::Serialize;

use super::Exit;
use super::policy::Output;
use crate::config::{Env, Overrides};
use crate::doctor::{self, Doctor, DoctorOptions, Report, Status};
use crate::podman::{Client, ClientOptions};

const DOCTOR_EXAMPLES: &str = "Examples:
  magos doctor
  magos doctor --heal
  magos doctor --output json

Exit codes: 0 every check passed or warned (and every heal worked), 1 a check
failed or a heal did not help, 2 error (no configuration, no socket path).";

/// `magos doctor` arguments.
#[derive(Debug, Args)]
#[command(after_help = DOCTOR_EXAMPLES)]
pub struct DoctorArgs {
    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,

    /// Restart containers whose pasta or forwards died, and the bridge-network
    /// stacks when the rootless netns is dead or stale; then check again
    #[arg(long)]
    pub heal: bool,

    /// Only containers carrying this label (repeatable), e.g.
    /// com.docker.compose.project=web
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,

    /// Do not ask the host's resolver (which the containers' DNS is forwarded
    /// to) for a name only an upstream server can answer (for hosts without
    /// upstream DNS)
    #[arg(long)]
    pub no_upstream_dns: bool,
}

/// The JSON document: `version` 1; its keys are stable.
#[derive(Debug, Serialize)]
pub struct ReportJson {
    /// The schema version.
    pub version: u32,
    /// No failed check and no failed heal.
    pub ok: bool,
    /// Checks by status.
    pub summary: SummaryJson,
    /// Every check.
    pub checks: Vec<CheckJson>,
    /// Every heal attempted.
    pub heals: Vec<HealJson>,
}

/// Checks by status.
#[derive(Debug, Serialize)]
pub struct SummaryJson {
    /// Passed.
    pub pass: usize,
    /// Warned.
    pub warn: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
}

/// One check.
#[derive(Debug, Serialize)]
pub struct CheckJson {
    /// The check's name.
    pub id: String,
    /// What was checked.
    pub subject: String,
    /// `pass`, `warn`, `fail` or `skip`.
    pub status: String,
    /// What was found.
    pub finding: String,
    /// What to do, or null.
    pub fix: Option<String>,
    /// `network`, `service`, `outside`, `podman`, or null.
    pub cause: Option<String>,
}

/// One heal.
#[derive(Debug, Serialize)]
pub struct HealJson {
    /// `restart_container` or `restart_stacks`.
    pub action: String,
    /// The container, or the stacks separated by commas.
    pub target: String,
    /// Why.
    pub reason: String,
    /// `healed`, `failed` or `rate_limited`.
    pub outcome: String,
    /// What was seen afterwards.
    pub detail: String,
}

/// The report as its JSON document.
pub fn to_json(report: &Report) -> ReportJson {
    ReportJson {
        version: 1,
        ok: report.ok(),
        summary: SummaryJson {
            pass: report.count(Status::Pass),
            warn: report.count(Status::Warn),
            fail: report.count(Status::Fail),
            skip: report.count(Status::Skip),
        },
        checks: report
            .checks
            .iter()
            .map(|c| CheckJson {
                id: c.id.to_owned(),
                subject: c.subject.clone(),
                status: c.status.as_str().to_owned(),
                finding: c.finding.clone(),
                fix: c.fix.clone(),
                cause: c.cause.map(|c| c.as_str().to_owned()),
            })
            .collect(),
        heals: report
            .heals
            .iter()
            .map(|h| HealJson {
                action: h.action.kind().to_owned(),
                target: h.action.target(),
                reason: h.action.reason().to_owned(),
                outcome: h.outcome.as_str().to_owned(),
                detail: h.detail.clone(),
            })
            .collect(),
    }
}

/// The report as text: one line per check, its fix below it.
pub fn render_table(report: &Report) -> String {
    let mut out = String::new();
    let width = report
        .checks
        .iter()
        .map(|c| c.subject.len())
        .max()
        .unwrap_or(0)
        .min(48);
    for c in &report.checks {
        let cause = c
            .cause
            .filter(|_| c.status != Status::Pass)
            .map(|c| format!(" [{}]", c.as_str()))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<4}  {:<width$}  {:<15} {}{cause}",
            c.status.as_str().to_uppercase(),
            c.subject,
            c.id,
            c.finding,
        );
        if let Some(fix) = c.fix.as_ref().filter(|_| c.status != Status::Pass) {
            let _ = writeln!(out, "      fix: {fix}");
        }
    }
    for h in &report.heals {
        let _ = writeln!(
            out,
            "HEAL  {} {} ({}): {}: {}",
            h.action.kind(),
            h.action.target(),
            h.action.reason(),
            h.outcome.as_str(),
            h.detail
        );
    }
    let _ = writeln!(
        out,
        "{} passed, {} warned, {} failed, {} skipped",
        report.count(Status::Pass),
        report.count(Status::Warn),
        report.count(Status::Fail),
        report.count(Status::Skip)
    );
    out
}

/// Runs `magos doctor`.
pub fn run(
    args: &DoctorArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let loaded = super::load_config(file, env, overrides, verbosity)?;
    let config = &loaded.config;
    if config.runtime == crate::config::Runtime::Docker {
        return docker(args, env);
    }
    let client = Client::locate(
        config.podman.socket.as_ref().map(|s| s.path()),
        env,
        ClientOptions::default(),
    )?;
    let options = DoctorOptions {
        heal: args.heal,
        scope: args.label.clone(),
        dns_upstream: !args.no_upstream_dns,
        max_heals_per_hour: config.doctor.max_heals_per_hour as usize,
        ..DoctorOptions::default()
    };
    let mut doc = Doctor::new(options);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(doctor::check_and_heal(&client, &mut doc, None));
    // The quadlet runtime needs systemd too.
    if config.runtime == crate::config::Runtime::Quadlet
        && let Some(dirs) = crate::systemd::units::UnitDirs::from_env(env)
    {
        report.checks.extend(doctor::quadlet::checks(&dirs));
    }
    let text = match args.output {
        Output::Table => render_table(&report),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&to_json(&report))?),
    };
    super::out(&text)?;
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::Found
    })
}

/// `magos doctor` with `runtime: docker`: the engine's socket, version and
/// storage driver ([`doctor::docker`]); nothing to heal.
fn docker(args: &DoctorArgs, env: &Env) -> anyhow::Result<Exit> {
    if args.heal {
        tracing::info!("--heal: nothing to heal on Docker (the network checks are Podman's)");
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let report = runtime.block_on(doctor::docker::examine(env));
    let text = match args.output {
        Output::Table => render_table(&report),
        Output::Json => format!("{}\n", serde_json::to_string_pretty(&to_json(&report))?),
    };
    super::out(&text)?;
    Ok(if report.ok() {
        Exit::Success
    } else {
        Exit::Found
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::{Cause, Check, HealAction, HealOutcome, HealRecord};

    #[test]
    fn the_json_document_keeps_its_keys() {
        let report = Report {
            checks: vec![
                Check::pass("tun", "host", "/dev/net/tun opens read-write"),
                Check::bad(
                    "port",
                    "web-1 127.0.0.1:8080/tcp",
                    Status::Fail,
                    Cause::Service,
                    "nothing listens",
                    "check the service",
                ),
            ],
            heals: vec![HealRecord {
                action: HealAction::RestartContainer {
                    container: "web-1".into(),
                    reason: "its pasta process died".into(),
                },
                outcome: HealOutcome::Healed,
                detail: "the checks pass again".into(),
            }],
        };
        let v = serde_json::to_value(to_json(&report)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "version": 1,
                "ok": false,
                "summary": {"pass": 1, "warn": 0, "fail": 1, "skip": 0},
                "checks": [
                    {"id": "tun", "subject": "host", "status": "pass",
                     "finding": "/dev/net/tun opens read-write", "fix": null, "cause": null},
                    {"id": "port", "subject": "web-1 127.0.0.1:8080/tcp", "status": "fail",
                     "finding": "nothing listens", "fix": "check the service", "cause": "service"}
                ],
                "heals": [
                    {"action": "restart_container", "target": "web-1",
                     "reason": "its pasta process died", "outcome": "healed",
                     "detail": "the checks pass again"}
                ]
            })
        );
        let table = render_table(&report);
        assert!(table.contains("FAIL  web-1 127.0.0.1:8080/tcp"), "{table}");
        assert!(table.contains("      fix: check the service"), "{table}");
        assert!(table.contains("HEAL  restart_container web-1"), "{table}");
        assert!(
            table.ends_with("1 passed, 0 warned, 1 failed, 0 skipped\n"),
            "{table}"
        );
    }
}
