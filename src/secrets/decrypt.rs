//! Decrypting a parsed sops file: the data key from the age stanzas, every value
//! from its `ENC[AES256_GCM,…]` form, and the MAC check. Pure: no I/O.

use std::io::Read as _;

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::U32;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine as _;
use regex::Regex;
use sha2::{Digest, Sha512};
use zeroize::{Zeroize, Zeroizing};

use super::formats::Parsed;
use super::tree::{Entry, Key, Node};
use super::{Identities, SopsError};

/// AES-256-GCM with the 32-byte nonce sops uses.
type SopsCipher = AesGcm<Aes256, U32>;

/// The first bytes of the MAC hash when `mac_only_encrypted` is set: SHA-256 of
/// `sops`, so that the two kinds of MAC never coincide.
const MAC_ONLY_ENCRYPTED_INIT: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// The suffix that leaves a value in clear when no other rule is set.
const DEFAULT_UNENCRYPTED_SUFFIX: &str = "_unencrypted";

/// One age stanza of the metadata: the recipient and the armored data key.
#[derive(Debug, Clone)]
pub(crate) struct AgeStanza {
    /// The `age1…` recipient.
    pub recipient: String,
    /// The ASCII-armored age file holding the data key.
    pub enc: String,
}

/// Which values of a file are encrypted.
#[derive(Debug)]
pub(crate) enum Rule {
    /// Keys ending with this suffix (anywhere on the path) stay in clear.
    UnencryptedSuffix(String),
    /// Only keys ending with this suffix (anywhere on the path) are encrypted.
    EncryptedSuffix(String),
    /// Keys matching this regex (anywhere on the path) stay in clear.
    UnencryptedRegex(Regex),
    /// Only keys matching this regex (anywhere on the path) are encrypted.
    EncryptedRegex(Regex),
}

/// The sops metadata this decrypter uses.
#[derive(Debug)]
pub(crate) struct Metadata {
    /// age stanzas, in file order (all key groups).
    pub age: Vec<AgeStanza>,
    /// Kinds of non-age master keys present (`pgp`, `kms`, …).
    pub other_keys: Vec<String>,
    /// `lastmodified`, normalised as sops formats it for the MAC's AAD.
    pub lastmodified: String,
    /// The encrypted MAC.
    pub mac: String,
    /// The encryption rule.
    pub rule: Rule,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
}

const OTHER_KEY_KINDS: [&str; 6] = ["pgp", "kms", "gcp_kms", "azure_kv", "hc_vault", "hckms"];

fn md_err(message: impl Into<String>) -> SopsError {
    SopsError::Metadata {
        message: message.into(),
    }
}

fn md_string(md: &Node, key: &str) -> Result<Option<String>, SopsError> {
    match md.get(key) {
        None | Some(Node::Null) => Ok(None),
        Some(Node::Str(s)) | Some(Node::Time(s)) => Ok(Some(s.clone())),
        Some(Node::Int(i)) => Ok(Some(i.to_string())),
        Some(_) => Err(md_err(format!("`sops.{key}` is not a string"))),
    }
}

fn md_bool(md: &Node, key: &str) -> Result<bool, SopsError> {
    match md.get(key) {
        None | Some(Node::Null) => Ok(false),
        Some(Node::Bool(b)) => Ok(*b),
        Some(Node::Str(s)) => {
            parse_go_bool(s).ok_or_else(|| md_err(format!("`sops.{key}` is not a boolean")))
        }
        Some(Node::Int(i)) => Ok(*i != 0),
        Some(_) => Err(md_err(format!("`sops.{key}` is not a boolean"))),
    }
}

fn age_stanzas(list: Option<&Node>, out: &mut Vec<AgeStanza>) -> Result<(), SopsError> {
    let items = match list {
        None | Some(Node::Null) => return Ok(()),
        Some(Node::Seq(items)) => items,
        Some(_) => return Err(md_err("`sops.age` is not a list")),
    };
    for (i, item) in items.iter().enumerate() {
        let recipient = md_string(item, "recipient")?.unwrap_or_default();
        let enc = md_string(item, "enc")?
            .ok_or_else(|| md_err(format!("`sops.age[{i}]` has no `enc`")))?;
        out.push(AgeStanza { recipient, enc });
    }
    Ok(())
}

