//! `studio-basics`: the demo studio's user mapping as a rule module — uid → username,
//! mail → email, givenName/sn → names with displayName/cn as fallbacks — plus what the
//! built-in mappings cannot do: e-mail validation (with a domain fallback) and username
//! normalisation. It exists as the reference example of a `transform-user` rule.
//!
//! ```toml
//! [[rules]]
//! module = "examples-rules/target/wasm32-wasip2/release/studio_basics.wasm"
//! sha256 = "..."
//! [rules.config]
//! email_domain = "studio.example"   # for users without a (valid) mail
//! invalid_email = "drop"            # "drop" the address, "skip" the user, or "reject"
//! ```

use ldap2ftrack_rules::prelude::*;

/// What to do with a user whose mail attribute is not a valid address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InvalidEmail {
    /// Sync the user without an e-mail (or with the domain fallback).
    Drop,
    /// Leave the user out of the sync.
    Skip,
    /// Fail the entry (the run's `on_error` decides what happens).
    Reject,
}

pub struct StudioBasics {
    username_attr: String,
    email_attr: String,
    first_name_attr: String,
    last_name_attr: String,
    name_fallbacks: Vec<String>,
    email_domain: Option<String>,
    invalid_email: InvalidEmail,
}

impl StudioBasics {
    fn email(
        &self,
        entry: &Entry,
        username: &str,
    ) -> Result<Result<Option<String>, String>, String> {
        let fallback = || {
            self.email_domain
                .as_ref()
                .map(|d| format!("{username}@{d}"))
        };
        let Some(raw) = entry.first(&self.email_attr) else {
            return Ok(Ok(fallback()));
        };
        let address = email::normalize(raw);
        if email::is_valid(&address) {
            return Ok(Ok(Some(address)));
        }
        let why = format!("{} `{raw}` is not a valid e-mail address", self.email_attr);
        match self.invalid_email {
            InvalidEmail::Drop => {
                log::warn(&format!("{}: {why}; synced without it", entry.dn));
                Ok(Ok(fallback()))
            }
            InvalidEmail::Skip => Ok(Err(why)),
            InvalidEmail::Reject => Err(why),
        }
    }

    fn names(&self, entry: &Entry) -> (Option<String>, Option<String>) {
        let first = entry.first(&self.first_name_attr).map(str::to_string);
        let last = entry.first(&self.last_name_attr).map(str::to_string);
        if first.is_some() && last.is_some() {
            return (first, last);
        }
        let full = self
            .name_fallbacks
            .iter()
            .find_map(|a| entry.first(a))
            .map(|s| s.split_whitespace().collect::<Vec<_>>());
        let (f, l) = match full.as_deref() {
            Some([one]) => (Some(one.to_string()), None),
            Some([head, rest @ ..]) if !rest.is_empty() => {
                (Some(head.to_string()), Some(rest.join(" ")))
            }
            _ => (None, None),
        };
        (first.or(f), last.or(l))
    }
}

