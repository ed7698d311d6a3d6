//! `magos rejected`: the digests that failed a soak and that no policy pins
//! again, and `--clear IMAGE@DIGEST` to allow one again.

use std::fmt::Write as _;
use std::path::Path;

use super::Exit;
use crate::config::{Env, Overrides};
use crate::core::rollback::Rejected;
use crate::engine::Engine;

const REJECTED_EXAMPLES: &str = "Examples:
  magos rejected
  magos rejected --output json
  magos rejected --clear 127.0.0.1:5000/app@sha256:0123…

A digest is rejected when the daemon rolled back the service that ran it
(unhealthy, a crash loop, an exit during its soak). A newer digest is pinned as
usual; a rejected one only after --clear. The list is kept in the state folder
(rollback.json).

Exit codes: 0 listed or cleared, 1 --clear named no rejected digest, 2 an error.";

/// `magos rejected` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = REJECTED_EXAMPLES)]
pub struct RejectedArgs {
    /// Allow this digest again (`IMAGE@DIGEST`, as the list shows it)
    #[arg(long, value_name = "IMAGE@DIGEST")]
    pub clear: Option<String>,
    /// Report format
    #[arg(long, value_enum, default_value_t = super::check::Output::Table)]
    pub output: super::check::Output,
}

/// Runs `magos rejected`.
pub fn run(
    args: &RejectedArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let loaded = super::load_config(file, env, overrides, verbosity)?;
    let engine = Engine::new(&loaded.config, env)?;
    let mut state = engine.rollback_state()?;
    if let Some(key) = &args.clear {
        if !state.clear(key) {
            eprintln!("{key} is not rejected; `magos rejected` lists the rejected digests");
            return Ok(Exit::Found);
        }
        engine.save_rollback_state(&state)?;
        super::out(&format!("cleared {key}: policies may pin it again\n"))?;
        return Ok(Exit::Success);
    }
    super::out(&render(&state.rejected, args.output)?)?;
    Ok(Exit::Success)
}

/// The list as text.
pub fn render(rejected: &[Rejected], output: super::check::Output) -> anyhow::Result<String> {
    if output == super::check::Output::Json {
        return Ok(serde_json::to_string_pretty(rejected)? + "\n");
    }
    let mut s = String::new();
    if rejected.is_empty() {
        s.push_str("no rejected digests\n");
        return Ok(s);
    }
    for r in rejected {
        writeln!(
            s,
            "{}  {}  {}  {}",
            r.key(),
            r.tag.as_deref().unwrap_or("-"),
            super::check::at_utc(r.at),
            r.reason
        )?;
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_names_the_key_to_clear() {
        let r = Rejected {
            image: "reg/app".into(),
            digest: "sha256:b".into(),
            tag: Some("1.1.0".into()),
            reason: "its healthcheck reported unhealthy".into(),
            at: 0,
        };
        let text = render(&[r], super::super::check::Output::Table).unwrap();
        assert_eq!(
            text,
            "reg/app@sha256:b  1.1.0  1970-01-01 00:00:00 UTC  its healthcheck reported unhealthy\n"
        );
        assert_eq!(
            render(&[], super::super::check::Output::Table).unwrap(),
            "no rejected digests\n"
        );
    }
}
