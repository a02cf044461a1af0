//! The example rule modules pass their own fixture cases through `ldap2ftrack test`, as a
//! module's CI would run them — and the Python twin of studio-basics passes the same cases
//! as its Rust original. The modules are built by `tests/run.sh` (cargo for the Rust ones,
//! componentize-py for the Python one); a missing `.wasm` fails here saying so.

use crate::support;

use std::path::{Path, PathBuf};
use support::root;

// The runs share the harness's compile cache (support::rule_cache_dir, kept under target/
// between runs), so the Python module's seconds-long compile is paid once, and the user's
// cache is left alone.

fn require_module(file: &str) {
    let path = root()
        .join("examples-rules/target/wasm32-wasip2/release")
        .join(file);
    assert!(
        path.is_file(),
        "{} is missing: build the example rule modules with `bash tests/run.sh` (Rust: \
         `cargo build --release --target wasm32-wasip2 --manifest-path examples-rules/Cargo.toml`; \
         Python: the componentize-py step in tests/run.sh)",
        path.display()
    );
}

/// Runs `ldap2ftrack test` on a module's fixtures and asserts every case passes.
fn fixtures_pass(module_dir: &str, wasm: &str, cases: &[&str]) -> String {
    require_module(wasm);
    let dir = format!("examples-rules/{module_dir}/fixtures");
    let out = support::run(root(), &["test", &dir], &[]);
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for case in cases {
        assert!(
            report.contains(&format!("pass    {dir}/{case}\n")),
            "{case} did not pass:\n{report}"
        );
    }
    assert!(
        report.contains(&format!("{} passed, 0 failed", cases.len())),
        "{report}"
    );
    // The report names the build it tested (the cases trust the unpinned build output).
    assert!(
        report.contains(&format!(
            "unpinned module examples-rules/target/wasm32-wasip2/release/{wasm} (sha256 "
        )),
        "{report}"
    );
    report
}

const STUDIO_BASICS_CASES: [&str; 3] = [
    "invalid-email-domain-fallback",
    "invalid-email-skips-user",
    "normalises-usernames",
];

/// Copies an example's test case (`example/fixtures/name`) to `case`, without its
/// sync.toml; returns that fragment with the module path made absolute and the module's path.
fn copy_example_case(
    example: &str,
    name: &str,
    module_file: &str,
    case: &Path,
) -> (String, PathBuf) {
    require_module(module_file);
    let from = root().join(format!("examples-rules/{example}/fixtures/{name}"));
    std::fs::create_dir_all(case).unwrap();
    for file in ["directory.ldif", "ftrack.json", "expected.json"] {
        std::fs::copy(from.join(file), case.join(file)).unwrap();
    }
    let module = root()
        .join("examples-rules/target/wasm32-wasip2/release")
        .join(module_file);
    let fragment = std::fs::read_to_string(from.join("sync.toml"))
        .unwrap()
        .replace(
            &format!("../../../target/wasm32-wasip2/release/{module_file}"),
            &module.display().to_string(),
        );
    (fragment, module)
}

#[test]
fn studio_basics_passes_its_fixtures() {
    fixtures_pass("studio-basics", "studio_basics.wasm", &STUDIO_BASICS_CASES);
}

#[test]
fn ad_roles_passes_its_fixtures() {
    fixtures_pass(
        "ad-roles",
        "ad_roles.wasm",
        &[
            "another-studio-config",
            "group-prefix-direct-only",
            "project-scoped-roles",
        ],
    );
}

#[test]
fn grace_deprovision_passes_its_fixtures() {
    fixtures_pass(
        "grace-deprovision",
        "grace_deprovision.wasm",
        &[
            "after-grace-period",
            "disabled-in-ldap-waits",
            "within-grace-period",
        ],
    );
}

