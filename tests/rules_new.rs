//! `ldap2ftrack rules new`: the generated crate builds for wasm32-wasip2 and passes
//! `ldap2ftrack test` as generated; a bad name or a folder in use is refused with exit 2 and
//! nothing written.

mod support;

use std::path::Path;
use std::process::{Command, Output};

fn ldap2ftrack(args: &[&str], dir: &Path) -> Output {
    support::run(dir, args, &[])
}

#[test]
fn a_generated_crate_builds_and_passes_its_fixture() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ldap2ftrack(&["rules", "new", "studio-users"], tmp.path());
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let crate_dir = tmp.path().join("studio-users");
    assert!(crate_dir
        .join("fixtures/first-case/expected.json")
        .is_file());

    // A target folder shared between runs of this test, so the SDK and wit-bindgen are
    // compiled once; the module is then put where the fixture expects it.
    let target = support::root().join("target/rules-new-test");
    let build = Command::new(env!("CARGO"))
        .args(["build", "--release", "--target", "wasm32-wasip2"])
        .current_dir(&crate_dir)
        .env("CARGO_TARGET_DIR", &target)
        .output()
        .unwrap();
    assert!(
        build.status.success(),
        "cargo build of the generated crate failed (is the wasm32-wasip2 target installed? \
         `rustup target add wasm32-wasip2`, or run `bash tests/run.sh`):\n{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let built = target.join("wasm32-wasip2/release/studio_users.wasm");
    let expected_place = crate_dir.join("target/wasm32-wasip2/release");
    std::fs::create_dir_all(&expected_place).unwrap();
    std::fs::copy(&built, expected_place.join("studio_users.wasm")).unwrap();

    let out = ldap2ftrack(&["test", "fixtures"], &crate_dir);
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("pass    fixtures/first-case"), "{report}");
    assert!(report.contains("1 passed, 0 failed"), "{report}");

    let out = ldap2ftrack(
        &[
            "rules",
            "inspect",
            "target/wasm32-wasip2/release/studio_users.wasm",
        ],
        &crate_dir,
    );
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{info}");
    assert!(info.contains("studio-users 0.1.0"), "{info}");
    assert!(info.contains("email_domain (string)"), "{info}");
}

#[test]
fn a_bad_name_or_a_folder_in_use_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = ldap2ftrack(&["rules", "new", "Studio_Users"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("`Studio_Users` cannot name a rule module"),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 0);

    std::fs::create_dir(tmp.path().join("taken")).unwrap();
    std::fs::write(tmp.path().join("taken/notes.txt"), "mine").unwrap();
    let out = ldap2ftrack(&["rules", "new", "good-name", "--dir", "taken"], tmp.path());
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already exists and is not empty; nothing was written"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_dir(tmp.path().join("taken")).unwrap().count(),
        1
    );

    let out = ldap2ftrack(
        &["rules", "new", "good-name", "--sdk", "/nonexistent"],
        tmp.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --sdk"));
}
