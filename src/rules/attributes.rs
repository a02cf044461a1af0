//! Which user attributes a run asks LDAP for.
//!
//! Asking for every attribute (`*`) makes the server send, and this process decode, all of
//! every user entry — photos, certificates, long descriptions — when a run uses a handful;
//! at 100,000 users decoding is a quarter of a plan's CPU. So, unless `[ldap]
//! user_attributes` names the list, a run asks for what its rule stages read (the
//! `[mappings]` attributes, each module's declared `reads`) plus what the directory itself
//! reads ([`directory::own_user_attributes`]). A module that reads every attribute makes it
//! `*` again: it is handed whatever the entry has, so the entry must have everything.
//!
//! The rules are prepared before anything is read (`run::prepare`), so the list is known
//! when the read starts; it goes down to the directory as plain names.

use super::Stage;
use crate::config::LdapSettings;
use crate::directory;

/// What a run asks LDAP for, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserAttributes {
    /// The user attributes the run needs, each once (case-insensitively); `None`: all of
    /// them (`*`). The operational ones are part of it (see
    /// [`directory::ldap::requested_user_attributes`] for the list a search sends).
    pub needed: Option<Vec<String>>,
    /// Who needs them, in words (for `check`).
    pub because: String,
}

/// The user attributes a run with these stages needs from LDAP (`needed`; `None`: all of
/// them), and who needs them.
pub fn user_attributes(ldap: &LdapSettings, stages: &[Box<dyn Stage>]) -> UserAttributes {
    if !ldap.user_attributes.is_empty() {
        // The admin's list wins, as it always has: it and the operational attributes.
        return UserAttributes {
            needed: Some(directory::ldap::requested_user_attributes(ldap, None)),
            because: "as [ldap] user_attributes names them".to_string(),
        };
    }
    let mut names: Vec<String> = Vec::new();
    let mut readers: Vec<String> = Vec::new();
    for stage in stages {
        let Some(reads) = stage.attributes_read() else {
            return UserAttributes {
                needed: None,
                because: format!("{} reads every attribute", label(stage.as_ref())),
            };
        };
        // Named as a reader even when others read the same: each stage needs them.
        let mut reads_some = false;
        for declared in reads {
            match ldap_name(declared) {
                Some(name) => {
                    push_unique(&mut names, name);
                    reads_some = true;
                }
                None => tracing::debug!(
                    stage = stage.name(),
                    "`{declared}` is not an LDAP attribute name; not requested"
                ),
            }
        }
        if reads_some {
            readers.push(label(stage.as_ref()));
        }
    }
    for name in directory::own_user_attributes(ldap) {
        push_unique(&mut names, &name);
    }
    readers.push("the directory itself".into());
    UserAttributes {
        needed: Some(names),
        because: format!("for {}", join_words(&readers)),
    }
}

/// Whether a rule stage may read `memberOf`: it names it, reads every attribute, or
/// `[ldap] user_attributes` names it. syncrepl does not report a changed `memberOf` (slapd's
/// memberof overlay rewrites it without touching the user entry's change sequence), so
/// such a run cannot read incrementally and still see what a full read sees.
pub fn reads_member_of(ldap: &LdapSettings, stages: &[Box<dyn Stage>]) -> bool {
    let names_it = |names: &[String]| names.iter().any(|n| n.eq_ignore_ascii_case("memberOf"));
    if !ldap.user_attributes.is_empty() {
        return names_it(&ldap.user_attributes);
    }
    stages.iter().any(|stage| match stage.attributes_read() {
        None => true,
        Some(reads) => names_it(reads),
    })
}

fn label(stage: &dyn Stage) -> String {
    if stage.name() == super::builtin::STAGE_NAME && stage.bounds().is_none() {
        "[mappings]".to_string()
    } else {
        format!("rule module `{}`", stage.name())
    }
}

