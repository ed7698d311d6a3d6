//! Manifests as Magos reads them: a single image (with its config digest) or an
//! index of platform manifests, parsed from the bytes a registry served and
//! checked against their digest. Pure: no I/O.

use oci_client::manifest::{
    IMAGE_MANIFEST_LIST_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_INDEX_MEDIA_TYPE,
    OCI_IMAGE_MEDIA_TYPE, OciManifest,
};
use serde::Serialize;

use super::RegistryError;
use super::reference::{Digest, ImageRef, Platform};

/// A manifest as the registry serves it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Manifest {
    /// The digest of this manifest: for a multi-arch image, the index digest
    /// (what `podman pull` of the reference records and what a pin uses).
    pub digest: Digest,
    /// Its media type.
    pub media_type: String,
    /// A single image or an index.
    pub kind: ManifestKind,
}

/// The two shapes of a manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum ManifestKind {
    /// One image, with the digest of its config blob.
    Image {
        /// The config blob's digest.
        config: Digest,
    },
    /// An index (OCI index or Docker manifest list) of platform manifests.
    Index {
        /// The entries, in the registry's order.
        entries: Vec<IndexEntry>,
    },
}

/// One platform manifest of an index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IndexEntry {
    /// The platform, when the index names one.
    pub platform: Option<Platform>,
    /// The platform manifest's digest.
    pub digest: Digest,
}

impl Manifest {
    /// The entry of an index for `platform`; a single image has none.
    pub fn platform_entry(&self, platform: &Platform) -> Option<&IndexEntry> {
        match &self.kind {
            ManifestKind::Image { .. } => None,
            ManifestKind::Index { entries } => entries.iter().find(|e| {
                e.platform
                    .as_ref()
                    .is_some_and(|p| platform.matches(&p.os, &p.architecture, p.variant.as_deref()))
            }),
        }
    }

    /// The digest to run on `platform`: an index's entry for it, or a single
    /// image's own digest. `image` names the reference in the error.
    pub fn platform_digest(
        &self,
        image: &ImageRef,
        platform: &Platform,
    ) -> Result<Digest, RegistryError> {
        match &self.kind {
            ManifestKind::Image { .. } => Ok(self.digest.clone()),
            ManifestKind::Index { .. } => self
                .platform_entry(platform)
                .map(|e| e.digest.clone())
                .ok_or_else(|| RegistryError::NoPlatform {
                    reference: image.to_string(),
                    platform: platform.to_string(),
                    available: self.platforms(),
                }),
        }
    }

    /// The platforms an index lists, as `os/arch[/variant]`, comma separated.
    pub fn platforms(&self) -> String {
        match &self.kind {
            ManifestKind::Image { .. } => String::new(),
            ManifestKind::Index { entries } => entries
                .iter()
                .filter_map(|e| e.platform.as_ref().map(ToString::to_string))
                .collect::<Vec<_>>()
                .join(", "),
        }
    }
}

