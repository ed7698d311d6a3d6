//! Request paths and query strings: percent-encoding, libpod `filters`, and the
//! `unix://` URI the connector understands.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use super::API_VERSION;

/// Percent-encodes `s`, keeping RFC 3986 unreserved characters and those in `keep`.
fn encode(s: &str, keep: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        let c = b as char;
        if c.is_ascii_alphanumeric() || "-._~".contains(c) || (c.is_ascii() && keep.contains(c)) {
            out.push(c);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// One path segment (a container, network or volume name).
pub fn segment(s: &str) -> String {
    encode(s, "")
}

/// An image reference inside a path: Podman's image routes accept slashes there.
pub fn image_ref(s: &str) -> String {
    encode(s, "/:@")
}

/// A query string under construction.
#[derive(Debug, Default, Clone)]
pub struct Query(String);

impl Query {
    /// An empty query.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key=value`.
    pub fn push(mut self, key: &str, value: impl AsRef<str>) -> Self {
        if !self.0.is_empty() {
            self.0.push('&');
        }
        self.0.push_str(&encode(key, ""));
        self.0.push('=');
        self.0.push_str(&encode(value.as_ref(), ""));
        self
    }

    /// Adds `key=value` when there is a value.
    pub fn push_opt(self, key: &str, value: Option<impl AsRef<str>>) -> Self {
        match value {
            Some(v) => self.push(key, v),
            None => self,
        }
    }

    /// Adds `filters={…}` when there are any.
    pub fn filters(self, filters: &BTreeMap<String, Vec<String>>) -> Self {
        if filters.is_empty() {
            return self;
        }
        // A map of strings to lists of strings always serializes.
        let json = serde_json::to_string(filters).unwrap_or_default();
        self.push("filters", json)
    }

    /// `path?query`, or `path` when there is no query.
    pub fn apply(&self, path: &str) -> String {
        if self.0.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", self.0)
        }
    }
}

/// The versioned path of a libpod endpoint: `/v5.0.0/libpod/<rest>`.
pub fn libpod(rest: &str) -> String {
    format!("/v{API_VERSION}/libpod/{}", rest.trim_start_matches('/'))
}

/// The `unix://<hex socket path>:0/<path>` URI that hyperlocal's connector reads.
pub fn unix_uri(socket: &Path, path_and_query: &str) -> Result<hyper::Uri, hyper::http::Error> {
    let mut host = String::with_capacity(socket.as_os_str().len() * 2);
    for b in socket.to_string_lossy().bytes() {
        let _ = write!(host, "{b:02x}");
    }
    hyper::Uri::builder()
        .scheme("unix")
        .authority(format!("{host}:0"))
        .path_and_query(path_and_query)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_fully_encoded() {
        assert_eq!(segment("web_1"), "web_1");
        assert_eq!(segment("a/b c?"), "a%2Fb%20c%3F");
        assert_eq!(segment("é"), "%C3%A9");
    }

    #[test]
    fn image_references_keep_their_shape() {
        assert_eq!(
            image_ref("127.0.0.1:5000/magos/httpd:1@sha256:ab"),
            "127.0.0.1:5000/magos/httpd:1@sha256:ab"
        );
        assert_eq!(image_ref("a b"), "a%20b");
    }

    #[test]
    fn queries_encode_keys_values_and_filters() {
        let mut f = BTreeMap::new();
        f.insert(
            "label".to_owned(),
            vec!["com.docker.compose.project=web".to_owned()],
        );
        let q = Query::new()
            .push("all", "true")
            .push_opt("timeout", Some("10"))
            .push_opt("none", None::<&str>)
            .filters(&f);
        assert_eq!(
            q.apply("/x"),
            "/x?all=true&timeout=10&filters=%7B%22label%22%3A%5B%22com.docker.compose.project%3Dweb%22%5D%7D"
        );
        assert_eq!(Query::new().filters(&BTreeMap::new()).apply("/y"), "/y");
    }

    #[test]
    fn libpod_paths_are_versioned() {
        assert_eq!(libpod("containers/json"), "/v5.0.0/libpod/containers/json");
        assert_eq!(libpod("/_ping"), "/v5.0.0/libpod/_ping");
    }

    #[test]
    fn unix_uris_carry_the_socket_in_hex() {
        let uri = unix_uri(Path::new("/a.sock"), "/v5.0.0/libpod/_ping?x=1").unwrap();
        assert_eq!(
            uri.to_string(),
            "unix://2f612e736f636b:0/v5.0.0/libpod/_ping?x=1"
        );
        assert!(unix_uri(Path::new("/a.sock"), "/bad path").is_err());
    }
}