impl Metadata {
    /// Reads the metadata map.
    pub fn from_node(md: &Node) -> Result<Self, SopsError> {
        let mut age = Vec::new();
        let mut other_keys = Vec::new();
        age_stanzas(md.get("age"), &mut age)?;
        let mut groups = 0;
        if let Some(Node::Seq(gs)) = md.get("key_groups") {
            groups = gs.len();
            for g in gs {
                age_stanzas(g.get("age"), &mut age)?;
                for kind in OTHER_KEY_KINDS {
                    if matches!(g.get(kind), Some(Node::Seq(v)) if !v.is_empty()) {
                        other_keys.push(kind.to_owned());
                    }
                }
            }
        }
        if groups > 1 {
            return Err(SopsError::Unsupported {
                what: format!(
                    "{groups} key groups (Shamir secret sharing); only one key group is supported"
                ),
            });
        }
        for kind in OTHER_KEY_KINDS {
            if matches!(md.get(kind), Some(Node::Seq(v)) if !v.is_empty()) {
                other_keys.push(kind.to_owned());
            }
        }
        let lastmodified = md_string(md, "lastmodified")?
            .ok_or_else(|| md_err("`sops.lastmodified` is missing"))?;
        let lastmodified = normalize_rfc3339(&lastmodified).ok_or_else(|| {
            md_err(format!(
                "`sops.lastmodified` is not an RFC 3339 time: `{lastmodified}`"
            ))
        })?;
        let mac = md_string(md, "mac")?.unwrap_or_default();

        let mut rules = Vec::new();
        for key in [
            "unencrypted_suffix",
            "encrypted_suffix",
            "unencrypted_regex",
            "encrypted_regex",
            "unencrypted_comment_regex",
            "encrypted_comment_regex",
        ] {
            if let Some(v) = md_string(md, key)?.filter(|v| !v.is_empty()) {
                rules.push((key, v));
            }
        }
        if rules.len() > 1 {
            return Err(md_err(
                "more than one of encrypted_suffix, unencrypted_suffix, encrypted_regex, \
                 unencrypted_regex, encrypted_comment_regex and unencrypted_comment_regex",
            ));
        }
        let regex = |key: &str, v: &str| {
            Regex::new(v).map_err(|e| md_err(format!("`sops.{key}` is not a valid regex: {e}")))
        };
        let rule = match rules.pop() {
            None => Rule::UnencryptedSuffix(DEFAULT_UNENCRYPTED_SUFFIX.to_owned()),
            Some(("unencrypted_suffix", v)) => Rule::UnencryptedSuffix(v),
            Some(("encrypted_suffix", v)) => Rule::EncryptedSuffix(v),
            Some(("unencrypted_regex", v)) => {
                Rule::UnencryptedRegex(regex("unencrypted_regex", &v)?)
            }
            Some(("encrypted_regex", v)) => Rule::EncryptedRegex(regex("encrypted_regex", &v)?),
            Some((key, _)) => {
                return Err(SopsError::Unsupported {
                    what: format!("`sops.{key}`"),
                });
            }
        };
        Ok(Self {
            age,
            other_keys,
            lastmodified,
            mac,
            rule,
            mac_only_encrypted: md_bool(md, "mac_only_encrypted")?,
        })
    }

    /// Whether the value at `path` (map keys, list indices left out) is encrypted.
    fn should_encrypt(&self, path: &[String]) -> bool {
        match &self.rule {
            Rule::UnencryptedSuffix(s) => !path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::EncryptedSuffix(s) => path.iter().any(|k| k.ends_with(s.as_str())),
            Rule::UnencryptedRegex(r) => !path.iter().any(|k| r.is_match(k)),
            Rule::EncryptedRegex(r) => path.iter().any(|k| r.is_match(k)),
        }
    }
}

