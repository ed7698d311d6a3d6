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

pub use crate::core::reference::{Digest, DigestError, ImageRef};

/// Reads a reference given to the registry edge (a compose `image:` line, a
/// signature's `docker-reference`) into its canonical form
/// ([`ImageRef::canonical`]): no host means `docker.io`, a one-part Docker Hub
/// name gets `library/`, and neither tag nor digest means `:latest`. Leading
/// and trailing white space is ignored, and a digest may be `sha512`.
///
/// The grammar is checked by hand ([`crate::core::reference`]) rather than
/// with the distribution spec's regular expression: with Unicode `\w` that
/// expression compiles to megabytes, plus a search cache of about 8 MB in
/// every thread that parses, which a long-running daemon would keep.
pub fn parse_image(input: &str) -> Result<ImageRef, RegistryError> {
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
            Some(Digest::parse_any(digest).map_err(|e| bad(e.to_string()))?),
        ),
        None => (trimmed, None),
    };
    let parsed = ImageRef::parse(named).map_err(|e| bad(e.reason.to_owned()))?;
    if parsed.name.chars().any(|c| c.is_ascii_uppercase()) {
        return Err(bad("repository names must be lower-case".to_owned()));
    }
    if parsed.name.len() > NAME_MAX {
        return Err(bad(format!(
            "the name is longer than {NAME_MAX} characters"
        )));
    }
    let parsed = match digest {
        Some(d) => parsed.with_digest(d),
        None => parsed,
    };
    Ok(parsed.canonical())
}

/// The host serving the distribution API of a registry name.
pub fn api_host(registry: &str) -> &str {
    match registry {
        DOCKER_HUB | "index.docker.io" => DOCKER_HUB_API,
        other => other,
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
        let r = parse_image("nginx").unwrap();
        assert_eq!(r.registry, "docker.io");
        assert_eq!(api_host(&r.registry), "registry-1.docker.io");
        assert_eq!(r.path, "library/nginx");
        assert_eq!(r.tag.as_deref(), Some("latest"));
        let r = parse_image("grafana/grafana:10.1").unwrap();
        assert_eq!(r.path, "grafana/grafana");
        assert_eq!(api_host(&r.registry), "registry-1.docker.io");
        let r = parse_image("docker.io/library/redis:7").unwrap();
        assert_eq!(r.repository_key(), "docker.io/library/redis");
        let r = parse_image("index.docker.io/library/redis:7").unwrap();
        assert_eq!(r.registry, "docker.io");
    }

    #[test]
    fn other_registries_keep_their_host_and_port() {
        let r = parse_image("127.0.0.1:5000/magos/semver:1.2.3").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(api_host(&r.registry), "127.0.0.1:5000");
        assert_eq!(r.path, "magos/semver");
        assert_eq!(r.manifest_reference(), "1.2.3");
        let r = parse_image("localhost/app").unwrap();
        assert_eq!(r.registry, "localhost");
        let r = parse_image("ghcr.io/org/team/app:v1").unwrap();
        assert_eq!(r.path, "org/team/app");
    }

    #[test]
    fn digests_are_kept_and_preferred_for_manifests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = parse_image(&format!("ghcr.io/o/a:1@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d);
        assert_eq!(r.manifest_reference(), d);
        assert_eq!(r.to_string(), format!("ghcr.io/o/a:1@{d}"));
        let r = parse_image(&format!("ghcr.io/o/a@{d}")).unwrap();
        assert_eq!(r.tag.as_deref(), None);
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
            let e = parse_image(bad).unwrap_err().to_string();
            assert!(e.contains(&format!("`{bad}`")), "{e}");
        }
    }

    #[test]
    fn grammar_edges() {
        let d512 = format!("sha512:{}", "b".repeat(128));
        let r = parse_image(&format!("ghcr.io/o/a@{d512}")).unwrap();
        assert_eq!(r.digest.as_ref().unwrap().as_str(), d512);
        let r = parse_image("  ghcr.io/o/a:1  ").unwrap();
        assert_eq!(r.tag.as_deref(), Some("1"));
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
            assert!(parse_image(bad).is_err(), "{bad}");
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
            let ours = parse_image(&text).unwrap();
            let theirs = oci_client::Reference::try_from(text.as_str()).unwrap();
            prop_assert_eq!(ours.registry.as_str(), theirs.registry());
            prop_assert_eq!(ours.path.as_str(), theirs.repository());
            prop_assert_eq!(ours.digest.as_ref().map(Digest::as_str), theirs.digest());
            if digest.is_none() || tag.is_some() {
                prop_assert_eq!(ours.tag.as_deref(), Some(theirs.tag().unwrap_or("latest")));
            } else {
                prop_assert_eq!(ours.tag.as_deref(), None);
            }
        });
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
