//! One directory entry as read, before it is interpreted as a user or a group.
//!
//! Both sources (an LDAP server, an LDIF file) deliver these; everything after reading
//! (stable ids, disabled state, membership) works on them alone, so both sources give the
//! same snapshot for the same data.

use arcstr::ArcStr;
use serde::{Deserialize, Serialize};

/// One attribute value: text, or bytes for binary attributes (never lossily decoded).
/// Stored (in the sync state) as a string or an array of bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Value {
    Text(String),
    Binary(Vec<u8>),
}

impl Value {
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Value::Text(t) => Some(t),
            Value::Binary(_) => None,
        }
    }

    /// Classifies raw bytes: binary attributes stay bytes even when they happen to be valid
    /// UTF-8 (an objectGUID can be), others become text when they are UTF-8.
    pub fn from_bytes(attribute: &str, bytes: Vec<u8>) -> Value {
        if is_binary_attribute(attribute) {
            return Value::Binary(bytes);
        }
        match String::from_utf8(bytes) {
            Ok(text) => Value::Text(text),
            Err(e) => Value::Binary(e.into_bytes()),
        }
    }
}

/// Attributes whose values are bytes by definition, whatever they look like.
const BINARY_ATTRIBUTES: &[&str] = &[
    "objectguid",
    "objectsid",
    "invocationid",
    "jpegphoto",
    "thumbnailphoto",
    "usercertificate",
    "cacertificate",
    "usersmimecertificate",
    "userpkcs12",
    "msexchmailboxguid",
    "mssfu30objectsid",
    "sidhistory",
    "tokengroups",
    "photo",
    "audio",
];

pub fn is_binary_attribute(name: &str) -> bool {
    let base = name.split(';').next().unwrap_or(name);
    BINARY_ATTRIBUTES
        .iter()
        .any(|b| b.eq_ignore_ascii_case(base))
        || name
            .split(';')
            .skip(1)
            .any(|opt| opt.eq_ignore_ascii_case("binary"))
}

/// A multi-valued attribute. The name keeps the server's spelling; lookups ignore case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attribute {
    /// Shared between the entries of a read ([`attribute_name`]).
    pub name: ArcStr,
    pub values: Values,
}

/// An attribute's values. Nearly every attribute of a user entry has one, held in place:
/// a vector of one was an allocation per attribute (11 MB at 100,000 users).
pub type Values = smallvec::SmallVec<[Value; 1]>;

/// Distinct names an interner keeps: a directory names a few dozen attributes, and a server
/// that sends a new name with every entry must not grow this without end.
const INTERNED_NAMES_MAX: usize = 4096;

/// An attribute name, shared with every other entry read on this thread that has it: every
/// user entry names the same few attributes, and a string each was about a third of the raw
/// entries' memory at 100,000 users.
pub fn attribute_name(name: &str) -> ArcStr {
    thread_local! {
        static NAMES: std::cell::RefCell<rustc_hash::FxHashSet<ArcStr>> =
            std::cell::RefCell::new(rustc_hash::FxHashSet::default());
    }
    NAMES.with(|names| {
        let mut names = names.borrow_mut();
        if let Some(kept) = names.get(name) {
            return kept.clone();
        }
        let new = ArcStr::from(name);
        if names.len() < INTERNED_NAMES_MAX {
            names.insert(new.clone());
        }
        new
    })
}

/// A directory entry: its DN as the source spelled it, and its attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Entry {
    pub dn: String,
    pub attributes: Vec<Attribute>,
}

impl Entry {
    pub fn new(dn: impl Into<String>) -> Entry {
        Entry {
            dn: dn.into(),
            attributes: Vec::new(),
        }
    }

    /// Adds a value, merging with an existing attribute of the same name (any case).
    pub fn push(&mut self, name: &str, value: Value) {
        match self
            .attributes
            .iter_mut()
            .find(|a| a.name.eq_ignore_ascii_case(name))
        {
            Some(a) => a.values.push(value),
            None => self.attributes.push(Attribute {
                name: attribute_name(name),
                values: smallvec::smallvec![value],
            }),
        }
    }

    pub fn attribute(&self, name: &str) -> Option<&Attribute> {
        self.attributes
            .iter()
            .find(|a| a.name.eq_ignore_ascii_case(name))
    }

    pub fn values(&self, name: &str) -> &[Value] {
        self.attribute(name).map_or(&[], |a| &a.values)
    }

    /// The text values of an attribute (binary values are left out).
    pub fn texts<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> + 'a {
        self.values(name).iter().filter_map(Value::as_text)
    }

    pub fn first_text(&self, name: &str) -> Option<&str> {
        self.texts(name).next()
    }

    /// True when objectClass has `class` (any case).
    pub fn has_object_class(&self, class: &str) -> bool {
        self.texts("objectClass")
            .any(|c| c.eq_ignore_ascii_case(class))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_attributes_stay_bytes_even_when_utf8() {
        let guid_that_is_utf8 = b"ABCDEFGHIJKLMNOP".to_vec();
        assert_eq!(
            Value::from_bytes("objectGUID", guid_that_is_utf8.clone()),
            Value::Binary(guid_that_is_utf8)
        );
        assert_eq!(
            Value::from_bytes("userCertificate;binary", b"x".to_vec()),
            Value::Binary(b"x".to_vec())
        );
        assert_eq!(
            Value::from_bytes("cn", "Zoë".as_bytes().to_vec()),
            Value::Text("Zoë".into())
        );
        assert_eq!(
            Value::from_bytes("description", vec![0xff, 0xfe]),
            Value::Binary(vec![0xff, 0xfe])
        );
    }

    #[test]
    fn lookups_ignore_attribute_case() {
        let mut e = Entry::new("uid=a,dc=x");
        e.push("objectClass", Value::Text("inetOrgPerson".into()));
        e.push("objectclass", Value::Text("person".into()));
        assert_eq!(e.attributes.len(), 1);
        assert!(e.has_object_class("PERSON"));
        assert_eq!(e.first_text("OBJECTCLASS"), Some("inetOrgPerson"));
        assert!(e.values("mail").is_empty());
    }
}