/// `lastmodified` as Go's `time.Format(time.RFC3339)` writes it after parsing:
/// no fractional seconds, `Z` for UTC. `None` when it is not RFC 3339.
fn normalize_rfc3339(s: &str) -> Option<String> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || !s.is_ascii() {
        return None;
    }
    let digits = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    if !(digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && matches!(b[10], b'T' | b't')
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19))
    {
        return None;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return None;
        }
        rest = &frac[n..];
    }
    let zone = match rest {
        "Z" | "z" | "+00:00" => "Z".to_owned(),
        z if z.len() == 6
            && matches!(z.as_bytes()[0], b'+' | b'-')
            && z.as_bytes()[3] == b':'
            && z[1..3].bytes().all(|c| c.is_ascii_digit())
            && z[4..6].bytes().all(|c| c.is_ascii_digit()) =>
        {
            z.to_owned()
        }
        _ => return None,
    };
    Some(format!("{}T{}{zone}", &s[..10], &s[11..19]))
}

/// Go's `strconv.ParseBool`.
pub(crate) fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The 32-byte data key, wiped on drop.
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

/// Opens the data key with the first age stanza one of `identities` can open.
pub(crate) fn data_key(md: &Metadata, identities: &Identities) -> Result<DataKey, SopsError> {
    if md.age.is_empty() {
        return Err(SopsError::NoAgeRecipient {
            others: md.other_keys.join(", "),
        });
    }
    if identities.is_empty() {
        return Err(SopsError::NoIdentities);
    }
    for stanza in &md.age {
        let reader = age::armor::ArmoredReader::new(stanza.enc.as_bytes());
        let Ok(decryptor) = age::Decryptor::new(reader) else {
            continue;
        };
        let Ok(mut stream) = decryptor.decrypt(identities.iter()) else {
            continue;
        };
        let mut key = Zeroizing::new(Vec::new());
        if stream.read_to_end(&mut key).is_err() || key.len() != 32 {
            continue;
        }
        let mut out = Zeroizing::new([0u8; 32]);
        out.copy_from_slice(&key);
        return Ok(DataKey(out));
    }
    Err(SopsError::NoMatchingIdentity {
        recipients: md
            .age
            .iter()
            .map(|s| s.recipient.clone())
            .collect::<Vec<_>>()
            .join(", "),
    })
}

/// A parsed `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]` value.
struct EncValue {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    kind: String,
}

fn parse_enc(s: &str) -> Result<EncValue, String> {
    let inner = s
        .strip_prefix("ENC[AES256_GCM,")
        .ok_or("not an ENC[AES256_GCM,…] value")?;
    let inner = inner
        .strip_suffix(']')
        .ok_or("the ENC[…] value does not end with `]`")?;
    let mut data = None;
    let mut iv = None;
    let mut tag = None;
    let mut kind = None;
    for part in inner.split(',') {
        let (k, v) = part.split_once(':').ok_or("a malformed ENC[…] field")?;
        let slot = match k {
            "data" => &mut data,
            "iv" => &mut iv,
            "tag" => &mut tag,
            "type" => &mut kind,
            _ => return Err(format!("an unknown ENC[…] field `{k}`")),
        };
        if slot.replace(v).is_some() {
            return Err(format!("the ENC[…] field `{k}` appears twice"));
        }
    }
    let b64 = |name: &str, v: Option<&str>| -> Result<Vec<u8>, String> {
        let v = v.ok_or_else(|| format!("the ENC[…] value has no `{name}`"))?;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .map_err(|_| format!("the ENC[…] field `{name}` is not valid base64"))
    };
    let ev = EncValue {
        data: b64("data", data)?,
        iv: b64("iv", iv)?,
        tag: b64("tag", tag)?,
        kind: kind.ok_or("the ENC[…] value has no `type`")?.to_owned(),
    };
    if ev.iv.len() != 32 {
        return Err(format!("the ENC[…] iv is {} bytes, not 32", ev.iv.len()));
    }
    if ev.tag.len() != 16 {
        return Err(format!("the ENC[…] tag is {} bytes, not 16", ev.tag.len()));
    }
    Ok(ev)
}

/// Why a single value could not be decrypted.
enum ValueError {
    /// Not in the ENC[…] format.
    Malformed(String),
    /// AES-GCM refused it: wrong key, changed value or value moved to another key.
    Auth,
    /// The plaintext does not parse as its declared type.
    Type(String),
}

