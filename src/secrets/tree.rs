//! The order-preserving document tree SOPS works on: maps keep their key order and
//! may hold comment entries, lists keep their items, leaves keep their type.

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use zeroize::Zeroize;

/// A value in a document.
#[derive(Clone, PartialEq)]
pub(crate) enum Node {
    /// `null` / an empty value.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A floating-point number.
    Float(f64),
    /// A text string.
    Str(String),
    /// Bytes that are not UTF-8 text (a `bytes` value, or a `str` value holding
    /// arbitrary bytes as the binary format does).
    Bytes(Vec<u8>),
    /// A timestamp, as its RFC 3339 text.
    Time(String),
    /// A comment line inside a list.
    Comment(String),
    /// A list.
    Seq(Vec<Node>),
    /// A map, in document order.
    Map(Vec<Entry>),
}

/// A key of a map entry: a name, or a comment line standing between entries.
#[derive(Clone, PartialEq)]
pub(crate) enum Key {
    /// A named entry.
    Name(String),
    /// A comment line; the entry's value is [`Node::Null`].
    Comment(String),
}

/// One entry of a map.
#[derive(Clone, PartialEq)]
pub(crate) struct Entry {
    /// The key.
    pub key: Key,
    /// The value.
    pub value: Node,
}

impl Entry {
    /// A named entry.
    pub fn named(name: impl Into<String>, value: Node) -> Self {
        Self {
            key: Key::Name(name.into()),
            value,
        }
    }

    /// A comment entry.
    pub fn comment(text: impl Into<String>) -> Self {
        Self {
            key: Key::Comment(text.into()),
            value: Node::Null,
        }
    }

    /// The entry's name, unless it is a comment.
    pub fn name(&self) -> Option<&str> {
        match &self.key {
            Key::Name(n) => Some(n),
            Key::Comment(_) => None,
        }
    }
}

impl fmt::Debug for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Trees may hold decrypted values: only the shape is shown.
        match self {
            Node::Seq(items) => write!(f, "Seq(len {})", items.len()),
            Node::Map(entries) => write!(f, "Map(len {})", entries.len()),
            _ => f.write_str("<redacted>"),
        }
    }
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entry(<redacted>)")
    }
}

impl Zeroize for Node {
    fn zeroize(&mut self) {
        match self {
            Node::Null => {}
            Node::Bool(b) => b.zeroize(),
            Node::Int(i) => i.zeroize(),
            Node::Float(x) => x.zeroize(),
            Node::Str(s) | Node::Time(s) | Node::Comment(s) => s.zeroize(),
            Node::Bytes(b) => b.zeroize(),
            Node::Seq(items) => items.iter_mut().for_each(Zeroize::zeroize),
            Node::Map(entries) => {
                for e in entries.iter_mut() {
                    match &mut e.key {
                        Key::Name(n) | Key::Comment(n) => n.zeroize(),
                    }
                    e.value.zeroize();
                }
            }
        }
    }
}

impl Node {
    /// The entries of a map, or `None`.
    pub fn as_map(&self) -> Option<&[Entry]> {
        match self {
            Node::Map(e) => Some(e),
            _ => None,
        }
    }

    /// The value of the first entry named `name` in a map.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.as_map()?
            .iter()
            .find(|e| e.name() == Some(name))
            .map(|e| &e.value)
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map, list, string, number, boolean or null")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Int(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Node, E> {
        Ok(i64::try_from(v).map_or(Node::Float(v as f64), Node::Int))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Float(v))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Str(v.to_owned()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
        Ok(Node::Str(v))
    }

    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<Node, E> {
        Ok(Node::Bytes(v.to_vec()))
    }

    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        Node::deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element::<Node>()? {
            items.push(item);
        }
        Ok(Node::Seq(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<Node>()? {
            let name = match key {
                Node::Str(s) => s,
                _ => {
                    return Err(de::Error::custom(
                        "a map key is not a string; only string keys are supported",
                    ));
                }
            };
            let value = map.next_value::<Node>()?;
            entries.push(Entry::named(name, value));
        }
        Ok(Node::Map(entries))
    }
}
