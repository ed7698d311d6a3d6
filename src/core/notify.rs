//! What an [`Event`] looks like to each kind of receiver, and when it is sent.
//!
//! [`request`] is the HTTP request for one receiver (method, URL, headers,
//! body): a signed JSON document for a generic webhook, a plain-text
//! publication with `Title`/`Tags`/`Priority` headers for ntfy, a message for
//! Gotify, a webhook execution for Discord, a notification for the Apprise
//! API. [`Dedupe`] is the rule that keeps a lasting condition from being sent
//! every pass: one event per change of state, then a reminder after
//! `notify_repeat`. No I/O; time is passed in.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use super::event::{Event, EventKind};

/// The kinds of receiver (`notify[].kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    /// One signed JSON document per event, POSTed to `url`.
    Webhook,
    /// An ntfy topic URL.
    Ntfy,
    /// A Gotify server.
    Gotify,
    /// A Discord webhook URL.
    Discord,
    /// An Apprise API endpoint (`/notify` or `/notify/KEY`).
    Apprise,
}

impl SinkKind {
    /// The name used in the configuration and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Webhook => "webhook",
            SinkKind::Ntfy => "ntfy",
            SinkKind::Gotify => "gotify",
            SinkKind::Discord => "discord",
            SinkKind::Apprise => "apprise",
        }
    }
}

impl std::fmt::Display for SinkKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One receiver, as the request needs it (the secrets in the clear: the
/// caller never shows a [`Request`]).
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub kind: SinkKind,
    pub url: &'a str,
    pub token: Option<&'a str>,
    /// Webhook only: the HMAC-SHA256 key of `X-Magos-Signature-256`.
    pub secret: Option<&'a str>,
}

/// An HTTP request to send. Its URL and headers may hold a token: never log it.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub method: &'static str,
    pub url: String,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

/// The header that carries a webhook's signature.
pub const SIGNATURE_HEADER: &str = "X-Magos-Signature-256";

/// `sha256=<hex HMAC-SHA256 of body with key>`, as in [`SIGNATURE_HEADER`].
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC accepts any key length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Whether an event reports something that went wrong.
pub fn is_failure(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Unhealthy | EventKind::RolledBack | EventKind::Drift | EventKind::PassFailed
    )
}

/// What the event is about: `stack/service`, `stack`, or nothing.
fn subject(e: &Event) -> String {
    match (&e.stack, &e.service) {
        (Some(st), Some(sv)) => format!("{st}/{sv}"),
        (Some(st), None) => st.clone(),
        (None, Some(sv)) => sv.clone(),
        (None, None) => String::new(),
    }
}

/// One line: what happened to what.
pub fn title(e: &Event) -> String {
    let what = match e.kind {
        EventKind::Pinned => "pinned",
        EventKind::PullRequest => "proposed",
        EventKind::Applied => "applied",
        EventKind::Unhealthy => "unhealthy",
        EventKind::RolledBack => "rolled back",
        EventKind::Drift => "drifted",
        EventKind::Healed => "healed",
        EventKind::PassFailed => "pass failed",
    };
    let subject = subject(e);
    if subject.is_empty() {
        format!("Magos: {what}")
    } else {
        format!("Magos: {subject} {what}")
    }
}

/// `sha256:` and the first 12 hex digits.
fn short_digest(d: &str) -> String {
    let hex = d.strip_prefix("sha256:").unwrap_or(d);
    format!("sha256:{}", hex.get(..12).unwrap_or(hex))
}

