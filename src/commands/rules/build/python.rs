//! The Python build of a rule package: componentize-py with the rules SDK's WIT and Python
//! sources. Not reproducible (two builds of one source differ), which `rules build` says.

use super::{run_tool, ToolError};
use crate::commands::rules::sdk;
use crate::failure::Failure;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The componentize-py version the Python SDK is written and tested against.
const COMPONENTIZE_PY: &str = "componentize-py==0.25.1";
/// Names the componentize-py executable to use, before `PATH` is searched.
const COMPONENTIZE_PY_ENV: &str = "LDAP2FTRACK_COMPONENTIZE_PY";

/// Builds the Python package in `dir` with componentize-py; the module's path and the tool
/// (`componentize-py 0.25.1`).
pub(super) fn build(
    dir: &Path,
    sdk: Option<&Path>,
    out: Option<&Path>,
) -> Result<(PathBuf, String), Failure> {
    if !dir.join("app.py").is_file() {
        return Err(Failure::Usage(format!(
            "{} has no app.py: a Python rule module's entry is app.py, ending with \
             `Hooks = export(YourRules)` (`ldap2ftrack rules new NAME --lang python` makes one)",
            dir.display()
        )));
    }
    let sdk = sdk.map_or_else(sdk::default_sdk, Path::to_path_buf);
    if let Some(missing) = sdk::missing_for_python(&sdk) {
        return Err(Failure::Usage(format!(
            "the rules SDK is not at {} (no {missing} there); pass --sdk with the path of the \
             `rules-sdk` folder of an ldap2ftrack checkout",
            sdk.display()
        )));
    }
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let (dir_abs, sdk) = (absolute(dir), absolute(&sdk));
    let module = match out {
        Some(out) => absolute(out),
        None => dir_abs
            .join("dist")
            .join(format!("{}.wasm", python_module_name(&dir_abs))),
    };
    if let Some(parent) = module.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| Failure::Runtime(format!("cannot create {}: {e}", parent.display())))?;
    }
    let tool = find_componentize_py(&dir_abs)?;
    let version = run_tool(Command::new(&tool).arg("--version"))
        .map(|v| v.trim().to_string())
        .map_err(|e| {
            let why = match e {
                ToolError::Missing => "is not there".to_string(),
                ToolError::Failed(m) => format!("does not run: {m}"),
            };
            Failure::Usage(format!(
                "componentize-py ({}) {why}; install it with `pip install {COMPONENTIZE_PY}` \
                 (in a venv), or point {COMPONENTIZE_PY_ENV} at a working one",
                tool.display()
            ))
        })?;
    let status = Command::new(&tool)
        .arg("-d")
        .arg(sdk.join("wit"))
        .args(["-w", "rule", "componentize", "--stub-wasi"])
        .arg("-p")
        .arg(&dir_abs)
        .arg("-p")
        .arg(sdk::python_src(&sdk))
        .arg("app")
        .arg("-o")
        .arg(&module)
        .current_dir(&dir_abs)
        // Its own Rust backtrace says nothing about the rule; the Python error comes first.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::io::stderr()))
        .status()
        .map_err(|e| Failure::Runtime(format!("cannot run {}: {e}", tool.display())))?;
    if !status.success() {
        return Err(Failure::Runtime(format!(
            "componentize-py failed ({status}); its messages are above. Fix {} (`pytest` \
             finds most mistakes natively) and run `ldap2ftrack rules build` again",
            dir.join("app.py").display()
        )));
    }
    Ok((module, version))
}

/// The module file's name: `[project] name` of `pyproject.toml`, else the folder's name,
/// as a Python identifier (`acme-users` → `acme_users`).
fn python_module_name(dir: &Path) -> String {
    let from_project = std::fs::read_to_string(dir.join("pyproject.toml"))
        .ok()
        .and_then(|text| text.parse::<toml::Table>().ok())
        .and_then(|t| t.get("project")?.get("name")?.as_str().map(str::to_string));
    let name = from_project
        .or_else(|| dir.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "rule".to_string()
    } else {
        name
    }
}

/// componentize-py: `$LDAP2FTRACK_COMPONENTIZE_PY`, else `componentize-py` on `PATH`, in the
/// active venv (`$VIRTUAL_ENV`), or in a `.venv` / `venv` in `dir` or a folder above it.
fn find_componentize_py(dir: &Path) -> Result<PathBuf, Failure> {
    if let Some(tool) = std::env::var_os(COMPONENTIZE_PY_ENV).filter(|v| !v.is_empty()) {
        let tool = PathBuf::from(tool);
        return if tool.is_file() {
            Ok(tool)
        } else {
            Err(Failure::Usage(format!(
                "{COMPONENTIZE_PY_ENV} names {}, which is not a file: point it at the \
                 componentize-py executable (e.g. .venv/bin/componentize-py), or install it \
                 with `pip install {COMPONENTIZE_PY}`",
                tool.display()
            )))
        };
    }
    const EXE: &str = "componentize-py";
    const BIN: &str = if cfg!(windows) { "Scripts" } else { "bin" };
    let on_path = which::which(EXE).ok();
    let in_venv = std::env::var_os("VIRTUAL_ENV").and_then(|v| {
        which::which_in_global(EXE, Some(Path::new(&v).join(BIN)))
            .ok()?
            .next()
    });
    let nearby = dir.ancestors().flat_map(|d| {
        [".venv", "venv"].into_iter().filter_map(move |v| {
            which::which_in_global(EXE, Some(d.join(v).join(BIN)))
                .ok()?
                .next()
        })
    });
    on_path
        .into_iter()
        .chain(in_venv)
        .chain(nearby)
        .next()
        .ok_or_else(|| {
            Failure::Usage(format!(
                "componentize-py was not found (looked at ${COMPONENTIZE_PY_ENV}, PATH, \
                 $VIRTUAL_ENV and .venv folders from {} up): install it with `pip install \
                 {COMPONENTIZE_PY}` (in a venv: `python3 -m venv .venv && .venv/bin/pip install \
                 {COMPONENTIZE_PY}`), or point {COMPONENTIZE_PY_ENV} at it",
                dir.display()
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_module_names() {
        let dir = tempfile::tempdir().unwrap();
        let pkg = dir.path().join("Acme-Users");
        std::fs::create_dir(&pkg).unwrap();
        assert_eq!(python_module_name(&pkg), "acme_users");
        std::fs::write(
            pkg.join("pyproject.toml"),
            "[project]\nname = \"studio-x\"\n",
        )
        .unwrap();
        assert_eq!(python_module_name(&pkg), "studio_x");
    }
}
