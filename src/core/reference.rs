//! Image references (`nginx`, `ghcr.io/o/app:1.2@sha256:…`): parsing, podman's
//! normalisation (`nginx` → `docker.io/library/nginx:latest`) and the pinned form
//! written back, which keeps the user's own spelling of the name.

use std::fmt;

/// The registry a name without a registry host belongs to, as in podman.
pub const DEFAULT_REGISTRY: &str = "docker.io";

/// A parsed image reference. The name is kept exactly as written, so a rewrite of
/// `nginx:1.25` stays `nginx:…` and never becomes `docker.io/library/nginx:…`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageRef {
    /// The name as written, without tag or digest (`nginx`, `ghcr.io/o/app`).
    pub name: String,
    /// The registry host (`docker.io` when the name has none), with its port.
    pub registry: String,
    /// The repository path inside the registry (`library/nginx`).
    pub path: String,
    /// The tag, when one is written.
    pub tag: Option<String>,
    /// The digest, when one is written (`sha256:` + 64 lower-case hex).
    pub digest: Option<Digest>,
}

/// A content digest: `sha256:` followed by 64 lower-case hexadecimal digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest(String);

impl Digest {
    /// Checks and wraps a digest.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        let Some(hex) = text.strip_prefix("sha256:") else {
            return Err(ReferenceError::new(
                text,
                "a digest must be `sha256:` followed by 64 lower-case hex digits",
            ));
        };
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(ReferenceError::new(
                text,
                "a digest must be `sha256:` followed by 64 lower-case hex digits",
            ));
        }
        Ok(Self(text.to_owned()))
    }

    /// The digest text, `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ImageRef {
    /// Parses a reference as podman reads it from a compose file.
    pub fn parse(text: &str) -> Result<Self, ReferenceError> {
        if text.is_empty() {
            return Err(ReferenceError::new(text, "the image reference is empty"));
        }
        if text.len() > 4096 {
            return Err(ReferenceError::new(text, "the image reference is too long"));
        }
        if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(ReferenceError::new(
                text,
                if c.is_whitespace() {
                    "an image reference cannot contain white space"
                } else {
                    "an image reference cannot contain control characters"
                },
            ));
        }
        let (rest, digest) = match text.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|e| ReferenceError::new(text, e.reason))?),
            ),
            None => (text, None),
        };
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
            None => (rest, None),
        };
        if let Some(tag) = tag {
            check_tag(tag).map_err(|reason| ReferenceError::new(text, reason))?;
        }
        let (registry, path) = split_registry(name);
        if let Some(host) = registry {
            check_host(host).map_err(|reason| ReferenceError::new(text, reason))?;
        }
        if path.is_empty() {
            return Err(ReferenceError::new(text, "the image name is empty"));
        }
        for component in path.split('/') {
            check_component(component).map_err(|reason| ReferenceError::new(text, reason))?;
        }
        let registry = match registry {
            None | Some("index.docker.io") => DEFAULT_REGISTRY.to_owned(),
            Some(h) => h.to_owned(),
        };
        let path = if registry == DEFAULT_REGISTRY && !path.contains('/') {
            format!("library/{path}")
        } else {
            path.to_owned()
        };
        Ok(Self {
            name: name.to_owned(),
            registry,
            path,
            tag: tag.map(str::to_owned),
            digest,
        })
    }

    /// The fully qualified repository, `docker.io/library/nginx`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The tag podman would use: the written one, else `latest` unless a digest is
    /// given.
    pub fn effective_tag(&self) -> Option<&str> {
        match (&self.tag, &self.digest) {
            (Some(t), _) => Some(t),
            (None, None) => Some("latest"),
            (None, Some(_)) => None,
        }
    }

    /// The normalised form, as podman would pull it:
    /// `docker.io/library/nginx:latest`, `ghcr.io/o/app:1@sha256:…`.
    pub fn normalized(&self) -> String {
        let mut s = self.repository();
        if let Some(t) = self.effective_tag() {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// The pinned reference written back: the name as the user spelled it, the tag
    /// (kept for readability) and the digest.
    pub fn pinned(&self, tag: &str, digest: &Digest) -> String {
        format!("{}:{tag}@{digest}", self.name)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// Checks a tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`, the OCI distribution grammar.
pub fn check_tag(tag: &str) -> Result<(), &'static str> {
    let bytes = tag.as_bytes();
    if bytes.is_empty() {
        return Err("the tag after `:` is empty");
    }
    if bytes.len() > 128 {
        return Err("a tag is at most 128 characters");
    }
    if !(bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_') {
        return Err("a tag must start with a letter, digit or `_`");
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
    {
        return Err("a tag may only contain letters, digits, `_`, `.` and `-`");
    }
    Ok(())
}

/// Splits off the registry host: the first component is a host when the name has
/// more than one component and the first contains `.` or `:`, or is `localhost`
/// (the rule of podman and docker), or has upper-case letters.
fn split_registry(name: &str) -> (Option<&str>, &str) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains('.')
                || first.contains(':')
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (Some(first), rest)
        }
        _ => (None, name),
    }
}

