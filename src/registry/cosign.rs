//! Cosign signatures, key-based: the check of one candidate digest with the
//! `verify:` keys (`keys.rs`). Cosign stores the signatures of `repo@sha256:H` as the
//! image `repo:sha256-H.sig`, one layer per signature: the layer is the
//! simple-signing payload (JSON naming the signed manifest digest and the
//! repository), its annotation `dev.cosignproject.cosign/signature` the
//! base64 ECDSA-SHA256 signature of that payload.
//!
//! Signed with `--registry-referrers-mode=oci-1-1`, the same manifest is an OCI
//! 1.1 referrer of the candidate instead (artifact type
//! `application/vnd.dev.cosign.artifact.sig.v1+json`, `subject` the candidate):
//! listed by the registry's referrers API, or, where the registry has none, in
//! the image index tagged `sha256-H` (the referrers tag schema) that cosign
//! keeps there. All three places are read.

use base64::Engine as _;
use p256::ecdsa::Signature;
use p256::ecdsa::signature::Verifier as _;
use serde::Deserialize;

use super::RegistryError;
use super::check::Check;
use super::keys::VerifyKey;
use super::reference::{Digest, ImageRef, api_host, parse_image};
use crate::core::signature::Verdict;

/// The media type of a simple-signing payload layer.
const PAYLOAD_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// The layer annotation holding the signature.
const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// Largest signature manifest and payload accepted.
const LIMIT: usize = 256 << 10;
/// Signature layers looked at per candidate, at most.
const MAX_LAYERS: usize = 16;
/// The artifact type of a cosign signature stored as an OCI 1.1 referrer.
pub const SIGNATURE_ARTIFACT: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

#[derive(Deserialize)]
struct Index {
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(rename = "artifactType", default)]
    artifact_type: Option<String>,
}

/// The digests of the cosign signature manifests an image index of referrers
/// (the referrers API's answer, or the referrers tag schema's index) lists, at
/// most [`MAX_LAYERS`]. Pure.
pub fn signature_referrers(index: &[u8]) -> Result<Vec<Digest>, String> {
    let index: Index =
        serde_json::from_slice(index).map_err(|e| format!("not an image index: {e}"))?;
    Ok(index
        .manifests
        .iter()
        .filter(|d| d.artifact_type.as_deref() == Some(SIGNATURE_ARTIFACT))
        .filter_map(|d| Digest::parse_any(&d.digest).ok())
        .take(MAX_LAYERS)
        .collect())
}

#[derive(Deserialize)]
struct SigManifest {
    #[serde(default)]
    layers: Vec<SigLayer>,
}

