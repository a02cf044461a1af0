//! Rule modules shared through a real OCI registry (issue 16): `rules publish` to Debian's
//! `docker-registry` on loopback, then the bundled demo planned with the module referenced by
//! tag and by digest instead of by path — the same plan; from the module cache once the
//! registry is gone; refused with exit 2 when the pin does not match or the registry's copy
//! has been tampered with, and with a clear error for a tag that does not exist.

use crate::support;

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use support::registry::Registry;

const LOCAL_MODULE: &str = "tests/demo/rules/studio_basics.wasm";
const TODAY: &str = "2026-03-01";

fn run(dir: &Path, args: &[&str]) -> Output {
    support::run(dir, args, &[("LDAP2FTRACK_TODAY", TODAY)])
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        support::text(&out.stdout),
        support::text(&out.stderr)
    );
    support::text(&out.stdout)
}

/// The demo's pin of studio-basics.
fn demo_pin(dir: &Path) -> String {
    let text = std::fs::read_to_string(dir.join("sync.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.starts_with("sha256 = "))
        .expect("the demo pins its module");
    line.trim_start_matches("sha256 = ")
        .trim_matches('"')
        .to_string()
}

/// The demo's sync.toml with its module taken from `module`, pinned by `pin`, and fetched
/// modules cached in `cache` (relative to the demo folder).
fn configure(dir: &Path, module: &str, pin: &str, cache: &str) {
    let shipped = std::fs::read_to_string(support::root().join("sync.toml")).unwrap();
    let original_pin = demo_pin(support::root());
    let text = shipped
        .replace(
            &format!("module = \"{LOCAL_MODULE}\""),
            &format!("module = \"{module}\""),
        )
        .replace(&original_pin, pin);
    assert!(
        text.contains(module),
        "the demo config names its module as expected"
    );
    std::fs::write(
        dir.join("sync.toml"),
        format!("{text}\n[run]\ncache_dir = \"{cache}\"\n"),
    )
    .unwrap();
}

fn operations(stdout: &str) -> Value {
    let plan: Value = serde_json::from_str(stdout).expect("plan JSON");
    plan["operations"].clone()
}

fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            if e.path().is_dir() {
                found.extend(files_under(&e.path()));
            } else {
                found.push(e.path().display().to_string());
            }
        }
    }
    found
}