/// Reads a manifest body. `requested` is the digest the reference named and
/// `claimed` the registry's `Docker-Content-Digest`; the body must hash to both.
/// The error says what is wrong, without quoting the body.
pub fn parse_manifest(
    body: &[u8],
    content_type: Option<&str>,
    requested: Option<&Digest>,
    claimed: Option<&Digest>,
) -> Result<Manifest, String> {
    let digest = match requested.or(claimed) {
        Some(d) => d.recompute(body),
        None => Digest::sha256_of(body),
    };
    for expected in [requested, claimed].into_iter().flatten() {
        let same_algorithm =
            expected.as_str().split(':').next() == digest.as_str().split(':').next();
        if same_algorithm && expected != &digest {
            return Err(format!(
                "the content's digest {digest} does not match {expected}"
            ));
        }
    }
    let versioned: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("not a manifest: {e}"))?;
    match versioned.get("schemaVersion").and_then(|v| v.as_u64()) {
        Some(2) => {}
        Some(v) => return Err(format!("manifest schema version {v} is not supported")),
        None => return Err("not a manifest: no schemaVersion".to_owned()),
    }
    let content_type = content_type.map(|v| v.split(';').next().unwrap_or(v).trim().to_owned());
    let media_type = versioned
        .get("mediaType")
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or(content_type)
        .unwrap_or_default();
    let parsed: OciManifest =
        serde_json::from_value(versioned).map_err(|e| format!("not a manifest: {e}"))?;
    let kind = match parsed {
        OciManifest::Image(m) => {
            if !media_type.is_empty()
                && media_type != OCI_IMAGE_MEDIA_TYPE
                && media_type != IMAGE_MANIFEST_MEDIA_TYPE
            {
                return Err(format!("unsupported media type {media_type}"));
            }
            ManifestKind::Image {
                config: Digest::parse_any(&m.config.digest).map_err(|e| format!("config: {e}"))?,
            }
        }
        OciManifest::ImageIndex(index) => {
            if !media_type.is_empty()
                && media_type != OCI_IMAGE_INDEX_MEDIA_TYPE
                && media_type != IMAGE_MANIFEST_LIST_MEDIA_TYPE
            {
                return Err(format!("unsupported media type {media_type}"));
            }
            let mut entries = Vec::with_capacity(index.manifests.len());
            for (i, e) in index.manifests.into_iter().enumerate() {
                entries.push(IndexEntry {
                    platform: e.platform.map(|p| Platform {
                        os: p.os.to_string(),
                        architecture: p.architecture.to_string(),
                        variant: p.variant,
                    }),
                    digest: Digest::parse_any(&e.digest)
                        .map_err(|e| format!("manifests[{i}]: {e}"))?,
                });
            }
            ManifestKind::Index { entries }
        }
    };
    Ok(Manifest {
        digest,
        media_type,
        kind,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(c: char) -> String {
        format!("sha256:{}", c.to_string().repeat(64))
    }

    const IMAGE: &str = r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":2},"layers":[]}"#;

    fn index(entries: &str) -> String {
        format!(
            r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{entries}]}}"#
        )
    }

    #[test]
    fn images_and_indexes() {
        let m = parse_manifest(IMAGE.as_bytes(), None, None, None).unwrap();
        assert_eq!(m.digest, Digest::sha256_of(IMAGE.as_bytes()));
        assert_eq!(
            m.kind,
            ManifestKind::Image {
                config: Digest::parse_any(&d('1')).unwrap()
            }
        );
        let body = index(&format!(
            r#"{{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1,"platform":{{"architecture":"arm64","os":"linux","variant":"v8"}}}},
               {{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"{}","size":1}}"#,
            d('2'),
            d('3')
        ));
        let m = parse_manifest(
            body.as_bytes(),
            Some("application/json; charset=utf-8"),
            None,
            None,
        )
        .unwrap();
        let ManifestKind::Index { entries } = &m.kind else {
            panic!("{m:?}")
        };
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[0].platform.as_ref().unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(entries[1].platform, None);
        assert_eq!(m.platforms(), "linux/arm64/v8");
        // A Docker manifest list without mediaType in the body: from Content-Type.
        let list = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"x","digest":"{}","size":1}}]}}"#,
            d('4')
        );
        let m = parse_manifest(
            list.as_bytes(),
            Some(IMAGE_MANIFEST_LIST_MEDIA_TYPE),
            None,
            None,
        )
        .unwrap();
        assert_eq!(m.media_type, IMAGE_MANIFEST_LIST_MEDIA_TYPE);
    }

    #[test]
    fn digests_must_match_the_content() {
        let right = Digest::sha256_of(IMAGE.as_bytes());
        let wrong = Digest::parse_any(&d('9')).unwrap();
        assert!(parse_manifest(IMAGE.as_bytes(), None, Some(&right), Some(&right)).is_ok());
        let e = parse_manifest(IMAGE.as_bytes(), None, None, Some(&wrong)).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let e = parse_manifest(IMAGE.as_bytes(), None, Some(&wrong), None).unwrap_err();
        assert!(e.contains("does not match"), "{e}");
        let sha512 = Digest::parse_any(&format!("sha512:{}", "0".repeat(128))).unwrap();
        let e = parse_manifest(IMAGE.as_bytes(), None, Some(&sha512), None).unwrap_err();
        assert!(e.contains("sha512:"), "{e}");
    }

    #[test]
    fn malformed_manifests_are_errors() {
        let cases: &[(&str, &str)] = &[
            ("", "not a manifest"),
            ("<html>", "not a manifest"),
            ("{}", "no schemaVersion"),
            (r#"{"schemaVersion":1,"fsLayers":[]}"#, "schema version 1"),
            (r#"{"schemaVersion":2}"#, "not a manifest"),
            (
                r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"m","digest":"sha256:zz","size":1}]}"#,
                "manifests[0]",
            ),
            (
                r#"{"schemaVersion":2,"mediaType":"text/plain","config":{"mediaType":"c","digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111","size":1},"layers":[]}"#,
                "unsupported media type text/plain",
            ),
            (
                r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"nope","size":1},"layers":[]}"#,
                "config:",
            ),
        ];
        for (body, expect) in cases {
            let e = parse_manifest(body.as_bytes(), None, None, None).unwrap_err();
            assert!(e.contains(expect), "{body}: {e}");
        }
    }

    #[test]
    fn platform_entries() {
        let d = |c: char| Digest::parse_any(&d(c)).unwrap();
        let m = Manifest {
            digest: d('0'),
            media_type: OCI_IMAGE_INDEX_MEDIA_TYPE.into(),
            kind: ManifestKind::Index {
                entries: vec![
                    IndexEntry {
                        platform: Some(Platform::parse("linux/amd64").unwrap()),
                        digest: d('1'),
                    },
                    IndexEntry {
                        platform: Some(Platform::parse("linux/arm64/v8").unwrap()),
                        digest: d('2'),
                    },
                    IndexEntry {
                        platform: None,
                        digest: d('3'),
                    },
                ],
            },
        };
        assert_eq!(
            m.platform_entry(&Platform::parse("linux/arm64").unwrap())
                .unwrap()
                .digest,
            d('2')
        );
        assert_eq!(
            m.platform_entry(&Platform::parse("linux/amd64").unwrap())
                .unwrap()
                .digest,
            d('1')
        );
        assert!(
            m.platform_entry(&Platform::parse("linux/s390x").unwrap())
                .is_none()
        );
        assert_eq!(m.platforms(), "linux/amd64, linux/arm64/v8");
    }
}
