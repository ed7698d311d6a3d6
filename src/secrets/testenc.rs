//! A test-only SOPS encryptor.
//!
//! The real `sops` tool cannot be installed on the test machines, and the
//! real-sops fixtures cover YAML only. This encryptor writes JSON, dotenv, INI,
//! binary (and YAML) files following sops's format: AES-256-GCM values with a
//! 32-byte IV and the key path as AAD, the SHA-512 MAC over leaf plaintexts in
//! document order (seeded for `mac_only_encrypted`) encrypted with
//! `lastmodified` as AAD, the data key age-encrypted and armored per recipient,
//! and the metadata laid out per format (nested, `[sops]` section with flattened
//! keys and escaped newlines, or `sops_…` keys). It is a fake of `sops encrypt`,
//! used only because the real tool is unavailable; the YAML fixtures made by real
//! sops keep the decrypter honest about the format itself. IVs and the data key
//! come from a counter, which is fine for tests and nothing else.

use std::io::Write as _;

use sha2::{Digest, Sha512};

use super::Format;
use super::decrypt::{Metadata, testing};
use super::formats;
use super::tree::{Entry, Key, Node};

/// What to encrypt with.
pub struct Options {
    /// The file format to write.
    pub format: Format,
    /// age recipients, each getting a stanza.
    pub recipients: Vec<age::x25519::Recipient>,
    /// `lastmodified`.
    pub lastmodified: String,
    /// An encryption rule as `(metadata key, value)`, e.g. `("encrypted_regex", "^pw")`.
    pub rule: Option<(&'static str, String)>,
    /// `mac_only_encrypted`.
    pub mac_only_encrypted: bool,
}

impl Options {
    /// Defaults: one recipient, a fixed `lastmodified`, no rule.
    pub fn new(format: Format, recipient: age::x25519::Recipient) -> Self {
        Self {
            format,
            recipients: vec![recipient],
            lastmodified: "2026-01-02T03:04:05Z".into(),
            rule: None,
            mac_only_encrypted: false,
        }
    }
}

struct Enc<'a> {
    md: &'a Metadata,
    key: [u8; 32],
    counter: u64,
    hash: Sha512,
}

impl Enc<'_> {
    fn iv(&mut self) -> [u8; 32] {
        self.counter += 1;
        let mut h = Sha512::new();
        h.update(self.counter.to_le_bytes());
        let d = h.finalize();
        let mut iv = [0u8; 32];
        iv.copy_from_slice(&d[..32]);
        iv
    }

    fn seal(&mut self, plain: &[u8], aad: &str, kind: &str) -> String {
        let iv = self.iv();
        testing::seal(&self.key, &iv, plain, aad, kind)
    }

    fn map(&mut self, entries: &mut [Entry], path: &mut Vec<String>) {
        for e in entries.iter_mut() {
            match &mut e.key {
                Key::Comment(c) => {
                    if testing::should_encrypt(self.md, path) && !c.is_empty() {
                        *c = self.seal(c.as_bytes(), &aad(path), "comment");
                    }
                }
                Key::Name(n) => {
                    path.push(n.clone());
                    self.value(&mut e.value, path);
                    path.pop();
                }
            }
        }
    }

    fn value(&mut self, node: &mut Node, path: &mut Vec<String>) {
        match node {
            Node::Null => {}
            Node::Map(entries) => self.map(entries, path),
            Node::Seq(items) => {
                for item in items {
                    self.value(item, path);
                }
            }
            Node::Comment(c) => {
                if testing::should_encrypt(self.md, path) && !c.is_empty() {
                    *c = self.seal(c.as_bytes(), &aad(path), "comment");
                }
            }
            leaf => {
                let encrypted = testing::should_encrypt(self.md, path);
                if (!self.md.mac_only_encrypted || encrypted)
                    && let Some(b) = testing::leaf_mac_bytes(leaf)
                {
                    self.hash.update(&b);
                }
                if encrypted {
                    let (bytes, kind) = match &*leaf {
                        Node::Str(s) if s.is_empty() => return,
                        Node::Str(s) => (s.as_bytes().to_vec(), "str"),
                        Node::Bytes(b) => (b.clone(), "bytes"),
                        Node::Time(s) => (s.as_bytes().to_vec(), "time"),
                        other => (
                            testing::leaf_mac_bytes(other).unwrap_or_default(),
                            match other {
                                Node::Int(_) => "int",
                                Node::Float(_) => "float",
                                _ => "bool",
                            },
                        ),
                    };
                    *leaf = Node::Str(self.seal(&bytes, &aad(path), kind));
                }
            }
        }
    }
}

