//! How the progress of a pull or a build is shown: log lines, or one terminal
//! line rewritten as it goes.

/// How pull (and build) progress is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullDisplay {
    /// One log line per progress line (a service's journal, a pipe).
    #[default]
    Log,
    /// One line on the terminal, rewritten as the pull progresses.
    Terminal,
}

impl PullDisplay {
    /// Rewrites the terminal line with `subject: line` (control characters
    /// dropped, at most 100 characters of `line`).
    pub(super) fn rewrite(subject: &str, line: &str) {
        use std::io::Write;
        let line: String = line.chars().filter(|c| !c.is_control()).take(100).collect();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r\x1b[2K{subject}: {line}");
        let _ = err.flush();
    }

    /// Ends the rewritten terminal line.
    pub(super) fn end(self) {
        if self == PullDisplay::Terminal {
            eprintln!();
        }
    }
}
