//! `magos policy …`: try a policy annotation against tags, with no registry.

use std::time::SystemTime;

use anyhow::Context as _;
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;

use super::Exit;
use crate::core::policy::{Candidate, Decision};
use crate::core::reference::ImageRef;
use crate::core::{annotation, duration};

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Output {
    /// Text for people.
    #[default]
    Table,
    /// One JSON document.
    Json,
}

/// `magos policy` subcommands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Show which tag a policy would choose among the given tags
    ///
    /// The annotation is the JSON you put after `#` on an `image:` line, either
    /// whole (`{"magos": {…}}`) or just the inner object (`{"policy": …}`). No
    /// registry is asked: the tags, and optionally how long ago each was first
    /// seen, are given on the command line.
    ///
    /// Exit codes: 0 a tag was chosen (or the digest policy keeps its pin),
    /// 1 no tag qualifies (the reason says why), 2 the policy is invalid.
    #[command(after_help = EVAL_EXAMPLES)]
    Eval(EvalArgs),
}

const EVAL_EXAMPLES: &str = r#"Examples:
  magos policy eval '{"magos": {"policy": "semver", "range": "^1.2"}}' --tags 1.2.0 1.3.1 v1.4.0-rc.1 2.0.0 latest
  magos policy eval '{"policy": "semver"}' --tags 1.0.0 1.1.0 --current ghcr.io/o/app:1.2.0
  magos policy eval '{"policy": "numerical", "filter": "^main-[a-f0-9]+-(?P<ts>[0-9]+)$", "extract": "$ts"}' \
      --tags main-ab12cd-1700000000 main-ef34ab-1700000500 pr-9 --output json
  magos policy eval '{"policy": "semver", "minAge": "72h"}' --tags 1.0.0 1.1.0 --age 1.0.0=10d --age 1.1.0=1h"#;

/// `magos policy eval` arguments.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// The annotation JSON, e.g. '{"magos": {"policy": "semver", "range": ">=1.2.0 <2.0.0"}}'
    #[arg(value_name = "ANNOTATION")]
    pub annotation: String,

    /// The candidate tags
    #[arg(long, num_args = 1.., required = true, value_name = "TAG")]
    pub tags: Vec<String>,

    /// The image the line holds now (e.g. nginx:1.25); semver never downgrades
    /// below it while it still satisfies the range, and ties go to its tag
    #[arg(long, value_name = "REF")]
    pub current: Option<String>,

    /// How long ago a tag was first seen, for minAge (repeatable); tags without
    /// one count as just seen
    #[arg(long = "age", value_name = "TAG=DURATION")]
    pub ages: Vec<String>,

    /// Output format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// The JSON printed by `policy eval --output json`.
#[derive(Debug, Serialize)]
struct EvalReport<'a> {
    chosen: Option<&'a str>,
    reason: &'a str,
    outcome: &'static str,
    policy: String,
}

pub(super) fn run(cmd: &PolicyCommand) -> anyhow::Result<Exit> {
    match cmd {
        PolicyCommand::Eval(args) => eval(args, SystemTime::now()),
    }
}

fn eval(args: &EvalArgs, now: SystemTime) -> anyhow::Result<Exit> {
    let policy = annotation::parse_json(&args.annotation).map_err(|e| {
        anyhow::anyhow!(
            "invalid policy annotation at character {}: {}",
            args.annotation[..e.offset.min(args.annotation.len())]
                .chars()
                .count()
                + 1,
            e.message
        )
    })?;
    let current = args
        .current
        .as_deref()
        .map(ImageRef::parse)
        .transpose()
        .context("--current")?;
    let mut seen = Vec::with_capacity(args.tags.len());
    for tag in &args.tags {
        seen.push((tag.as_str(), None::<SystemTime>));
    }
    for age in &args.ages {
        let (tag, d) = age
            .split_once('=')
            .with_context(|| format!("--age `{age}`: write TAG=DURATION, e.g. 1.2.3=72h"))?;
        let d = duration::parse(d).with_context(|| format!("--age `{age}`"))?;
        let at = now
            .checked_sub(d)
            .with_context(|| format!("--age `{age}`: too long ago"))?;
        match seen.iter_mut().find(|(t, _)| *t == tag) {
            Some(entry) => entry.1 = Some(at),
            None => anyhow::bail!("--age `{age}`: `{tag}` is not one of the --tags"),
        }
    }
    let candidates: Vec<Candidate<'_>> = seen
        .iter()
        .map(|(tag, first_seen)| Candidate {
            tag,
            first_seen: *first_seen,
            platforms: None,
        })
        .collect();
    let current_tag = current.as_ref().and_then(|c| c.tag.as_deref());
    let decision = policy.decide(&candidates, current_tag, now);
    let (outcome, exit) = match &decision {
        Decision::Chosen { .. } => ("chosen", Exit::Success),
        Decision::Fixed { .. } => ("fixed", Exit::Success),
        Decision::None { .. } => ("none", Exit::Found),
    };
    let text = match args.output {
        Output::Json => {
            let report = EvalReport {
                chosen: decision.tag(),
                reason: decision.reason(),
                outcome,
                policy: policy.to_string(),
            };
            format!("{}\n", serde_json::to_string_pretty(&report)?)
        }
        Output::Table => format!(
            "policy: {policy}\nchosen: {}\nreason: {}\n",
            decision.tag().unwrap_or("none"),
            decision.reason()
        ),
    };
    super::out(&text)?;
    Ok(exit)
}
