//! Webhook requests: signature verification and the little of each payload Magos
//! reads. Pure: bytes and headers in, a verdict out.
//!
//! GitHub, Gitea and Forgejo sign the raw body with HMAC-SHA256 and send
//! `X-Hub-Signature-256: sha256=<hex>` (Gitea and Forgejo also send it under their
//! own names). The comparison is constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Why a webhook request was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WebhookError {
    /// No signature header.
    #[error("the request is not signed (no X-Hub-Signature-256 header)")]
    Unsigned,
    /// A signature header that is not `sha256=<64 hex>`.
    #[error("the signature header is malformed")]
    Malformed,
    /// The signature does not match the body and the configured secret.
    #[error("the signature does not match")]
    Mismatch,
    /// The body is not the JSON the event should carry.
    #[error("the payload is not valid JSON: {0}")]
    Payload(String),
}

/// Checks `signature` (the header value, `sha256=<hex>`) against `body` and `secret`.
pub fn verify(secret: &[u8], body: &[u8], signature: Option<&str>) -> Result<(), WebhookError> {
    let signature = signature.ok_or(WebhookError::Unsigned)?.trim();
    let hex_sig = signature.strip_prefix("sha256=").unwrap_or(signature);
    if hex_sig.len() != 64 {
        return Err(WebhookError::Malformed);
    }
    let expected = hex::decode(hex_sig).map_err(|_| WebhookError::Malformed)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    mac.verify_slice(&expected)
        .map_err(|_| WebhookError::Mismatch)
}

/// The signature a sender computes, `sha256=<hex>`: for tests and for users who
/// want to sign their own registry notifications.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// What a git forge's webhook asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ForgeEvent {
    /// A push to `branch` (short name).
    Push {
        /// The branch that moved.
        branch: String,
    },
    /// A push of something that is not a branch (a tag).
    OtherRef,
    /// The forge's connectivity check (`ping`).
    Ping,
    /// An event Magos does not act on.
    Ignored(String),
}

/// Reads a forge event from its `X-GitHub-Event` / `X-Gitea-Event` name and body.
pub fn forge_event(event: Option<&str>, body: &[u8]) -> Result<ForgeEvent, WebhookError> {
    match event.unwrap_or("push") {
        "ping" => Ok(ForgeEvent::Ping),
        "push" => {
            #[derive(serde::Deserialize)]
            struct Push {
                #[serde(rename = "ref")]
                reference: String,
            }
            let push: Push =
                serde_json::from_slice(body).map_err(|e| WebhookError::Payload(e.to_string()))?;
            Ok(match push.reference.strip_prefix("refs/heads/") {
                Some(branch) => ForgeEvent::Push {
                    branch: branch.to_owned(),
                },
                None => ForgeEvent::OtherRef,
            })
        }
        other => Ok(ForgeEvent::Ignored(other.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // From GitHub's documentation of webhook signatures.
    const DOC_SECRET: &[u8] = b"It's a Secret to Everybody";
    const DOC_BODY: &[u8] = b"Hello, World!";
    const DOC_SIG: &str = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

    #[test]
    fn github_documentation_vector() {
        assert_eq!(sign(DOC_SECRET, DOC_BODY), DOC_SIG);
        assert_eq!(verify(DOC_SECRET, DOC_BODY, Some(DOC_SIG)), Ok(()));
    }

    #[test]
    fn refuses_missing_malformed_and_wrong_signatures() {
        assert_eq!(
            verify(DOC_SECRET, DOC_BODY, None),
            Err(WebhookError::Unsigned)
        );
        assert_eq!(
            verify(DOC_SECRET, DOC_BODY, Some("sha256=abc")),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(
                DOC_SECRET,
                DOC_BODY,
                Some(&format!("sha256={}", "z".repeat(64)))
            ),
            Err(WebhookError::Malformed)
        );
        assert_eq!(
            verify(b"other secret", DOC_BODY, Some(DOC_SIG)),
            Err(WebhookError::Mismatch)
        );
        assert_eq!(
            verify(DOC_SECRET, b"Hello, World?", Some(DOC_SIG)),
            Err(WebhookError::Mismatch)
        );
    }

    #[test]
    fn reads_push_events() {
        let body = br#"{"ref":"refs/heads/main","after":"abc"}"#;
        assert_eq!(
            forge_event(Some("push"), body),
            Ok(ForgeEvent::Push {
                branch: "main".into()
            })
        );
        assert_eq!(
            forge_event(Some("push"), br#"{"ref":"refs/tags/v1"}"#),
            Ok(ForgeEvent::OtherRef)
        );
        assert_eq!(forge_event(Some("ping"), b"{}"), Ok(ForgeEvent::Ping));
        assert_eq!(
            forge_event(Some("issues"), b"{}"),
            Ok(ForgeEvent::Ignored("issues".into()))
        );
        assert!(matches!(
            forge_event(Some("push"), b"not json"),
            Err(WebhookError::Payload(_))
        ));
    }
}
