//! Distinguished names: split a DN into its parts, read its RDN, compare DNs. LDAP escapes
//! (`\,`, `\2C`) are honoured, so `cn=Smith\, John,ou=people` has two parts, not three.

/// One `attribute=value` part of a DN, the value unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rdn {
    /// The attribute type, lower-cased (`cn`, `ou`, `dc`, ...).
    pub attr: String,
    /// The value, unescaped, without the white space around it. An escaped space (`\ `, or
    /// `\20`) is part of the value, as RFC 4514 and the host say: `cn=x\ ` is `x `.
    pub value: String,
}

/// The parts of a DN, leftmost (most specific) first. Multi-valued RDNs (`cn=a+uid=b`) are
/// split into their components too.
pub fn parse(dn: &str) -> Vec<Rdn> {
    rdns(dn).into_iter().flatten().collect()
}

/// The RDNs of a DN, leftmost first, each with its `attribute=value` parts (more than one
/// for a multi-valued RDN such as `cn=a+uid=b`). Hex escapes are UTF-8 bytes (RFC 4514):
/// `Caf\C3\A9` is `Café`.
fn rdns(dn: &str) -> Vec<Vec<Rdn>> {
    let mut out = Vec::new();
    let mut rdn = Vec::new();
    let mut attr: Vec<u8> = Vec::new();
    let mut value: Vec<u8> = Vec::new();
    let mut in_value = false;
    // The bytes of `value` written escaped, from the first escape to the end of the last:
    // white space is trimmed only outside them.
    let mut escaped: Option<(usize, usize)> = None;
    let mut chars = dn.chars().peekable();
    let part = |attr: &mut Vec<u8>,
                value: &mut Vec<u8>,
                escaped: &mut Option<(usize, usize)>,
                rdn: &mut Vec<Rdn>| {
        let a = String::from_utf8_lossy(attr).trim().to_ascii_lowercase();
        if !a.is_empty() {
            let value = match *escaped {
                None => String::from_utf8_lossy(value).trim().to_string(),
                Some((start, end)) => [
                    String::from_utf8_lossy(&value[..start]).trim_start(),
                    &String::from_utf8_lossy(&value[start..end]),
                    String::from_utf8_lossy(&value[end..]).trim_end(),
                ]
                .concat(),
            };
            rdn.push(Rdn { attr: a, value });
        }
        attr.clear();
        value.clear();
        *escaped = None;
    };
    let mut utf8 = [0u8; 4];
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                let Some(next) = chars.next() else { break };
                let target = if in_value { &mut value } else { &mut attr };
                let from = target.len();
                let hex_pair =
                    next.is_ascii_hexdigit() && chars.peek().is_some_and(|c| c.is_ascii_hexdigit());
                match chars.peek().copied().filter(|_| hex_pair) {
                    Some(lo) => {
                        chars.next();
                        let byte = u8::from_str_radix(&format!("{next}{lo}"), 16).unwrap_or(b'?');
                        target.push(byte);
                    }
                    None => target.extend_from_slice(next.encode_utf8(&mut utf8).as_bytes()),
                }
                if in_value {
                    let start = escaped.map_or(from, |(start, _)| start);
                    escaped = Some((start, value.len()));
                }
            }
            '=' if !in_value => in_value = true,
            '+' if in_value => {
                part(&mut attr, &mut value, &mut escaped, &mut rdn);
                in_value = false;
            }
            ',' | ';' if in_value => {
                part(&mut attr, &mut value, &mut escaped, &mut rdn);
                out.push(std::mem::take(&mut rdn));
                in_value = false;
            }
            _ if in_value => value.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
            _ => attr.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes()),
        }
    }
    if in_value {
        part(&mut attr, &mut value, &mut escaped, &mut rdn);
    }
    if !rdn.is_empty() {
        out.push(rdn);
    }
    out
}

/// An RDN written back: its parts joined with `+`, values escaped.
fn write_rdn(parts: &[Rdn]) -> String {
    parts
        .iter()
        .map(|r| format!("{}={}", r.attr, escape(&r.value)))
        .collect::<Vec<_>>()
        .join("+")
}

/// The value of the first (most specific) RDN: `jdoe` for `uid=jdoe,ou=people,dc=x`.
pub fn rdn_value(dn: &str) -> Option<String> {
    parse(dn).into_iter().next().map(|r| r.value)
}

