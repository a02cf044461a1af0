//! `ldap2ftrack rules new`: the generated Rust crate and Python package each build with
//! `ldap2ftrack rules build` and pass `ldap2ftrack test` as generated (the Python one also
//! its own pytest, natively); a bad name or a folder in use is refused with exit 2 and
//! nothing written.
//!
//! The Python test needs `LDAP2FTRACK_PYTHON`: a Python with pytest and componentize-py,
//! the venv `bash tests/run.sh` creates.

use crate::support;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The cargo target folder every `rules build` of the tests uses (`CARGO_TARGET_DIR`), kept
/// between runs, so wit-bindgen's macros and the registry crates are compiled once, not
/// once per generated crate.
fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("rules-build-target")
}

/// The venv Python (pytest, componentize-py) from `LDAP2FTRACK_PYTHON`.
fn venv_python() -> PathBuf {
    std::env::var_os("LDAP2FTRACK_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            panic!(
                "LDAP2FTRACK_PYTHON is not set: run `bash tests/run.sh` (it creates .venv with \
                 pytest and componentize-py and sets it), or set LDAP2FTRACK_PYTHON to a Python \
                 that has both"
            )
        })
}

/// `rules build --output json` in `dir` with `env`; the parsed result, after checking that
/// it names a module whose file has the printed sha256.
fn build(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> serde_json::Value {
    let mut all = vec!["rules", "build", "--output", "json"];
    all.extend_from_slice(args);
    let out = support::run(dir, &all, env);
    let stdout = support::text(&out.stdout);
    assert!(
        out.status.success(),
        "rules build failed:\n{stdout}{}",
        support::text(&out.stderr)
    );
    let built: serde_json::Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("rules build --output json printed no JSON ({e}):\n{stdout}"));
    let module = built["module"].as_str().expect("module");
    let bytes = std::fs::read(module).unwrap_or_else(|e| panic!("{module}: {e}"));
    let sha256 = ldap2ftrack::rules::wasm::sha256_hex(&bytes);
    assert_eq!(built["sha256"].as_str(), Some(sha256.as_str()), "{stdout}");
    built
}

/// `ldap2ftrack test fixtures` in `dir` (with `env`) passes its one generated case.
fn assert_fixtures_pass(dir: &Path, env: &[(&str, &str)]) {
    let out = support::run(dir, &["test", "fixtures"], env);
    let report = support::text(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        support::text(&out.stderr)
    );
    assert!(report.contains("pass    fixtures/first-case"), "{report}");
    assert!(report.contains("1 passed, 0 failed"), "{report}");
}

#[test]
fn a_generated_rust_crate_builds_and_passes_its_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::run(tmp.path(), &["rules", "new", "acme-rs"], &[]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let crate_dir = tmp.path().join("acme-rs");
    assert!(crate_dir
        .join("fixtures/first-case/expected.json")
        .is_file());

    // Built in the shared target folder, then put (--out) where the fixture case looks.
    let target = shared_target_dir();
    let built = build(
        &crate_dir,
        &["--out", "target/wasm32-wasip2/release/acme_rs.wasm"],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    assert_eq!(built["language"], "rust");
    assert_eq!(built["reproducible"], true);
    assert!(
        built["module"]
            .as_str()
            .unwrap()
            .ends_with("acme-rs/target/wasm32-wasip2/release/acme_rs.wasm"),
        "{built}"
    );
    // The first build creates the lock file, part of the source from then on.
    assert!(crate_dir.join("Cargo.lock").is_file());

    assert_fixtures_pass(&crate_dir, &[]);

    let out = support::run(
        &crate_dir,
        &[
            "rules",
            "inspect",
            "target/wasm32-wasip2/release/acme_rs.wasm",
        ],
        &[],
    );
    let info = support::text(&out.stdout);
    assert!(out.status.success(), "{info}");
    assert!(info.contains("acme-rs 0.1.0"), "{info}");
    assert!(info.contains("email_domain (string)"), "{info}");
}

#[test]
fn a_generated_python_package_builds_passes_its_fixture_and_its_pytest() {
    let python = venv_python();
    let componentize_py = python.with_file_name("componentize-py");
    let tmp = tempfile::tempdir().unwrap();
    let out = support::run(
        tmp.path(),
        &["rules", "new", "acme", "--lang", "python"],
        &[],
    );
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    let pkg = tmp.path().join("acme");
    for file in ["app.py", "tests/test_app.py", "pyproject.toml", "README.md"] {
        assert!(pkg.join(file).is_file(), "{file} was not generated");
    }

    // pytest natively, as the author runs it: the generated pyproject.toml puts app.py and
    // the checkout's Python SDK on the path.
    let mut pytest = Command::new(&python);
    support::clean_env(&mut pytest);
    let out = pytest
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider"])
        .current_dir(&pkg)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap_or_else(|e| panic!("{}: {e}", python.display()));
    let report = support::text(&out.stdout);
    assert!(
        out.status.success(),
        "pytest on the generated package failed:\n{report}{}",
        support::text(&out.stderr)
    );
    assert!(report.contains("2 passed"), "{report}");

    // Each build is a new 19 MB module with a new hash: its compiled code (about 37 MB) goes
    // to a cache that goes away with the test, not to the shared one.
    let cache = tmp.path().join("rule-cache");
    let cache_env = ("LDAP2FTRACK_CACHE_DIR", cache.to_str().unwrap());
    let built = build(
        &pkg,
        &[],
        &[
            (
                "LDAP2FTRACK_COMPONENTIZE_PY",
                componentize_py.to_str().unwrap(),
            ),
            cache_env,
        ],
    );
    assert_eq!(built["language"], "python");
    assert_eq!(built["reproducible"], false);
    assert!(
        built["module"]
            .as_str()
            .unwrap()
            .ends_with("acme/dist/acme.wasm"),
        "{built}"
    );

    assert_fixtures_pass(&pkg, &[cache_env]);
}

#[test]
fn a_bad_name_or_a_folder_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = support::run(tmp.path(), &["rules", "new", "Studio_Users"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = support::text(&out.stderr);
    assert!(
        err.contains("`Studio_Users` cannot name a rule module"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/notes.txt"), "mine").unwrap();
    for lang in ["rust", "python"] {
        let out = support::run(
            tmp.path(),
            &[
                "rules",
                "new",
                "good-name",
                "--lang",
                lang,
                "--dir",
                "taken",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        let err = support::text(&out.stderr);
        assert!(
            err.contains("already exists and is not empty; nothing was written"),
            "{err}"
        );
    }
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        1
    );

    for lang in ["rust", "python"] {
        let out = support::run(
            tmp.path(),
            &[
                "rules",
                "new",
                "good-name",
                "--lang",
                lang,
                "--sdk",
                "/nonexistent",
            ],
            &[],
        );
        assert_eq!(out.status.code(), Some(2));
        assert!(support::text(&out.stderr).contains("pass --sdk"));
    }
    assert!(!tmp.path().join("good-name").exists());
}
