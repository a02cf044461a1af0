//! `ldap2ftrack rules …`: the rule author's and the sharing studio's commands: `new` (a
//! module that builds and passes its test case), `build` (Rust or Python source to a
//! component), `inspect` and `publish` (to an OCI registry). All three that show a module
//! print its `[[rules]]` entry through the one [`snippet`] printer.

pub mod build;
pub mod inspect;
pub mod new;
pub mod publish;
pub mod sdk;
pub mod snippet;

/// The language of a rule module's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    /// A Rust crate on the rules SDK (cargo, wasm32-wasip2).
    Rust,
    /// A Python package on the Python rules SDK (componentize-py).
    Python,
}

impl Language {
    /// How the output names a module of this language.
    pub fn title(self) -> &'static str {
        match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
        }
    }
}
