//! `GET /events`: the Docker Engine's event stream, one JSON object per line,
//! for as long as the connection lasts. The daemon follows it to re-apply a
//! stack whose container died, and the soak reads a changed container's
//! `die`, `destroy` and `health_status` events from it.

use std::collections::BTreeMap;
use std::pin::Pin;

use futures_util::Stream;
use http_body_util::BodyExt as _;
use serde::Deserialize;

use super::DockerError;
use super::client::{Client, with_query};

/// Which events to receive.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventFilters {
    /// Object types (`container`, `image`, …); empty for all.
    pub types: Vec<String>,
    /// Actions (`die`, `destroy`, `health_status`, …); empty for all.
    /// `health_status` matches every `health_status: <status>`.
    pub actions: Vec<String>,
    /// Container names or ids.
    pub containers: Vec<String>,
    /// `key` or `key=value` labels, all of which an event's object carries.
    pub labels: Vec<String>,
    /// Replay the events from this Unix time (seconds) on, then keep
    /// streaming. Without it, only new events arrive.
    pub since: Option<i64>,
}

impl EventFilters {
    /// The `filters=` JSON (Docker's `{"key": ["value", …]}`), or `None`
    /// when nothing is filtered.
    pub fn to_json(&self) -> Option<String> {
        let mut map: BTreeMap<&str, &Vec<String>> = BTreeMap::new();
        for (key, values) in [
            ("type", &self.types),
            ("event", &self.actions),
            ("container", &self.containers),
            ("label", &self.labels),
        ] {
            if !values.is_empty() {
                map.insert(key, values);
            }
        }
        (!map.is_empty()).then(|| serde_json::to_string(&map).unwrap_or_default())
    }
}

/// One event (`events.Message`; the fields Magos reads).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Event {
    /// `container`, `image`, `network`, `volume`, ….
    #[serde(rename = "Type", default)]
    pub kind: String,
    /// `create`, `start`, `die`, `destroy`, `health_status: healthy`, ….
    #[serde(rename = "Action", default)]
    pub action: String,
    /// The object.
    #[serde(rename = "Actor", default)]
    pub actor: Actor,
    /// Unix seconds.
    #[serde(default)]
    pub time: i64,
    /// Unix nanoseconds.
    #[serde(rename = "timeNano", default)]
    pub time_nano: i64,
}

/// `events.Actor`: for containers, `Attributes` holds `name`, `image`,
/// `exitCode` (of `die`) and the container's labels.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
pub struct Actor {
    /// The object's id.
    #[serde(rename = "ID", default)]
    pub id: String,
    /// Attributes and labels.
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// The action without its detail: `health_status: unhealthy` →
    /// `health_status`.
    pub fn verb(&self) -> &str {
        self.action
            .split_once(':')
            .map_or(self.action.as_str(), |(v, _)| v.trim())
    }

    /// The status of a `health_status` event (`healthy`, `unhealthy`,
    /// `starting`).
    pub fn health_status(&self) -> Option<&str> {
        let (verb, status) = self.action.split_once(':')?;
        (verb.trim() == "health_status").then(|| status.trim())
    }

    /// The object's name (`Actor.Attributes.name`).
    pub fn name(&self) -> Option<&str> {
        self.attribute("name")
    }

    /// An attribute, e.g. a container label, `image` or `exitCode`.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.actor.attributes.get(key).map(String::as_str)
    }

    /// When it happened, in Unix milliseconds.
    pub fn at_ms(&self) -> i64 {
        if self.time_nano > 0 {
            self.time_nano / 1_000_000
        } else {
            self.time * 1000
        }
    }
}

/// A stream of events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, DockerError>> + Send>>;

/// Splits `pending` at its first newline: the line before it, if a whole one
/// has arrived (blank lines skipped).
fn next_line(pending: &mut Vec<u8>) -> Option<String> {
    loop {
        let end = pending.iter().position(|b| *b == b'\n')?;
        let line: Vec<u8> = pending.drain(..=end).collect();
        let text = String::from_utf8_lossy(&line).trim().to_owned();
        if !text.is_empty() {
            return Some(text);
        }
    }
}

