//! The `[[rules]]` entry that pins a module, as `rules build`, `rules publish` and `rules
//! inspect` print it. One printer, serialized by `toml`, so what a rule author copies is what
//! `check` reads: quoting is TOML's (a Windows path or a quote in a folder name stays one
//! string), and a module with a `map-groups` hook gets the `groups`/`roles` bounds `check`
//! requires of it.

use crate::rules::wasm::{HookName, ModuleInfo};
use serde::Serialize;
use std::fmt;

/// A module's `[[rules]]` entry, with comments saying what to fill in.
pub struct Snippet<'a> {
    /// A comment line above the entry (without the `# `), e.g. where to put the file.
    pub heading: Option<&'a str>,
    /// `module` as sync.toml names it: a path relative to sync.toml, or a reference.
    pub module: &'a str,
    /// The module's hash, hooks and configuration keys.
    pub info: &'a ModuleInfo,
}

/// The part of the entry that is TOML values rather than comments.
#[derive(Serialize)]
struct Document<'a> {
    rules: [Pin<'a>; 1],
}

#[derive(Serialize)]
struct Pin<'a> {
    module: &'a str,
    sha256: &'a str,
}

/// Empty bounds: the module manages nothing until the studio names what it may.
#[derive(Serialize)]
struct Bounds {
    groups: [String; 0],
    roles: [String; 0],
}

impl Snippet<'_> {
    /// The entry as TOML text, comments included; ends with a newline.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Some(heading) = self.heading {
            text.push_str(&format!("# {heading}\n"));
        }
        let document = Document {
            rules: [Pin {
                module: self.module,
                sha256: &self.info.sha256,
            }],
        };
        text.push_str(&to_toml(&document));
        if self.info.hooks.contains(&HookName::MapGroups.wit()) {
            text.push_str(
                "# what the module may manage through map-groups: ftrack group and security \
                 role names, or * globs\n",
            );
            text.push_str(&to_toml(&Bounds {
                groups: [],
                roles: [],
            }));
        }
        if !self.info.config.is_empty() {
            text.push_str("[rules.config]\n");
            let any_required = self.info.config.iter().any(|k| k.required);
            if any_required {
                text.push_str("# set the required keys before `ldap2ftrack check`:\n");
            }
            for key in &self.info.config {
                let how = match (&key.default, key.required) {
                    (_, true) => "required".to_string(),
                    (Some(default), false) => format!("default {default}"),
                    (None, false) => "optional".to_string(),
                };
                text.push_str(&format!("# {} ({}, {how})", key.name, key.value_type));
                if !key.description.is_empty() {
                    text.push_str(&format!(": {}", key.description));
                }
                text.push('\n');
            }
        }
        text
    }
}

impl fmt::Display for Snippet<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

/// `toml` serializes these plain structs of strings without fail; the fallback is only for
/// the type system.
fn to_toml(value: &impl Serialize) -> String {
    toml::to_string(value).unwrap_or_else(|e| format!("# (cannot print this entry: {e})\n"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::wasm::ConfigKeyInfo;
    use std::path::PathBuf;

    fn info(hooks: Vec<&'static str>, config: Vec<ConfigKeyInfo>) -> ModuleInfo {
        ModuleInfo {
            path: PathBuf::from("m.wasm"),
            name: "m".into(),
            version: "1.0.0".into(),
            description: String::new(),
            abi_version: "1.0.0".into(),
            hooks,
            config,
            sha256: "ab".repeat(32),
            size_bytes: 1,
            imports: Vec::new(),
            bounds: Vec::new(),
        }
    }

    fn parsed(text: &str) -> toml::Table {
        text.parse::<toml::Table>()
            .unwrap_or_else(|e| panic!("not TOML: {e}\n{text}"))
    }

    #[test]
    fn a_path_with_quotes_and_backslashes_stays_one_string() {
        let module = r#"C:\rules\o"brien's\m.wasm"#;
        let info = info(vec!["transform-user"], Vec::new());
        let text = Snippet {
            heading: None,
            module,
            info: &info,
        }
        .render();
        let table = parsed(&text);
        let rule = &table["rules"].as_array().unwrap()[0];
        assert_eq!(rule["module"].as_str(), Some(module));
        assert_eq!(rule["sha256"].as_str(), Some(info.sha256.as_str()));
        assert!(rule.get("groups").is_none(), "{text}");
    }

    #[test]
    fn a_map_groups_module_gets_empty_bounds_and_its_keys_as_comments() {
        let key = ConfigKeyInfo {
            name: "email_domain".into(),
            value_type: "string",
            default: None,
            required: true,
            description: "the mail domain".into(),
        };
        let info = info(vec!["transform-user", "map-groups"], vec![key]);
        let text = Snippet {
            heading: Some("sync.toml:"),
            module: "m.wasm",
            info: &info,
        }
        .render();
        assert!(text.starts_with("# sync.toml:\n[[rules]]\n"), "{text}");
        assert!(
            text.contains("# email_domain (string, required): the mail domain\n"),
            "{text}"
        );
        let table = parsed(&text);
        let rule = &table["rules"].as_array().unwrap()[0];
        assert_eq!(rule["groups"].as_array().map(Vec::len), Some(0));
        assert_eq!(rule["roles"].as_array().map(Vec::len), Some(0));
        assert!(rule["config"].as_table().is_some_and(|t| t.is_empty()));
    }
}
