//! The rules SDK a module is built against: where it is (`--sdk`, else the checkout this
//! binary was built from) and whether it has what a Rust crate or a Python package needs.
//! `rules new` points a new module at it; `rules build` hands its WIT and Python sources to
//! componentize-py.

use std::path::{Path, PathBuf};

/// The SDK this binary was built with, when its checkout is still there.
pub fn default_sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("rules-sdk")
}

/// The Python SDK's source folder (the one componentize-py and pytest import from).
pub fn python_src(sdk: &Path) -> PathBuf {
    sdk.join("python/src")
}

/// Why `sdk` cannot serve a Rust crate, if it cannot: the file it lacks.
pub fn missing_for_rust(sdk: &Path) -> Option<&'static str> {
    if !sdk.join("Cargo.toml").is_file() {
        Some("Cargo.toml")
    } else if !sdk.join("wit/rules.wit").is_file() {
        Some("wit/rules.wit")
    } else {
        None
    }
}

/// Why `sdk` cannot serve a Python package, if it cannot: the file it lacks.
pub fn missing_for_python(sdk: &Path) -> Option<&'static str> {
    if !sdk.join("wit/rules.wit").is_file() {
        Some("wit/rules.wit")
    } else if !python_src(sdk)
        .join("ldap2ftrack_rules/__init__.py")
        .is_file()
    {
        Some("python/src/ldap2ftrack_rules/__init__.py")
    } else {
        None
    }
}