fn decode(line: &str) -> Result<Event, DockerError> {
    serde_json::from_str(line).map_err(|source| DockerError::Decode {
        endpoint: "GET /events".to_owned(),
        source,
    })
}

impl Client {
    /// `GET /events`: the events matching `filters`, one parsed object per
    /// line, until the connection ends (the engine stopped or restarted: the
    /// caller opens it again, with `since` to miss nothing).
    pub async fn events(&self, filters: &EventFilters) -> Result<EventStream, DockerError> {
        let mut query = Vec::new();
        if let Some(since) = filters.since {
            query.push(("since", since.to_string()));
        }
        if let Some(json) = filters.to_json() {
            query.push(("filters", json));
        }
        let path = with_query(&self.versioned("/events"), &query);
        let body = self.open_stream(&path, "events").await?;
        let socket = self.socket().to_owned();
        let stream = futures_util::stream::unfold(
            (body, Vec::new(), false),
            move |(mut body, mut pending, ended)| {
                let socket = socket.clone();
                async move {
                    loop {
                        if let Some(line) = next_line(&mut pending) {
                            return Some((decode(&line), (body, pending, ended)));
                        }
                        if ended {
                            return None;
                        }
                        match body.frame().await {
                            Some(Ok(frame)) => {
                                if let Ok(data) = frame.into_data() {
                                    pending.extend_from_slice(&data);
                                }
                            }
                            Some(Err(e)) => {
                                let err = DockerError::Unreachable {
                                    socket,
                                    endpoint: "GET /events".to_owned(),
                                    source: Box::new(e),
                                };
                                return Some((Err(err), (body, Vec::new(), true)));
                            }
                            None => {
                                // A last line without its newline.
                                pending.push(b'\n');
                                let last = next_line(&mut pending)?;
                                return Some((decode(&last), (body, Vec::new(), true)));
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(stream))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_health_event_says_its_status_and_a_die_event_its_exit_code() {
        let e = decode(
            r#"{"status":"health_status: unhealthy","id":"abc","Type":"container","Action":"health_status: unhealthy","Actor":{"ID":"abc","Attributes":{"name":"web-app-1","com.docker.compose.project":"web"}},"scope":"local","time":1700000000,"timeNano":1700000000123456789}"#,
        )
        .unwrap();
        assert_eq!(e.verb(), "health_status");
        assert_eq!(e.health_status(), Some("unhealthy"));
        assert_eq!(e.name(), Some("web-app-1"));
        assert_eq!(e.attribute("com.docker.compose.project"), Some("web"));
        assert_eq!(e.at_ms(), 1_700_000_000_123);
        let d = decode(
            r#"{"Type":"container","Action":"die","Actor":{"ID":"abc","Attributes":{"exitCode":"3","name":"x"}},"time":1700000001}"#,
        )
        .unwrap();
        assert_eq!(d.verb(), "die");
        assert_eq!(d.health_status(), None);
        assert_eq!(d.attribute("exitCode"), Some("3"));
        assert_eq!(d.at_ms(), 1_700_000_001_000);
    }

    #[test]
    fn filters_are_docker_s_json_and_lines_are_split_across_chunks() {
        let f = EventFilters {
            types: vec!["container".into()],
            actions: vec!["die".into(), "health_status".into()],
            labels: vec!["io.magos.instance=x".into()],
            ..EventFilters::default()
        };
        assert_eq!(
            f.to_json().unwrap(),
            r#"{"event":["die","health_status"],"label":["io.magos.instance=x"],"type":["container"]}"#
        );
        assert_eq!(EventFilters::default().to_json(), None);
        let mut pending = b"{\"a\":1}\n\n{\"b\"".to_vec();
        assert_eq!(next_line(&mut pending).as_deref(), Some("{\"a\":1}"));
        assert_eq!(next_line(&mut pending), None);
        pending.extend_from_slice(b":2}\r\n");
        assert_eq!(next_line(&mut pending).as_deref(), Some("{\"b\":2}"));
    }
}
