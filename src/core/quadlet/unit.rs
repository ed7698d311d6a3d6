//! Writing one unit file: sections of `Key=value` lines, with the escaping
//! Quadlet and systemd need.
//!
//! Quadlet copies the `[Container]` values into the generated `ExecStart=`
//! line, where systemd expands `%` specifiers and `$` variables: a literal
//! `%` is written `%%` and a literal `$` is written `$$`. Some keys are read
//! by Quadlet as lists of words with C-style quoting (`Environment=`,
//! `Label=`, `Exec=`, `PodmanArgs=`, …): [`words`] quotes each one. The
//! other keys are taken as one raw string: [`raw`] refuses what cannot be
//! written on one line.

/// A unit being written: its sections, in order, each with its lines.
#[derive(Debug, Default)]
pub(super) struct Unit {
    sections: Vec<(&'static str, Vec<String>)>,
    header: Vec<String>,
}

impl Unit {
    /// A comment line at the top of the file.
    pub(super) fn comment(&mut self, text: &str) {
        self.header
            .push(format!("# {}", text.replace(['\n', '\r'], " ")));
    }

    /// Adds `key=value` to `section` (created at the end when new). A
    /// dependency already there (`[Unit]`) is not repeated.
    pub(super) fn set(&mut self, section: &'static str, key: &str, value: impl AsRef<str>) {
        let line = format!("{key}={}", value.as_ref());
        match self.sections.iter_mut().find(|(s, _)| *s == section) {
            Some((_, lines)) if section == "Unit" && lines.contains(&line) => {}
            Some((_, lines)) => lines.push(line),
            None => self.sections.push((section, vec![line])),
        }
    }

    /// Makes sure `section` exists, so the sections come in this order.
    pub(super) fn section(&mut self, section: &'static str) {
        if !self.sections.iter().any(|(s, _)| *s == section) {
            self.sections.push((section, Vec::new()));
        }
    }

    /// The file's text.
    pub(super) fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            out.push_str(line);
            out.push('\n');
        }
        for (section, lines) in &self.sections {
            if lines.is_empty() {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
            }
            out.push('[');
            out.push_str(section);
            out.push_str("]\n");
            for line in lines {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }
}

/// `%` and `$` as systemd reads them on a command line.
pub(super) fn specifiers(s: &str) -> String {
    s.replace('%', "%%").replace('$', "$$")
}

/// `%` as systemd reads it outside command lines (`Description=`).
pub(super) fn percent(s: &str) -> String {
    s.replace('%', "%%")
}

/// One value of a key Quadlet takes as a raw string; `None` when it cannot
/// be written on one line (a line break, a trailing backslash, or white
/// space at either end, which the unit parser would drop).
pub(super) fn raw(s: &str) -> Option<String> {
    if s.contains(['\n', '\r'])
        || s.ends_with('\\')
        || s.trim() != s
        || s.chars().any(char::is_control)
    {
        return None;
    }
    Some(specifiers(s))
}

/// Words of a key Quadlet splits into words, each quoted when needed.
pub(super) fn words<S: AsRef<str>>(items: &[S]) -> String {
    items
        .iter()
        .map(|w| word(w.as_ref()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One word: bare when it is plain, else in double quotes with C escapes.
pub(super) fn word(w: &str) -> String {
    let plain = !w.is_empty()
        && w.chars().all(|c| {
            c.is_ascii_alphanumeric()
                || matches!(
                    c,
                    '-' | '_' | '.' | '/' | ':' | '=' | ',' | '+' | '@' | '%' | '$' | '[' | ']'
                )
        });
    if plain {
        return specifiers(w);
    }
    let mut out = String::with_capacity(w.len() + 2);
    out.push('"');
    for c in w.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A duration as Podman reads it (`30s`, `1500ms`).
pub(super) fn go_duration(d: std::time::Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{}s", d.as_secs())
    } else if d.as_nanos().is_multiple_of(1_000_000) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}us", d.as_micros())
    }
}