#[derive(Deserialize)]
struct SigLayer {
    #[serde(rename = "mediaType", default)]
    media_type: String,
    digest: String,
    #[serde(default)]
    annotations: std::collections::BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct Payload {
    critical: Critical,
}

#[derive(Deserialize)]
struct Critical {
    identity: Identity,
    image: PayloadImage,
}

#[derive(Deserialize)]
struct Identity {
    #[serde(rename = "docker-reference")]
    docker_reference: String,
}

#[derive(Deserialize)]
struct PayloadImage {
    #[serde(rename = "docker-manifest-digest")]
    docker_manifest_digest: String,
}

/// What one signature layer says about `digest` of `repository` under `keys`:
/// `Ok(fingerprint)` when valid, else why not. Pure.
pub fn judge(
    payload: &[u8],
    signature_b64: &str,
    repository: &ImageRef,
    digest: &Digest,
    keys: &[&VerifyKey],
) -> Result<String, String> {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(signature_b64.trim())
        .map_err(|_| "the signature annotation is not base64".to_owned())?;
    let signature = Signature::from_der(&raw)
        .or_else(|_| Signature::from_slice(&raw))
        .map_err(|_| "the signature is not an ECDSA P-256 signature".to_owned())?;
    let Some(key) = keys
        .iter()
        .find(|k| k.key.verify(payload, &signature).is_ok())
    else {
        let fingerprints: Vec<&str> = keys.iter().map(|k| k.fingerprint.as_str()).collect();
        return Err(format!(
            "signed, but not by the key {}",
            fingerprints.join(" or ")
        ));
    };
    let payload: Payload = serde_json::from_slice(payload)
        .map_err(|_| "the signed payload is not a cosign simple-signing payload".to_owned())?;
    if payload.critical.image.docker_manifest_digest != digest.as_str() {
        return Err(format!(
            "the signature is for {}, not this digest",
            payload.critical.image.docker_manifest_digest
        ));
    }
    let signed_repo = parse_image(&payload.critical.identity.docker_reference)
        .map(|r| r.repository_key())
        .unwrap_or_else(|_| payload.critical.identity.docker_reference.clone());
    if signed_repo != repository.repository_key() {
        return Err(format!(
            "the signature is for repository {signed_repo}, not {}",
            repository.repository_key()
        ));
    }
    Ok(key.fingerprint.clone())
}

impl Check {
    /// Checks the cosign signatures of `repository@digest` with `keys`: the
    /// `sha256-<hex>.sig` tag first, then the OCI 1.1 referrers (the referrers
    /// API, else the `sha256-<hex>` referrers tag). A registry that cannot be
    /// asked is an error; what the signatures say is the verdict.
    pub async fn verify(
        &self,
        repository: &ImageRef,
        digest: &Digest,
        keys: &[&VerifyKey],
    ) -> Result<Verdict, RegistryError> {
        let (algorithm, hex) = digest.as_str().split_once(':').unwrap_or(("sha256", ""));
        let tag = format!("{algorithm}-{hex}.sig");
        let client = self.client();
        let mut reasons = Vec::new();
        let mut manifests = 0usize;
        if let Some(body) = client.raw(repository, &tag, false, LIMIT).await? {
            manifests += 1;
            let shown = format!("{}:{tag}", repository.repository_key());
            if let Some(key) = self
                .judge_manifest(repository, digest, keys, &body, &shown, &mut reasons)
                .await?
            {
                return Ok(Verdict::Verified { key });
            }
        }
        let (index, shown) = match client
            .referrers(repository, digest, SIGNATURE_ARTIFACT, LIMIT)
            .await?
        {
            Some(index) => (Some(index), format!("the referrers of {digest}")),
            None => {
                let schema_tag = format!("{algorithm}-{hex}");
                (
                    client.raw(repository, &schema_tag, false, LIMIT).await?,
                    format!("{}:{schema_tag}", repository.repository_key()),
                )
            }
        };
        let referrers = match index {
            Some(index) => {
                signature_referrers(&index).map_err(|message| RegistryError::Malformed {
                    host: api_host(&repository.registry).to_owned(),
                    url: shown.clone(),
                    message,
                })?
            }
            None => Vec::new(),
        };
        for referrer in referrers {
            let Some(body) = client
                .raw(repository, referrer.as_str(), false, LIMIT)
                .await?
            else {
                reasons.push(format!("its referrer {referrer} is missing"));
                continue;
            };
            if referrer.recompute(&body) != referrer {
                reasons.push(format!("its referrer does not match {referrer}"));
                continue;
            }
            manifests += 1;
            let shown = format!("{}@{referrer}", repository.repository_key());
            if let Some(key) = self
                .judge_manifest(repository, digest, keys, &body, &shown, &mut reasons)
                .await?
            {
                return Ok(Verdict::Verified { key });
            }
        }
        if manifests == 0 && reasons.is_empty() {
            return Ok(Verdict::Unsigned {
                reason: format!("no cosign signature (no tag {tag}, no referrer)"),
            });
        }
        if reasons.is_empty() {
            return Ok(Verdict::Unsigned {
                reason: format!("{tag} holds no cosign signature"),
            });
        }
        reasons.dedup();
        Ok(Verdict::BadSignature {
            reason: reasons.join("; "),
        })
    }

