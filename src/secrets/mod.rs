//! SOPS + age secrets: decrypting files written by the `sops` tool, in memory.
//!
//! - [`decrypt`] is pure: it takes a file's bytes, its [`Format`] and the age
//!   [`Identities`], and returns the [`Decrypted`] document after checking the MAC.
//! - [`keys`] finds the age identities the way sops does (an edge: it reads the
//!   environment snapshot, files and runs `SOPS_AGE_KEY_CMD`).
//! - [`scan`] finds the SOPS files of a repository (an edge: it reads files).
//! - [`runtime`] keeps decrypted files in the private runtime folder
//!   `$XDG_RUNTIME_DIR/magos/secrets/<stack>/` (an edge: it writes files).
//!
//! Decrypted values live in types that print `<redacted>` and wipe their memory
//! on drop ([`Plaintext`], [`Decrypted`]); no error names a value.

mod decrypt;
mod formats;
pub mod keys;
pub mod runtime;
pub mod scan;
mod tree;
mod yaml;

#[cfg(test)]
mod testenc;
#[cfg(test)]
mod tests;

use std::fmt;
use std::path::{Path, PathBuf};

use zeroize::{Zeroize, Zeroizing};

use tree::{Entry, Key, Node};

/// The formats sops writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// YAML, metadata under a top-level `sops` key.
    Yaml,
    /// JSON, metadata under a top-level `sops` key.
    Json,
    /// dotenv, metadata as flattened `sops_…` keys.
    Dotenv,
    /// INI, metadata in a `[sops]` section.
    Ini,
    /// Any other file: a JSON envelope `{"data": "ENC[…]", "sops": {…}}`.
    Binary,
}

impl Format {
    /// The format sops picks for a path: `.yaml`/`.yml`, `.json`, `.env`, `.ini`,
    /// else binary.
    pub fn for_path(path: &Path) -> Self {
        let name = path.to_string_lossy();
        if name.ends_with(".yaml") || name.ends_with(".yml") {
            Format::Yaml
        } else if name.ends_with(".json") {
            Format::Json
        } else if name.ends_with(".env") {
            Format::Dotenv
        } else if name.ends_with(".ini") {
            Format::Ini
        } else {
            Format::Binary
        }
    }

    /// The format's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Ini => "ini",
            Format::Binary => "binary",
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a SOPS file could not be decrypted. No variant carries a secret value.
#[derive(Debug, thiserror::Error)]
pub enum SopsError {
    /// The file, named, with what went wrong in it.
    #[error("{}", path.display())]
    InFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        #[source]
        source: Box<SopsError>,
    },
    /// The file is not valid in its format.
    #[error("not a valid {format} file: {message}")]
    Parse {
        /// The format it was read as.
        format: Format,
        /// The parser's message.
        message: String,
    },
    /// The file has no sops metadata.
    #[error("no sops metadata (not a SOPS file)")]
    NoMetadata,
    /// The sops metadata is malformed.
    #[error("bad sops metadata: {message}")]
    Metadata {
        /// What is wrong.
        message: String,
    },
    /// The file uses a sops feature this decrypter does not support.
    #[error("unsupported sops feature: {what}")]
    Unsupported {
        /// The feature.
        what: String,
    },
    /// The file has no age recipient (only other master keys).
    #[error("the file has no age recipient{}", if others.is_empty() { String::new() } else { format!(" (only {others}); only age is supported") })]
    NoAgeRecipient {
        /// The other key kinds present.
        others: String,
    },
    /// No age identity is available.
    #[error(
        "no age identity available (set SOPS_AGE_KEY_FILE, SOPS_AGE_KEY, SOPS_AGE_KEY_CMD or create <config dir>/sops/age/keys.txt)"
    )]
    NoIdentities,
    /// None of the identities opens any of the file's age stanzas.
    #[error(
        "none of the available age identities can decrypt the data key (the file's recipients: {recipients})"
    )]
    NoMatchingIdentity {
        /// The file's recipients.
        recipients: String,
    },
    /// A value at this key path is not a well-formed encrypted value.
    #[error("key {path}: malformed encrypted value: {message}")]
    BadValue {
        /// The key path (`a.b.c`).
        path: String,
        /// What is wrong.
        message: String,
    },
    /// A value at this key path does not authenticate: it was changed, moved from
    /// another key, or encrypted with another data key.
    #[error(
        "key {path}: the value does not authenticate (changed, moved from another key, or encrypted with another key)"
    )]
    ValueAuth {
        /// The key path.
        path: String,
    },
    /// A value that should be encrypted is not an encrypted string.
    #[error("key {path}: the value should be encrypted but is not")]
    NotEncrypted {
        /// The key path.
        path: String,
    },
    /// The file has no MAC.
    #[error("the file has no MAC")]
    MacMissing,
    /// The MAC does not authenticate: `lastmodified` or the MAC was changed.
    #[error("the MAC does not authenticate (sops.lastmodified or sops.mac was changed)")]
    MacAuth,
    /// The MAC does not match the values: a value was changed, added, removed or
    /// reordered.
    #[error(
        "the MAC does not match: values were changed, added, removed or reordered since sops wrote the file"
    )]
    MacMismatch,
    /// The decrypted document cannot be written in its format.
    #[error("cannot write the decrypted document: {message}")]
    Emit {
        /// What is wrong.
        message: String,
    },
}

