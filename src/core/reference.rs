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

/// A content digest: `sha256:` followed by 64 lower-case hexadecimal digits (what
/// a compose file pins and Magos writes), or, for content a registry serves,
/// `sha512:` followed by 128 ([`Digest::parse_any`]). Checked once where it is
/// read; serialised as its text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Digest(String);

/// Why a digest a registry served (or a caller gave) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a digest ({reason})")]
pub struct DigestError {
    input: String,
    reason: &'static str,
}

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

    /// Reads `algorithm:hex` as registries serve it: `sha256` (64 hex digits)
    /// or `sha512` (128), lower-case.
    pub fn parse_any(input: &str) -> Result<Self, DigestError> {
        let err = |reason| DigestError {
            input: input.chars().take(140).collect(),
            reason,
        };
        let (algorithm, hex) = input.split_once(':').ok_or_else(|| err("no `:`"))?;
        let len = match algorithm {
            "sha256" => 64,
            "sha512" => 128,
            _ => return Err(err("only sha256 and sha512 are supported")),
        };
        if hex.len() != len {
            return Err(err("wrong length"));
        }
        if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            return Err(err("not lower-case hexadecimal"));
        }
        Ok(Self(input.to_owned()))
    }

    /// This digest, when it is one a compose file may pin (`sha256`); a
    /// registry's `sha512` digest is refused as [`Digest::parse`] refuses it.
    pub fn pinnable(&self) -> Result<&Self, ReferenceError> {
        if self.0.starts_with("sha256:") {
            Ok(self)
        } else {
            Err(ReferenceError::new(
                &self.0,
                "a digest must be `sha256:` followed by 64 lower-case hex digits",
            ))
        }
    }

    /// The sha256 digest of some bytes.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(format!("sha256:{}", hex(&sha2::Sha256::digest(bytes))))
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn recompute(&self, bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        if self.0.starts_with("sha512:") {
            Self(format!("sha512:{}", hex(&sha2::Sha512::digest(bytes))))
        } else {
            Self::sha256_of(bytes)
        }
    }

    /// The digest text, `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
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

    /// The fully qualified repository, `docker.io/library/nginx`: the key of a
    /// tag listing.
    pub fn repository_key(&self) -> String {
        format!("{}/{}", self.registry, self.path)
    }

    /// The same image in its normalised spelling: the name is
    /// `registry/path`, and the tag the effective one (`latest` unless only a
    /// digest is given). It displays as [`ImageRef::normalized`], and two
    /// spellings of one image are equal once canonical (the registry edge's
    /// form, the key of what a check remembers).
    pub fn canonical(&self) -> Self {
        Self {
            name: self.repository_key(),
            registry: self.registry.clone(),
            path: self.path.clone(),
            tag: self.effective_tag().map(str::to_owned),
            digest: self.digest.clone(),
        }
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same reference pinned to a digest (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// What goes after `/manifests/` in the distribution API: the digest when
    /// there is one, else the effective tag.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, self.effective_tag()) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
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
        let mut s = self.repository_key();
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

    #[test]
    fn edge_cases_of_the_one_reference_type() {
        // A registry with a port, no tag: the port is the registry's, not a tag.
        let r = ImageRef::parse("registry.local:5000/team/app").unwrap();
        assert_eq!(r.registry, "registry.local:5000");
        assert_eq!(r.path, "team/app");
        assert_eq!(r.tag, None);
        assert_eq!(r.effective_tag(), Some("latest"));
        assert_eq!(r.manifest_reference(), "latest");
        assert_eq!(r.to_string(), "registry.local:5000/team/app");
        // A registry with a port and a tag.
        let r = ImageRef::parse("127.0.0.1:5000/a:1.2").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.tag.as_deref(), Some("1.2"));
        // Digest only: no effective tag, the digest is what a manifest asks.
        let r = ImageRef::parse(&format!("127.0.0.1:5000/a@{D}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.effective_tag(), None);
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.canonical().to_string(), format!("127.0.0.1:5000/a@{D}"));
        // Tag and digest: both kept, the digest wins for a manifest.
        let r = ImageRef::parse(&format!("ghcr.io/o/app:1@{D}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.digest.as_ref().map(Digest::as_str), Some(D));
        assert_eq!(r.manifest_reference(), D);
        assert_eq!(r.to_string(), format!("ghcr.io/o/app:1@{D}"));
        assert_eq!(r.with_tag("2").to_string(), "ghcr.io/o/app:2");
        // Upper-case and otherwise invalid digests are refused, naming the rule.
        for bad in [
            format!("nginx@{}", D.to_uppercase()),
            format!("nginx@sha256:{}", "A".repeat(64)),
            "nginx@sha256:".to_owned(),
            "nginx@sha256".to_owned(),
            format!("nginx@{D}@{D}"),
            format!("nginx@sha256:{}g", &D[7..70]),
        ] {
            let e = ImageRef::parse(&bad).unwrap_err();
            assert!(e.reason.contains("digest"), "{bad}: {e}");
        }
    }

    #[test]
    fn canonical_spellings_are_equal_and_display_normalised() {
        let short = ImageRef::parse("nginx").unwrap().canonical();
        let long = ImageRef::parse("docker.io/library/nginx:latest")
            .unwrap()
            .canonical();
        assert_eq!(short, long);
        assert_eq!(short.to_string(), "docker.io/library/nginx:latest");
        assert_eq!(short.to_string(), short.normalized());
        assert_ne!(ImageRef::parse("nginx").unwrap(), short, "spelling kept");
    }

    #[test]
    fn digests_served_by_registries() {
        assert!(Digest::parse_any(&format!("sha256:{}", "0".repeat(64))).is_ok());
        let d512 = Digest::parse_any(&format!("sha512:{}", "f".repeat(128))).unwrap();
        assert!(d512.pinnable().is_err(), "only sha256 is pinned");
        assert!(Digest::parse(d512.as_str()).is_err());
        assert!(Digest::parse_any(D).unwrap().pinnable().is_ok());
        for (bad, why) in [
            (
                format!("sha256:{}", "A".repeat(64)),
                "not lower-case hexadecimal",
            ),
            ("sha256:abc".to_owned(), "wrong length"),
            ("md5:abc".to_owned(), "only sha256 and sha512 are supported"),
            ("nocolon".to_owned(), "no `:`"),
        ] {
            let e = Digest::parse_any(&bad).unwrap_err().to_string();
            assert_eq!(e, format!("`{bad}` is not a digest ({why})"));
        }
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(d512.recompute(b"").as_str().len(), 7 + 128);
        assert_eq!(
            serde_json::to_string(&Digest::parse(D).unwrap()).unwrap(),
            format!("\"{D}\"")
        );
    }
}
