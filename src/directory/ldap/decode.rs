//! Decoding the BER the server sent, without ever panicking.
//!
//! It exists because ldap3's own decoding cannot be trusted with a sync's input:
//! `SearchEntry::construct` panics on malformed data or a referral, and it sorts values into
//! text or bytes by whether they happen to be UTF-8, so an AD objectGUID can land among the
//! strings. [`parse_entry`] builds [`Entry`] values straight from the message, keeping binary
//! attributes as bytes by name; every parser here returns `None` on anything unexpected and
//! the caller fails the read. Also here: the paged-results cookie and the URLs of a
//! continuation reference.

use crate::directory::entry::{attribute_name, is_binary_attribute, Values};
use crate::directory::{Attribute, Entry, Value};
use ldap3::asn1::{parse_tag, parse_uint, StructureTag, TagClass, Types, PL};

/// The cookie of a paged-results response control value: `SEQUENCE { size INTEGER, cookie
/// OCTET STRING }`. `None` when malformed.
pub(super) fn parse_paged_cookie(value: Option<&[u8]>) -> Option<Vec<u8>> {
    let (_, tag) = parse_tag(value?).ok()?;
    let mut parts = tag.expect_constructed()?.into_iter();
    let size = parts.next()?;
    if size.class != TagClass::Universal || size.id != Types::Integer as u64 {
        return None;
    }
    parse_uint(&size.expect_primitive()?).ok()?;
    parts.next()?.expect_primitive()
}

/// A SEQUENCE OF OCTET STRING as UTF-8 strings (continuation reference URLs).
pub(super) fn parse_strings(tag: StructureTag) -> Option<Vec<String>> {
    tag.expect_constructed()?
        .into_iter()
        .map(|t| String::from_utf8(t.expect_primitive()?).ok())
        .collect()
}

/// Decodes a SearchResultEntry (`[APPLICATION 4] SEQUENCE { objectName, attributes SEQUENCE OF
/// SEQUENCE { type, vals SET OF value } }`) without panicking on malformed input.
pub(super) fn parse_entry(tag: StructureTag) -> Option<Entry> {
    let mut parts = tag.expect_constructed()?.into_iter();
    let dn = String::from_utf8(parts.next()?.expect_primitive()?).ok()?;
    let attribute_tags = match parts.next() {
        Some(t) => t.expect_constructed()?,
        None => Vec::new(),
    };
    let mut attributes: Vec<Attribute> = Vec::with_capacity(attribute_tags.len());
    for attribute in attribute_tags {
        let mut pieces = attribute.expect_constructed()?.into_iter();
        let name = String::from_utf8(pieces.next()?.expect_primitive()?).ok()?;
        let raw_values = match pieces.next() {
            Some(StructureTag {
                payload: PL::C(values),
                ..
            }) => values,
            Some(_) => return None,
            None => Vec::new(),
        };
        let mut values = Values::with_capacity(raw_values.len());
        // What `Value::from_bytes` does, with the attribute's kind looked up once, not per
        // value: a large group has hundreds of thousands of member values.
        let binary = is_binary_attribute(&name);
        for value in raw_values {
            let bytes = value.expect_primitive()?;
            values.push(if binary {
                Value::Binary(bytes)
            } else {
                match String::from_utf8(bytes) {
                    Ok(text) => Value::Text(text),
                    Err(e) => Value::Binary(e.into_bytes()),
                }
            });
        }
        merge_attribute(&mut attributes, &name, values);
    }
    Some(Entry { dn, attributes })
}

/// Adds `values` to the attribute called `name` (any case), or appends it as a new one: a
/// server may send an attribute twice, and a range slice merges into its plain attribute.
pub(super) fn merge_attribute(attributes: &mut Vec<Attribute>, name: &str, values: Values) {
    match attributes
        .iter_mut()
        .find(|a| a.name.eq_ignore_ascii_case(name))
    {
        Some(existing) => existing.values.extend(values),
        None => attributes.push(Attribute {
            name: attribute_name(name),
            values,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_entries_do_not_panic() {
        let primitive = |id, bytes: &[u8]| StructureTag {
            class: TagClass::Universal,
            id,
            payload: PL::P(bytes.to_vec()),
        };
        let constructed = |class, id, inner| StructureTag {
            class,
            id,
            payload: PL::C(inner),
        };
        // A primitive where the attribute list should be.
        let bad = constructed(
            TagClass::Application,
            4,
            vec![primitive(4, b"cn=x"), primitive(4, b"oops")],
        );
        assert_eq!(parse_entry(bad), None);
        // A well-formed entry, with a GUID that happens to be UTF-8 kept as bytes.
        let good = constructed(
            TagClass::Application,
            4,
            vec![
                primitive(4, b"cn=x"),
                constructed(
                    TagClass::Universal,
                    16,
                    vec![
                        constructed(
                            TagClass::Universal,
                            16,
                            vec![
                                primitive(4, b"objectGUID"),
                                constructed(
                                    TagClass::Universal,
                                    17,
                                    vec![primitive(4, b"ABCDEFGHIJKLMNOP")],
                                ),
                            ],
                        ),
                        constructed(
                            TagClass::Universal,
                            16,
                            vec![
                                primitive(4, b"cn"),
                                constructed(TagClass::Universal, 17, vec![primitive(4, b"x")]),
                            ],
                        ),
                    ],
                ),
            ],
        );
        let entry = parse_entry(good).expect("well-formed");
        assert_eq!(
            entry.values("objectGUID"),
            &[Value::Binary(b"ABCDEFGHIJKLMNOP".to_vec())]
        );
        assert_eq!(entry.first_text("cn"), Some("x"));
        assert_eq!(parse_paged_cookie(Some(b"\x30\x03\x02\x01")), None);
        assert_eq!(
            parse_paged_cookie(Some(b"\x30\x07\x02\x01\x00\x04\x02ab")),
            Some(b"ab".to_vec())
        );
    }
}
