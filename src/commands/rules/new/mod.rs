//! `ldap2ftrack rules new NAME [--lang rust|python]`: a new rule module (a Rust crate or a
//! Python package) that builds with `ldap2ftrack rules build` and passes `ldap2ftrack test`
//! as generated, so a rule author starts from something that works and changes one thing at
//! a time.
//!
//! Both templates do the same thing (lower-case the username, `username@email_domain` for
//! users without a mail) and get the same fixture case, so the two languages stay
//! interchangeable; [`rust`] and [`python`] hold the language-specific files.
//!
//! The module uses the rules SDK of the checkout ldap2ftrack was built from (`rules-sdk/`
//! next to its `Cargo.toml`), or the one given with `--sdk`: a Rust crate depends on it by
//! path, a Python package names its `python/src` for pytest; the generated README says how
//! to change it. A Rust crate is its own cargo workspace (an empty `[workspace]`), so it
//! builds the same inside or outside another workspace, with the release profile the
//! example modules use.

mod python;
mod rust;

use super::{sdk, Language};
use crate::commands::output::{print_json, OutputFormat};
use crate::failure::Failure;
use std::path::{Path, PathBuf};

/// What was generated, for the command's output.
#[derive(Debug, serde::Serialize)]
pub struct Scaffold {
    pub name: String,
    pub language: Language,
    pub dir: PathBuf,
    pub sdk: PathBuf,
    pub files: Vec<PathBuf>,
    /// The module file `ldap2ftrack rules build` produces (the fixture case tests it).
    pub module: PathBuf,
}

/// A module name is also the crate's or package's name: lower-case ASCII letters, digits
/// and `-`, starting with a letter, at most 64 characters.
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

/// `ldap2ftrack rules new`: generates the module and prints what was made and what to run
/// next.
pub fn create(
    name: &str,
    lang: Language,
    dir: Option<&Path>,
    sdk: Option<&Path>,
    output: OutputFormat,
) -> Result<(), Failure> {
    let made = generate(name, lang, dir, sdk)?;
    match output {
        OutputFormat::Human => {
            let what = match lang {
                Language::Rust => "Rust rule crate",
                Language::Python => "Python rule package",
            };
            println!("created {what} `{}` in {}", made.name, made.dir.display());
            for f in &made.files {
                println!("  {}", f.display());
            }
            println!("rules SDK: {}", made.sdk.display());
            println!("\nnext, in {}:", made.dir.display());
            let next = match lang {
                Language::Rust => rust::NEXT,
                Language::Python => python::NEXT,
            };
            for step in next {
                println!("  {step}");
            }
        }
        OutputFormat::Json => print_json(&made)?,
    }
    Ok(())
}