ldap2ftrack_rules::export_rules! {
    impl Rules for StudioBasics {
        fn metadata() -> Metadata {
            Metadata::new(
                "studio-basics",
                "1.0.0",
                "uid/mail/givenName/sn to ftrack user fields, with e-mail validation and username normalisation",
            )
            .key(ConfigKey::string("username_attr").default_value("\"uid\"")
                .describe("LDAP attribute holding the username (sAMAccountName on AD)"))
            .key(ConfigKey::string("email_attr").default_value("\"mail\"")
                .describe("LDAP attribute holding the e-mail address"))
            .key(ConfigKey::string("first_name_attr").default_value("\"givenName\"")
                .describe("LDAP attribute holding the first name"))
            .key(ConfigKey::string("last_name_attr").default_value("\"sn\"")
                .describe("LDAP attribute holding the last name"))
            .key(ConfigKey::string_list("name_fallbacks").default_value(r#"["displayName", "cn"]"#)
                .describe("Attributes split into first and last name when those are missing"))
            .key(ConfigKey::string("email_domain")
                .describe("Domain for username@domain when the mail is missing or invalid"))
            .key(ConfigKey::string("invalid_email").default_value("\"drop\"")
                .describe("An invalid mail: \"drop\" it, \"skip\" the user, or \"reject\" the entry"))
        }

        fn configure(config: &Config) -> Result<Self, String> {
            let s = |k: &str| -> Result<String, String> {
                config.string(k)?.ok_or_else(|| format!("`{k}` is empty"))
            };
            let invalid_email = match s("invalid_email")?.as_str() {
                "drop" => InvalidEmail::Drop,
                "skip" => InvalidEmail::Skip,
                "reject" => InvalidEmail::Reject,
                other => {
                    return Err(format!(
                        "`invalid_email` is `{other}`; use \"drop\", \"skip\" or \"reject\""
                    ))
                }
            };
            let email_domain = config.string("email_domain")?;
            if let Some(d) = &email_domain {
                if !email::is_valid(&format!("x@{d}")) {
                    return Err(format!("`email_domain` `{d}` is not a mail domain"));
                }
            }
            Ok(StudioBasics {
                username_attr: s("username_attr")?,
                email_attr: s("email_attr")?,
                first_name_attr: s("first_name_attr")?,
                last_name_attr: s("last_name_attr")?,
                name_fallbacks: config.string_list("name_fallbacks")?,
                email_domain,
                invalid_email,
            })
        }

        fn reads(&self) -> EntryFields {
            let mut names = vec![
                self.username_attr.clone(),
                self.email_attr.clone(),
                self.first_name_attr.clone(),
                self.last_name_attr.clone(),
            ];
            names.extend(self.name_fallbacks.iter().cloned());
            EntryFields::only(names)
        }

        fn transform_user(&self, entry: &Entry, proposal: UserDecision) -> Result<UserDecision, String> {
            if let UserDecision::Skip(_) = proposal {
                return Ok(proposal);
            }
            let Some(raw) = entry.first(&self.username_attr) else {
                return Ok(UserDecision::Skip(format!("no {} attribute", self.username_attr)));
            };
            let username = names::normalize_username(raw);
            if !names::is_valid_username(&username) {
                return Ok(UserDecision::Skip(format!(
                    "{} `{raw}` is not a usable username",
                    self.username_attr
                )));
            }
            let email = match self.email(entry, &username)? {
                Ok(e) => e,
                Err(why) => return Ok(UserDecision::Skip(why)),
            };
            let (first_name, last_name) = self.names(entry);
            Ok(UserDecision::Sync(UserFields { username, email, first_name, last_name }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sync(rules: &StudioBasics, entry: &Entry) -> UserFields {
        let p = UserDecision::Sync(UserFields::default());
        match rules.transform_user(entry, p).unwrap() {
            UserDecision::Sync(u) => u,
            UserDecision::Skip(why) => panic!("skipped: {why}"),
        }
    }

    #[test]
    fn maps_the_seed_attributes() {
        let rules: StudioBasics = testing::configure("{}").unwrap();
        let e = testing::entry("uid=ada,ou=people,dc=studio,dc=example")
            .attr("uid", ["Ada"])
            .attr("mail", ["ada@Studio.Example"])
            .attr("givenName", ["Ada"])
            .attr("sn", ["Lovelace"])
            .build();
        // Exactly what the host passes: the declared attributes, no groups.
        let passed = testing::as_passed(&rules, &e);
        assert_eq!(passed.attributes.len(), 4);
        let u = sync(&rules, &passed);
        assert_eq!(u.username, "ada");
        assert_eq!(u.email.as_deref(), Some("ada@studio.example"));
        assert_eq!(u.first_name.as_deref(), Some("Ada"));
        assert_eq!(u.last_name.as_deref(), Some("Lovelace"));
        assert_eq!(
            testing::hooks_of::<StudioBasics>(),
            vec![Hook::TransformUser]
        );
    }

    #[test]
    fn names_fall_back_to_display_name_then_cn() {
        let rules: StudioBasics = testing::configure("{}").unwrap();
        let e = testing::entry("uid=b,dc=x")
            .attr("uid", ["b"])
            .attr("cn", ["Björn van Ødegård"])
            .build();
        let u = sync(&rules, &e);
        assert_eq!(u.first_name.as_deref(), Some("Björn"));
        assert_eq!(u.last_name.as_deref(), Some("van Ødegård"));
        assert_eq!(u.email, None);
    }

    #[test]
    fn invalid_mail_policies() {
        let e = testing::entry("uid=c,dc=x")
            .attr("uid", ["STUDIO\\Chen"])
            .attr("mail", ["chen at studio"])
            .build();
        let drop: StudioBasics =
            testing::configure(r#"{"email_domain":"studio.example"}"#).unwrap();
        let u = sync(&drop, &e);
        assert_eq!(u.username, "chen");
        assert_eq!(u.email.as_deref(), Some("chen@studio.example"));
        assert!(testing::take_logs()
            .iter()
            .any(|(_, m)| m.contains("not a valid e-mail")));

        let skip: StudioBasics = testing::configure(r#"{"invalid_email":"skip"}"#).unwrap();
        let p = UserDecision::Sync(UserFields::default());
        assert!(matches!(
            skip.transform_user(&e, p.clone()).unwrap(),
            UserDecision::Skip(_)
        ));

        let reject: StudioBasics = testing::configure(r#"{"invalid_email":"reject"}"#).unwrap();
        let err = reject.transform_user(&e, p).unwrap_err();
        assert!(
            err.contains("`chen at studio` is not a valid e-mail address"),
            "{err}"
        );
    }

    #[test]
    fn missing_or_bad_username_skips_and_skip_stays_skip() {
        let rules: StudioBasics = testing::configure("{}").unwrap();
        let e = testing::entry("cn=x,dc=x").build();
        let p = UserDecision::Sync(UserFields::default());
        assert_eq!(
            rules.transform_user(&e, p).unwrap(),
            UserDecision::Skip("no uid attribute".into())
        );
        let skip = UserDecision::Skip("earlier stage".into());
        assert_eq!(rules.transform_user(&e, skip.clone()).unwrap(), skip);
    }

    #[test]
    fn bad_configuration_is_refused() {
        let e = testing::configure::<StudioBasics>(r#"{"invalid_email":"ignore"}"#)
            .err()
            .unwrap();
        assert!(e.contains("invalid_email"), "{e}");
        let e = testing::configure::<StudioBasics>(r#"{"email_domain":"not a domain"}"#)
            .err()
            .unwrap();
        assert!(e.contains("email_domain"), "{e}");
    }
}
