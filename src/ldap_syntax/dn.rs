//! Distinguished names (RFC 4514) in one canonical form, so that `CN=Doe\, Jane,OU=People`
//! written by a group and `cn=doe\2c jane, ou=people` written by the server compare equal.
//!
//! Case-sensitive or textual DN comparison is a classic way to lose memberships (see
//! ldap-pitfalls.md). The canonical form: attribute types lower-cased, values unescaped,
//! insignificant spaces removed, lower-cased (the naming attributes in practice — cn, uid,
//! ou, dc, o — all match case-insensitively), multi-valued RDNs sorted, then re-escaped per
//! RFC 4514. The parser also takes RFC 2253's leniencies that servers still send (spaces
//! around separators, `;` between RDNs, quoted values, the `OID.` prefix); anything else is
//! refused with the character where it goes wrong.
//!
//! The same canonical form is what the rules SDKs' `dn::normalize` gives: the shared vectors
//! in `rules-sdk/testdata/helpers.json` run against this module too (`super::vectors`).

use std::fmt;

/// A DN in canonical form; equality and hashing are the DN comparison.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NormalizedDn(String);

/// Why a text is not a DN: where (1-based character) and what is wrong there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DN `{dn}` at character {position}: {reason}")]
pub struct DnError {
    pub dn: String,
    pub position: usize,
    pub reason: String,
}

impl NormalizedDn {
    /// Parses and normalises `dn`.
    pub fn parse(dn: &str) -> Result<NormalizedDn, DnError> {
        let mut simple = String::new();
        if simple_canonical_into(dn, &mut simple) {
            return Ok(NormalizedDn(simple));
        }
        Self::parse_general(dn)
    }

    /// The full parser, for every DN [`simple_canonical_into`] does not take.
    fn parse_general(dn: &str) -> Result<NormalizedDn, DnError> {
        if dn.trim().is_empty() {
            return Ok(NormalizedDn(String::new()));
        }
        let mut out = String::with_capacity(dn.len());
        let mut parser = Parser {
            chars: dn.chars().collect(),
            pos: 0,
        };
        let fail = |at: usize, reason: &str| DnError {
            dn: dn.to_string(),
            position: at + 1,
            reason: reason.to_string(),
        };
        loop {
            let mut avas = Vec::with_capacity(1);
            loop {
                let ty = parser.attribute_type().map_err(|r| fail(parser.pos, &r))?;
                let value = parser.attribute_value().map_err(|r| fail(parser.pos, &r))?;
                avas.push(format!("{ty}={value}"));
                parser.skip_spaces();
                match parser.peek() {
                    Some('+') => parser.pos += 1,
                    _ => break,
                }
            }
            avas.sort();
            if !out.is_empty() {
                out.push(',');
            }
            out.push_str(&avas.join("+"));
            match parser.peek() {
                Some(',') | Some(';') => parser.pos += 1,
                None => break,
                Some(c) => {
                    return Err(fail(
                        parser.pos,
                        &format!("unexpected `{c}` after a value; RDNs are separated by `,`"),
                    ))
                }
            }
        }
        Ok(NormalizedDn(out))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The RDNs, leaf first, each in canonical form.
    pub fn rdns(&self) -> impl Iterator<Item = &str> {
        split_unescaped(&self.0, ',')
    }

    /// The (first) value of the leaf RDN, unescaped: the `cn` of `cn=leads,ou=groups,…`.
    pub fn leaf_value(&self) -> Option<String> {
        let rdn = self.rdns().next()?;
        let ava = split_unescaped(rdn, '+').next()?;
        let (_, value) = ava.split_once('=')?;
        Some(unescape_canonical(value))
    }

    /// True when this DN is `base` or lies below it.
    pub fn is_within(&self, base: &NormalizedDn) -> bool {
        if base.0.is_empty() {
            return true;
        }
        let mine: Vec<&str> = self.rdns().collect();
        let theirs: Vec<&str> = base.rdns().collect();
        mine.len() >= theirs.len() && mine[mine.len() - theirs.len()..] == theirs[..]
    }
}

/// The canonical form of a DN in the shape servers send almost every DN in
/// (`uid=jdoe,ou=people,dc=example,dc=org`): `type=value` RDNs, one value each, of ASCII
/// letters, digits and `-._@` only. For those the canonical form is the lower-cased text, so
/// it is written into `out` (cleared first) without parsing or allocating per RDN, and
/// `true` returned. Anything else (spaces, escapes, quotes, `+`, `;`, `#`, non-ASCII, the
/// `OID.` prefix, an empty or malformed RDN) returns `false`: use [`NormalizedDn::parse`].
pub fn simple_canonical_into(dn: &str, out: &mut String) -> bool {
    out.clear();
    if dn.is_empty() {
        return false;
    }
    for rdn in dn.split(',') {
        let Some((ty, value)) = rdn.split_once('=') else {
            return false;
        };
        let type_ok = !ty.is_empty()
            && ty
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
            && !ty.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("oid."));
        let value_ok = !value.is_empty()
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'@'));
        if !type_ok || !value_ok {
            return false;
        }
    }
    out.reserve(dn.len());
    out.extend(dn.bytes().map(|b| char::from(b.to_ascii_lowercase())));
    true
}

