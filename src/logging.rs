//! Logging with `tracing`: human text by default, JSON on request.
//!
//! Colours only on a terminal and never with `NO_COLOR`; no timestamps when
//! running under systemd (`JOURNAL_STREAM` set), because journald adds its own.
//! Logs go to standard error; standard output is kept for command results.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::{Env, LogFormat, LogLevel};

/// How the subscriber is set up, decided from the configuration and environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSetup {
    /// Text or JSON.
    pub format: LogFormat,
    /// ANSI colours in text output.
    pub ansi: bool,
    /// Timestamps on each line.
    pub timestamps: bool,
    /// The filter directive.
    pub filter: String,
}

impl LogSetup {
    /// Decides the setup. `verbosity` is the number of `-v` minus the number of `-q`.
    /// `MD_LOG` (or its alias `MAGOS_LOG`: a `tracing` filter such as
    /// `magos=debug,hyper=info`) wins over the level when set.
    pub fn new(
        format: LogFormat,
        level: LogLevel,
        verbosity: i8,
        env: &Env,
        stderr_is_terminal: bool,
    ) -> Self {
        const LEVELS: [LogLevel; 5] = [
            LogLevel::Error,
            LogLevel::Warn,
            LogLevel::Info,
            LogLevel::Debug,
            LogLevel::Trace,
        ];
        let base = LEVELS.iter().position(|l| *l == level).unwrap_or(2) as i16;
        let index = (base + i16::from(verbosity)).clamp(0, 4) as usize;
        let level = LEVELS[index];
        let filter = match crate::config::own_var(env, "MD_LOG") {
            Some(directive) => directive.clone(),
            // Dependencies stay at warn unless tracing is asked for.
            None if level == LogLevel::Trace => "trace".to_owned(),
            None => format!("warn,magos={}", level.as_str()),
        };
        let no_color = env.get("NO_COLOR").is_some_and(|v| !v.is_empty());
        let under_systemd = env.contains_key("JOURNAL_STREAM");
        Self {
            format,
            ansi: stderr_is_terminal && !no_color && format == LogFormat::Text,
            timestamps: !under_systemd,
            filter,
        }
    }

    /// Installs the global subscriber. Calling it twice keeps the first.
    pub fn install(&self) {
        let filter = EnvFilter::try_new(&self.filter).unwrap_or_else(|_| EnvFilter::new("info"));
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(self.ansi)
            .with_target(false);
        let result = match (self.format, self.timestamps) {
            (LogFormat::Json, true) => builder.json().flatten_event(true).try_init(),
            (LogFormat::Json, false) => {
                builder.json().flatten_event(true).without_time().try_init()
            }
            (LogFormat::Text, true) => builder.try_init(),
            (LogFormat::Text, false) => builder.without_time().try_init(),
        };
        let _ = result;
    }
}

/// Whether standard error is a terminal.
pub fn stderr_is_terminal() -> bool {
    std::io::stderr().is_terminal()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::config::test_env as env;

    #[test]
    fn colours_only_on_a_terminal_without_no_color() {
        assert!(LogSetup::new(LogFormat::Text, LogLevel::Info, 0, &Env::new(), true).ansi);
        assert!(!LogSetup::new(LogFormat::Text, LogLevel::Info, 0, &Env::new(), false).ansi);
        assert!(
            !LogSetup::new(
                LogFormat::Text,
                LogLevel::Info,
                0,
                &env(&[("NO_COLOR", "1")]),
                true
            )
            .ansi
        );
        assert!(!LogSetup::new(LogFormat::Json, LogLevel::Info, 0, &Env::new(), true).ansi);
    }

    #[test]
    fn no_timestamps_under_journald() {
        assert!(LogSetup::new(LogFormat::Text, LogLevel::Info, 0, &Env::new(), false).timestamps);
        assert!(
            !LogSetup::new(
                LogFormat::Text,
                LogLevel::Info,
                0,
                &env(&[("JOURNAL_STREAM", "8:123")]),
                false
            )
            .timestamps
        );
    }

    #[test]
    fn verbosity_moves_the_level() {
        let f = |v| LogSetup::new(LogFormat::Text, LogLevel::Info, v, &Env::new(), false).filter;
        assert_eq!(f(0), "warn,magos=info");
        assert_eq!(f(1), "warn,magos=debug");
        assert_eq!(f(-1), "warn,magos=warn");
        assert_eq!(f(-5), "warn,magos=error");
        assert_eq!(f(2), "trace");
        let custom = LogSetup::new(
            LogFormat::Text,
            LogLevel::Info,
            0,
            &env(&[("MAGOS_LOG", "magos=trace")]),
            false,
        );
        assert_eq!(custom.filter, "magos=trace");
        let both = LogSetup::new(
            LogFormat::Text,
            LogLevel::Info,
            0,
            &env(&[("MD_LOG", "magos=debug"), ("MAGOS_LOG", "magos=trace")]),
            false,
        );
        assert_eq!(both.filter, "magos=debug");
    }
}