/// Generates the module `name` in `lang` in `dir` (default `./NAME`), on the SDK at `sdk`.
pub fn generate(
    name: &str,
    lang: Language,
    dir: Option<&Path>,
    sdk: Option<&Path>,
) -> Result<Scaffold, Failure> {
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
    let sdk = sdk.map_or_else(sdk::default_sdk, Path::to_path_buf);
    let missing = match lang {
        Language::Rust => sdk::missing_for_rust(&sdk),
        Language::Python => sdk::missing_for_python(&sdk),
    };
    if let Some(missing) = missing {
        return Err(Failure::Usage(format!(
            "the rules SDK is not at {} (no {missing} there); pass --sdk with the path of the \
             `rules-sdk` folder of an ldap2ftrack checkout",
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
    let (files, module) = match lang {
        Language::Rust => (rust::FILES, rust::module(&lib)),
        Language::Python => (python::FILES, python::module(&lib)),
    };
    let fill = |template: &str| fill(template, name, &sdk, &module);
    let case: [(&str, &str); 4] = [
        ("fixtures/first-case/directory.ldif", CASE_LDIF),
        ("fixtures/first-case/ftrack.json", CASE_FTRACK),
        ("fixtures/first-case/sync.toml", CASE_SYNC),
        ("fixtures/first-case/expected.json", CASE_EXPECTED),
    ];
    let mut written = Vec::new();
    for (file, template) in files.iter().chain(case.iter()) {
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
        language: lang,
        module: dir.join(module),
        dir,
        sdk,
        files: written,
    })
}

/// A template with its placeholders filled: `{{name}}` (`studio-users`), `{{lib}}`
/// (`studio_users`), `{{Type}}` (`StudioUsers`), `{{sdk}}` (the SDK folder),
/// `{{sdk_toml}}` and `{{sdk_src_toml}}` (the SDK folder and its Python sources as TOML
/// strings) and `{{module}}` (the built module, relative to the module's folder).
fn fill(template: &str, name: &str, sdk: &Path, module: &str) -> String {
    let toml_string = |p: &Path| toml::Value::String(p.display().to_string()).to_string();
    template
        .replace("{{name}}", name)
        .replace("{{lib}}", &name.replace('-', "_"))
        .replace("{{Type}}", &type_name(name))
        .replace("{{sdk_toml}}", &toml_string(sdk))
        .replace("{{sdk_src_toml}}", &toml_string(&sdk::python_src(sdk)))
        .replace("{{sdk}}", &sdk.display().to_string())
        .replace("{{module}}", module)
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

// The fixture case, the same for both languages: the two templates must give this plan.

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
# Test whatever `ldap2ftrack rules build` produced last (a rebuilt module has a new hash);
# a studio's sync.toml always pins the hash.
trust_unpinned_modules = true

[[rules]]
# Relative to this case folder.
module = "../../{{module}}"
# The groups and roles the module may manage (names or `*` globs); add to them when you
# implement map-groups.
groups = []
roles = []

[rules.config]
email_domain = "studio.example"
"#;

const CASE_EXPECTED: &str = include_str!("expected.json");

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
        for lang in [Language::Rust, Language::Python] {
            let Err(Failure::Usage(m)) = generate("x", lang, Some(dir.path()), None) else {
                panic!()
            };
            assert!(m.contains("already exists and is not empty"), "{m}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn fills_every_placeholder() {
        let dir = tempfile::tempdir().unwrap();
        let crate_dir = dir.path().join("studio-users");
        let s = generate("studio-users", Language::Rust, Some(&crate_dir), None).unwrap();
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
        let case =
            std::fs::read_to_string(crate_dir.join("fixtures/first-case/sync.toml")).unwrap();
        assert!(case.contains("module = \"../../target/wasm32-wasip2/release/studio_users.wasm\""));
    }

    #[test]
    fn a_python_package_names_its_sdk_and_module() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("studio-users");
        let s = generate("studio-users", Language::Python, Some(&pkg), None).unwrap();
        assert_eq!(s.files.len(), 9);
        for f in &s.files {
            let text = std::fs::read_to_string(f).unwrap();
            assert!(!text.contains("{{"), "{}: {text}", f.display());
        }
        let app = std::fs::read_to_string(pkg.join("app.py")).unwrap();
        assert!(app.contains("class StudioUsers(Rules):"), "{app}");
        assert!(app.contains("Hooks = export(StudioUsers)"), "{app}");
        let project: toml::Table = std::fs::read_to_string(pkg.join("pyproject.toml"))
            .unwrap()
            .parse()
            .unwrap();
        assert_eq!(project["project"]["name"].as_str(), Some("studio-users"));
        let path = project["tool"]["pytest"]["ini_options"]["pythonpath"][1]
            .as_str()
            .unwrap();
        assert!(Path::new(path).join("ldap2ftrack_rules").is_dir(), "{path}");
        assert!(s.module.ends_with("dist/studio_users.wasm"));
        let case = std::fs::read_to_string(pkg.join("fixtures/first-case/sync.toml")).unwrap();
        assert!(case.contains("module = \"../../dist/studio_users.wasm\""));
        // The same case as the Rust template's: the two must give one plan.
        let expected =
            std::fs::read_to_string(pkg.join("fixtures/first-case/expected.json")).unwrap();
        assert!(
            expected.contains("rule module `studio-users`"),
            "{expected}"
        );
    }
}