/// The DN without its first RDN: `ou=people,dc=x` for `uid=jdoe,ou=people,dc=x`.
pub fn parent(dn: &str) -> Option<String> {
    let rdns = rdns(dn);
    if rdns.len() < 2 {
        return None;
    }
    Some(
        rdns[1..]
            .iter()
            .map(|parts| write_rdn(parts))
            .collect::<Vec<_>>()
            .join(","),
    )
}

/// All values of one attribute type, in order: `values_of(dn, "ou")` → `["vfx", "people"]`.
pub fn values_of(dn: &str, attr: &str) -> Vec<String> {
    parse(dn)
        .into_iter()
        .filter(|r| r.attr.eq_ignore_ascii_case(attr))
        .map(|r| r.value)
        .collect()
}

/// The DNS domain spelled by the `dc=` parts: `example.com` for `...,dc=example,dc=com`.
pub fn domain(dn: &str) -> Option<String> {
    let dcs = values_of(dn, "dc");
    (!dcs.is_empty()).then(|| dcs.join(".").to_ascii_lowercase())
}

/// A comparable form: attribute types and values lower-cased, spaces around separators
/// removed, escapes resolved, the parts of a multi-valued RDN sorted.
pub fn normalize(dn: &str) -> String {
    rdns(dn)
        .into_iter()
        .map(|parts| {
            let mut parts: Vec<Rdn> = parts
                .into_iter()
                .map(|r| Rdn {
                    attr: r.attr,
                    value: r.value.to_lowercase(),
                })
                .collect();
            parts.sort_by(|a, b| (&a.attr, &a.value).cmp(&(&b.attr, &b.value)));
            write_rdn(&parts)
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// True when two DNs name the same entry.
pub fn same(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    // Plain ASCII DNs (no escapes, no spaces around separators) that differ beyond ASCII
    // case differ: skip the parse. Anything else is compared in normal form.
    if plain(a) && plain(b) {
        return false;
    }
    normalize(a) == normalize(b)
}

/// ASCII, no escapes or multi-valued RDNs, no spaces around `,` or `=`: such a DN is in
/// normal form except for letter case. One pass over the bytes.
fn plain(s: &str) -> bool {
    let b = s.as_bytes();
    if b.first() == Some(&b' ') || b.last() == Some(&b' ') {
        return false;
    }
    let mut prev = 0u8;
    for &c in b {
        if c >= 0x80 || matches!(c, b'\\' | b'"' | b'+' | b';') {
            return false;
        }
        if (c == b' ' && matches!(prev, b',' | b'=')) || (matches!(c, b',' | b'=') && prev == b' ')
        {
            return false;
        }
        prev = c;
    }
    true
}

/// True when `dn` is at or below `base`.
pub fn is_under(dn: &str, base: &str) -> bool {
    let dn = normalize(dn);
    let base = normalize(base);
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// Escape a value for use in a DN (RFC 4514 special characters).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=')
            || (i == 0 && (c == '#' || c == ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_escaped_and_spaced_dns() {
        let p = parse("CN=Smith\\, John , OU=People,dc=Example,dc=com");
        assert_eq!(p.len(), 4);
        assert_eq!(
            p[0],
            Rdn {
                attr: "cn".into(),
                value: "Smith, John".into()
            }
        );
        assert_eq!(rdn_value("uid=j\\2Cdoe,dc=x").as_deref(), Some("j,doe"));
        assert_eq!(
            domain("uid=a,ou=p,dc=Example,dc=COM").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            values_of("uid=a,ou=vfx,ou=people,dc=x", "OU"),
            vec!["vfx", "people"]
        );
        assert_eq!(
            parent("uid=a,ou=People,dc=x").as_deref(),
            Some("ou=People,dc=x")
        );
        assert!(same("CN=A, DC=X", "cn=a,dc=x"));
        assert!(is_under("uid=a,ou=p,dc=x", "OU=P,dc=X"));
        assert!(!is_under("uid=a,ou=pp,dc=x", "ou=p,dc=x"));
        assert_eq!(normalize("cn=Smith\\, John,dc=x"), "cn=smith\\, john,dc=x");
    }
}
