//! The commit message of an update run, rendered from the configurable template
//! (`repo.commit.message`). Pure functions.

/// One pinned image: which service moved from which reference to which.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinChange {
    /// The stack (compose project) name.
    pub stack: String,
    /// The service in the stack.
    pub service: String,
    /// The image reference before the update.
    pub old: String,
    /// The image reference after the update (`tag@sha256:…`).
    pub new: String,
}

/// Renders `template` for `changes`. The placeholders are those of
/// [`crate::config::CommitMessage`]: `{count}` (number of changes), `{services}`
/// (`stack/service` list, comma separated), `{changes}` (one line per change:
/// `- stack/service: old -> new`); `{{` and `}}` are literal braces. The template is
/// validated when the configuration is read, so an unknown placeholder here is
/// kept as written.
pub fn render(template: &str, changes: &[PinChange]) -> String {
    let mut out = String::with_capacity(template.len() + 64 * changes.len());
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('{')
            && let Some(end) = tail.find('}')
        {
            let name = &tail[1..end];
            match name {
                "count" => out.push_str(&changes.len().to_string()),
                "services" => out.push_str(&services(changes)),
                "changes" => out.push_str(&change_lines(changes)),
                _ => out.push_str(&tail[..=end]),
            }
            rest = &tail[end + 1..];
            continue;
        }
        out.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    out.push_str(rest);
    let mut out = out.trim_end().to_owned();
    out.push('\n');
    out
}

fn services(changes: &[PinChange]) -> String {
    changes
        .iter()
        .map(|c| format!("{}/{}", c.stack, c.service))
        .collect::<Vec<_>>()
        .join(", ")
}

fn change_lines(changes: &[PinChange]) -> String {
    changes
        .iter()
        .map(|c| format!("- {}/{}: {} -> {}", c.stack, c.service, c.old, c.new))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::CommitMessage;

    fn change(stack: &str, service: &str, old: &str, new: &str) -> PinChange {
        PinChange {
            stack: stack.into(),
            service: service.into(),
            old: old.into(),
            new: new.into(),
        }
    }

    #[test]
    fn the_default_template_lists_every_service_with_old_and_new() {
        let changes = [
            change("web", "app", "app:1.0", "app:1.1@sha256:aa"),
            change("db", "pg", "pg:16.1@sha256:bb", "pg:16.2@sha256:cc"),
        ];
        let msg = render(CommitMessage::default().as_str(), &changes);
        assert_eq!(
            msg,
            "Pin 2 image update(s): web/app, db/pg\n\n\
             - web/app: app:1.0 -> app:1.1@sha256:aa\n\
             - db/pg: pg:16.1@sha256:bb -> pg:16.2@sha256:cc\n"
        );
    }

    #[test]
    fn braces_escape_and_unknown_text_stays() {
        let changes = [change("s", "x", "a", "b")];
        assert_eq!(
            render("{{literal}} {count} {nope} } {", &changes),
            "{literal} 1 {nope} } {\n"
        );
    }
}