/// `plan` exits 2 within a second, its error naming each of `named` (hashes, reference).
fn plan_refuses_the_pin(dir: &Path, named: &[&str]) {
    let started = std::time::Instant::now();
    let out = run(dir, &["plan"]);
    let elapsed = started.elapsed();
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(elapsed.as_secs_f64() < 1.0, "took {elapsed:?}");
    for needle in named {
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
}

#[test]
fn a_published_module_is_used_by_tag_and_digest_then_from_the_cache_and_refused_when_wrong() {
    let demo = support::demo_copy();
    let dir = demo.path();
    let pin = demo_pin(dir);
    let mut registry = Registry::start();
    let tag_ref = format!("oci://{}/rules/studio-basics:1.0.0", registry.host());

    // The baseline: the plan with the module as a local file.
    let local = operations(&ok(&run(dir, &["plan", "--output", "json"])));
    assert!(
        local.as_array().is_some_and(|a| !a.is_empty()),
        "the demo plans something"
    );

    // Publish.
    let out = run(
        dir,
        &[
            "--output",
            "json",
            "rules",
            "publish",
            LOCAL_MODULE,
            &tag_ref,
        ],
    );
    let published: Value = serde_json::from_str(&ok(&out)).unwrap();
    assert_eq!(published["sha256"], pin.as_str(), "{published}");
    let digest_ref = published["by_digest"].as_str().unwrap().to_string();
    assert!(
        digest_ref.starts_with(&format!(
            "oci://{}/rules/studio-basics@sha256:",
            registry.host()
        )),
        "{digest_ref}"
    );

    // The pushed manifest carries the Wasm OCI artefact media types (read with plain HTTP).
    let (status, body) = registry.get(
        "/v2/rules/studio-basics/manifests/1.0.0",
        "application/vnd.oci.image.manifest.v1+json",
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let manifest: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        manifest["mediaType"], "application/vnd.oci.image.manifest.v1+json",
        "{manifest}"
    );
    assert_eq!(
        manifest["config"]["mediaType"], "application/vnd.wasm.config.v0+json",
        "{manifest}"
    );
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(layers.len(), 1, "{manifest}");
    assert_eq!(layers[0]["mediaType"], "application/wasm", "{manifest}");
    assert_eq!(layers[0]["digest"], format!("sha256:{pin}"), "{manifest}");

    // `rules inspect` takes the reference too.
    let inspected = ok(&run(dir, &["rules", "inspect", &tag_ref]));
    assert!(inspected.contains(&pin), "{inspected}");
    assert!(inspected.contains(&tag_ref), "{inspected}");

    // By tag: fetched into the cache, the same plan as the local file.
    configure(dir, &tag_ref, &pin, "module-cache");
    let by_tag = operations(&ok(&run(dir, &["plan", "--output", "json"])));
    assert_eq!(by_tag, local);
    let cached = dir.join(format!("module-cache/sha256/{pin}.wasm"));
    assert!(cached.is_file(), "{} was not cached", cached.display());
    let check: Value =
        serde_json::from_str(&ok(&run(dir, &["check", "--output", "json"]))).unwrap();
    assert_eq!(check["rules"][0]["module"], tag_ref.as_str(), "{check}");
    assert_eq!(check["rules"][0]["origin"], "cached", "{check}");

    // By digest, into a fresh cache: fetched, the same plan.
    configure(dir, &digest_ref, &pin, "module-cache-digest");
    let check: Value =
        serde_json::from_str(&ok(&run(dir, &["check", "--output", "json"]))).unwrap();
    assert_eq!(check["rules"][0]["origin"], "fetched", "{check}");
    let by_digest = operations(&ok(&run(dir, &["plan", "--output", "json"])));
    assert_eq!(by_digest, local);

    // A tag that does not exist: a clear error naming the reference.
    let missing = format!("oci://{}/rules/studio-basics:9.9.9", registry.host());
    configure(dir, &missing, &pin, "module-cache-missing");
    let out = run(dir, &["plan"]);
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&missing), "{stderr}");
    assert!(stderr.contains("no such module"), "{stderr}");

    // The pin changed: exit 2 within a second, both hashes and the reference named, nothing
    // cached.
    let wrong = "0".repeat(64);
    configure(dir, &tag_ref, &wrong, "module-cache-wrong");
    plan_refuses_the_pin(dir, &[&pin, &wrong, &tag_ref]);
    assert_eq!(
        files_under(&dir.join("module-cache-wrong/sha256")),
        Vec::<String>::new(),
        "no module cached"
    );

    // The registry stopped: the cached module is used, the same plan.
    registry.stop();
    configure(dir, &tag_ref, &pin, "module-cache");
    let offline = operations(&ok(&run(dir, &["plan", "--output", "json"])));
    assert_eq!(offline, local);
    // The registry stopped and the pin changed: the cache knows what the reference gave, so
    // it is a mismatch (exit 2, both hashes) within a second, not an unreachable registry.
    configure(dir, &tag_ref, &wrong, "module-cache");
    plan_refuses_the_pin(dir, &[&pin, &wrong, &tag_ref]);
    // …and one never fetched fails, naming the registry (a run's failure, exit 1).
    configure(dir, &tag_ref, &pin, "module-cache-empty");
    let out = run(dir, &["plan"]);
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&tag_ref), "{stderr}");
}

#[test]
fn a_blob_tampered_with_in_the_registry_is_refused_and_nothing_is_written() {
    let demo = support::demo_copy();
    let dir = demo.path();
    let pin = demo_pin(dir);
    let registry = Registry::start();
    let tag_ref = format!("oci://{}/rules/studio-basics:1.0.0", registry.host());
    ok(&run(dir, &["rules", "publish", LOCAL_MODULE, &tag_ref]));

    // Flip one byte of the component in the registry's storage (same length).
    let blob = registry.blob_file(&pin);
    let mut bytes = std::fs::read(&blob).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();

    configure(dir, &tag_ref, &pin, "module-cache");
    let state = dir.join("target/demo/ftrack-state.json");
    let before = std::fs::read(&state).ok();
    let out = run(dir, &["apply"]);
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&tag_ref), "{stderr}");
    assert!(stderr.contains("tampered"), "{stderr}");
    assert_eq!(files_under(&dir.join("module-cache")), Vec::<String>::new());
    assert_eq!(std::fs::read(&state).ok(), before, "ftrack was changed");
}

