//! Shared test harness: real servers for integration tests, started per test and stopped on
//! drop. Include it from a test file with `mod support;`.
//!
//! * [`slapd`]: a real OpenLDAP slapd (mdb, memberof, ppolicy, StartTLS and ldaps with a CA the
//!   harness generates, a size-limited sync account), loaded with `slapadd`.
//! * [`fake_ad`]: a small in-process LDAP server that answers like Active Directory (paged
//!   results, `member;range=` slices), with fault injection for fail-closed tests.

#![allow(dead_code)]

pub mod fake_ad;
pub mod slapd;

/// One LDIF line `name: value`, base64-encoded (`name:: …`) when the value is not safe ASCII.
pub fn ldif_line(name: &str, value: &str) -> String {
    let safe = value.bytes().all(|b| (0x20..0x7f).contains(&b))
        && !value.starts_with([' ', ':', '<'])
        && !value.ends_with(' ');
    if safe {
        format!("{name}: {value}\n")
    } else {
        {
            use base64::Engine;
            let encoded = base64::engine::general_purpose::STANDARD.encode(value.as_bytes());
            format!("{name}:: {encoded}\n")
        }
    }
}
