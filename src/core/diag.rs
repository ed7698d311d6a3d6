//! Diagnostics: a user's mistake in a compose file, located by file, line and
//! column, with a one-line reason. They are gathered and reported together; one
//! bad service never stops the others.

use std::fmt;

use serde::Serialize;

/// How serious a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something Magos will not act on (an invalid policy, an image it cannot pin).
    Error,
    /// Something that works but is probably not what was meant.
    Warning,
    /// Not a mistake: what Magos leaves to the compose CLI or ignores, and where
    /// it deliberately differs from podman-compose. Reported, never a failure.
    Note,
}

/// One located finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file, as the caller named it (a path relative to the repository).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// How serious it is.
    pub severity: Severity,
    /// One line, lower-case, no trailing period.
    pub message: String,
}

impl Diagnostic {
    /// An error at a position.
    pub fn error(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Error, message)
    }

    /// A warning at a position.
    pub fn warning(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Warning, message)
    }

    /// A note at a position (see [`Severity::Note`]).
    pub fn note(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Note, message)
    }

    fn new(file: &str, pos: Pos, severity: Severity, message: impl Into<String>) -> Self {
        let message: String = message.into();
        // One line, always: a reason is never allowed to break the report layout.
        let message = message.replace(['\n', '\r'], " ");
        Self {
            file: file.to_owned(),
            line: pos.line,
            column: pos.column,
            severity,
            message,
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        };
        write!(
            f,
            "{}:{}:{}: {sev}: {}",
            self.file, self.line, self.column, self.message
        )
    }
}

/// A 1-based line and character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Pos {
    /// The start of a file.
    pub const START: Pos = Pos { line: 1, column: 1 };

    /// The position of byte `offset` in `text` (clamped to the text, and to a
    /// character boundary).
    pub fn of_offset(text: &str, offset: usize) -> Pos {
        let mut offset = offset.min(text.len());
        while !text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = text[line_start..offset].chars().count() + 1;
        Pos { line, column }
    }

    /// The position of byte `offset` within one line that is line `line` of its
    /// file.
    pub fn in_line(line: usize, line_text: &str, offset: usize) -> Pos {
        let p = Pos::of_offset(line_text, offset);
        Pos {
            line,
            column: p.column,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_count_characters() {
        let text = "a: 1\nbé: x\n";
        assert_eq!(Pos::of_offset(text, 0), Pos { line: 1, column: 1 });
        assert_eq!(Pos::of_offset(text, 5), Pos { line: 2, column: 1 });
        // `x` is after `bé: `, four characters but five bytes.
        assert_eq!(Pos::of_offset(text, 10), Pos { line: 2, column: 5 });
        assert_eq!(Pos::of_offset(text, 999), Pos { line: 3, column: 1 });
    }

    #[test]
    fn display_is_one_line() {
        let d = Diagnostic::error("a/compose.yaml", Pos { line: 3, column: 7 }, "bad\nthing");
        assert_eq!(d.to_string(), "a/compose.yaml:3:7: error: bad thing");
    }
}