/// The entry `rules publish` prints for a module with a map-groups hook (ad-roles) is one
/// `check` accepts as printed: it pins the digest form, and carries the bounds `check`
/// requires of a module that maps groups (issue 23: it once had none and exit 2).
#[test]
fn the_snippet_publish_prints_for_a_map_groups_module_is_accepted_by_check() {
    let demo = support::demo_copy();
    let dir = demo.path();
    let registry = Registry::start();
    let module = support::root().join("examples-rules/target/wasm32-wasip2/release/ad_roles.wasm");
    assert!(
        module.is_file(),
        "{} is missing: tests/run.sh builds the example modules",
        module.display()
    );
    let reference = format!("oci://{}/rules/ad-roles:2.0.0", registry.host());
    let out = run(
        dir,
        &["rules", "publish", module.to_str().unwrap(), &reference],
    );
    let stdout = ok(&out);
    let snippet = support::rules_snippet(&stdout);
    assert!(snippet.contains("@sha256:"), "{snippet}");
    assert!(snippet.contains("groups = []\nroles = []"), "{snippet}");
    let cache = format!("[run]\ncache_dir = \"cache\"\n\n{snippet}");
    let report = support::check_accepts(dir, &cache, &[("LDAP2FTRACK_TODAY", TODAY)]);
    assert!(report.contains("ad-roles"), "{report}");

    // `rules inspect` of the same module prints the same entry for its local path.
    std::fs::copy(&module, dir.join("ad_roles.wasm")).unwrap();
    let inspected = ok(&run(dir, &["rules", "inspect", "ad_roles.wasm"]));
    let entry = support::rules_snippet(&inspected);
    assert!(
        entry.starts_with("[[rules]]\nmodule = \"ad_roles.wasm\"\n"),
        "{entry}"
    );
    let config = dir.join("sync.toml");
    let shipped = std::fs::read_to_string(support::root().join("sync.toml")).unwrap();
    std::fs::write(&config, shipped).unwrap();
    support::check_accepts(dir, entry, &[]);
}