fn open(key: &DataKey, ev: &EncValue, aad: &str) -> Result<Zeroizing<Vec<u8>>, ValueError> {
    let cipher = SopsCipher::new_from_slice(key.0.as_slice()).map_err(|_| ValueError::Auth)?;
    let mut msg = Vec::with_capacity(ev.data.len() + ev.tag.len());
    msg.extend_from_slice(&ev.data);
    msg.extend_from_slice(&ev.tag);
    let nonce = aes_gcm::Nonce::<U32>::from_slice(&ev.iv);
    cipher
        .decrypt(
            nonce,
            Payload {
                msg: &msg,
                aad: aad.as_bytes(),
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| ValueError::Auth)
}

/// Decrypts one value into its typed leaf.
fn decrypt_value(key: &DataKey, text: &str, aad: &str) -> Result<Node, ValueError> {
    if text.is_empty() {
        return Ok(Node::Str(String::new()));
    }
    let ev = parse_enc(text).map_err(ValueError::Malformed)?;
    let mut plain = open(key, &ev, aad)?;
    let as_text = |p: &[u8]| {
        std::str::from_utf8(p)
            .map(str::to_owned)
            .map_err(|_| ValueError::Type("the plaintext is not UTF-8".into()))
    };
    let node = match ev.kind.as_str() {
        "str" => match String::from_utf8(std::mem::take(&mut *plain)) {
            Ok(s) => Node::Str(s),
            Err(e) => Node::Bytes(e.into_bytes()),
        },
        "bytes" => Node::Bytes(std::mem::take(&mut *plain)),
        "int" => {
            let mut s = as_text(&plain)?;
            let r = s.parse::<i64>();
            s.zeroize();
            Node::Int(r.map_err(|_| ValueError::Type("not an integer".into()))?)
        }
        "float" => {
            let mut s = as_text(&plain)?;
            let r = s.parse::<f64>();
            s.zeroize();
            Node::Float(r.map_err(|_| ValueError::Type("not a float".into()))?)
        }
        "bool" => {
            let mut s = as_text(&plain)?;
            let r = parse_go_bool(&s);
            s.zeroize();
            Node::Bool(r.ok_or_else(|| ValueError::Type("not a boolean".into()))?)
        }
        "time" => Node::Time(as_text(&plain)?),
        "comment" => Node::Comment(as_text(&plain)?),
        other => return Err(ValueError::Malformed(format!("an unknown type `{other}`"))),
    };
    Ok(node)
}

/// The bytes a leaf contributes to the MAC (sops's `ToBytes`).
fn mac_bytes(node: &Node) -> Option<Zeroizing<Vec<u8>>> {
    let b = match node {
        Node::Str(s) | Node::Time(s) => s.as_bytes().to_vec(),
        Node::Bytes(b) => b.clone(),
        Node::Int(i) => i.to_string().into_bytes(),
        Node::Float(f) => super::go_float(*f).into_bytes(),
        Node::Bool(true) => b"True".to_vec(),
        Node::Bool(false) => b"False".to_vec(),
        Node::Null | Node::Comment(_) | Node::Seq(_) | Node::Map(_) => return None,
    };
    Some(Zeroizing::new(b))
}

struct Walker<'a> {
    md: &'a Metadata,
    key: &'a DataKey,
    hash: Sha512,
}

