//! `ldap2ftrack rules build`: a Rust module depends only on its source (one example built
//! from two folders at different paths has one sha256, and it is the demo's committed
//! module), and a missing tool or target is a
//! usage error (exit 2) that names the command installing it.

use crate::support;

use std::path::{Path, PathBuf};

/// The cargo target folder every `rules build` of the tests uses (`CARGO_TARGET_DIR`), kept
/// between runs. Sharing it does not hide a path dependence: the target folder's own path is
/// remapped, each source folder gives other rustflags (its real path is remapped too), so
/// cargo rebuilds every WebAssembly crate of each copy, and only the compiled proc-macros
/// (wit-bindgen's, host code that never reaches the module) are reused. That makes a copy's
/// build about 10 s instead of a cold 40 s.
fn shared_target_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).join("rules-build-target")
}

/// `examples-rules/studio-basics` with what it needs, below `to`, laid out as in the checkout:
/// the examples' workspace (manifest, lock file, members), the rules SDK, and a root
/// workspace manifest carrying the settings the SDK inherits (`[workspace.package]`,
/// `[workspace.dependencies]`) without the rest of the checkout. Returns the crate's folder.
fn copy_studio_basics(to: &Path) -> PathBuf {
    let root = support::root();
    let examples = to.join("examples-rules");
    std::fs::create_dir_all(&examples).unwrap();
    for file in ["Cargo.toml", "Cargo.lock"] {
        std::fs::copy(root.join("examples-rules").join(file), examples.join(file)).unwrap();
    }
    for member in ["studio-basics", "ad-roles", "grace-deprovision"] {
        support::copy_dir(
            &root.join("examples-rules").join(member),
            &examples.join(member),
        );
    }
    let sdk = to.join("rules-sdk");
    std::fs::create_dir_all(&sdk).unwrap();
    for part in ["Cargo.toml", "src", "wit"] {
        let from = root.join("rules-sdk").join(part);
        if from.is_dir() {
            support::copy_dir(&from, &sdk.join(part));
        } else {
            std::fs::copy(&from, sdk.join(part)).unwrap();
        }
    }
    let checkout: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let mut workspace = toml::Table::new();
    workspace.insert("members".into(), vec!["rules-sdk"].into());
    workspace.insert("exclude".into(), vec!["examples-rules"].into());
    workspace.insert("resolver".into(), "2".into());
    for inherited in ["package", "dependencies"] {
        if let Some(table) = checkout["workspace"].get(inherited) {
            workspace.insert(inherited.into(), table.clone());
        }
    }
    let mut manifest = toml::Table::new();
    manifest.insert("workspace".into(), workspace.into());
    std::fs::write(to.join("Cargo.toml"), manifest.to_string()).unwrap();
    examples.join("studio-basics")
}

