//! `ldap2ftrack rules new NAME`: a new rule crate that builds for wasm32-wasip2 and passes
//! `ldap2ftrack test` as generated, so a rule author starts from something that works and
//! changes one thing at a time.
//!
//! The crate depends on the rules SDK by path. Outside a published SDK, the path is the one
//! given with `--sdk`, by default this build's own checkout (`rules-sdk/` next to the
//! `Cargo.toml` ldap2ftrack was built from); the generated README says how to change it.
//! The crate is its own cargo workspace (an empty `[workspace]`), so it builds the same inside
//! or outside another workspace, with the release profile the example modules use.

use crate::failure::Failure;
use std::path::{Path, PathBuf};

/// The SDK this binary was built with, when its checkout is still there.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules-sdk")
}

/// What was generated, for the command's output.
#[derive(Debug, serde::Serialize)]
pub struct Scaffold {
    pub name: String,
    pub dir: PathBuf,
    pub sdk: PathBuf,
    pub files: Vec<PathBuf>,
    /// The module file `cargo build --release --target wasm32-wasip2` produces.
    pub module: PathBuf,
}

/// A crate name is also the module's name: lower-case ASCII letters, digits and `-`,
/// starting with a letter, at most 64 characters.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && !name.ends_with('-')
        && !name.contains("--")
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "`{name}` cannot name a rule module: use lower-case letters, digits and single \
             hyphens, starting with a letter (at most 64 characters), e.g. `studio-users`"
        ))
    }
}

/// Generates the crate `name` in `dir` (default `./NAME`), depending on the SDK at `sdk`.
pub fn generate(name: &str, dir: Option<&Path>, sdk: Option<&Path>) -> Result<Scaffold, Failure> {
    check_name(name).map_err(Failure::Usage)?;
    let dir = dir.map_or_else(|| PathBuf::from(name), Path::to_path_buf);
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .map_err(|e| {
                Failure::Usage(format!(
                    "{} exists and cannot be read ({e}); choose another folder with --dir",
                    dir.display()
                ))
            })?
            .next()
            .is_none();
        if !empty {
            return Err(Failure::Usage(format!(
                "{} already exists and is not empty; nothing was written. Choose a new folder \
                 with --dir, or remove that one",
                dir.display()
            )));
        }
    }
    let sdk = sdk.map_or_else(default_sdk, Path::to_path_buf);
    if !sdk.join("Cargo.toml").is_file() || !sdk.join("wit/rules.wit").is_file() {
        return Err(Failure::Usage(format!(
            "the rules SDK is not at {}; pass --sdk with the path of the `rules-sdk` folder of \
             an ldap2ftrack checkout",
            sdk.display()
        )));
    }
    let sdk = std::fs::canonicalize(&sdk).map_err(|e| {
        Failure::Usage(format!(
            "cannot resolve the SDK path {}: {e}",
            sdk.display()
        ))
    })?;
    let lib = name.replace('-', "_");
    let type_name = type_name(name);
    let sdk_toml = toml::Value::String(sdk.display().to_string()).to_string();
    let fill = |template: &str| {
        template
            .replace("{{name}}", name)
            .replace("{{lib}}", &lib)
            .replace("{{Type}}", &type_name)
            .replace("{{sdk}}", &sdk.display().to_string())
            .replace("{{sdk_toml}}", &sdk_toml)
    };
    let files: [(&str, &str); 8] = [
        ("Cargo.toml", CARGO_TOML),
        (".gitignore", "/target\n"),
        ("README.md", README),
        ("src/lib.rs", LIB_RS),
        ("fixtures/first-case/directory.ldif", CASE_LDIF),
        ("fixtures/first-case/ftrack.json", CASE_FTRACK),
        ("fixtures/first-case/sync.toml", CASE_SYNC),
        ("fixtures/first-case/expected.json", CASE_EXPECTED),
    ];
    let mut written = Vec::new();
    for (file, template) in files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                Failure::Runtime(format!("cannot create {}: {e}", parent.display()))
            })?;
        }
        std::fs::write(&path, fill(template))
            .map_err(|e| Failure::Runtime(format!("cannot write {}: {e}", path.display())))?;
        written.push(path);
    }
    Ok(Scaffold {
        name: name.to_string(),
        module: dir.join(format!("target/wasm32-wasip2/release/{lib}.wasm")),
        dir,
        sdk,
        files: written,
    })
}