fn path_string(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

fn display_path(path: &[String]) -> String {
    if path.is_empty() {
        "(top level)".to_owned()
    } else {
        path.join(".")
    }
}

impl Walker<'_> {
    fn map(&mut self, entries: &mut [Entry], path: &mut Vec<String>) -> Result<(), SopsError> {
        for entry in entries.iter_mut() {
            match &mut entry.key {
                Key::Comment(c) => self.comment(c, path),
                Key::Name(name) => {
                    path.push(name.clone());
                    let r = self.value(&mut entry.value, path);
                    path.pop();
                    r?;
                }
            }
        }
        Ok(())
    }

    fn comment(&mut self, text: &mut String, path: &[String]) {
        // A comment that does not decrypt was never encrypted (as sops assumes);
        // comments are not part of the MAC.
        if self.md.should_encrypt(path)
            && let Ok(Node::Comment(plain)) = decrypt_value(self.key, text, &path_string(path))
        {
            text.zeroize();
            *text = plain;
        }
    }

    fn value(&mut self, node: &mut Node, path: &mut Vec<String>) -> Result<(), SopsError> {
        match node {
            Node::Null => Ok(()),
            Node::Map(entries) => self.map(entries, path),
            Node::Seq(items) => {
                for item in items.iter_mut() {
                    if let Node::Comment(c) = item {
                        self.comment(c, path);
                    } else {
                        self.value(item, path)?;
                    }
                }
                Ok(())
            }
            Node::Comment(c) => {
                self.comment(c, path);
                Ok(())
            }
            leaf => {
                let encrypted = self.md.should_encrypt(path);
                if encrypted {
                    let Node::Str(text) = &*leaf else {
                        return Err(SopsError::NotEncrypted {
                            path: display_path(path),
                        });
                    };
                    let plain =
                        decrypt_value(self.key, text, &path_string(path)).map_err(|e| match e {
                            ValueError::Malformed(message) => SopsError::BadValue {
                                path: display_path(path),
                                message,
                            },
                            ValueError::Type(message) => SopsError::BadValue {
                                path: display_path(path),
                                message,
                            },
                            ValueError::Auth => SopsError::ValueAuth {
                                path: display_path(path),
                            },
                        })?;
                    if matches!(plain, Node::Comment(_)) {
                        return Err(SopsError::BadValue {
                            path: display_path(path),
                            message: "a comment stands where a value belongs".into(),
                        });
                    }
                    leaf.zeroize();
                    *leaf = plain;
                }
                if (!self.md.mac_only_encrypted || encrypted)
                    && let Some(bytes) = mac_bytes(leaf)
                {
                    self.hash.update(&*bytes);
                }
                Ok(())
            }
        }
    }
}

/// Decrypts every value of `parsed` in place and checks the MAC.
pub(crate) fn decrypt_tree(
    parsed: &mut Parsed,
    identities: &Identities,
) -> Result<Metadata, SopsError> {
    let md = Metadata::from_node(&parsed.metadata)?;
    let key = data_key(&md, identities)?;
    let mut walker = Walker {
        md: &md,
        key: &key,
        hash: Sha512::new(),
    };
    if md.mac_only_encrypted {
        walker.hash.update(MAC_ONLY_ENCRYPTED_INIT);
    }
    for branch in &mut parsed.branches {
        walker.map(branch, &mut Vec::new())?;
    }
    let computed: String = walker
        .hash
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    if md.mac.is_empty() {
        return Err(SopsError::MacMissing);
    }
    let stored = match decrypt_value(&key, &md.mac, &md.lastmodified) {
        Ok(Node::Str(s)) => s,
        Ok(_) | Err(ValueError::Type(_)) => {
            return Err(SopsError::BadValue {
                path: "sops.mac".into(),
                message: "the MAC is not a string".into(),
            });
        }
        Err(ValueError::Malformed(message)) => {
            return Err(SopsError::BadValue {
                path: "sops.mac".into(),
                message,
            });
        }
        Err(ValueError::Auth) => return Err(SopsError::MacAuth),
    };
    if stored != computed {
        return Err(SopsError::MacMismatch);
    }
    Ok(md)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Test-only access to the cipher, for the test encryptor.
    use super::*;

    /// Encrypts `plain` as sops does (`ENC[AES256_GCM,…,type:kind]`) with `iv`.
    pub fn seal(key: &[u8; 32], iv: &[u8; 32], plain: &[u8], aad: &str, kind: &str) -> String {
        let cipher = SopsCipher::new_from_slice(key).expect("32-byte key");
        let out = cipher
            .encrypt(
                aes_gcm::Nonce::<U32>::from_slice(iv),
                Payload {
                    msg: plain,
                    aad: aad.as_bytes(),
                },
            )
            .expect("encryption");
        let (data, tag) = out.split_at(out.len() - 16);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        format!(
            "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{kind}]",
            b64(data),
            b64(iv),
            b64(tag)
        )
    }

    /// The MAC bytes of a leaf.
    pub fn leaf_mac_bytes(node: &Node) -> Option<Vec<u8>> {
        mac_bytes(node).map(|z| z.to_vec())
    }

    /// The `mac_only_encrypted` seed.
    pub const MAC_ONLY_INIT: [u8; 32] = MAC_ONLY_ENCRYPTED_INIT;

    /// `should_encrypt` for a metadata map.
    pub fn should_encrypt(md: &Metadata, path: &[String]) -> bool {
        md.should_encrypt(path)
    }
}