/// `rules build CRATE --output json` with the shared target folder: (sha256, module).
fn build(crate_dir: &Path) -> (String, PathBuf) {
    let target = shared_target_dir();
    let out = support::run(
        support::root(),
        &[
            "rules",
            "build",
            crate_dir.to_str().unwrap(),
            "--output",
            "json",
        ],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let stdout = support::text(&out.stdout);
    assert!(
        out.status.success(),
        "rules build {} failed:\n{stdout}{}",
        crate_dir.display(),
        support::text(&out.stderr)
    );
    // Built through the canonical link, where every copy's SDK has one path (see
    // `build_rust` in src/rules_build.rs): without it, some pairs of folders match by luck
    // and others differ.
    let stderr = support::text(&out.stderr);
    assert!(
        stderr.contains("ldap2ftrack-rules-sdk v1.0.0 (/tmp/ldap2ftrack-build/src/rules-sdk)"),
        "{stderr}"
    );
    let built: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(built["language"], "rust", "{stdout}");
    assert_eq!(built["reproducible"], true, "{stdout}");
    let module = PathBuf::from(built["module"].as_str().unwrap());
    let sha256 = ldap2ftrack::rules::wasm::sha256_hex(&std::fs::read(&module).unwrap());
    assert_eq!(built["sha256"].as_str(), Some(sha256.as_str()), "{stdout}");
    (sha256, module)
}

#[test]
fn one_example_built_in_two_folders_has_one_sha256() {
    // Two folders whose paths differ in length and depth.
    let first = tempfile::Builder::new().prefix("a").tempdir().unwrap();
    let second = tempfile::Builder::new()
        .prefix("another-checkout")
        .tempdir()
        .unwrap();
    let first_crate = copy_studio_basics(first.path());
    let (first_sha, first_module) = build(&first_crate);
    let first_bytes = std::fs::read(&first_module).unwrap();
    // Copied after the first build, so its files are newer than anything built so far.
    let second_crate = copy_studio_basics(&second.path().join("deeper/src"));
    let (second_sha, _) = build(&second_crate);
    assert_eq!(
        first_sha,
        second_sha,
        "studio-basics built from {} and {} differs",
        first_crate.display(),
        second_crate.display()
    );
    // No path of either copy, nor of this machine's cargo home, is left in the module.
    let text = String::from_utf8_lossy(&first_bytes);
    for path in [first.path(), second.path()] {
        assert!(
            !text.contains(path.to_str().unwrap()),
            "{} in the module",
            path.display()
        );
    }
    if let Some(home) = std::env::var_os("HOME") {
        let home = Path::new(&home).join(".cargo");
        assert!(
            !text.contains(home.to_str().unwrap()),
            "~/.cargo in the module"
        );
    }

    // The demo's committed module is this source, provably: the rebuild has its hash, and
    // the shipped sync.toml pins that hash.
    let root = support::root();
    let committed = root.join("tests/demo/rules/studio_basics.wasm");
    let committed_sha = ldap2ftrack::rules::wasm::sha256_hex(&std::fs::read(&committed).unwrap());
    assert_eq!(
        first_sha, committed_sha,
        "{} is not what examples-rules/studio-basics builds to; rebuild it with \
         `ldap2ftrack rules build examples-rules/studio-basics --out tests/demo/rules/studio_basics.wasm` \
         and pin the new hash in sync.toml",
        committed.display()
    );
    let sync = std::fs::read_to_string(root.join("sync.toml")).unwrap();
    assert!(
        sync.contains(&format!(
            "module = \"tests/demo/rules/studio_basics.wasm\"\nsha256 = \"{committed_sha}\""
        )),
        "the shipped sync.toml pins the demo module by its hash"
    );
}

/// One printer for the `[[rules]]` entry (issue 23): the one `rules build` prints for a
/// module with a map-groups hook carries the bounds `check` requires of it, in TOML that
/// `check` reads back as printed.
#[test]
fn the_snippet_build_prints_for_a_map_groups_module_is_accepted_by_check() {
    let tmp = tempfile::tempdir().unwrap();
    let ad_roles = copy_studio_basics(tmp.path()).with_file_name("ad-roles");
    let demo = support::demo_copy();
    let target = shared_target_dir();
    // Built from the demo folder, so the module is shown by its absolute path.
    let out = support::run(
        demo.path(),
        &["rules", "build", ad_roles.to_str().unwrap()],
        &[("CARGO_TARGET_DIR", target.to_str().unwrap())],
    );
    let stdout = support::text(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        support::text(&out.stderr)
    );
    let snippet = support::rules_snippet(&stdout);
    assert!(snippet.contains("groups = []\nroles = []"), "{snippet}");
    let report = support::check_accepts(demo.path(), snippet, &[]);
    assert!(report.contains("ad-roles"), "{report}");
}

#[test]
fn a_missing_tool_or_target_names_the_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    for args in [
        &["rules", "new", "acme-rs"][..],
        &["rules", "new", "acme", "--lang", "python"][..],
    ] {
        let out = support::run(tmp.path(), args, &[]);
        assert!(out.status.success(), "{}", support::text(&out.stderr));
    }
    // A PATH with the usual system tools but neither cargo (rustup puts it in ~/.cargo/bin)
    // nor componentize-py (a venv's bin).
    let bare_path = "/usr/local/bin:/usr/bin:/bin";
    let cases = [
        (
            "acme-rs",
            "cargo was not found",
            "rustup target add wasm32-wasip2",
        ),
        (
            "acme",
            "componentize-py was not found",
            "pip install componentize-py==0.25.1",
        ),
    ];
    for (dir, says, install) in cases {
        let out = support::run(
            &tmp.path().join(dir),
            &["rules", "build"],
            &[("PATH", bare_path)],
        );
        let err = support::text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{dir}: {err}");
        assert!(err.contains(says), "{dir}: {err}");
        assert!(err.contains(install), "{dir}: {err}");
    }

    // A rustc without the wasm32-wasip2 target: a stand-in whose target folder is missing.
    let fake_rustc = tmp.path().join("rustc-without-wasm");
    std::fs::write(
        &fake_rustc,
        "#!/bin/sh\ncase \"$*\" in\n  -vV) echo 'rustc 1.95.0'; echo 'release: 1.95.0';;\n  \
         *target-libdir*) echo /nonexistent/lib/rustlib/wasm32-wasip2/lib;;\n  *) exit 1;;\nesac\n",
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&fake_rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let out = support::run(
        &tmp.path().join("acme-rs"),
        &["rules", "build"],
        &[("RUSTC", fake_rustc.to_str().unwrap())],
    );
    let err = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("the Rust target wasm32-wasip2 is not installed for rustc 1.95.0: run `rustup target add wasm32-wasip2`"),
        "{err}"
    );
    // Nothing was built.
    assert!(!tmp.path().join("acme-rs/target").exists());
}
