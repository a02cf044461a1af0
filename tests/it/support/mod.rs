//! Shared test harness of the one integration binary (`tests/it/main.rs` declares it; a test
//! module reaches it as `crate::support`).
//!
//! * [`bin`] (re-exported here): the `ldap2ftrack` binary with a clean, explicit environment
//!   and a private compile cache for rule modules; a private copy of the bundled demo.
//! * [`plan`] (re-exported here): the operations of a `plan --output json` document.
//! * [`entry`]: directory entries for LDIF files written with the crate's own
//!   `ldap2ftrack::directory::ldif::write`.
//!
//! Real servers for integration tests, started per test and stopped on drop:
//!
//! * [`slapd`]: a real OpenLDAP slapd (mdb, memberof, ppolicy, StartTLS and ldaps with a CA the
//!   harness generates, a size-limited sync account), loaded with `slapadd`.
//! * [`samba`]: a real Active Directory domain controller (Samba), provisioned once and
//!   started per test from a copy, on 127.0.0.1:389 (one at a time).
//! * [`registry`]: a real OCI registry (Debian's `docker-registry`) on a free loopback port,
//!   with its storage in a temporary directory.
//! * [`fake_ad`]: a small in-process LDAP server that answers like Active Directory (paged
//!   results, `member;range=` slices), with fault injection for fail-closed tests.
//! * [`http`]: a tiny recording HTTP server on any 127.0.0.0/8 address (redirects, token
//!   services on another host), and a token-authenticated registry built on it.
//! * [`tls`]: an HTTPS server (`openssl s_server`) with a certificate from the test CA.

pub mod bin;
pub mod fake_ad;
pub mod http;
pub mod plan;
pub mod registry;
pub mod samba;
pub mod slapd;
pub mod tls;

pub use bin::{
    check_accepts, clean_env, copy_dir, demo_copy, ldap2ftrack, official_client, root,
    rule_cache_dir, rules_snippet, run, text,
};
pub use plan::{pairs, plan_ops, triples, PlannedOp};

use ldap2ftrack::directory::{Entry, Value};

/// A directory entry with these text attributes, in order (a name may repeat); write a list
/// of them with `ldap2ftrack::directory::ldif::write`, or [`write_ldif`].
pub fn entry(dn: impl Into<String>, attributes: &[(&str, &str)]) -> Entry {
    let mut entry = Entry::new(dn);
    for (name, value) in attributes {
        entry.push(name, Value::Text(value.to_string()));
    }
    entry
}

/// Writes `entries` to `path` as LDIF, with the crate's writer (the reader's counterpart).
pub fn write_ldif(path: &std::path::Path, entries: &[Entry]) {
    std::fs::write(path, ldap2ftrack::directory::ldif::write(entries))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

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

/// An emulator whose only security role is the PROJECT role `Artist` (the role the LDAP
/// tests' group mappings grant).
pub async fn emulator_with_artist_role(
    api_user: &str,
    api_key: &str,
) -> ftrack_emulator::RunningEmulator {
    let state = ftrack_emulator::StateDump::from_json(
        r#"{"SecurityRole": [{"id": "10000000-0000-4000-8000-000000000001", "name": "Artist"}]}"#,
    )
    .expect("the role state is valid");
    ftrack_emulator::spawn(ftrack_emulator::EmulatorConfig::new(api_user, api_key).state(state))
        .await
        .expect("emulator")
}

/// Writes a secret file readable by its owner only (0600), as the product asks of them.
pub fn private_file(path: &std::path::Path, contents: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// A child process killed (and reaped) when this goes out of scope, a failed assertion
/// included.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
