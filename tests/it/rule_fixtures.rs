//! `ldap2ftrack test` and `plan --snapshot`: cases pass offline, a wrong expectation fails
//! with a readable diff and a non-zero exit, `--update` rewrites, and a captured situation
//! is a passing case in one step.

use crate::support;

use support::{copy_dir, root};

#[test]
fn the_shipped_cases_pass() {
    let out = support::run(root(), &["test", "tests/fixtures"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains("pass    tests/fixtures/demo-first-run"),
        "{text}"
    );
    assert!(text.contains("1 passed, 0 failed"), "{text}");
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff_and_update_fixes_it() {
    let dir = tempfile::tempdir().unwrap();
    let case = dir.path().join("case");
    copy_dir(&root().join("tests/fixtures/demo-first-run"), &case);
    let expected = case.join("expected.json");
    let text = std::fs::read_to_string(&expected).unwrap();
    std::fs::write(
        &expected,
        text.replacen("\"target\": \"bjorn\"", "\"target\": \"bjorn-typo\"", 1),
    )
    .unwrap();

    let out = support::run(dir.path(), &["test", "case"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(report.contains("FAIL    case"), "{report}");
    assert!(
        report.contains("-       \"target\": \"bjorn-typo\","),
        "{report}"
    );
    assert!(
        report.contains("+       \"target\": \"bjorn\","),
        "{report}"
    );
    assert!(report.contains("0 passed, 1 failed"), "{report}");

    let out = support::run(dir.path(), &["test", "--update", "case"], &[]);
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("updated case"));
    assert_eq!(
        std::fs::read_to_string(&expected).unwrap().trim(),
        text.trim()
    );
    assert!(support::run(dir.path(), &["test", "case"], &[])
        .status
        .success());
}

#[test]
fn a_captured_situation_is_a_passing_case() {
    let dir = support::demo_copy();
    let out = support::run(
        dir.path(),
        &["plan", "--snapshot", "captured", "--output", "json"],
        &[],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let live: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let captured = dir.path().join("captured");
    let config = std::fs::read_to_string(captured.join("sync.toml")).unwrap();
    assert!(
        !config.contains("[ftrack]") && !config.contains("url ="),
        "no servers or secrets: {config}"
    );
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(captured.join("expected.json")).unwrap())
            .unwrap();
    assert_eq!(expected["operations"], live["operations"]);
    let out = support::run(dir.path(), &["test", "captured"], &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_folder_without_cases_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = support::run(dir.path(), &["test", "."], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds no test case"));
}