/// A few lines for a person: image, digests, commit, reason.
pub fn message(e: &Event) -> String {
    let mut lines = Vec::new();
    if let Some(image) = &e.image {
        lines.push(format!("image: {image}"));
    }
    match (&e.from_digest, &e.to_digest) {
        (Some(from), Some(to)) => lines.push(format!(
            "digest: {} → {}",
            short_digest(from),
            short_digest(to)
        )),
        (None, Some(to)) => lines.push(format!("digest: {}", short_digest(to))),
        (Some(from), None) => lines.push(format!("digest was: {}", short_digest(from))),
        (None, None) => {}
    }
    if let Some(commit) = &e.commit {
        lines.push(format!("commit: {}", commit.get(..12).unwrap_or(commit)));
    }
    if let Some(reason) = &e.reason {
        let reason: String = reason.chars().take(1000).collect();
        lines.push(reason);
    }
    if lines.is_empty() {
        lines.push(title(e));
    }
    lines.join("\n")
}

/// The request that tells `target` about `e`.
pub fn request(target: &Target, e: &Event) -> Request {
    let title = title(e);
    let message = message(e);
    let failure = is_failure(e.kind);
    let bearer = |headers: &mut Vec<(&'static str, String)>| {
        if let Some(t) = target.token {
            headers.push(("Authorization", format!("Bearer {t}")));
        }
    };
    let json = ("Content-Type", "application/json".to_owned());
    match target.kind {
        SinkKind::Webhook => {
            let mut doc = serde_json::to_value(e).unwrap_or_default();
            if let Some(map) = doc.as_object_mut() {
                map.insert("title".to_owned(), title.into());
                map.insert("message".to_owned(), message.into());
            }
            let body = doc.to_string().into_bytes();
            let mut headers = vec![json, ("X-Magos-Event", e.kind.as_str().to_owned())];
            if let Some(secret) = target.secret {
                headers.push((SIGNATURE_HEADER, signature(secret.as_bytes(), &body)));
            }
            bearer(&mut headers);
            Request {
                method: "POST",
                url: target.url.to_owned(),
                headers,
                body,
            }
        }
        SinkKind::Ntfy => {
            let mut headers = vec![
                ("Content-Type", "text/plain; charset=utf-8".to_owned()),
                ("Title", title),
                (
                    "Tags",
                    format!(
                        "{},{}",
                        if failure {
                            "warning"
                        } else {
                            "white_check_mark"
                        },
                        e.kind.as_str()
                    ),
                ),
                ("Priority", if failure { "4" } else { "3" }.to_owned()),
            ];
            bearer(&mut headers);
            Request {
                method: "POST",
                url: target.url.to_owned(),
                headers,
                body: message.into_bytes(),
            }
        }
        SinkKind::Gotify => {
            let body = serde_json::json!({
                "title": title,
                "message": message,
                "priority": if failure { 8 } else { 5 },
            });
            let mut headers = vec![json];
            if let Some(t) = target.token {
                headers.push(("X-Gotify-Key", t.to_owned()));
            }
            Request {
                method: "POST",
                url: gotify_url(target.url),
                headers,
                body: body.to_string().into_bytes(),
            }
        }
        SinkKind::Discord => {
            let body = serde_json::json!({
                "username": "Magos",
                "allowed_mentions": {"parse": []},
                "embeds": [{
                    "title": title,
                    "description": message,
                    "color": if failure { 0xD9_3025 } else { 0x2E_A043 },
                }],
            });
            Request {
                method: "POST",
                url: target.url.to_owned(),
                headers: vec![json],
                body: body.to_string().into_bytes(),
            }
        }
        SinkKind::Apprise => {
            let kind = match e.kind {
                EventKind::Unhealthy | EventKind::PassFailed => "failure",
                EventKind::RolledBack | EventKind::Drift => "warning",
                EventKind::Pinned | EventKind::Applied | EventKind::Healed => "success",
                EventKind::PullRequest => "info",
            };
            let mut body = serde_json::json!({
                "title": title,
                "body": message,
                "type": kind,
            });
            if let (Some(t), Some(map)) = (target.token, body.as_object_mut()) {
                map.insert("urls".to_owned(), t.into());
            }
            Request {
                method: "POST",
                url: target.url.to_owned(),
                headers: vec![json],
                body: body.to_string().into_bytes(),
            }
        }
    }
}