#[test]
fn publish_refuses_what_is_not_a_rule_module_or_not_a_tag() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("not.wasm"), b"hello").unwrap();
    let out = run(
        dir.path(),
        &[
            "rules",
            "publish",
            "not.wasm",
            "oci://127.0.0.1:9/rules/x:1",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", support::text(&out.stderr));
    assert!(support::text(&out.stderr).contains("not a WebAssembly file"));
    let module = support::root().join(LOCAL_MODULE);
    let out = run(
        dir.path(),
        &[
            "rules",
            "publish",
            module.to_str().unwrap(),
            "oci://127.0.0.1:9/rules/x",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", support::text(&out.stderr));
    assert!(support::text(&out.stderr).contains("TAG"));
}

// --- Credentials never follow a redirect or go to another host (issue 25, item 4) ----------

use support::http::{self as test_http, Reply, TokenRegistry};
use support::tls::{self, HttpsServer};

const REGISTRY_LOGIN: TokenRegistry = TokenRegistry {
    user: "studio-bot",
    password: "registry-pw-must-not-travel",
    token: "registry-token-must-not-log",
};

fn demo_module() -> Vec<u8> {
    std::fs::read(support::root().join(LOCAL_MODULE)).unwrap()
}

/// `rules inspect REFERENCE` in an empty folder with these extra variables.
fn inspect(reference: &str, env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    support::run(dir.path(), &["rules", "inspect", reference], env)
}

/// `rules inspect` of the token registry's module with the registry login in the environment,
/// for the registry `host` (LDAP2FTRACK_REGISTRY_HOST).
fn inspect_with_login(registry: &test_http::Server, host: &str) -> Output {
    let reference = format!("oci://{}/rules/studio-basics:1.0.0", registry.authority());
    inspect(
        &reference,
        &[
            ("LDAP2FTRACK_REGISTRY_USER", REGISTRY_LOGIN.user),
            ("LDAP2FTRACK_REGISTRY_PASSWORD", REGISTRY_LOGIN.password),
            ("LDAP2FTRACK_REGISTRY_HOST", host),
        ],
    )
}

fn authorizations(server: &test_http::Server) -> Vec<String> {
    server
        .requests()
        .iter()
        .filter_map(|r| r.header("authorization").map(str::to_string))
        .collect()
}

/// A credentials file that names a credential helper for the registry (`credHelpers`, as
/// `docker login` with a helper writes it): the helper is asked, its login used, and a helper
/// that fails is named without repeating what it printed.
#[test]
fn registry_credentials_come_from_the_credential_helper_the_credentials_file_names() {
    let pin = demo_pin(support::root());
    let registry = REGISTRY_LOGIN.serve(demo_module(), |own| format!("{own}/token"), None);
    let host = registry.authority();
    let tools = tempfile::tempdir().unwrap();
    // A helper speaking the docker-credential-* protocol: `get`, the server on stdin, JSON out.
    let helper = tools.path().join("docker-credential-studio");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nserver=$(cat)\n[ \"$1\" = get ] && [ \"$server\" = \"{host}\" ] || \
             {{ echo 'not-for-you-{secret}'; exit 1; }}\n\
             printf '{{\"ServerURL\":\"%s\",\"Username\":\"{user}\",\"Secret\":\"{secret}\"}}' \"$server\"\n",
            user = REGISTRY_LOGIN.user,
            secret = REGISTRY_LOGIN.password,
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let auth_file = tools.path().join("auth.json");
    std::fs::write(
        &auth_file,
        format!(r#"{{"credHelpers": {{"{host}": "studio"}}}}"#),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path.as_str()),
        ("REGISTRY_AUTH_FILE", auth_file.to_str().unwrap()),
    ];
    let reference = format!("oci://{host}/rules/studio-basics:1.0.0");
    assert!(ok(&inspect(&reference, &env)).contains(&pin));
    assert!(
        registry.requests().iter().any(|r| r.path() == "/token"
            && r.header("authorization")
                .is_some_and(|a| a.starts_with("Basic "))),
        "the helper's login was not used"
    );

    // `credsStore` names a helper for every registry; this one refuses, and says so on stdout.
    std::fs::write(&auth_file, r#"{"credsStore": "studio"}"#).unwrap();
    let other = "oci://127.0.0.1:9/rules/studio-basics:1.0.0";
    let out = inspect(other, &env);
    let stderr = support::text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("docker-credential-studio"), "{stderr}");
    assert!(!stderr.contains(REGISTRY_LOGIN.password), "{stderr}");
}

#[test]
fn registry_credentials_go_to_a_token_service_on_the_registry_host_and_no_other() {
    let pin = demo_pin(support::root());

    // The control: a token service on the registry's own host gets the login, and the pull works.
    let registry = REGISTRY_LOGIN.serve(demo_module(), |own| format!("{own}/token"), None);
    let out = inspect_with_login(&registry, &registry.authority());
    assert!(ok(&out).contains(&pin));
    let token_requests: Vec<_> = registry
        .requests()
        .into_iter()
        .filter(|r| r.path() == "/token")
        .collect();
    assert!(
        token_requests.iter().any(|r| r
            .header("authorization")
            .is_some_and(|a| a.starts_with("Basic "))),
        "the login was not used where it belongs: {token_requests:?}"
    );

    // A token service on another address (127.0.0.2), or on another port of the same one: it
    // is asked anonymously, and the run says why the login was kept back.
    for realm_ip in ["127.0.0.2", "127.0.0.1"] {
        let realm = test_http::listen(realm_ip)
            .serve(|_| Reply::new(200).body(r#"{"token": "anonymous-token"}"#));
        let realm_url = format!("{}/token", realm.url());
        let registry = REGISTRY_LOGIN.serve(demo_module(), move |_| realm_url.clone(), None);
        let out = inspect_with_login(&registry, &registry.authority());
        let stderr = support::text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            !realm.requests().is_empty(),
            "the token service was not asked"
        );
        assert_eq!(
            authorizations(&realm),
            Vec::<String>::new(),
            "credentials sent"
        );
        for needle in ["another host", &realm.url(), "refused access"] {
            assert!(stderr.contains(needle), "{needle} not in: {stderr}");
        }
        assert!(!stderr.contains(REGISTRY_LOGIN.password), "{stderr}");
    }

    // Credentials in the environment for another registry: this one gets none of them.
    let registry = REGISTRY_LOGIN.serve(demo_module(), |own| format!("{own}/token"), None);
    let out = inspect_with_login(&registry, "registry.elsewhere.example");
    assert_eq!(out.status.code(), Some(1), "{}", support::text(&out.stderr));
    assert_eq!(authorizations(&registry), Vec::<String>::new());

    // …and credentials that name no registry are refused before anything is sent.
    let registry = REGISTRY_LOGIN.serve(demo_module(), |own| format!("{own}/token"), None);
    let out = inspect_with_login(&registry, "");
    let stderr = support::text(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("LDAP2FTRACK_REGISTRY_HOST"), "{stderr}");
    assert!(registry.requests().is_empty(), "{:?}", registry.requests());
}

#[test]
fn a_blob_redirected_to_another_host_is_fetched_without_the_registry_token() {
    let module = demo_module();
    let cdn = {
        let module = module.clone();
        test_http::listen("127.0.0.2").serve(move |_| Reply::new(200).body(module.clone()))
    };
    let registry = REGISTRY_LOGIN.serve(
        module,
        |own| format!("{own}/token"),
        Some(format!("{}/blobs/studio-basics", cdn.url())),
    );
    let out = inspect_with_login(&registry, &registry.authority());
    assert!(ok(&out).contains(&demo_pin(support::root())));
    let bearer = format!("Bearer {}", REGISTRY_LOGIN.token);
    assert!(
        authorizations(&registry).contains(&bearer),
        "the registry was not asked with its token"
    );
    assert_eq!(cdn.requests().len(), 1, "the blob came from the CDN");
    assert_eq!(
        authorizations(&cdn),
        Vec::<String>::new(),
        "the token followed"
    );
}

#[test]
fn an_https_module_download_never_follows_a_redirect_to_http() {
    let module = demo_module();
    let plain = {
        let module = module.clone();
        test_http::listen("127.0.0.1").serve(move |_| Reply::new(200).body(module.clone()))
    };
    let server = HttpsServer::start(&[
        ("direct.wasm", tls::response("200 OK", &[], &module)),
        (
            "moved.wasm",
            tls::response(
                "302 Found",
                &[("Location", &format!("{}/m.wasm", plain.url()))],
                b"",
            ),
        ),
    ]);
    let ca = HttpsServer::ca().display().to_string();
    let trust = [("SSL_CERT_FILE", ca.as_str())];

    // The control: with the CA trusted (SSL_CERT_FILE), the module downloads over https.
    assert!(ok(&inspect(&server.url("direct.wasm"), &trust)).contains(&demo_pin(support::root())));

    let out = inspect(&server.url("moved.wasm"), &trust);
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("https to plain http"), "{stderr}");
    assert!(stderr.contains("302"), "{stderr}");
    assert!(
        plain.requests().is_empty(),
        "followed: {:?}",
        plain.requests()
    );
}

#[test]
fn an_untrusted_certificate_says_so_and_how_to_trust_a_private_ca() {
    let server = HttpsServer::start(&[("m.wasm", tls::response("200 OK", &[], &demo_module()))]);
    let out = inspect(&server.url("m.wasm"), &[]);
    let stderr = support::text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for needle in ["certificate", "localhost", "not trust", "SSL_CERT_FILE"] {
        assert!(stderr.contains(needle), "{needle} not in: {stderr}");
    }
}