impl fmt::Display for NormalizedDn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_spaces(&mut self) {
        while self.peek() == Some(' ') {
            self.pos += 1;
        }
    }

    fn attribute_type(&mut self) -> Result<String, String> {
        self.skip_spaces();
        let start = self.pos;
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                self.pos += 1;
            } else {
                break;
            }
        }
        let ty: String = self.chars[start..self.pos].iter().collect();
        self.skip_spaces();
        if ty.is_empty() {
            return Err("an attribute type is missing (expected e.g. `cn=`)".into());
        }
        if self.peek() != Some('=') {
            return Err(format!("`=` expected after attribute type `{ty}`"));
        }
        self.pos += 1;
        // `OID.2.5.4.3` is an old spelling of `2.5.4.3`.
        let ty = ty.to_ascii_lowercase();
        Ok(ty.strip_prefix("oid.").map(str::to_string).unwrap_or(ty))
    }

    /// Reads one value up to an unescaped `,`, `;` or `+`, returning it re-escaped canonically.
    fn attribute_value(&mut self) -> Result<String, String> {
        self.skip_spaces();
        if self.peek() == Some('#') {
            // A BER-encoded value in hex: compared as its (lower-cased) hex text.
            let start = self.pos;
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_hexdigit()) {
                self.pos += 1;
            }
            let digits = self.pos - start - 1;
            if digits == 0 || digits % 2 == 1 {
                return Err(
                    "a value starting with `#` is hex pairs (BER); a `#` meant as text is \\#"
                        .into(),
                );
            }
            let hex: String = self.chars[start..self.pos].iter().collect();
            return Ok(hex.to_ascii_lowercase());
        }
        if self.peek() == Some('"') {
            self.pos += 1;
            let mut bytes = Vec::new();
            loop {
                match self.peek() {
                    None => return Err("a quoted value is not closed".into()),
                    Some('"') => {
                        self.pos += 1;
                        break;
                    }
                    Some('\\') => self.escape(&mut bytes)?,
                    Some(c) => {
                        push_char(&mut bytes, c);
                        self.pos += 1;
                    }
                }
            }
            let text = String::from_utf8(bytes).map_err(|_| "a value is not valid UTF-8")?;
            return Ok(canonical_value(&text));
        }
        let mut bytes = Vec::new();
        // Trailing spaces are insignificant unless escaped; remember where the last
        // significant (non-space or escaped) byte ends.
        let mut significant_len = 0;
        while let Some(c) = self.peek() {
            match c {
                ',' | ';' | '+' => break,
                '\\' => {
                    self.escape(&mut bytes)?;
                    significant_len = bytes.len();
                }
                '"' => return Err("an unescaped `\"` inside a value".into()),
                _ => {
                    push_char(&mut bytes, c);
                    self.pos += 1;
                    if c != ' ' {
                        significant_len = bytes.len();
                    }
                }
            }
        }
        bytes.truncate(significant_len);
        let text = String::from_utf8(bytes).map_err(|_| "a value is not valid UTF-8")?;
        Ok(canonical_value(&text))
    }

    fn escape(&mut self, bytes: &mut Vec<u8>) -> Result<(), String> {
        self.pos += 1; // the backslash
        let first = self.peek().ok_or("the DN ends with a lone `\\`")?;
        if let Some(hi) = first.to_digit(16) {
            let lo = self
                .chars
                .get(self.pos + 1)
                .and_then(|c| c.to_digit(16))
                .ok_or("`\\` must be followed by two hex digits or a special character")?;
            bytes.push((hi * 16 + lo) as u8);
            self.pos += 2;
        } else {
            push_char(bytes, first);
            self.pos += 1;
        }
        Ok(())
    }
}

fn push_char(bytes: &mut Vec<u8>, c: char) {
    let mut buf = [0u8; 4];
    bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
}

