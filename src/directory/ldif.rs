//! An LDIF file (RFC 2849) as a directory source: for the demo, for rule-test fixtures, and
//! for anyone trying ldap2ftrack without a server.
//!
//! The file plays the server's part: entries are selected with the configured base DNs and
//! filters, so an `ldif:` source and a server holding the same data give the same snapshot.
//! Parse errors carry the line number.

use super::entry::{Entry, Value};
use super::filter::EntryFilter;
use super::{DirectoryError, EntrySet, ReadStats};
use crate::config::LdapSettings;
use crate::ldap_syntax::NormalizedDn;
use base64::Engine;
use std::collections::HashSet;
use std::path::Path;

/// Reads `path` and selects users and groups as a server would for `settings`.
pub fn read_entries(path: &Path, settings: &LdapSettings) -> Result<EntrySet, DirectoryError> {
    let text = std::fs::read(path).map_err(|cause| DirectoryError::LdifIo {
        path: path.to_path_buf(),
        cause,
    })?;
    let entries = parse(&text).map_err(|(line, message)| DirectoryError::Ldif {
        path: path.to_path_buf(),
        line,
        message,
    })?;
    crate::progress::advance(crate::progress::LDAP_READ, entries.len() as u64);
    select(entries, settings)
}

/// The searches a server would run for `settings`, users' then groups': each base DN and
/// filter parsed, and the filter checked to be one this file source can evaluate. Local, so
/// [`super::check_local`] runs it before any read.
pub fn searches(
    settings: &LdapSettings,
) -> Result<[(NormalizedDn, EntryFilter); 2], DirectoryError> {
    let search = |base: &str, key: &str, filter: &str| -> Result<_, DirectoryError> {
        let fail = |cause: String| DirectoryError::Search {
            base_dn: base.to_string(),
            cause,
        };
        let base_dn =
            NormalizedDn::parse(base).map_err(|e| fail(format!("{e}; fix ldap.{key}_base_dn")))?;
        let filter =
            EntryFilter::parse(filter).map_err(|e| fail(format!("{e}; fix ldap.{key}_filter")))?;
        Ok((base_dn, filter))
    };
    Ok([
        search(&settings.user_base_dn, "user", &settings.user_filter)?,
        search(&settings.group_base_dn, "group", &settings.group_filter)?,
    ])
}

/// Picks the entries a search of each base DN with each filter would return.
pub fn select(entries: Vec<Entry>, settings: &LdapSettings) -> Result<EntrySet, DirectoryError> {
    let [(user_base, user_filter), (group_base, group_filter)] = searches(settings)?;
    let mut set = EntrySet {
        stats: ReadStats {
            pages: 1,
            entries: entries.len() as u64,
            range_requests: 0,
        },
        ..EntrySet::default()
    };
    // A server answers noSuchObject for a base DN it does not hold: so does the file.
    for (base, key, text) in [
        (&user_base, "ldap.user_base_dn", &settings.user_base_dn),
        (&group_base, "ldap.group_base_dn", &settings.group_base_dn),
    ] {
        let present = entries
            .iter()
            .any(|e| NormalizedDn::parse(&e.dn).is_ok_and(|dn| &dn == base));
        if !present {
            return Err(DirectoryError::Incomplete {
                base_dn: text.clone(),
                reason: format!("the base DN is not in the LDIF file (noSuchObject); check {key}"),
            });
        }
    }
    for entry in entries {
        let Ok(dn) = NormalizedDn::parse(&entry.dn) else {
            continue; // parse() has already rejected invalid DNs
        };
        if dn.is_within(&group_base) && group_filter.matches(&entry) {
            set.groups.push(entry);
        } else if dn.is_within(&user_base) && user_filter.matches(&entry) {
            set.users.push(entry);
        }
    }
    Ok(set)
}

