//! What a rule module may manage: the ftrack groups and security roles its `[[rules]]` entry
//! allows, as names or `*` globs compared case-insensitively. The check of a module's
//! proposals against them is in `rules::bounds`.

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use std::fmt;

/// One list of patterns (`groups` or `roles`), as written and compiled.
#[derive(Debug, Clone)]
pub struct Patterns {
    written: Vec<String>,
    set: GlobSet,
}

impl Patterns {
    /// Compiles `patterns`; the error names the pattern and what is wrong with it.
    pub fn new(patterns: &[String]) -> Result<Patterns, String> {
        let mut builder = GlobSetBuilder::new();
        for pattern in patterns {
            if pattern.trim().is_empty() {
                return Err("contains an empty name; remove it".to_string());
            }
            let glob = GlobBuilder::new(pattern)
                .case_insensitive(true)
                .literal_separator(false)
                .build()
                .map_err(|e| {
                    format!("`{pattern}` is not a name or glob ({e}); use names and `*`")
                })?;
            builder.add(glob);
        }
        let set = builder
            .build()
            .map_err(|e| format!("cannot compile the patterns: {e}"))?;
        Ok(Patterns {
            written: patterns.to_vec(),
            set,
        })
    }

    pub fn allows(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    /// The patterns as written in `sync.toml`.
    pub fn written(&self) -> &[String] {
        &self.written
    }

    /// The patterns that are plain names (no glob characters).
    pub fn exact_names(&self) -> impl Iterator<Item = &str> {
        self.written
            .iter()
            .map(String::as_str)
            .filter(|p| !p.contains(['*', '?', '[', '{']))
    }
}

impl fmt::Display for Patterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted: Vec<String> = self.written.iter().map(|p| format!("{p:?}")).collect();
        write!(f, "[{}]", quoted.join(", "))
    }
}

/// A module's bounds. `None` for a list the `[[rules]]` entry does not declare.
#[derive(Debug, Clone, Default)]
pub struct ModuleBounds {
    pub groups: Option<Patterns>,
    pub roles: Option<Patterns>,
}

impl ModuleBounds {
    /// Bounds that allow every group and role (`groups = ["*"]`, `roles = ["*"]`): a module
    /// trusted with everything, as in the host's own tests and benchmarks.
    pub fn everything() -> ModuleBounds {
        // A constant pattern: it always compiles.
        let all = || Patterns::new(&["*".to_string()]).ok();
        ModuleBounds {
            groups: all(),
            roles: all(),
        }
    }

    /// Whether the `[[rules]]` entry declares any bounds at all.
    pub fn declared(&self) -> bool {
        self.groups.is_some() || self.roles.is_some()
    }

    /// The bounds as one line, for `check` and `rules inspect`.
    pub fn describe(&self) -> String {
        let list = |p: &Option<Patterns>| {
            p.as_ref()
                .map_or("not declared".to_string(), |p| p.to_string())
        };
        format!(
            "groups = {}, roles = {}",
            list(&self.groups),
            list(&self.roles)
        )
    }

    /// The bounds of `rules[index]` as reported by `check` and `rules inspect`.
    pub fn report(&self, index: usize) -> BoundsReport {
        let written = |p: &Option<Patterns>| p.as_ref().map(|p| p.written().to_vec());
        BoundsReport {
            rule: format!("rules[{index}]"),
            groups: written(&self.groups),
            roles: written(&self.roles),
        }
    }
}

/// A `[[rules]]` entry's bounds as written (`null` for a list it does not declare).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BoundsReport {
    pub rule: String,
    pub groups: Option<Vec<String>>,
    pub roles: Option<Vec<String>>,
}