/// "a", "a and b", "a, b and c".
fn join_words(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Adds `name` unless it is there in any case.
fn push_unique(names: &mut Vec<String>, name: &str) {
    if !names.iter().any(|n| n.eq_ignore_ascii_case(name)) {
        names.push(name.to_string());
    }
}

/// The name to ask LDAP for, for an attribute a stage reads: a binary attribute is handed
/// to rules as `<name>;base64`, which is this host's naming, not an LDAP option. `None` for
/// what is not an attribute description (RFC 4512: a name or an OID, then `;options`):
/// `*`, `+` or `@class` would ask for far more than the stage is handed, and a malformed
/// name may fail the search on some servers.
fn ldap_name(declared: &str) -> Option<&str> {
    let name = match declared.len().checked_sub(";base64".len()) {
        Some(at)
            if declared.is_char_boundary(at) && declared[at..].eq_ignore_ascii_case(";base64") =>
        {
            &declared[..at]
        }
        _ => declared,
    };
    let mut parts = name.split(';');
    let kind = parts.next()?;
    let keystring = kind.starts_with(|c: char| c.is_ascii_alphabetic())
        && kind.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    let oid = !kind.is_empty()
        && kind
            .split('.')
            .all(|n| !n.is_empty() && n.chars().all(|c| c.is_ascii_digit()));
    let options =
        parts.all(|o| !o.is_empty() && o.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    ((keystring || oid) && options).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{AttributeMappings, Config};
    use crate::rules::builtin::BuiltinStage;
    use std::collections::BTreeMap;
    use std::path::Path;

    /// A rule module as far as the read is concerned: a name and its declared reads.
    struct Module(&'static str, Option<Vec<String>>);

    impl Stage for Module {
        fn name(&self) -> &str {
            self.0
        }
        fn attributes_read(&self) -> Option<&[String]> {
            self.1.as_deref()
        }
    }

    fn module(name: &'static str, reads: Option<&[&str]>) -> Box<dyn Stage> {
        Box::new(Module(
            name,
            reads.map(|r| r.iter().map(|s| s.to_string()).collect()),
        ))
    }

    fn ldap(extra: &str) -> LdapSettings {
        let text = format!(
            "[ldap]\nurl = \"ldap://ldap.example.com\"\nuser_base_dn = \"ou=people,dc=example,dc=com\"\n{extra}"
        );
        Config::from_toml(&text, Path::new("/nonexistent/sync.toml"), &|_| None)
            .unwrap()
            .ldap
    }

    fn builtin(mappings: AttributeMappings) -> Box<dyn Stage> {
        Box::new(BuiltinStage::new(&mappings, &BTreeMap::new()))
    }

    const OPERATIONAL: [&str; 6] = [
        "entryUUID",
        "nsUniqueId",
        "objectGUID",
        "pwdAccountLockedTime",
        "nsAccountLock",
        "userAccountControl",
    ];

    fn list(names: &[&str]) -> Option<Vec<String>> {
        Some(names.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn the_builtin_mappings_and_what_the_directory_reads() {
        let ldap = ldap("user_filter = \"(&(objectClass=person)(employeeType=staff))\"");
        let mappings = AttributeMappings {
            username: "sAMAccountName".into(),
            email: "MAIL".into(),
            first_name: "givenName".into(),
            last_name: "sn".into(),
            // `mail` again in another case, and the default fallbacks.
            name_fallbacks: vec!["displayName".into(), "mail".into(), "cn".into()],
        };
        let got = user_attributes(&ldap, &[builtin(mappings)]);
        let mut expected = vec![
            "sAMAccountName",
            "MAIL",
            "givenName",
            "sn",
            "displayName",
            "cn",
        ];
        expected.extend(OPERATIONAL);
        // uid for memberUid, then the filter's attributes.
        expected.extend(["uid", "objectClass", "employeeType"]);
        assert_eq!(got.needed, list(&expected));
        assert_eq!(got.because, "for [mappings] and the directory itself");
        // Never `description`, `telephoneNumber`, `jpegPhoto`, …: nobody reads them.
        let needed = got.needed.unwrap_or_default();
        assert!(!needed
            .iter()
            .any(|n| n == "*" || n.eq_ignore_ascii_case("description")));
    }

    #[test]
    fn a_module_adds_what_it_declares_it_reads() {
        let ldap = ldap("");
        let stages = vec![
            builtin(AttributeMappings::default()),
            module(
                "titles",
                Some(&[
                    "title",
                    "UID",
                    "jpegPhoto;base64",
                    "cn;lang-en",
                    "*",
                    "+",
                    "@person",
                    "bad name",
                    "",
                ]),
            ),
            module("deprovision-only", Some(&[])),
        ];
        let got = user_attributes(&ldap, &stages);
        let mut expected = vec!["uid", "mail", "givenName", "sn", "displayName", "cn"];
        // What the module is handed under the name it declared: `jpegPhoto;base64` is
        // jpegPhoto; `*`, `+`, `@person` and malformed names are not asked for.
        expected.extend(["title", "jpegPhoto", "cn;lang-en"]);
        expected.extend(OPERATIONAL);
        expected.push("objectClass");
        assert_eq!(got.needed, list(&expected));
        assert!(
            got.because
                .starts_with("for [mappings], rule module `titles` and the directory"),
            "{}",
            got.because
        );
    }

    #[test]
    fn a_module_that_reads_every_attribute_makes_it_all() {
        let stages = vec![
            builtin(AttributeMappings::default()),
            module("titles", Some(&["title"])),
            module("everything", None),
        ];
        let got = user_attributes(&ldap(""), &stages);
        assert_eq!(got.needed, None);
        assert_eq!(
            got.because,
            "rule module `everything` reads every attribute"
        );
        assert_eq!(
            directory::ldap::requested_user_attributes(&ldap(""), got.needed.as_deref())[0],
            "*"
        );
    }

    #[test]
    fn named_user_attributes_win() {
        let ldap = ldap("user_attributes = [\"uid\", \"mail\", \"description\", \"MEMBEROF\"]");
        let stages = vec![
            builtin(AttributeMappings::default()),
            module("titles", Some(&["title"])),
            module("everything", None),
        ];
        let got = user_attributes(&ldap, &stages);
        let mut expected = vec!["uid", "mail", "description", "MEMBEROF"];
        expected.extend(OPERATIONAL);
        assert_eq!(got.needed, list(&expected));
        assert_eq!(got.because, "as [ldap] user_attributes names them");
    }

    #[test]
    fn the_search_asks_for_the_needed_list_once_each() {
        let ldap = ldap("");
        let needed = list(&["uid", "MEMBEROF", "uid"]);
        let sent = directory::ldap::requested_user_attributes(&ldap, needed.as_deref());
        let mut expected = vec!["uid", "MEMBEROF"];
        expected.extend(OPERATIONAL);
        assert_eq!(sent, expected);
        // Without a list: every attribute, as before.
        let sent = directory::ldap::requested_user_attributes(&ldap, None);
        assert_eq!(sent[0], "*");
        assert_eq!(sent.len(), 1 + OPERATIONAL.len() + 1);
        assert_eq!(
            sent.last().map(String::as_str),
            Some("memberOf"),
            "operational on OpenLDAP"
        );
    }
}