/// Parses LDIF content records. Errors are `(line, message)`.
pub fn parse(bytes: &[u8]) -> Result<Vec<Entry>, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        (
            line,
            "the file is not valid UTF-8; encode binary values with `attr:: base64`".to_string(),
        )
    })?;
    let mut entries = Vec::new();
    let mut seen = HashSet::new();
    let mut current: Option<(usize, Entry)> = None;
    for (line_no, line) in logical_lines(text) {
        if line.is_empty() {
            if let Some((start, entry)) = current.take() {
                finish(&mut entries, &mut seen, start, entry)?;
            }
            continue;
        }
        let (name, value) = attribute_line(&line).map_err(|m| (line_no, m))?;
        match &mut current {
            None => {
                if name.eq_ignore_ascii_case("version") {
                    if value != Value::Text("1".into()) {
                        return Err((line_no, "only LDIF version 1 is supported".into()));
                    }
                    continue;
                }
                if !name.eq_ignore_ascii_case("dn") {
                    return Err((
                        line_no,
                        format!("a record must start with `dn:`, found `{name}:`"),
                    ));
                }
                let Value::Text(dn) = value else {
                    return Err((line_no, "the DN is not valid UTF-8".into()));
                };
                NormalizedDn::parse(&dn).map_err(|e| (line_no, e.to_string()))?;
                current = Some((line_no, Entry::new(dn)));
            }
            Some((_, entry)) => {
                if name.eq_ignore_ascii_case("changetype") {
                    return Err((
                        line_no,
                        "change records are not supported; write the entries as plain content records".into(),
                    ));
                }
                if name.eq_ignore_ascii_case("dn") {
                    return Err((line_no, "a new `dn:` needs a blank line before it".into()));
                }
                entry.push(&name, value);
            }
        }
    }
    if let Some((start, entry)) = current.take() {
        finish(&mut entries, &mut seen, start, entry)?;
    }
    Ok(entries)
}

fn finish(
    entries: &mut Vec<Entry>,
    seen: &mut HashSet<NormalizedDn>,
    start: usize,
    entry: Entry,
) -> Result<(), (usize, String)> {
    let dn = NormalizedDn::parse(&entry.dn).map_err(|e| (start, e.to_string()))?;
    if !seen.insert(dn) {
        return Err((start, format!("the entry `{}` appears twice", entry.dn)));
    }
    entries.push(entry);
    Ok(())
}

/// Joins folded lines and drops comments, yielding (first line number, logical line).
fn logical_lines(text: &str) -> Vec<(usize, String)> {
    let mut out: Vec<(usize, String)> = Vec::new();
    let mut in_comment = false;
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(continued) = line.strip_prefix(' ') {
            if in_comment {
                continue;
            }
            if let Some((_, last)) = out.last_mut() {
                if !last.is_empty() {
                    last.push_str(continued);
                    continue;
                }
            }
        }
        in_comment = line.starts_with('#');
        if !in_comment {
            out.push((i + 1, line.to_string()));
        }
    }
    out
}

fn attribute_line(line: &str) -> Result<(String, Value), String> {
    let (name, rest) = line
        .split_once(':')
        .ok_or_else(|| format!("`{line}` is not `attribute: value`"))?;
    let valid_name = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';' || c == '.');
    if !valid_name {
        return Err(format!("`{name}` is not an attribute name"));
    }
    if let Some(encoded) = rest.strip_prefix(':') {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .map_err(|e| format!("the base64 value of `{name}` does not decode: {e}"))?;
        return Ok((name.to_string(), Value::from_bytes(name, bytes)));
    }
    if rest.starts_with('<') {
        return Err(format!(
            "`{name}:<` (a value from a URL) is not supported; inline the value with `{name}::` and base64"
        ));
    }
    let value = rest.trim_start_matches(' ');
    Ok((
        name.to_string(),
        Value::from_bytes(name, value.as_bytes().to_vec()),
    ))
}

/// Writes entries as LDIF that [`parse`] reads back to the same entries: values that are
/// binary, not safe as plain text, or would lose spaces are base64-encoded; long lines fold.
pub fn write(entries: &[Entry]) -> String {
    let mut out = String::from("version: 1\n");
    for entry in entries {
        out.push('\n');
        write_line(&mut out, "dn", &Value::Text(entry.dn.clone()));
        for attribute in &entry.attributes {
            for value in &attribute.values {
                write_line(&mut out, &attribute.name, value);
            }
        }
    }
    out
}

fn write_line(out: &mut String, name: &str, value: &Value) {
    let line = match value {
        Value::Text(t) if is_safe_string(t) => format!("{name}: {t}"),
        Value::Text(t) => format!(
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(t)
        ),
        Value::Binary(b) => format!(
            "{name}:: {}",
            base64::engine::general_purpose::STANDARD.encode(b)
        ),
    };
    // Fold at 76 columns; continuation lines start with one space.
    let mut chars = line.chars().peekable();
    let mut column = 0;
    while let Some(c) = chars.next() {
        out.push(c);
        column += 1;
        if column >= 76 && chars.peek().is_some() {
            out.push_str("\n ");
            column = 1;
        }
    }
    out.push('\n');
}