impl SopsError {
    /// This error, naming `path`.
    pub fn in_file(self, path: &Path) -> Self {
        SopsError::InFile {
            path: path.to_owned(),
            source: Box::new(self),
        }
    }
}

/// Decrypted bytes: printed as `<redacted>`, wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct Plaintext(Zeroizing<Vec<u8>>);

impl Plaintext {
    /// Wraps bytes.
    pub fn new(bytes: Vec<u8>) -> Self {
        Self(Zeroizing::new(bytes))
    }

    /// The bytes. Every call is a place where a secret leaves its wrapper.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    /// The bytes as text, when they are UTF-8.
    pub fn expose_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }
}

impl fmt::Debug for Plaintext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// age identities to decrypt with. Prints only their number.
#[derive(Default)]
pub struct Identities(Vec<age::x25519::Identity>);

impl Identities {
    /// No identities.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds an identity.
    pub fn push(&mut self, id: age::x25519::Identity) {
        self.0.push(id);
    }

    /// Adds every identity of `other`.
    pub fn extend(&mut self, other: Identities) {
        self.0.extend(other.0);
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn iter(&self) -> impl Iterator<Item = &dyn age::Identity> {
        self.0.iter().map(|i| i as &dyn age::Identity)
    }
}

impl fmt::Debug for Identities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Identities({} age identities)", self.0.len())
    }
}

/// A decrypted SOPS file whose MAC verified. Prints `<redacted>`; wiped on drop.
pub struct Decrypted {
    format: Format,
    branches: Vec<Vec<Entry>>,
}

impl fmt::Debug for Decrypted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Decrypted({} file, <redacted>)", self.format)
    }
}

impl Drop for Decrypted {
    fn drop(&mut self) {
        for branch in &mut self.branches {
            let mut node = Node::Map(std::mem::take(branch));
            node.zeroize();
        }
    }
}

impl Decrypted {
    /// The file's format.
    pub fn format(&self) -> Format {
        self.format
    }

    /// The decrypted file, written the way `sops decrypt` writes it (YAML
    /// comments are not kept).
    pub fn to_plaintext(&self) -> Result<Plaintext, SopsError> {
        formats::emit(&self.branches, self.format).map(Plaintext::new)
    }

