//! Image references, digests and platforms as the registry edge sees them: which
//! host to ask, which repository, which tag or digest.

use std::fmt;

use super::RegistryError;

/// The registry name a reference without a host belongs to.
pub const DOCKER_HUB: &str = "docker.io";

/// The longest name (host and repository path) a reference may have, as in the
/// distribution specification.
const NAME_MAX: usize = 255;

/// The host Docker Hub's distribution API answers on.
pub const DOCKER_HUB_API: &str = "registry-1.docker.io";

/// A parsed image reference (`ghcr.io/org/app:1.2`, `nginx`, `host:5000/a/b@sha256:…`),
/// normalised the way Podman does: no host means `docker.io`, and a one-part
/// Docker Hub name gets `library/`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// The registry as named (`docker.io`, `ghcr.io`, `127.0.0.1:5000`): the key of
    /// credentials and of `registries.conf` entries.
    registry: String,
    /// `library/nginx`, `org/app`.
    repository: String,
    /// The tag, when the reference names one.
    tag: Option<String>,
    /// The digest, when the reference names one.
    digest: Option<Digest>,
}

impl ImageRef {
    /// Parses a reference as written on a compose `image:` line. A reference with
    /// neither tag nor digest means `:latest`.
    ///
    /// The grammar is checked by hand ([`crate::core::reference`]) rather than
    /// with the distribution spec's regular expression: with Unicode `\w` that
    /// expression compiles to megabytes, plus a search cache of about 8 MB in
    /// every thread that parses, which a long-running daemon would keep.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        let bad = |message: String| RegistryError::Reference {
            input: input.to_owned(),
            message,
        };
        let trimmed = input.trim();
        if trimmed.is_empty() {
            return Err(bad("the reference is empty".to_owned()));
        }
        let (named, digest) = match trimmed.split_once('@') {
            Some((named, digest)) => (
                named,
                Some(Digest::parse(digest).map_err(|e| bad(e.to_string()))?),
            ),
            None => (trimmed, None),
        };
        let parsed =
            crate::core::reference::ImageRef::parse(named).map_err(|e| bad(e.reason.to_owned()))?;
        if parsed.name.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("repository names must be lower-case".to_owned()));
        }
        if parsed.name.len() > NAME_MAX {
            return Err(bad(format!(
                "the name is longer than {NAME_MAX} characters"
            )));
        }
        let tag = match (parsed.tag, &digest) {
            (Some(t), _) => Some(t),
            (None, Some(_)) => None,
            (None, None) => Some("latest".to_owned()),
        };
        Ok(Self {
            registry: parsed.registry,
            repository: parsed.path,
            tag,
            digest,
        })
    }

    /// The same repository with another tag and no digest.
    pub fn with_tag(&self, tag: &str) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: Some(tag.to_owned()),
            digest: None,
        }
    }

    /// The same repository pinned to a digest (the tag is kept for display).
    pub fn with_digest(&self, digest: Digest) -> Self {
        Self {
            registry: self.registry.clone(),
            repository: self.repository.clone(),
            tag: self.tag.clone(),
            digest: Some(digest),
        }
    }

    /// The registry as named: `docker.io`, `ghcr.io`, `127.0.0.1:5000`.
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The host the distribution API is reached on (`docker.io` is served by
    /// `registry-1.docker.io`).
    pub fn api_host(&self) -> &str {
        api_host(&self.registry)
    }

    /// The repository path: `library/nginx`.
    pub fn repository(&self) -> &str {
        &self.repository
    }

    /// The tag, if any.
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    /// The digest, if any.
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// What goes after `/manifests/`: the digest when there is one, else the tag.
    pub fn manifest_reference(&self) -> &str {
        match (&self.digest, &self.tag) {
            (Some(d), _) => d.as_str(),
            (None, Some(t)) => t,
            (None, None) => "latest",
        }
    }

    /// `registry/repository`: the key of a tag listing.
    pub fn repository_key(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

/// The host serving the distribution API of a registry name.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        other => other,
    }
}

/// A content digest, `sha256:<64 hex>` (or `sha512:<128 hex>`), lower-case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Digest(String);

/// Why a digest string is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{input}` is not a digest ({reason})")]
pub struct DigestError {
    input: String,
    reason: &'static str,
}