/// A Gotify server's message endpoint: `url` when it already names
/// `/message`, else `/message` added to its path (a query kept after it).
fn gotify_url(url: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let base = base.trim_end_matches('/');
    let path = if base.ends_with("/message") {
        base.to_owned()
    } else {
        format!("{base}/message")
    };
    match query {
        Some(q) => format!("{path}?{q}"),
        None => path,
    }
}

/// What the rule says of an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// A change of state: send it.
    New,
    /// The same state, still there after `notify_repeat`: send it again.
    Reminder,
    /// The same state, sent less than `notify_repeat` ago: keep quiet.
    Quiet,
}

impl Admit {
    /// Whether the event goes out.
    pub fn sends(self) -> bool {
        self != Admit::Quiet
    }
}

/// A state that was sent, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Sent {
    kind: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stack: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    service: Option<String>,
    at: i64,
}

/// The states already sent, by key ([`key`]). The caller keeps it between
/// passes (and across restarts, as JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dedupe {
    #[serde(default)]
    sent: BTreeMap<String, Sent>,
}

/// An event's state: its kind, stack, service, the digest and commit it
/// names, and the class of its reason ([`reason_class`]). Two events with
/// one key report the same state.
pub fn key(e: &Event) -> String {
    [
        e.kind.as_str(),
        e.stack.as_deref().unwrap_or(""),
        e.service.as_deref().unwrap_or(""),
        e.to_digest.as_deref().unwrap_or(""),
        e.commit.as_deref().unwrap_or(""),
        &reason_class(e.reason.as_deref().unwrap_or("")),
    ]
    .join("\u{1f}")
}

/// A reason without what changes between two reports of one failure: runs
/// of digits and of hexadecimal (ids, ports, times, process numbers) become
/// `#`; only the first line and 200 characters count.
pub fn reason_class(reason: &str) -> String {
    let line = reason.lines().next().unwrap_or("");
    let mut out = String::new();
    for word in line.split_inclusive(|c: char| !c.is_ascii_alphanumeric()) {
        let (token, sep) = match word.char_indices().last() {
            Some((i, c)) if !c.is_ascii_alphanumeric() => (&word[..i], &word[i..]),
            _ => (word, ""),
        };
        let numeric = token.chars().any(|c| c.is_ascii_digit())
            && token.chars().all(|c| c.is_ascii_hexdigit());
        out.push_str(if numeric { "#" } else { token });
        out.push_str(sep);
    }
    out.chars().take(200).collect()
}

impl Dedupe {
    /// Decides whether `e` goes out, and records it when it does. Other
    /// states sent `repeat` seconds or more before `e.at` are forgotten, so the
    /// record stays small (their next event is sent as new).
    pub fn admit(&mut self, e: &Event, repeat: i64) -> Admit {
        let key = key(e);
        let verdict = match self.sent.get(&key) {
            Some(s) if e.at.saturating_sub(s.at) < repeat => return Admit::Quiet,
            Some(_) => Admit::Reminder,
            None => Admit::New,
        };
        self.sent
            .retain(|k, s| *k == key || e.at.saturating_sub(s.at) < repeat);
        self.sent.insert(
            key,
            Sent {
                kind: e.kind,
                stack: e.stack.clone(),
                service: e.service.clone(),
                at: e.at,
            },
        );
        verdict
    }

    /// The states of `kind` for which `over(stack, service)` holds are over:
    /// the next such event is a change of state again. Returns whether any was.
    pub fn settle(
        &mut self,
        kind: EventKind,
        over: impl Fn(Option<&str>, Option<&str>) -> bool,
    ) -> bool {
        let before = self.sent.len();
        self.sent
            .retain(|_, s| s.kind != kind || !over(s.stack.as_deref(), s.service.as_deref()));
        self.sent.len() != before
    }

    /// How many states are remembered.
    pub fn len(&self) -> usize {
        self.sent.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.sent.is_empty()
    }
}

#[cfg(test)]
mod tests;