    /// Judges each simple-signing layer of one signature manifest (`body`,
    /// found at `shown`): the key's fingerprint when one is valid, else the
    /// reasons added to `reasons`.
    async fn judge_manifest(
        &self,
        repository: &ImageRef,
        digest: &Digest,
        keys: &[&VerifyKey],
        body: &[u8],
        shown: &str,
        reasons: &mut Vec<String>,
    ) -> Result<Option<String>, RegistryError> {
        let client = self.client();
        let manifest: SigManifest =
            serde_json::from_slice(body).map_err(|e| RegistryError::Malformed {
                host: api_host(&repository.registry).to_owned(),
                url: shown.to_owned(),
                message: format!("not a signature manifest: {e}"),
            })?;
        for layer in manifest
            .layers
            .iter()
            .filter(|l| l.media_type == PAYLOAD_TYPE)
            .take(MAX_LAYERS)
        {
            let Some(signature) = layer.annotations.get(SIGNATURE_ANNOTATION) else {
                reasons.push("a payload without a signature annotation".to_owned());
                continue;
            };
            let Ok(layer_digest) = Digest::parse_any(&layer.digest) else {
                reasons.push(format!("a layer with digest {}", layer.digest));
                continue;
            };
            let Some(payload) = client
                .raw(repository, layer_digest.as_str(), true, LIMIT)
                .await?
            else {
                reasons.push(format!("its payload {layer_digest} is missing"));
                continue;
            };
            if layer_digest.recompute(&payload) != layer_digest {
                reasons.push(format!("its payload does not match {layer_digest}"));
                continue;
            }
            match judge(&payload, signature, repository, digest, keys) {
                Ok(key) => return Ok(Some(key)),
                Err(why) => reasons.push(why),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::keys::{fingerprint, parse_key};
    use p256::ecdsa::SigningKey;
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::EncodePublicKey as _;
    use std::path::Path;

    fn key(seed: u8) -> (SigningKey, VerifyKey) {
        let signing = SigningKey::from_slice(&[seed; 32]).unwrap();
        let verifying = *signing.verifying_key();
        let vk = VerifyKey {
            name: None,
            pattern: None,
            path: "/k.pub".into(),
            fingerprint: fingerprint(&verifying),
            key: verifying,
        };
        (signing, vk)
    }

    fn payload(repo: &str, digest: &str) -> Vec<u8> {
        format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"{repo}"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        )
        .into_bytes()
    }

    fn sign(k: &SigningKey, payload: &[u8]) -> String {
        let sig: Signature = k.sign(payload);
        base64::engine::general_purpose::STANDARD.encode(sig.to_der().as_bytes())
    }

    #[test]
    fn a_signature_is_valid_only_for_its_key_digest_and_repository() {
        let (signing, trusted) = key(7);
        let (_, other) = key(9);
        let repo = parse_image("127.0.0.1:5000/magos/signed").unwrap();
        let d = Digest::sha256_of(b"one");
        let p = payload("127.0.0.1:5000/magos/signed", d.as_str());
        let sig = sign(&signing, &p);

        assert_eq!(
            judge(&p, &sig, &repo, &d, &[&trusted]),
            Ok(trusted.fingerprint.clone())
        );
        let e = judge(&p, &sig, &repo, &d, &[&other]).unwrap_err();
        assert!(e.contains("not by the key sha256:"), "{e}");
        let e = judge(&p, &sig, &repo, &Digest::sha256_of(b"two"), &[&trusted]).unwrap_err();
        assert!(e.contains(&format!("is for {d}")), "{e}");
        let elsewhere = parse_image("127.0.0.1:5000/magos/other").unwrap();
        let e = judge(&p, &sig, &elsewhere, &d, &[&trusted]).unwrap_err();
        assert!(e.contains("repository 127.0.0.1:5000/magos/signed"), "{e}");
        // A payload changed after signing.
        let forged = payload(
            "127.0.0.1:5000/magos/signed",
            Digest::sha256_of(b"two").as_str(),
        );
        assert!(
            judge(
                &forged,
                &sig,
                &repo,
                &Digest::sha256_of(b"two"),
                &[&trusted]
            )
            .is_err()
        );
        assert!(judge(&p, "%%%", &repo, &d, &[&trusted]).is_err());
    }

    /// The referrers tag index Debian's cosign 2 wrote for an image of the test
    /// bed's registry (`cosign sign --registry-referrers-mode=oci-1-1`; the
    /// registry has no referrers API), with an entry of another type added.
    #[test]
    fn the_signature_referrers_of_an_index_are_its_cosign_entries() {
        let index = br#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":728,"digest":"sha256:cc35a7eb7bfffd92cc5d2cfdfc675f102a19389a3ea7bffb90ae88e4d1543640","artifactType":"application/vnd.dev.cosign.artifact.sig.v1+json"},{"mediaType":"application/vnd.oci.image.manifest.v1+json","size":700,"digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","artifactType":"application/spdx+json"}]}"#;
        let found = signature_referrers(index).unwrap();
        assert_eq!(
            found,
            [Digest::parse_any(
                "sha256:cc35a7eb7bfffd92cc5d2cfdfc675f102a19389a3ea7bffb90ae88e4d1543640"
            )
            .unwrap()]
        );
        assert_eq!(
            signature_referrers(br#"{"schemaVersion":2,"manifests":[]}"#).unwrap(),
            []
        );
        assert!(signature_referrers(br#"{"manifests": 3}"#).is_err());
    }

    #[test]
    fn keys_are_pem_p256_public_keys() {
        let (_, k) = key(3);
        let pem = k
            .key
            .to_public_key_pem(p256::pkcs8::LineEnding::LF)
            .unwrap();
        assert!(parse_key(Path::new("/k.pub"), &pem).is_ok());
        let e = parse_key(
            Path::new("/k.pub"),
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("/k.pub") && e.contains("P-256"), "{e}");
        assert!(k.fingerprint.starts_with("sha256:") && k.fingerprint.len() == 23);
    }
}