impl Digest {
    /// Reads `algorithm:hex`.
    pub fn parse(input: &str) -> Result<Self, DigestError> {
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

    /// The sha256 digest of some bytes.
    pub fn sha256_of(bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        let hash = sha2::Sha256::digest(bytes);
        let mut hex = String::with_capacity(71);
        hex.push_str("sha256:");
        for b in hash.iter() {
            hex.push_str(&format!("{b:02x}"));
        }
        Self(hex)
    }

    /// The digest of `bytes` with this digest's algorithm.
    pub fn recompute(&self, bytes: &[u8]) -> Self {
        use sha2::Digest as _;
        if self.0.starts_with("sha512:") {
            let hash = sha2::Sha512::digest(bytes);
            let mut hex = String::with_capacity(135);
            hex.push_str("sha512:");
            for b in hash.iter() {
                hex.push_str(&format!("{b:02x}"));
            }
            Self(hex)
        } else {
            Self::sha256_of(bytes)
        }
    }

    /// `sha256:…`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A platform, as written `os/architecture[/variant]` (`linux/arm64/v8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
pub struct Platform {
    /// `linux`, `windows`.
    pub os: String,
    /// `amd64`, `arm64`, `arm`.
    pub architecture: String,
    /// `v7`, `v8`, when the architecture has variants.
    pub variant: Option<String>,
}

impl Platform {
    /// Reads `os/architecture[/variant]`.
    pub fn parse(input: &str) -> Result<Self, RegistryError> {
        let parts: Vec<&str> = input.split('/').collect();
        let ok = |s: &&str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: None,
            }),
            [os, arch, variant] if ok(os) && ok(arch) && ok(variant) => Ok(Self {
                os: (*os).to_owned(),
                architecture: (*arch).to_owned(),
                variant: Some((*variant).to_owned()),
            }),
            _ => Err(RegistryError::Platform {
                input: input.to_owned(),
            }),
        }
    }

    /// The platform this program runs on, in Go's names (what Podman pulls by
    /// default).
    pub fn host() -> Self {
        let architecture = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Self {
            os: std::env::consts::OS.to_owned(),
            architecture: architecture.to_owned(),
            variant: None,
        }
    }

    /// Whether an index entry's platform satisfies this one. A variant is only
    /// compared when this platform names one; `arm64` without a variant is `v8`.
    pub fn matches(&self, os: &str, architecture: &str, variant: Option<&str>) -> bool {
        if self.os != os || self.architecture != architecture {
            return false;
        }
        match &self.variant {
            None => true,
            Some(want) => {
                let have = variant.or(if architecture == "arm64" {
                    Some("v8")
                } else {
                    None
                });
                have == Some(want.as_str())
            }
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_are_normalised() {
        let r = ImageRef::parse("nginx").unwrap();
        assert_eq!(r.registry(), "docker.io");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.repository(), "library/nginx");
        assert_eq!(r.tag(), Some("latest"));
        let r = ImageRef::parse("grafana/grafana:10.1").unwrap();
        assert_eq!(r.repository(), "grafana/grafana");
        assert_eq!(r.api_host(), "registry-1.docker.io");
        let r = ImageRef::parse("docker.io/library/redis:7").unwrap();
        assert_eq!(r.repository_key(), "docker.io/library/redis");
        let r = ImageRef::parse("index.docker.io/library/redis:7").unwrap();
        assert_eq!(r.registry(), "docker.io");
    }

    #[test]
    fn other_registries_keep_their_host_and_port() {
        let r = ImageRef::parse("127.0.0.1:5000/magos/semver:1.2.3").unwrap();
        assert_eq!(r.registry(), "127.0.0.1:5000");
        assert_eq!(r.api_host(), "127.0.0.1:5000");
        assert_eq!(r.repository(), "magos/semver");
        assert_eq!(r.manifest_reference(), "1.2.3");
        let r = ImageRef::parse("localhost/app").unwrap();
        assert_eq!(r.registry(), "localhost");
        let r = ImageRef::parse("ghcr.io/org/team/app:v1").unwrap();
        assert_eq!(r.repository(), "org/team/app");
    }

    #[test]
    fn digests_are_kept_and_preferred_for_manifests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = ImageRef::parse(&format!("ghcr.io/o/a:1@{d}")).unwrap();
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.digest().unwrap().as_str(), d);
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.to_string(), format!("ghcr.io/o/a:1@{d}"));
        let r = ImageRef::parse(&format!("ghcr.io/o/a@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        let moved = r.with_tag("2");
        assert_eq!(moved.to_string(), "ghcr.io/o/a:2");
    }

    #[test]
    fn bad_references_name_the_input() {
        for bad in [
            "",
            "UPPER/case",
            "a:b:c",
            "ghcr.io/o/a@sha256:zz",
            "x@md5:abc",
        ] {
            let e = ImageRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn grammar_edges() {
        let d512 = format!("sha512:{}", "b".repeat(128));
        let r = ImageRef::parse(&format!("ghcr.io/o/a@{d512}")).unwrap();
        assert_eq!(r.digest().unwrap().as_str(), d512);
        let r = ImageRef::parse("  ghcr.io/o/a:1  ").unwrap();
        assert_eq!(r.tag(), Some("1"));
        let long = format!("ghcr.io/{}", "a".repeat(250));
        for bad in [
            long.as_str(),
            "app:\u{e9}t\u{e9}",
            "a b",
            "ghcr.io/o/a:",
            "ghcr.io//a",
            "-app",
            "app@",
            "GHCR.io/o/a",
        ] {
            assert!(ImageRef::parse(bad).is_err(), "{bad}");
        }
    }

    /// The distribution specification's reference grammar, as `oci-client`
    /// implements it with its regular expression, is the oracle for every
    /// well-formed reference.
    #[test]
    fn agrees_with_oci_client_on_well_formed_references() {
        use proptest::prelude::*;
        let component = "[a-z0-9]{1,4}((\\.|_|__|-{1,2})[a-z0-9]{1,4}){0,2}";
        let host = prop_oneof![
            Just(None),
            Just(Some("localhost".to_owned())),
            Just(Some("localhost:5000".to_owned())),
            "[a-z0-9]{1,5}(\\.[a-z0-9]{1,5}){1,2}(:[0-9]{1,5})?".prop_map(Some),
        ];
        let path = proptest::collection::vec(component, 1..4).prop_map(|c| c.join("/"));
        let tag = proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}");
        let digest = proptest::option::of("[0-9a-f]{64}".prop_map(|h| format!("sha256:{h}")));
        proptest!(|(host in host, path in path, tag in tag, digest in digest)| {
            // Without a host, a first component with a `.` is read as one.
            prop_assume!(host.is_some() || !path.split('/').next().unwrap_or("").contains('.'));
            let mut text = host.map(|h| format!("{h}/")).unwrap_or_default();
            text.push_str(&path);
            if let Some(t) = &tag {
                text.push(':');
                text.push_str(t);
            }
            if let Some(d) = &digest {
                text.push('@');
                text.push_str(d);
            }
            let ours = ImageRef::parse(&text).unwrap();
            let theirs = oci_client::Reference::try_from(text.as_str()).unwrap();
            prop_assert_eq!(ours.registry(), theirs.registry());
            prop_assert_eq!(ours.repository(), theirs.repository());
            prop_assert_eq!(ours.digest().map(Digest::as_str), theirs.digest());
            if digest.is_none() || tag.is_some() {
                prop_assert_eq!(ours.tag(), Some(theirs.tag().unwrap_or("latest")));
            } else {
                prop_assert_eq!(ours.tag(), None);
            }
        });
    }

    #[test]
    fn digest_parsing() {
        assert!(Digest::parse(&format!("sha256:{}", "0".repeat(64))).is_ok());
        assert!(Digest::parse(&format!("sha512:{}", "f".repeat(128))).is_ok());
        assert!(Digest::parse(&format!("sha256:{}", "A".repeat(64))).is_err());
        assert!(Digest::parse("sha256:abc").is_err());
        assert!(Digest::parse("md5:abc").is_err());
        assert!(Digest::parse("nocolon").is_err());
        assert_eq!(
            Digest::sha256_of(b"").as_str(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn platforms() {
        let p = Platform::parse("linux/arm64/v8").unwrap();
        assert_eq!(p.to_string(), "linux/arm64/v8");
        assert!(p.matches("linux", "arm64", None));
        assert!(p.matches("linux", "arm64", Some("v8")));
        assert!(!p.matches("linux", "arm64", Some("v9")));
        let p = Platform::parse("linux/arm").unwrap();
        assert!(p.matches("linux", "arm", Some("v7")));
        assert!(!p.matches("linux", "amd64", None));
        for bad in ["linux", "linux//v7", "a/b/c/d", ""] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
    }
}