/// RFC 2849 SAFE-STRING, kept to ASCII so the file is readable anywhere.
fn is_safe_string(text: &str) -> bool {
    let mut chars = text.chars();
    match chars.next() {
        None => true,
        Some(' ' | ':' | '<') => false,
        Some(_) => {
            !text.ends_with(' ')
                && text
                    .chars()
                    .all(|c| c.is_ascii() && c != '\0' && c != '\n' && c != '\r')
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_folding_comments_base64_and_binary() {
        let ldif = "version: 1\n\
# a comment\n\
#  folded comment\n\
dn: cn=Doe\\, Jane,ou=people,\n dc=example\n\
cn: Doe, Jane\n\
description:: w6lsw6huZQ==\n\
objectGUID:: AAECAwQFBgcICQoLDA0ODw==\n\
mail: jane@\n example.com\n\
\n\
\n\
dn: uid=b,dc=example\r\n\
uid:  b\r\n";
        let entries = parse(ldif.as_bytes()).unwrap();
        assert_eq!(entries.len(), 2);
        let jane = &entries[0];
        assert_eq!(jane.dn, "cn=Doe\\, Jane,ou=people,dc=example");
        assert_eq!(jane.first_text("description"), Some("élène"));
        assert_eq!(jane.first_text("mail"), Some("jane@example.com"));
        assert_eq!(
            jane.values("objectGUID"),
            &[Value::Binary((0u8..16).collect())]
        );
        assert_eq!(entries[1].first_text("uid"), Some("b"));
    }

    fn settings(user_filter: &str, group_base_dn: &str) -> LdapSettings {
        LdapSettings {
            source: crate::config::DirectorySource::LdifFile("people.ldif".into()),
            starttls: false,
            allow_insecure_ldap: false,
            ca_file: None,
            bind_dn: None,
            bind_password: None,
            user_base_dn: "ou=people,dc=x".into(),
            user_filter: user_filter.into(),
            group_base_dn: group_base_dn.into(),
            group_filter: "(objectClass=groupOfNames)".into(),
            user_attributes: Vec::new(),
            page_size: 500,
            timeout_s: 30,
        }
    }

    #[test]
    fn searches_refuse_what_the_file_cannot_evaluate_naming_the_key() {
        assert!(searches(&settings("(objectClass=person)", "ou=groups,dc=x")).is_ok());
        let e = searches(&settings(
            "(memberOf:1.2.840.113556.1.4.1941:=cn=a,dc=x)",
            "ou=groups,dc=x",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("matching rule 1.2.840.113556.1.4.1941 is not supported for ldif:")
                && e.ends_with("fix ldap.user_filter"),
            "{e}"
        );
        let e = searches(&settings("(objectClass=person)", "ou=groups,,dc=x"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("invalid DN `ou=groups,,dc=x` at character 11")
                && e.ends_with("fix ldap.group_base_dn"),
            "{e}"
        );
    }

    #[test]
    fn errors_carry_line_numbers() {
        let cases: &[(&str, usize, &str)] = &[
            ("dn: uid=a,dc=x\nuid a\n", 2, "attribute: value"),
            ("uid: a\n", 1, "must start with `dn:`"),
            ("dn: uid=a,dc=x\nphoto:: !!!\n", 2, "base64"),
            ("dn: uid=a,dc=x\nchangetype: add\n", 2, "change records"),
            ("dn: uid=a,dc=x\n\ndn: UID=A,dc=x\n", 3, "appears twice"),
            ("dn: uid=a,dc=x\nuid: a\n\ndn: cn=\"open\n", 4, "invalid DN"),
            (
                "dn: uid=a,dc=x\njpegPhoto:< file:///etc/passwd\n",
                2,
                "not supported",
            ),
            ("version: 2\n", 1, "version 1"),
        ];
        for (text, line, needle) in cases {
            let (got_line, message) = parse(text.as_bytes()).unwrap_err();
            assert_eq!(got_line, *line, "{text:?}: {message}");
            assert!(message.contains(needle), "{text:?}: {message}");
        }
        let (line, _) = parse(b"dn: uid=a,dc=x\nuid: a\ncn: \xff\n").unwrap_err();
        assert_eq!(line, 3);
    }

    #[test]
    fn write_then_parse_gives_the_same_entries() {
        let mut jane = Entry::new("cn=Doe\\, Jane,ou=people,dc=example");
        jane.push("cn", Value::Text("Doe, Jane".into()));
        jane.push(
            "description",
            Value::Text(" leading space and ünïcödé ".into()),
        );
        jane.push("objectGUID", Value::Binary((0u8..16).collect()));
        jane.push("note", Value::Text("x".repeat(200)));
        jane.push("empty", Value::Text(String::new()));
        let entries = vec![jane, Entry::new("uid=b,dc=example")];
        let text = write(&entries);
        assert!(text.lines().all(|l| l.len() <= 77), "{text}");
        assert_eq!(parse(text.as_bytes()).unwrap(), entries);
    }

    #[test]
    fn garbage_never_panics() {
        let mut seed: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    b"dn: =,\\\n :#x\"+;A"[(seed % 16) as usize]
                })
                .collect();
            let _ = parse(&bytes);
        }
    }
}