/// Lower-cases, collapses runs of spaces, and escapes per RFC 4514 ([`escape_value`]).
fn canonical_value(text: &str) -> String {
    let lowered = text.to_lowercase();
    let mut collapsed = String::with_capacity(lowered.len());
    let mut previous_space = false;
    for c in lowered.chars() {
        let is_space = c.is_whitespace();
        if is_space && previous_space {
            continue;
        }
        collapsed.push(if is_space { ' ' } else { c });
        previous_space = is_space;
    }
    // Unescaped leading/trailing spaces were dropped by the parser; what is left is significant.
    escape_value(&collapsed)
}

/// A value written for a DN (RFC 4514, section 2.4): `,` `+` `"` `\` `<` `>` `;` `=`, a
/// leading `#`, and leading or trailing spaces escaped with a backslash; control characters
/// as the `\xx` of each UTF-8 byte. `Smith, John` → `Smith\, John`.
pub fn escape_value(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 4);
    let last = text.chars().count().saturating_sub(1);
    for (i, c) in text.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && c == '#')
            || ((i == 0 || i == last) && c == ' ');
        if special {
            out.push('\\');
        }
        if c.is_control() {
            // Each UTF-8 byte as `\xx`: U+0085 is `\c2\85`, never a lone `\85`.
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("\\{byte:02x}"));
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`canonical_value`]'s escaping (for display of a leaf value).
fn unescape_canonical(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len());
    let mut rest = value;
    while let Some(at) = rest.find('\\') {
        out.extend_from_slice(&rest.as_bytes()[..at]);
        let escaped = &rest[at + 1..];
        let hex = escaped
            .get(..2)
            .and_then(|pair| u8::from_str_radix(pair, 16).ok());
        match (hex, escaped.chars().next()) {
            (Some(byte), _) => {
                out.push(byte);
                rest = &escaped[2..];
            }
            (None, Some(c)) => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                rest = &escaped[c.len_utf8()..];
            }
            (None, None) => rest = "",
        }
    }
    out.extend_from_slice(rest.as_bytes());
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits at `sep` characters that are not escaped with a backslash.
fn split_unescaped(text: &str, sep: char) -> impl Iterator<Item = &str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            parts.push(&text[start..i]);
            start = i + c.len_utf8();
        }
    }
    if !text.is_empty() {
        parts.push(&text[start..]);
    }
    parts.into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(dn: &str) -> String {
        NormalizedDn::parse(dn).unwrap().0
    }

    #[test]
    fn the_simple_shape_gives_what_the_full_parser_gives() {
        for dn in [
            "uid=JDoe,ou=People,dc=Example,dc=org",
            "CN=a.b-c_d@x,OU=g,DC=x",
            "2.5.4.3=x,dc=y",
            "cn=a=b,dc=x",
            "OID.2.5.4.3=x,dc=y",
            "oid.2.5.4.3=x",
            "cn=,dc=x",
            "cn=x,",
            ",cn=x",
            "cn",
            "cn=a b,dc=x",
            "cn=a+sn=b,dc=x",
            "cn=a;dc=x",
            "cn=#04,dc=x",
            "cn=Zoë,dc=x",
            "cn=a\\,b,dc=x",
            "",
            " ",
        ] {
            let mut simple = String::new();
            if simple_canonical_into(dn, &mut simple) {
                assert_eq!(
                    Ok(simple),
                    NormalizedDn::parse_general(dn).map(|d| d.0),
                    "{dn}"
                );
            }
            assert_eq!(
                NormalizedDn::parse(dn),
                NormalizedDn::parse_general(dn),
                "{dn}"
            );
        }
        let mut out = String::new();
        assert!(simple_canonical_into("uid=U1,OU=People,dc=x", &mut out));
        assert_eq!(out, "uid=u1,ou=people,dc=x");
        assert!(!simple_canonical_into("cn=a b,dc=x", &mut out));
    }

    proptest::proptest! {
        #[test]
        fn the_fast_path_never_disagrees(dn in "[a-zA-Z0-9=,.@_ +;#\\\\\"-]{0,40}") {
            proptest::prop_assert_eq!(
                NormalizedDn::parse(&dn),
                NormalizedDn::parse_general(&dn)
            );
        }
    }

    #[test]
    fn case_spacing_and_escapes_normalise_to_one_form() {
        let forms = [
            "CN=Doe\\, Jane,OU=People,DC=Example,DC=com",
            "cn=doe\\, jane,ou=people,dc=example,dc=com",
            "cn = Doe\\2C Jane , ou=People, dc=example, dc=com",
            "CN=\"Doe, Jane\",OU=People,DC=example,DC=COM",
            "cn=Doe\\,  Jane;ou=people;dc=example;dc=com",
            "OID.2.5.4.3=Doe\\, Jane,ou=people,dc=example,dc=com",
        ];
        let canonical = n(forms[0]);
        assert_eq!(canonical, "cn=doe\\, jane,ou=people,dc=example,dc=com");
        for f in &forms[1..5] {
            assert_eq!(n(f), canonical, "{f}");
        }
        assert_eq!(
            n(forms[5]),
            "2.5.4.3=doe\\, jane,ou=people,dc=example,dc=com"
        );
    }

    #[test]
    fn non_ascii_and_escaped_utf8_agree() {
        assert_eq!(
            n("cn=Bj\\C3\\B6rn,dc=x"),
            n("CN=BJÖRN,DC=X"),
            "hex-escaped UTF-8 equals the literal, case-folded"
        );
    }

    #[test]
    fn multi_valued_rdns_are_sorted() {
        assert_eq!(n("uid=a+cn=B,dc=x"), n("CN=b + UID=A,dc=x"));
        assert_eq!(n("uid=a+cn=B,dc=x"), "cn=b+uid=a,dc=x");
    }

    #[test]
    fn significant_spaces_survive() {
        assert_eq!(n("cn=\\ lead\\ ,dc=x"), "cn=\\ lead\\ ,dc=x");
        assert_ne!(n("cn=\\ lead,dc=x"), n("cn=lead,dc=x"));
    }

    #[test]
    fn control_characters_are_escaped_byte_by_byte_and_stay_stable() {
        // U+0080 is a C1 control; its escape is its two UTF-8 bytes (found by hostile_input).
        let dn = NormalizedDn::parse("c=\u{80}x,dc=example").unwrap();
        assert_eq!(dn.as_str(), "c=\\c2\\80x,dc=example");
        assert_eq!(NormalizedDn::parse(dn.as_str()).unwrap(), dn);
        assert_eq!(dn.leaf_value().as_deref(), Some("\u{80}x"));
        let control = NormalizedDn::parse("cn=a\\01b,dc=example").unwrap();
        assert_eq!(control.as_str(), "cn=a\\01b,dc=example");
        assert_eq!(control.leaf_value().as_deref(), Some("a\u{1}b"));
    }

    #[test]
    fn leaf_value_and_containment() {
        let dn = NormalizedDn::parse("CN=Doe\\, Jane,OU=People,DC=example").unwrap();
        assert_eq!(dn.leaf_value().as_deref(), Some("doe, jane"));
        let base = NormalizedDn::parse("ou=people, dc=EXAMPLE").unwrap();
        assert!(dn.is_within(&base));
        assert!(base.is_within(&base));
        let other = NormalizedDn::parse("ou=groups,dc=example").unwrap();
        assert!(!dn.is_within(&other));
        // An escaped comma is not an RDN boundary.
        let tricky = NormalizedDn::parse("cn=x\\,ou=people,dc=example").unwrap();
        assert!(!tricky.is_within(&base));
        assert!(dn.is_within(&NormalizedDn::parse("").unwrap()));
    }

    #[test]
    fn malformed_dns_are_errors_not_panics() {
        for bad in [
            "cn",
            "=x",
            "cn=a\\",
            "cn=a\\4",
            "cn=\"open",
            "cn=a\"b",
            "cn=a,,dc=x",
            "cn=#,dc=x",
            "cn=#0,dc=x",
            "cn=#zz,dc=x",
            "cn=#04zz,dc=x",
        ] {
            assert!(NormalizedDn::parse(bad).is_err(), "{bad}");
        }
        assert!(NormalizedDn::parse("cn=\\ff\\fe").is_err(), "invalid UTF-8");
    }

    #[test]
    fn errors_say_where() {
        for (bad, position, says) in [
            ("people", 7, "`=` expected after attribute type `people`"),
            ("ou=people,,dc=x", 11, "an attribute type is missing"),
            ("ou=people,dc=x,", 16, "an attribute type is missing"),
            ("cn=\"a\"b,dc=x", 7, "unexpected `b` after a value"),
            ("cn=#0g,dc=x", 6, "hex pairs"),
        ] {
            let e = NormalizedDn::parse(bad).unwrap_err();
            assert_eq!((e.position, e.dn.as_str()), (position, bad), "{e}");
            assert!(e.reason.contains(says), "{e}");
        }
        assert_eq!(
            NormalizedDn::parse("cn=a,,dc=x").unwrap_err().to_string(),
            "invalid DN `cn=a,,dc=x` at character 6: an attribute type is missing (expected e.g. `cn=`)"
        );
    }

    #[test]
    fn hex_values_are_kept_as_their_hex() {
        assert_eq!(n("CN=#04034A6F65,DC=x"), "cn=#04034a6f65,dc=x");
        assert_eq!(n("cn=#04 , dc=x"), "cn=#04,dc=x");
    }
}
