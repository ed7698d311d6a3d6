//! The `verify:` keys: PEM ECDSA P-256 public keys, as `cosign generate-key-pair`
//! writes them, each with its rule and fingerprint.

use std::path::{Path, PathBuf};

use p256::ecdsa::VerifyingKey;
use p256::pkcs8::{DecodePublicKey as _, EncodePublicKey as _};

use super::RegistryError;
use super::reference::Digest;
use crate::config::VerifyRule;

/// One `verify:` rule with its key read.
#[derive(Clone)]
pub struct VerifyKey {
    /// The rule's name, for annotations.
    pub name: Option<String>,
    /// The repositories it covers.
    pub pattern: Option<String>,
    /// The key file.
    pub path: PathBuf,
    /// `sha256:` + the first 16 hex digits of the public key's DER hash.
    pub fingerprint: String,
    pub(super) key: VerifyingKey,
}

impl std::fmt::Debug for VerifyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyKey")
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .field("path", &self.path)
            .field("fingerprint", &self.fingerprint)
            .finish()
    }
}

/// Reads every rule's key. An unreadable file or a key that is not a PEM
/// ECDSA P-256 public key is an error naming the rule's file.
pub fn load_keys(rules: &[VerifyRule]) -> Result<Vec<VerifyKey>, RegistryError> {
    rules
        .iter()
        .map(|rule| {
            let text =
                std::fs::read_to_string(&rule.key).map_err(|source| RegistryError::Read {
                    path: rule.key.clone(),
                    source: source.into(),
                })?;
            let key = parse_key(&rule.key, &text)?;
            Ok(VerifyKey {
                name: rule.name.clone(),
                pattern: rule.pattern.clone(),
                path: rule.key.clone(),
                fingerprint: fingerprint(&key),
                key,
            })
        })
        .collect()
}

/// A PEM `PUBLIC KEY` (SubjectPublicKeyInfo) holding an ECDSA P-256 key.
pub fn parse_key(path: &Path, text: &str) -> Result<VerifyingKey, RegistryError> {
    VerifyingKey::from_public_key_pem(text.trim()).map_err(|e| RegistryError::VerifyKey {
        path: path.to_owned(),
        message: format!(
            "not a PEM ECDSA P-256 public key ({e}); cosign generate-key-pair writes one as cosign.pub"
        ),
    })
}

pub(super) fn fingerprint(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .map(|d| d.as_bytes().to_vec())
        .unwrap_or_default();
    let digest = Digest::sha256_of(&der);
    digest.as_str().chars().take(7 + 16).collect()
}