fn check_host(host: &str) -> Result<(), &'static str> {
    let port = if let Some(inner) = host.strip_prefix('[') {
        let Some((addr, tail)) = inner.split_once(']') else {
            return Err("the registry host has an unclosed `[`");
        };
        if addr.is_empty() || !addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':') {
            return Err("the registry host is not a valid IPv6 address");
        }
        if tail.is_empty() {
            None
        } else {
            Some(
                tail.strip_prefix(':')
                    .ok_or("the registry host is not a valid IPv6 address")?,
            )
        }
    } else {
        let (h, port) = match host.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (host, None),
        };
        if h.is_empty()
            || h.starts_with(['.', '-'])
            || h.ends_with(['.', '-'])
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
        {
            return Err("the registry host is not a valid host name");
        }
        port
    };
    if let Some(p) = port
        && (p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()))
    {
        return Err("the registry port must be a number");
    }
    Ok(())
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_component(c: &str) -> Result<(), &'static str> {
    if c.is_empty() {
        return Err("the image name has an empty path component");
    }
    if c.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err("an image name must be lower-case");
    }
    let bytes = c.as_bytes();
    if !bytes[0].is_ascii_alphanumeric() || !bytes[bytes.len() - 1].is_ascii_alphanumeric() {
        return Err("an image name component must start and end with a letter or digit");
    }
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b.is_ascii_lowercase() || b.is_ascii_digit() {
            i += 1;
            continue;
        }
        // A separator run: `.`, `_`, `__` or one or more `-`.
        let start = i;
        while i < bytes.len() && !bytes[i].is_ascii_alphanumeric() {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return Err(
                "an image name may only contain lower-case letters, digits and separators `.`, `_`, `__`, `-`",
            );
        }
    }
    Ok(())
}

/// A reference that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference `{input}`: {reason}")]
pub struct ReferenceError {
    /// The reference as given.
    pub input: String,
    /// Why it is refused.
    pub reason: &'static str,
}

impl ReferenceError {
    fn new(input: &str, reason: &'static str) -> Self {
        Self {
            input: input.chars().take(200).collect(),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn normalises_like_podman() {
        let cases = [
            ("nginx", "docker.io/library/nginx:latest", "nginx"),
            ("nginx:1.25", "docker.io/library/nginx:1.25", "nginx"),
            (
                "library/nginx",
                "docker.io/library/nginx:latest",
                "library/nginx",
            ),
            (
                "grafana/grafana:10.1.0",
                "docker.io/grafana/grafana:10.1.0",
                "grafana/grafana",
            ),
            (
                "docker.io/nginx",
                "docker.io/library/nginx:latest",
                "docker.io/nginx",
            ),
            (
                "index.docker.io/nginx",
                "docker.io/library/nginx:latest",
                "index.docker.io/nginx",
            ),
            (
                "ghcr.io/o/app:0.0.1",
                "ghcr.io/o/app:0.0.1",
                "ghcr.io/o/app",
            ),
            ("localhost/app", "localhost/app:latest", "localhost/app"),
            (
                "127.0.0.1:5000/magos/semver:v1.2.3",
                "127.0.0.1:5000/magos/semver:v1.2.3",
                "127.0.0.1:5000/magos/semver",
            ),
            (
                "registry:5000/a/b",
                "registry:5000/a/b:latest",
                "registry:5000/a/b",
            ),
            ("[::1]:5000/a", "[::1]:5000/a:latest", "[::1]:5000/a"),
            (
                "my-org/my__app.x",
                "docker.io/my-org/my__app.x:latest",
                "my-org/my__app.x",
            ),
        ];
        for (input, normalized, name) in cases {
            let r = ImageRef::parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.normalized(), normalized, "{input}");
            assert_eq!(r.name, name, "{input}");
            assert_eq!(r.to_string(), input, "{input} displays as written");
        }
    }

    #[test]
    fn digests() {
        let r = ImageRef::parse(&format!("nginx:1.25@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1.25"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), D);
        assert_eq!(r.normalized(), format!("docker.io/library/nginx:1.25@{D}"));
        let r = ImageRef::parse(&format!("nginx@{D}")).unwrap();
        assert_eq!(r.effective_tag(), None);
        assert_eq!(r.normalized(), format!("docker.io/library/nginx@{D}"));
        assert_eq!(
            r.pinned("1.26", r.digest.as_ref().unwrap()),
            format!("nginx:1.26@{D}")
        );
    }

    #[test]
    fn refuses_bad_references() {
        let upper = D.to_uppercase().replace("SHA256", "sha256");
        let bad = [
            "".to_owned(),
            "nginx:".to_owned(),
            "nginx@sha256:abc".to_owned(),
            format!("nginx@{upper}"),
            format!("nginx@sha512:{}", "a".repeat(128)),
            "Nginx".to_owned(),
            "nginx:-x".to_owned(),
            "nginx:a b".to_owned(),
            "ngi nx".to_owned(),
            "a//b".to_owned(),
            "a/b/".to_owned(),
            "-a".to_owned(),
            "a..b".to_owned(),
            "ghcr.io/".to_owned(),
            "host:x/a".to_owned(),
            "[::1/a".to_owned(),
            format!("nginx:{}", "a".repeat(129)),
        ];
        for input in bad {
            assert!(
                ImageRef::parse(&input).is_err(),
                "{input} should be refused"
            );
        }
    }

    #[test]
    fn digest_rule() {
        assert!(Digest::parse(D).is_ok());
        assert!(Digest::parse(&D[..70]).is_err());
        assert!(Digest::parse(&D.replace("sha256", "sha512")).is_err());
        assert!(Digest::parse(&format!("{D}0")).is_err());
    }
}