#[test]
fn the_python_twin_passes_the_rust_modules_cases() {
    fixtures_pass(
        "studio-basics-py",
        "studio_basics_py.wasm",
        &STUDIO_BASICS_CASES,
    );
    // The same cases, not look-alikes: same inputs and the same expected plan, the module's
    // name in the reasons aside; the fragments differ only in which module they load.
    for case in STUDIO_BASICS_CASES {
        let rust = root()
            .join("examples-rules/studio-basics/fixtures")
            .join(case);
        let py = root()
            .join("examples-rules/studio-basics-py/fixtures")
            .join(case);
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        };
        for file in ["directory.ldif", "ftrack.json"] {
            assert_eq!(read(rust.join(file)), read(py.join(file)), "{case}/{file}");
        }
        assert_eq!(
            read(rust.join("sync.toml")).replace(
                "release/studio_basics.wasm",
                "release/studio_basics_py.wasm"
            ),
            read(py.join("sync.toml")),
            "{case}/sync.toml"
        );
        assert_eq!(
            read(rust.join("expected.json")).replace("studio-basics", "studio-basics-py"),
            read(py.join("expected.json")),
            "{case}/expected.json"
        );
    }
}

#[test]
fn a_wrong_expectation_in_a_module_case_fails_with_a_diff() {
    let tmp = tempfile::tempdir().unwrap();
    // A module repository's layout: fixtures/<case>, the build output three levels up.
    let case = tmp.path().join("ad-roles/fixtures/project-scoped-roles");
    let (fragment, _) =
        copy_example_case("ad-roles", "project-scoped-roles", "ad_roles.wasm", &case);
    std::fs::write(case.join("sync.toml"), &fragment).unwrap();
    let expected = case.join("expected.json");
    let text = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(
        &expected,
        text.replace(
            "\"scope\": \"spring_commercial\"",
            "\"scope\": \"short_film\"",
        ),
    )
    .unwrap();

    let out = support::run(root(), &["test", &case.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("FAIL    "), "{report}");
    assert!(
        report.contains("-       \"scope\": \"short_film\",")
            && report.contains("+       \"scope\": \"spring_commercial\","),
        "{report}"
    );
    assert!(report.contains("0 passed, 1 failed"), "{report}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("1 of 1 test cases failed"), "{err}");
}

#[test]
fn an_unpinned_module_without_the_opt_in_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let case = tmp.path().join("case");
    let (_, module) = copy_example_case(
        "studio-basics",
        "normalises-usernames",
        "studio_basics.wasm",
        &case,
    );
    let fragment = format!("[[rules]]\nmodule = \"{}\"\n", module.display());
    std::fs::write(case.join("sync.toml"), &fragment).unwrap();
    let out = support::run(root(), &["test", &case.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("ERROR   "), "{report}");
    assert!(
        report.contains("rules[0].sha256 is missing")
            && report.contains("trust_unpinned_modules = true"),
        "{report}"
    );

    // Pinned with the right hash: runs without the opt-in, as production would.
    let sha = {
        use sha2::{Digest, Sha256};
        format!("{:x}", Sha256::digest(std::fs::read(&module).unwrap()))
    };
    std::fs::write(
        case.join("sync.toml"),
        format!("{fragment}sha256 = \"{sha}\"\n"),
    )
    .unwrap();
    let out = support::run(root(), &["test", &case.display().to_string()], &[]);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{report}");
    assert!(!report.contains("unpinned module"), "{report}");

    // Pinned with a wrong hash: the pin wins over nothing; the case fails naming both.
    let wrong = "0".repeat(64);
    std::fs::write(
        case.join("sync.toml"),
        format!("{fragment}sha256 = \"{wrong}\"\n\n[test]\ntrust_unpinned_modules = true\n"),
    )
    .unwrap();
    let out = support::run(root(), &["test", &case.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains(&sha) && report.contains(&wrong), "{report}");
}

#[test]
fn a_case_whose_module_config_does_not_fit_the_schema_says_which_key() {
    let tmp = tempfile::tempdir().unwrap();
    let case = tmp.path().join("case");
    let (fragment, _) = copy_example_case(
        "grace-deprovision",
        "within-grace-period",
        "grace_deprovision.wasm",
        &case,
    );
    let fragment = fragment.replace(
        "grace_days = 14",
        "grace_days = \"two weeks\"\ngrace_dayz = 3",
    );
    std::fs::write(case.join("sync.toml"), fragment).unwrap();
    let out = support::run(root(), &["test", &case.display().to_string()], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        report.contains("key `rules[0].config.grace_days`: must be an integer")
            && report.contains("key `rules[0].config.grace_dayz`: unknown key")
            && report.contains("did you mean `grace_days`?"),
        "{report}"
    );
}