fn aad(path: &[String]) -> String {
    let mut s = path.join(":");
    s.push(':');
    s
}

fn age_armor(key: &[u8; 32], recipient: &age::x25519::Recipient) -> String {
    let enc = age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
        .expect("a recipient");
    let mut out = Vec::new();
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .expect("armor");
    let mut w = enc.wrap_output(armor).expect("age stream");
    w.write_all(key).expect("write");
    w.finish().expect("finish").finish().expect("finish armor");
    String::from_utf8(out).expect("armor is text")
}

/// Encrypts the documents `branches` into a sops file as `opts` says.
pub fn encrypt(branches: &[Vec<Entry>], opts: &Options) -> Vec<u8> {
    let key = [0x42u8; 32];
    let mut md_entries = vec![Entry::named(
        "age",
        Node::Seq(
            opts.recipients
                .iter()
                .map(|r| {
                    Node::Map(vec![
                        Entry::named("recipient", Node::Str(r.to_string())),
                        Entry::named("enc", Node::Str(age_armor(&key, r))),
                    ])
                })
                .collect(),
        ),
    )];
    md_entries.push(Entry::named(
        "lastmodified",
        Node::Str(opts.lastmodified.clone()),
    ));
    if let Some((k, v)) = &opts.rule {
        md_entries.push(Entry::named(*k, Node::Str(v.clone())));
    }
    if opts.mac_only_encrypted {
        md_entries.push(Entry::named("mac_only_encrypted", Node::Bool(true)));
    }
    let md = Metadata::from_node(&Node::Map(md_entries.clone())).expect("valid metadata");
    let mut enc = Enc {
        md: &md,
        key,
        counter: 0,
        hash: Sha512::new(),
    };
    if md.mac_only_encrypted {
        enc.hash.update(testing::MAC_ONLY_INIT);
    }
    let mut branches = branches.to_vec();
    for b in &mut branches {
        enc.map(b, &mut Vec::new());
    }
    let mac_hex: String = enc
        .hash
        .clone()
        .finalize()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    let mac = enc.seal(mac_hex.as_bytes(), &md.lastmodified, "str");
    md_entries.push(Entry::named("mac", Node::Str(mac)));
    md_entries.push(Entry::named("version", Node::Str("3.9.0".into())));
    let md_node = Node::Map(md_entries);

    match opts.format {
        Format::Yaml | Format::Json | Format::Binary => {
            let first = branches.first_mut().expect("one document");
            first.push(Entry::named("sops", md_node));
            let fmt = if opts.format == Format::Yaml {
                Format::Yaml
            } else {
                Format::Json
            };
            formats::emit(&branches, fmt).expect("emit")
        }
        Format::Dotenv => {
            let mut flat = Vec::new();
            flatten(&md_node, "sops_", &mut flat);
            branches[0].extend(flat);
            formats::emit(&branches, Format::Dotenv).expect("emit")
        }
        Format::Ini => {
            let mut flat = Vec::new();
            flatten(&md_node, "", &mut flat);
            for e in &mut flat {
                if let Node::Str(s) = &mut e.value {
                    *s = s.replace('\n', "\\n");
                }
            }
            branches[0].push(Entry::named("sops", Node::Map(flat)));
            formats::emit(&branches, Format::Ini).expect("emit")
        }
    }
}

fn flatten(node: &Node, prefix: &str, out: &mut Vec<Entry>) {
    match node {
        Node::Map(entries) => {
            for e in entries {
                if let Some(n) = e.name() {
                    flatten_value(&e.value, &format!("{prefix}{n}"), out);
                }
            }
        }
        other => out.push(Entry::named(prefix, other.clone())),
    }
}

fn flatten_value(node: &Node, key: &str, out: &mut Vec<Entry>) {
    match node {
        Node::Map(_) => flatten(node, &format!("{key}__map_"), out),
        Node::Seq(items) => {
            for (i, item) in items.iter().enumerate() {
                flatten_value(item, &format!("{key}__list_{i}"), out);
            }
        }
        leaf => out.push(Entry::named(key, leaf.clone())),
    }
}
