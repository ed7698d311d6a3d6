//! `magos history`: the events Magos recorded (pins, pull requests, applies,
//! failed soaks, rollbacks, drift, heals, failed passes), read from the
//! journal in the state folder. Nothing is contacted.

use std::fmt::Write as _;
use std::path::Path;

use super::Exit;
use crate::config::{self, Env, Overrides};
use crate::core::event::Event;
use crate::notify::Journal;

const HISTORY_EXAMPLES: &str = "Examples:
  magos history                    every event kept
  magos history --since 1d         what happened since yesterday this time
  magos history --since 8h --output json

Each line is one event: when (UTC), what, the stack/service, then the image,
digests, commit and reason. The journal lives in the state folder (state_dir,
default ~/.local/state/magos) as events.jsonl and events.1.jsonl, at most about
2 MiB: the oldest events go first. A failure that lasts is recorded once, then
again every notify_repeat (default 24h) while it lasts.";

/// `magos history` arguments.
#[derive(Debug, Clone, clap::Args)]
#[command(after_help = HISTORY_EXAMPLES)]
pub struct HistoryArgs {
    /// Only the events of this last stretch of time, e.g. 30m, 12h, 1d, 1w
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Report format
    #[arg(long, value_enum, default_value_t = Output::Table)]
    pub output: Output,
}

/// How the events are printed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// One line per event, oldest first.
    #[default]
    Table,
    /// One JSON array of events, oldest first.
    Json,
}

/// Runs `magos history`.
pub fn run(
    args: &HistoryArgs,
    file: Option<&Path>,
    env: &Env,
    overrides: &Overrides,
    verbosity: i8,
) -> anyhow::Result<Exit> {
    let since = match &args.since {
        Some(s) => Some(crate::core::duration::parse(s).map_err(|e| {
            anyhow::anyhow!("--since {s}: {e} (write a duration such as 30m, 12h or 1d)")
        })?),
        None => None,
    };
    let loaded = super::load_config(file, env, overrides, verbosity)?;
    let Some(dir) = config::state_dir(&loaded.config, env) else {
        anyhow::bail!(
            "no state folder: set state_dir (MD_STATE_DIR), XDG_STATE_HOME or HOME to where `magos run` keeps its state"
        );
    };
    let journal = Journal::new(&dir, crate::notify::journal::MAX_BYTES);
    let mut events = journal
        .read()
        .map_err(|e| anyhow::anyhow!("cannot read the event journal in {}: {e}", dir.display()))?;
    if let Some(since) = since {
        let from = crate::engine::events::now()
            .saturating_sub(i64::try_from(since.as_secs()).unwrap_or(i64::MAX));
        events.retain(|e| e.at >= from);
    }
    super::out(&render(&events, args.output)?)?;
    Ok(Exit::Success)
}

/// The events as `output` prints them.
pub fn render(events: &[Event], output: Output) -> anyhow::Result<String> {
    if output == Output::Json {
        return Ok(serde_json::to_string_pretty(events)? + "\n");
    }
    let mut out = String::new();
    for e in events {
        let when = chrono::DateTime::from_timestamp(e.at, 0)
            .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
            .unwrap_or_else(|| e.at.to_string());
        let subject = match (&e.stack, &e.service) {
            (Some(st), Some(sv)) => format!("{st}/{sv}"),
            (Some(st), None) => st.clone(),
            (None, Some(sv)) => sv.clone(),
            (None, None) => "-".to_owned(),
        };
        let detail = crate::core::notify::message(e).replace('\n', "; ");
        let _ = writeln!(out, "{when}  {:<11}  {subject}  {detail}", e.kind.as_str());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::EventKind;

    #[test]
    fn a_line_per_event_with_its_time_kind_subject_and_details() {
        let events = [
            Event::new(EventKind::Pinned, 1_700_000_000)
                .stack("media")
                .service("jellyfin")
                .image("ghcr.io/me/jellyfin")
                .commit("0123456789abcdef")
                .reason("tag 10.9.1"),
            Event::new(EventKind::PassFailed, 1_700_000_060).reason("git fetch failed"),
        ];
        assert_eq!(
            render(&events, Output::Table).unwrap(),
            "2023-11-14 22:13:20  pinned       media/jellyfin  image: ghcr.io/me/jellyfin; commit: 0123456789ab; tag 10.9.1\n\
             2023-11-14 22:14:20  pass_failed  -  git fetch failed\n"
        );
        let json: Vec<Event> =
            serde_json::from_str(&render(&events, Output::Json).unwrap()).unwrap();
        assert_eq!(json, events);
    }
}