    /// The top-level `KEY=value` pairs, in order, as an `env_file` gives them to a
    /// container: strings as they are, numbers and booleans as sops writes them in
    /// dotenv. Maps and lists are refused, naming the key.
    pub fn env_pairs(&self) -> Result<Vec<(String, Plaintext)>, SopsError> {
        let mut out = Vec::new();
        for e in self.branches.iter().flatten() {
            let Key::Name(name) = &e.key else { continue };
            let text = match &e.value {
                Node::Null => String::new(),
                Node::Bool(b) => b.to_string(),
                Node::Int(i) => i.to_string(),
                Node::Float(f) => go_float(*f),
                Node::Str(s) | Node::Time(s) => s.clone(),
                Node::Bytes(b) => {
                    out.push((name.clone(), Plaintext::new(b.clone())));
                    continue;
                }
                Node::Comment(_) | Node::Seq(_) | Node::Map(_) => {
                    return Err(SopsError::Emit {
                        message: format!("key {name} holds a list or map, not a variable value"),
                    });
                }
            };
            out.push((name.clone(), Plaintext::new(text.into_bytes())));
        }
        Ok(out)
    }
}

/// Decrypts a SOPS file's bytes with `identities` and verifies its MAC. Pure: the
/// caller reads the file and names it in errors with [`SopsError::in_file`].
pub fn decrypt(
    text: &[u8],
    format: Format,
    identities: &Identities,
) -> Result<Decrypted, SopsError> {
    let mut parsed = formats::parse(text, format)?;
    match decrypt::decrypt_tree(&mut parsed, identities) {
        Ok(_) => Ok(Decrypted {
            format,
            branches: std::mem::take(&mut parsed.branches),
        }),
        Err(e) => {
            for branch in &mut parsed.branches {
                let mut node = Node::Map(std::mem::take(branch));
                node.zeroize();
            }
            Err(e)
        }
    }
}

/// The top-level names a SOPS file sets, without decrypting it (names are never
/// encrypted): the variables of an encrypted `env_file` or `.env`.
pub fn variable_names(text: &[u8], format: Format) -> Result<Vec<String>, SopsError> {
    let parsed = formats::parse(text, format)?;
    Ok(parsed
        .branches
        .iter()
        .flatten()
        .filter_map(|e| match &e.key {
            Key::Name(n) => Some(n.clone()),
            Key::Comment(_) => None,
        })
        .collect())
}

/// The digest of a SOPS file's ciphertext, `sha256:<hex>`: what enters a
/// container's config hash in place of the secret values, so a changed secret
/// recreates the container without its value being hashed.
pub fn ciphertext_digest(text: &[u8]) -> String {
    use sha2::{Digest as _, Sha256};
    format!("sha256:{}", hex::encode(Sha256::digest(text)))
}

/// The age recipients of a SOPS file, without decrypting it (to pick identities).
pub fn recipients(text: &[u8], format: Format) -> Result<Vec<String>, SopsError> {
    let parsed = formats::parse(text, format)?;
    let md = decrypt::Metadata::from_node(&parsed.metadata)?;
    Ok(md.age.into_iter().map(|s| s.recipient).collect())
}

/// Whether `text` is a SOPS file in `format`: it parses, carries sops metadata
/// (a `sops` key or section, or `sops_` keys) with a MAC or `lastmodified`, and
/// holds `ENC[` values.
pub fn is_sops(text: &[u8], format: Format) -> bool {
    if !contains(text, b"ENC[AES256_GCM,") {
        return false;
    }
    match formats::parse(text, format) {
        Ok(p) => p.metadata.get("mac").is_some() || p.metadata.get("lastmodified").is_some(),
        Err(_) => false,
    }
}

/// Whether the text carries a sops metadata marker for its format, even if it
/// does not parse (to report a damaged SOPS file rather than skip it).
pub fn has_sops_marker(text: &[u8], format: Format) -> bool {
    if !contains(text, b"ENC[AES256_GCM,") {
        return false;
    }
    match format {
        Format::Yaml => text.split(|b| *b == b'\n').any(|l| l.starts_with(b"sops:")),
        Format::Json | Format::Binary => contains(text, b"\"sops\""),
        Format::Dotenv => text.split(|b| *b == b'\n').any(|l| l.starts_with(b"sops_")),
        Format::Ini => contains(text, b"[sops]"),
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// A float as Go's `strconv.FormatFloat(f, 'f', -1, 64)` writes it (sops's MAC
/// input and dotenv/INI output).
pub(crate) fn go_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f == f64::INFINITY {
        "+Inf".to_owned()
    } else if f == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{f}")
    }
}
