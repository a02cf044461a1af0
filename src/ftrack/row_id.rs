//! The id of an ftrack row that a run holds many of (memberships, role grants), in 16 bytes
//! when it is a UUID as ftrack writes them.
//!
//! ftrack's ids are UUIDs in the lower-case hyphenated form. Held as text, each is a 36-byte
//! allocation beside its 24-byte `String`; at 100,000 users the 425,000 membership and grant
//! ids were 20 MB of a plan's peak. An id in any other form is kept as the text it came in, so
//! every id reads back exactly as the server sent it.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An ftrack row id; reads back as the exact text the server sent.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RowId(Repr);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Repr {
    /// Only for text that is exactly `uuid`'s lower-case hyphenated form, so that no two
    /// texts share a representation and equality stays equality of the text.
    Uuid(uuid::Uuid),
    Text(Box<str>),
}

impl RowId {
    pub fn new(text: &str) -> RowId {
        if let Ok(parsed) = uuid::Uuid::try_parse(text) {
            let mut buffer = uuid::Uuid::encode_buffer();
            if parsed.hyphenated().encode_lower(&mut buffer) == text {
                return RowId(Repr::Uuid(parsed));
            }
        }
        RowId(Repr::Text(text.into()))
    }
}

impl RowId {
    /// The id's text, as [`fmt::Display`] writes it; a UUID is written into `buffer`.
    pub fn as_text<'b>(&'b self, buffer: &'b mut [u8; uuid::fmt::Hyphenated::LENGTH]) -> &'b str {
        match &self.0 {
            Repr::Uuid(id) => id.hyphenated().encode_lower(buffer),
            Repr::Text(text) => text,
        }
    }
}

impl From<uuid::Uuid> for RowId {
    /// The id ftrack would write for `id`: its lower-case hyphenated form.
    fn from(id: uuid::Uuid) -> RowId {
        RowId(Repr::Uuid(id))
    }
}

impl Default for RowId {
    fn default() -> RowId {
        RowId(Repr::Text("".into()))
    }
}

impl From<&str> for RowId {
    fn from(text: &str) -> RowId {
        RowId::new(text)
    }
}

impl PartialEq<str> for RowId {
    fn eq(&self, other: &str) -> bool {
        match &self.0 {
            Repr::Text(text) => &**text == other,
            Repr::Uuid(_) => RowId::new(other) == *self,
        }
    }
}

impl fmt::Display for RowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Repr::Uuid(id) => fmt::Display::fmt(&id.hyphenated(), f),
            Repr::Text(text) => f.write_str(text),
        }
    }
}

impl Serialize for RowId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RowId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RowId, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = RowId;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an ftrack id (a string)")
            }
            fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<RowId, E> {
                Ok(RowId::new(text))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_exactly_as_sent() {
        for text in [
            "5ca1e000-0000-4000-8000-000000000001",
            "5CA1E000-0000-4000-8000-000000000001",
            "5ca1e0000000400080000000000000001",
            "{5ca1e000-0000-4000-8000-000000000001}",
            "urn:uuid:5ca1e000-0000-4000-8000-000000000001",
            "membership-7",
            "",
        ] {
            let id = RowId::new(text);
            assert_eq!(id.to_string(), text);
            assert!(id == *text, "{text}");
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, serde_json::to_string(text).unwrap());
            assert_eq!(serde_json::from_str::<RowId>(&json).unwrap(), id);
        }
    }

    #[test]
    fn a_uuid_is_held_in_sixteen_bytes_and_other_forms_stay_distinct() {
        let lower = RowId::new("5ca1e000-0000-4000-8000-000000000001");
        assert!(matches!(lower.0, Repr::Uuid(_)));
        let upper = RowId::new("5CA1E000-0000-4000-8000-000000000001");
        assert!(matches!(upper.0, Repr::Text(_)));
        assert_ne!(lower, upper, "ftrack compares ids as text");
        assert!(lower != *"5CA1E000-0000-4000-8000-000000000001");
        assert_eq!(std::mem::size_of::<RowId>(), 24);
    }
}