/// `studio-users` → `StudioUsers`.
fn type_name(name: &str) -> String {
    name.split('-')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_ascii_uppercase().to_string() + c.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

const CARGO_TOML: &str = r#"[package]
name = "{{name}}"
version = "0.1.0"
edition = "2021"
publish = false

[lib]
# cdylib: the WebAssembly component; rlib: native unit tests (`cargo test`).
crate-type = ["cdylib", "rlib"]

[dependencies]
# The ldap2ftrack rules SDK (see README.md to point this elsewhere).
ldap2ftrack-rules-sdk = { path = {{sdk_toml}} }

# A crate of its own, even inside another cargo workspace.
[workspace]

[profile.release]
opt-level = 3
lto = true
codegen-units = 1
strip = true
"#;

const LIB_RS: &str = r##"//! `{{name}}`: an ldap2ftrack rule module. It lower-cases usernames (and strips a
//! `DOMAIN\` or `@realm` part) and gives users without a mail `username@email_domain`.
//! Start here: change `transform_user`, or add `map_groups` / `deprovision`.

use ldap2ftrack_rules::prelude::*;

pub struct {{Type}} {
    email_domain: Option<String>,
}

ldap2ftrack_rules::export_rules! {
    impl Rules for {{Type}} {
        fn metadata() -> Metadata {
            Metadata::new("{{name}}", "0.1.0", "Lower-case usernames; a mail for users without one")
                .key(ConfigKey::string("email_domain")
                    .describe("Mail domain for users without a mail attribute (none: leave them without)"))
        }

        fn configure(config: &Config) -> Result<Self, String> {
            let email_domain = config.string("email_domain")?;
            if let Some(d) = &email_domain {
                if !email::is_valid(&format!("x@{d}")) {
                    return Err(format!("`email_domain` `{d}` is not a mail domain"));
                }
            }
            Ok({{Type}} { email_domain })
        }

        fn reads(&self) -> EntryFields {
            // This rule works on the proposal only: no attribute of the entry is needed.
            EntryFields::only(Vec::<String>::new())
        }

        fn transform_user(&self, entry: &Entry, proposal: UserDecision) -> Result<UserDecision, String> {
            let UserDecision::Sync(mut user) = proposal else { return Ok(proposal) };
            user.username = names::normalize_username(&user.username);
            if user.email.is_none() {
                if let Some(domain) = &self.email_domain {
                    user.email = Some(format!("{}@{domain}", user.username));
                    log::debug(&format!("{}: mail from email_domain", entry.dn));
                }
            }
            Ok(UserDecision::Sync(user))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proposal(username: &str) -> UserDecision {
        UserDecision::Sync(UserFields { username: username.into(), ..UserFields::default() })
    }

    #[test]
    fn lower_cases_and_fills_the_mail() {
        let rules: {{Type}} = testing::configure(r#"{"email_domain": "studio.example"}"#).unwrap();
        let entry = testing::entry("uid=JDoe,ou=people,dc=studio,dc=example").build();
        let UserDecision::Sync(user) = rules.transform_user(&entry, proposal("STUDIO\\JDoe")).unwrap() else {
            panic!("skipped")
        };
        assert_eq!(user.username, "jdoe");
        assert_eq!(user.email.as_deref(), Some("jdoe@studio.example"));
        assert_eq!(testing::hooks_of::<{{Type}}>(), vec![Hook::TransformUser]);
    }

    #[test]
    fn a_bad_domain_is_refused() {
        assert!(testing::configure::<{{Type}}>(r#"{"email_domain": "not a domain"}"#).is_err());
    }
}
"##;

const README: &str = r#"# {{name}}

An ldap2ftrack rule module, generated by `ldap2ftrack rules new {{name}}`.

```sh
rustup target add wasm32-wasip2                 # once
cargo test                                      # unit tests, natively
cargo build --release --target wasm32-wasip2    # the module
ldap2ftrack rules inspect target/wasm32-wasip2/release/{{lib}}.wasm
ldap2ftrack test fixtures                       # the fixture cases, offline
```

- `src/lib.rs`: the rule (hooks, configuration schema).
- `fixtures/<case>/`: `directory.ldif`, `ftrack.json`, `sync.toml` (which module, its
  config; `[test] trust_unpinned_modules = true` tests whatever the last build produced),
  `expected.json` (the plan). `ldap2ftrack test --update fixtures` rewrites the expectations
  from the current plans: read the diff before committing it.
- The SDK is a path dependency on `{{sdk}}` (the checkout this ldap2ftrack was built
  from). On another machine, point `ldap2ftrack-rules-sdk` in `Cargo.toml` at your copy of
  the `rules-sdk` folder, or create the crate with `ldap2ftrack rules new --sdk PATH`.

In a studio's `sync.toml`, pin the module by its hash (`rules inspect` prints the snippet):

```toml
[[rules]]
module = "rules/{{lib}}.wasm"
sha256 = "..."
# What the module may manage through map-groups: ftrack group and security role names or
# `*` globs. A module that implements map-groups without them is refused.
groups = []
roles = []
[rules.config]
email_domain = "studio.example"
```

The rules SDK's README (`rules-sdk/README.md`) is the full guide.
"#;

const CASE_LDIF: &str = "version: 1

dn: dc=studio,dc=example
objectClass: organization
o: studio

dn: uid=JDoe,dc=studio,dc=example
objectClass: inetOrgPerson
uid: JDoe
cn: Jane Doe
givenName: Jane
sn: Doe
entryUUID: 6f1c1c1e-0000-4000-8000-000000000001
";

const CASE_FTRACK: &str = r#"{
  "User": [
    {
      "id": "4741dc1b-d6d3-4cf4-86d4-d5dcf1b8f419",
      "is_active": true,
      "username": "ldap2ftrack"
    }
  ]
}
"#;

const CASE_SYNC: &str = r#"# JDoe has no mail: the rule lower-cases the username and gives a mail in email_domain.

[test]
# Test whatever `cargo build --release --target wasm32-wasip2` produced last (a rebuilt
# module has a new hash); a studio's sync.toml always pins the hash.
trust_unpinned_modules = true

[[rules]]
# Relative to this case folder.
module = "../../target/wasm32-wasip2/release/{{lib}}.wasm"
# The groups and roles the module may manage (names or `*` globs); add to them when you
# implement map-groups.
groups = []
roles = []

[rules.config]
email_domain = "studio.example"
"#;

const CASE_EXPECTED: &str = include_str!("scaffold/expected.json");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["studio-users", "a", "grace2", "x-1-y"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Studio", "1st", "-x", "x-", "a--b", "a_b", "a b", "ä"] {
            let e = check_name(bad).unwrap_err();
            assert!(e.contains("lower-case letters"), "{e}");
        }
        assert!(check_name(&"a".repeat(65)).is_err());
        assert_eq!(type_name("studio-users"), "StudioUsers");
    }

    #[test]
    fn refuses_a_non_empty_folder_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("keep.txt"), "mine").unwrap();
        let Err(Failure::Usage(m)) = generate("x", Some(dir.path()), None) else {
            panic!()
        };
        assert!(m.contains("already exists and is not empty"), "{m}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn fills_every_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("studio-users");
        let s = generate("studio-users", Some(&crate_dir), None).unwrap();
        assert_eq!(s.files.len(), 8);
        for f in &s.files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(!text.contains("{{"), "{}: {text}", f.display());
        }
        let lib = std::fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("pub struct StudioUsers"));
        let toml: toml::Table = std::fs::read_to_string(crate_dir.join("Cargo.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(toml["package"]["name"].as_str(), Some("studio-users"));
        assert!(s
            .module
            .ends_with("target/wasm32-wasip2/release/studio_users.wasm"));
    }
}
