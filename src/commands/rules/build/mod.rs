//! `ldap2ftrack rules build [DIR]`: turns a rule module's source (a Rust crate or a Python
//! package, as `rules new` makes them) into a WebAssembly component and prints where it is
//! and the `[[rules]]` snippet that pins it, so a rule author never assembles a cargo or
//! componentize-py command line by hand, and a studio can rebuild a Rust module it received
//! and compare hashes.
//!
//! A Rust module is built so that its bytes depend only on the source (the crate, its
//! `Cargo.lock` and path dependencies), the Rust version and the target, not on the folder it
//! sits in: see `build_rust` for what made it differ and what fixed it. componentize-py output is not reproducible (two
//! builds of one source differ), which the output says: pin and share the built file.
//!
//! A missing tool or target is a usage error (exit 2) naming the command that installs it; a
//! build that fails is a runtime failure (exit 1) after the tool's own messages on stderr.
//!
//! [`rust`] holds the reproducible Rust build, [`python`] the componentize-py one; this file
//! detects which, loads the result the way a run does, and prints it.

mod python;
mod rust;

use super::snippet::Snippet;
use super::Language;
use crate::commands::output::{print_json, OutputFormat};
use crate::failure::Failure;
use crate::rules::wasm::{ModuleInfo, RuleLoadError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

/// What a build produced (`--output json` prints it).
#[derive(Debug, Serialize)]
pub struct Built {
    /// The component, as an absolute path.
    pub module: PathBuf,
    pub sha256: String,
    pub language: Language,
    /// Whether the same source builds to the same bytes elsewhere (Rust: yes; Python: no).
    pub reproducible: bool,
    #[serde(skip)]
    info: ModuleInfo,
    /// The toolchain, for the human output (`rustc 1.95.0`).
    #[serde(skip)]
    toolchain: String,
    #[serde(skip)]
    seconds: f64,
}

/// `ldap2ftrack rules build`: builds the module in `dir` and prints the result.
/// `sdk` is the rules SDK folder (WIT and Python SDK; default: this build's checkout);
/// `out`, where to put the module (default: where the tool leaves it).
pub fn build(
    dir: &Path,
    sdk: Option<&Path>,
    out: Option<&Path>,
    output: OutputFormat,
) -> Result<(), Failure> {
    let built = build_module(dir, sdk, out)?;
    match output {
        OutputFormat::Json => print_json(&built),
        OutputFormat::Human => {
            print!("{}", human(&built));
            Ok(())
        }
    }
}

/// Builds the module whose source is in `dir`; see [`build`].
pub fn build_module(dir: &Path, sdk: Option<&Path>, out: Option<&Path>) -> Result<Built, Failure> {
    let started = Instant::now();
    let language = detect(dir)?;
    let (module, toolchain, reproducible) = match language {
        Language::Rust => rust::build(dir, out)?,
        Language::Python => {
            let (module, tool) = python::build(dir, sdk, out)?;
            (module, tool, false)
        }
    };
    let module = std::path::absolute(&module).unwrap_or(module);
    let bytes = std::fs::read(&module).map_err(|e| {
        Failure::Runtime(format!(
            "the build reported success but {} cannot be read: {e}",
            module.display()
        ))
    })?;
    let sha256 = crate::rules::wasm::sha256_hex(&bytes);
    // Load it the way a run does: a module that builds but cannot run (wrong world, ABI)
    // fails here, not at the studio. The compiled code lands in the module cache, so the
    // `ldap2ftrack test` that usually follows does not compile it again.
    let info = crate::rules::wasm::inspect(&module).map_err(|e| match e {
        RuleLoadError::Runtime { message } => Failure::Runtime(message),
        unusable => Failure::Usage(unusable.to_string()),
    })?;
    Ok(Built {
        module,
        sha256,
        language,
        reproducible,
        info,
        toolchain,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Rust when the folder has a `Cargo.toml`, Python when it has `app.py` or `pyproject.toml`.
fn detect(dir: &Path) -> Result<Language, Failure> {
    if !dir.is_dir() {
        return Err(Failure::Usage(format!(
            "{} is not a folder: pass the folder of a rule module (the one `ldap2ftrack rules \
             new` created)",
            dir.display()
        )));
    }
    if dir.join("Cargo.toml").is_file() {
        Ok(Language::Rust)
    } else if dir.join("app.py").is_file() || dir.join("pyproject.toml").is_file() {
        Ok(Language::Python)
    } else {
        Err(Failure::Usage(format!(
            "{} holds neither a Cargo.toml (a Rust rule crate) nor an app.py or pyproject.toml \
             (a Python rule package): pass the folder of a rule module, e.g. one made by \
             `ldap2ftrack rules new NAME [--lang python]`",
            dir.display()
        )))
    }
}

/// The human-readable result: where the module is, whether it is reproducible, and the
/// `[[rules]]` snippet (with the module's configuration keys as comments).
fn human(built: &Built) -> String {
    use std::fmt::Write;
    let info = &built.info;
    let shown = shown(&built.module);
    let mut s = String::new();
    let language = built.language.title();
    let _ = writeln!(
        s,
        "built rule module `{}` {} ({language}, {}) in {:.1} s",
        info.name, info.version, built.toolchain, built.seconds
    );
    let _ = writeln!(s, "module:       {}", shown.display());
    let _ = writeln!(s, "sha256:       {}", built.sha256);
    let _ = writeln!(
        s,
        "hooks:        {}",
        if info.hooks.is_empty() {
            "none".to_string()
        } else {
            info.hooks.join(", ")
        }
    );
    let reproducible = match (built.language, built.reproducible) {
        (Language::Rust, true) => format!(
            "yes: the same source and Cargo.lock built with {} give this sha256 in any \
             folder, so a receiver can rebuild it and compare",
            built.toolchain
        ),
        (Language::Rust, false) => "not this time: it was built in place (see the warning \
                                    above), so its sha256 depends on the source's folder"
            .to_string(),
        (Language::Python, _) => "no: componentize-py builds of the same source differ, so \
                                  pin this file and share it (with its sha256), not the source"
            .to_string(),
    };
    let _ = writeln!(s, "reproducible: {reproducible}");
    let module = shown.display().to_string();
    let snippet = Snippet {
        heading: Some(
            "sync.toml (copy the module beside it and make `module` relative to sync.toml's \
             folder):",
        ),
        module: &module,
        info,
    };
    let _ = write!(s, "\n{snippet}");
    s
}

/// `path` relative to the current folder when it is below it, else as it is.
fn shown(path: &Path) -> PathBuf {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
}

/// Why a quick tool command gave no answer.
enum ToolError {
    /// It is not installed (not on PATH, or not at the path given).
    Missing,
    /// It ran and failed: its stderr.
    Failed(String),
}

/// Runs a quick tool command; its stdout.
fn run_tool(cmd: &mut Command) -> Result<String, ToolError> {
    match cmd.stdin(Stdio::null()).output() {
        Ok(out) if out.status.success() => Ok(String::from_utf8_lossy(&out.stdout).into_owned()),
        Ok(out) => Err(ToolError::Failed(format!(
            "{} ({})",
            String::from_utf8_lossy(&out.stderr).trim(),
            out.status
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ToolError::Missing),
        Err(e) => Err(ToolError::Failed(e.to_string())),
    }
}

/// Copies the built module to `out` (for `--out`), creating its folder.
pub(super) fn copy_to(module: &Path, out: &Path) -> Result<(), Failure> {
    if let Some(parent) = out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            Failure::Runtime(format!("cannot create {} for --out: {e}", parent.display()))
        })?;
    }
    std::fs::copy(module, out).map_err(|e| {
        Failure::Runtime(format!(
            "cannot copy {} to {}: {e}",
            module.display(),
            out.display()
        ))
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_the_language_or_says_what_it_wants() {
        let dir = tempfile::tempdir().unwrap();
        let Err(Failure::Usage(m)) = detect(dir.path()) else {
            panic!()
        };
        assert!(m.contains("neither a Cargo.toml"), "{m}");
        std::fs::write(dir.path().join("app.py"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Python);
        std::fs::write(dir.path().join("Cargo.toml"), "").unwrap();
        assert_eq!(detect(dir.path()).unwrap(), Language::Rust);
        assert!(matches!(
            detect(&dir.path().join("nope")),
            Err(Failure::Usage(_))
        ));
    }
}
