//! Tests for loading `sync.toml`: every key, defaults, fallbacks and every refusal.

use super::*;
use std::path::Path;

/// A config folder with the files the configs below refer to.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        for f in ["people.ldif", "ca.pem", "module.wasm"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let secret = dir.path().join("key.txt");
        std::fs::write(&secret, "k3y\n").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        Fixture { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.path().join("sync.toml")
    }

    fn load(&self, text: &str) -> Result<Config, ConfigError> {
        self.load_env(text, &[])
    }

    fn load_env(&self, text: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = move |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        Config::from_toml(text, &self.path(), &env)
    }
}

const MINIMAL: &str = r#"
[ldap]
url = "ldap://ldap.example.com"
user_base_dn = "ou=people,dc=example,dc=com"
"#;

fn problem_text(e: &ConfigError) -> String {
    e.to_string()
}

#[test]
fn minimal_config_gets_documented_defaults() {
    let fx = Fixture::new();
    let c = fx.load(MINIMAL).unwrap();
    assert_eq!(
        c.ldap.source,
        DirectorySource::Server {
            url: "ldap://ldap.example.com".into(),
            ldaps: false
        }
    );
    assert!(!c.ldap.starttls);
    assert_eq!(c.ldap.user_filter, DEFAULT_USER_FILTER);
    assert_eq!(c.ldap.group_filter, DEFAULT_GROUP_FILTER);
    assert_eq!(c.ldap.group_base_dn, "ou=people,dc=example,dc=com");
    assert_eq!(c.ldap.page_size, 500);
    assert_eq!(c.ldap.timeout_s, 30);
    assert_eq!(c.ldap.bind_password, None);
    assert_eq!(c.mappings, AttributeMappings::default());
    assert_eq!(c.mappings.username, "uid");
    assert_eq!(c.mappings.email, "mail");
    assert_eq!(c.mappings.first_name, "givenName");
    assert_eq!(c.mappings.last_name, "sn");
    assert_eq!(c.ftrack.server_url, None);
    assert_eq!(c.ftrack.api_key, SecretSource::Env("FTRACK_API_KEY".into()));
    assert_eq!(c.ftrack.timeout_s, 60);
    assert_eq!(c.ftrack.batch_size, 500);
    assert!(!c.ftrack.allow_insecure_http);
    assert_eq!(c.deprovision.action, DeprovisionAction::Disable);
    assert_eq!(c.guards, GuardSettings::default());
    assert_eq!(c.guards.max_disable, GuardLimit::percent_or(10, 3));
    assert_eq!(
        c.guards.max_membership_removals,
        GuardLimit::percent_or(20, 4)
    );
    assert_eq!(c.guards.max_role_revocations, GuardLimit::percent_or(10, 4));
    assert_eq!(c.guards.max_skipped, GuardLimit::percent_or(5, 3));
    assert!(!c.guards.allow_empty_source);
    assert!(c.rules.is_empty());
    assert!(c.warnings.is_empty());
    assert_eq!(c.run.lock_file, fx.dir.path().join(".ldap2ftrack.lock"));
    assert_eq!(
        c.run.journal_file,
        fx.dir.path().join("ldap2ftrack-journal.jsonl")
    );
    assert_eq!(c.run.metrics_file, None);
}

#[test]
fn every_key_is_read() {
    let fx = Fixture::new();
    let c = fx
        .load(
            r#"
[ldap]
url = "ldap://dc1.corp.example:389"
starttls = true
ca_file = "ca.pem"
bind_dn = "cn=sync,dc=corp,dc=example"
bind_password_env = "LDAP_SYNC_PASSWORD"
user_base_dn = "ou=Users,dc=corp,dc=example"
user_filter = "(&(objectClass=user)(!(objectClass=computer)))"
group_base_dn = "ou=Groups,dc=corp,dc=example"
group_filter = "(objectClass=group)"
user_attributes = ["uid", "mail"]
page_size = 1000
timeout_s = 12

[ftrack]
server_url = "https://studio.ftrackapp.com/"
api_user = "sync-bot"
api_key_file = "key.txt"
ca_file = "ca.pem"
timeout_s = 20
batch_size = 250
allow_insecure_http = false

[mappings]
username = "sAMAccountName"
email = "userPrincipalName"
first_name = "givenName"
last_name = "sn"
name_fallbacks = ["displayName"]

[group_mappings]
"animators" = { groups = ["Animation"], roles = ["Artist"], project_roles = { "proj_a" = ["Supervisor"] } }
"CN=Leads,OU=Groups,DC=corp,DC=example" = { roles = ["Project Manager"] }

[[rules]]
module = "module.wasm"
sha256 = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
on_error = "skip"
[rules.config]
domain = "corp.example"
grace_days = 30

[deprovision]
action = "keep"
protected_users = ["admin", "render-farm"]

[guards]
max_disable = 5
max_membership_removals = "15%"
max_role_revocations = "2.5% or 6"
allow_empty_source = true

[run]
lock_file = "state/sync.lock"
journal_file = "/var/log/ldap2ftrack/journal.jsonl"
metrics_file = "metrics/ldap2ftrack.prom"
"#,
        )
        .unwrap();
    let dir = fx.dir.path();
    assert_eq!(
        c.ldap.source,
        DirectorySource::Server {
            url: "ldap://dc1.corp.example:389".into(),
            ldaps: false
        }
    );
    assert!(c.ldap.starttls);
    assert_eq!(c.ldap.ca_file, Some(dir.join("ca.pem")));
    assert_eq!(
        c.ldap.bind_dn.as_deref(),
        Some("cn=sync,dc=corp,dc=example")
    );
    assert_eq!(
        c.ldap.bind_password,
        Some(SecretSource::Env("LDAP_SYNC_PASSWORD".into()))
    );
    assert_eq!(c.ldap.user_base_dn, "ou=Users,dc=corp,dc=example");
    assert_eq!(
        c.ldap.user_filter,
        "(&(objectClass=user)(!(objectClass=computer)))"
    );
    assert_eq!(c.ldap.group_base_dn, "ou=Groups,dc=corp,dc=example");
    assert_eq!(c.ldap.group_filter, "(objectClass=group)");
    assert_eq!(c.ldap.user_attributes, vec!["uid", "mail"]);
    assert_eq!(c.ldap.page_size, 1000);
    assert_eq!(c.ldap.timeout_s, 12);

    assert_eq!(
        c.ftrack.server_url,
        Some(FtrackServer::Url("https://studio.ftrackapp.com".into()))
    );
    assert_eq!(c.ftrack.api_user.as_deref(), Some("sync-bot"));
    assert_eq!(c.ftrack.api_key, SecretSource::File(dir.join("key.txt")));
    assert_eq!(c.ftrack.ca_file, Some(dir.join("ca.pem")));
    assert_eq!(c.ftrack.timeout_s, 20);
    assert_eq!(c.ftrack.batch_size, 250);

    assert_eq!(c.mappings.username, "sAMAccountName");
    assert_eq!(c.mappings.email, "userPrincipalName");
    assert_eq!(c.mappings.name_fallbacks, vec!["displayName"]);

    let animators = &c.group_mappings["animators"];
    assert_eq!(animators.groups, vec!["Animation"]);
    assert_eq!(animators.roles, vec!["Artist"]);
    assert_eq!(animators.project_roles["proj_a"], vec!["Supervisor"]);
    assert_eq!(
        c.group_mappings["CN=Leads,OU=Groups,DC=corp,DC=example"].roles,
        vec!["Project Manager"]
    );

    assert_eq!(c.rules.len(), 1);
    let rule = &c.rules[0];
    assert_eq!(rule.module, dir.join("module.wasm"));
    assert_eq!(
        rule.sha256,
        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
    );
    assert_eq!(rule.on_error, OnRuleError::Skip);
    assert_eq!(rule.config["domain"].as_str(), Some("corp.example"));
    assert_eq!(rule.config["grace_days"].as_integer(), Some(30));

    assert_eq!(c.deprovision.action, DeprovisionAction::Keep);
    assert_eq!(c.deprovision.protected_users, vec!["admin", "render-farm"]);
    assert_eq!(c.guards.max_disable, GuardLimit::count(5));
    assert_eq!(c.guards.max_membership_removals, GuardLimit::percent(15));
    assert_eq!(c.guards.max_role_revocations.to_string(), "2.5% or 6");
    assert_eq!(c.guards.max_role_revocations.allowed(1000), 25);
    assert!(c.guards.allow_empty_source);
    assert_eq!(c.run.lock_file, dir.join("state/sync.lock"));
    assert_eq!(
        c.run.journal_file,
        PathBuf::from("/var/log/ldap2ftrack/journal.jsonl")
    );
    assert_eq!(
        c.run.metrics_file,
        Some(dir.join("metrics/ldap2ftrack.prom"))
    );
}

#[test]
fn unknown_key_is_named_with_a_suggestion() {
    let fx = Fixture::new();
    let e = fx
        .load(
            r#"
[ldap]
url = "ldap://x.example"
user_base_dn = "dc=example"
page_sise = 100
"#,
        )
        .unwrap_err();
    assert!(e.mentions_key("ldap.page_sise"), "{e}");
    let text = problem_text(&e);
    assert!(text.contains("did you mean `ldap.page_size`?"), "{text}");
    assert!(text.contains(":5:"), "line number missing: {text}");
    assert!(text.contains("sync.toml"), "file missing: {text}");
}

#[test]
fn unknown_top_level_section_and_nested_keys() {
    let fx = Fixture::new();
    let e = fx
        .load(&format!("{MINIMAL}\n[guard]\nmax_disable = 3\n"))
        .unwrap_err();
    assert!(e.mentions_key("guard"), "{e}");
    assert!(problem_text(&e).contains("did you mean `guards`?"), "{e}");

    let e = fx
        .load(&format!(
            "{MINIMAL}\n[group_mappings]\nx = {{ group = [\"A\"] }}\n"
        ))
        .unwrap_err();
    assert!(problem_text(&e).contains("unknown key `group`"), "{e}");
    assert!(
        problem_text(&e).contains("did you mean `group_mappings.x.groups`?"),
        "{e}"
    );

    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha265 = \"x\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].sha265"), "{e}");
    assert!(
        problem_text(&e).contains("did you mean `rules[0].sha256`?"),
        "{e}"
    );
}

#[test]
fn wrong_types_and_missing_keys_name_the_key() {
    let fx = Fixture::new();
    let e = fx
        .load("[ldap]\nurl = \"ldap://x\"\nuser_base_dn = \"dc=x\"\npage_size = \"big\"\n")
        .unwrap_err();
    assert!(e.mentions_key("ldap.page_size"), "{e}");

    let e = fx.load("[ldap]\nurl = \"ldap://x.example\"\n").unwrap_err();
    assert!(problem_text(&e).contains("user_base_dn"), "{e}");

    let e = fx.load("").unwrap_err();
    assert!(problem_text(&e).contains("ldap"), "{e}");

    let e = fx.load("[ldap\nurl=").unwrap_err();
    assert!(problem_text(&e).contains(":1"), "{e}");
}

#[test]
fn plaintext_secrets_are_refused_with_directions() {
    let fx = Fixture::new();
    let e = fx
        .load(&format!(
            "{MINIMAL}bind_dn = \"cn=a,dc=b\"\nbind_password = \"hunter2\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("ldap.bind_password"), "{e}");
    let text = problem_text(&e);
    assert!(text.contains("bind_password_env"), "{text}");
    assert!(text.contains("bind_password_file"), "{text}");
    assert!(!text.contains("hunter2"), "secret leaked: {text}");

    let e = fx
        .load(&format!("{MINIMAL}\n[ftrack]\napi_key = \"abc-123\"\n"))
        .unwrap_err();
    assert!(e.mentions_key("ftrack.api_key"), "{e}");
    assert!(problem_text(&e).contains("api_key_env"), "{e}");
    assert!(!problem_text(&e).contains("abc-123"));
}

#[test]
fn secret_sources_are_exclusive_and_env_takes_a_name() {
    let fx = Fixture::new();
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[ftrack]\napi_key_env = \"K\"\napi_key_file = \"key.txt\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("ftrack.api_key_file"), "{e}");

    let e = fx
        .load(&format!(
            "{MINIMAL}bind_dn = \"cn=a,dc=b\"\nbind_password_env = \"pass word!\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("ldap.bind_password_env"), "{e}");

    let e = fx
        .load(&format!("{MINIMAL}bind_dn = \"cn=a,dc=b\"\n"))
        .unwrap_err();
    assert!(problem_text(&e).contains("no password source"), "{e}");
}

#[test]
fn ftrack_settings_fall_back_to_the_official_variables() {
    let fx = Fixture::new();
    let c = fx
        .load_env(
            MINIMAL,
            &[
                ("FTRACK_SERVER", "https://env.ftrackapp.com"),
                ("FTRACK_API_USER", "env-user"),
                ("FTRACK_API_KEY", "env-key"),
            ],
        )
        .unwrap();
    assert_eq!(
        c.ftrack.server_url,
        Some(FtrackServer::Url("https://env.ftrackapp.com".into()))
    );
    assert_eq!(c.ftrack.api_user.as_deref(), Some("env-user"));
    let env = |k: &str| (k == "FTRACK_API_KEY").then(|| "env-key".to_string());
    assert_eq!(
        c.ftrack
            .api_key
            .read("ftrack.api_key", &env)
            .unwrap()
            .expose(),
        "env-key"
    );

    // The file wins over the environment.
    let c = fx
        .load_env(
            &format!("{MINIMAL}\n[ftrack]\nserver_url = \"https://file.example\"\napi_user = \"file-user\"\n"),
            &[("FTRACK_SERVER", "https://env.example"), ("FTRACK_API_USER", "env-user")],
        )
        .unwrap();
    assert_eq!(
        c.ftrack.server_url,
        Some(FtrackServer::Url("https://file.example".into()))
    );
    assert_eq!(c.ftrack.api_user.as_deref(), Some("file-user"));

    // Neither: an error naming both the key and the variable, at the point ftrack is needed.
    let c = fx.load(MINIMAL).unwrap();
    let why = c.ftrack.require_server().unwrap_err();
    assert!(
        why.contains("ftrack.server_url") && why.contains("FTRACK_SERVER"),
        "{why}"
    );
    let why = c.ftrack.require_api_user().unwrap_err();
    assert!(
        why.contains("ftrack.api_user") && why.contains("FTRACK_API_USER"),
        "{why}"
    );
}

#[test]
fn a_clear_text_bind_to_another_machine_is_refused_unless_allowed() {
    let fx = Fixture::new();
    let cfg = |url: &str, extra: &str| {
        format!(
            "[ldap]\nurl = \"{url}\"\nuser_base_dn = \"ou=people,dc=example,dc=com\"\n\
             bind_dn = \"cn=sync,dc=example,dc=com\"\nbind_password_env = \"PW\"\n{extra}"
        )
    };
    let e = fx.load(&cfg("ldap://10.255.255.1", "")).unwrap_err();
    assert!(e.mentions_key("ldap.url"), "{e}");
    let text = problem_text(&e);
    assert!(
        text.contains("so the bind password would cross the network in clear text; use"),
        "one sentence, no runs of spaces: {text}"
    );
    assert!(text.contains("ldap.allow_insecure_ldap = true"), "{text}");
    let allowed = fx
        .load(&cfg("ldap://10.255.255.1", "allow_insecure_ldap = true\n"))
        .unwrap();
    assert!(allowed.ldap.allow_insecure_ldap);
    // Encrypted, local, or anonymous: nothing to refuse.
    fx.load(&cfg("ldap://10.255.255.1", "starttls = true\n"))
        .unwrap();
    fx.load(&cfg("ldaps://10.255.255.1", "")).unwrap();
    fx.load(&cfg("ldap://127.0.0.1:3389", "")).unwrap();
    fx.load(&cfg("ldap://localhost", "")).unwrap();
    fx.load(&cfg("ldap://[::1]:389", "")).unwrap();
    fx.load(MINIMAL).unwrap();
}

#[test]
fn insecure_http_is_refused_unless_loopback_or_allowed() {
    let fx = Fixture::new();
    let cfg = |url: &str, allow: bool| {
        format!("{MINIMAL}\n[ftrack]\nserver_url = \"{url}\"\nallow_insecure_http = {allow}\n")
    };
    let e = fx
        .load(&cfg("http://ftrack.studio.lan", false))
        .unwrap_err();
    assert!(problem_text(&e).contains("allow_insecure_http"), "{e}");
    fx.load(&cfg("http://ftrack.studio.lan", true)).unwrap();
    fx.load(&cfg("http://127.0.0.1:8080", false)).unwrap();
    fx.load(&cfg("http://localhost:8080", false)).unwrap();
    fx.load(&cfg("http://[::1]:8080", false)).unwrap();
    let e = fx.load(&cfg("ftp://x", false)).unwrap_err();
    assert!(e.mentions_key("ftrack.server_url"), "{e}");
    // A bad FTRACK_SERVER is reported under the variable's name.
    let e = fx
        .load_env(MINIMAL, &[("FTRACK_SERVER", "not a url")])
        .unwrap_err();
    assert!(e.mentions_key("FTRACK_SERVER"), "{e}");
}

// Uses an `emulator:` server, which only a build with the emulator accepts.
#[cfg(feature = "emulator")]
#[test]
fn relative_paths_resolve_against_the_config_folder() {
    let fx = Fixture::new();
    let c = fx
        .load(
            r#"
[ldap]
url = "ldif:people.ldif"
user_base_dn = "dc=example,dc=com"
[ftrack]
server_url = "emulator:state/ftrack.json"
emulator_seed = "people.ldif"
"#,
        )
        .unwrap();
    let dir = fx.dir.path();
    assert_eq!(
        c.ldap.source,
        DirectorySource::LdifFile(dir.join("people.ldif"))
    );
    assert_eq!(
        c.ftrack.server_url,
        Some(FtrackServer::Emulator {
            state: dir.join("state/ftrack.json"),
            seed: Some(dir.join("people.ldif"))
        })
    );

    let e = fx
        .load("[ldap]\nurl = \"ldif:missing.ldif\"\nuser_base_dn = \"dc=x\"\n")
        .unwrap_err();
    assert!(e.mentions_key("ldap.url"), "{e}");
    assert!(problem_text(&e).contains("missing.ldif"), "{e}");

    let abs = dir.join("people.ldif");
    let c = fx
        .load(&format!(
            "[ldap]\nurl = \"ldif:{}\"\nuser_base_dn = \"dc=x\"\n",
            abs.display()
        ))
        .unwrap();
    assert_eq!(c.ldap.source, DirectorySource::LdifFile(abs));
}

#[test]
fn loose_secret_file_gives_a_warning_not_an_error() {
    let fx = Fixture::new();
    let key = fx.dir.path().join("key.txt");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let c = fx
            .load(&format!(
                "{MINIMAL}\n[ftrack]\napi_key_file = \"key.txt\"\n"
            ))
            .unwrap();
        assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("chmod 600"));
    }
}

#[cfg(unix)]
#[test]
fn a_secrets_env_beside_the_config_readable_by_others_gives_a_warning() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    let env_file = fx.dir.path().join("secrets.env");
    std::fs::write(&env_file, "FTRACK_API_KEY=k\n").unwrap();
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(fx.load(MINIMAL).unwrap().warnings.is_empty());
    std::fs::set_permissions(&env_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let c = fx.load(MINIMAL).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("secrets.env") && c.warnings[0].contains("chmod 600"),
        "{:?}",
        c.warnings
    );
}

/// Packaged builds leave the emulator out (`--no-default-features`; tests/run.sh runs the
/// config tests that way too): `emulator:` is then a configuration error, found before any
/// network.
#[cfg(not(feature = "emulator"))]
#[test]
fn without_the_emulator_feature_an_emulator_server_is_refused() {
    let fx = Fixture::new();
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[ftrack]\nserver_url = \"emulator:state.json\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("ftrack.server_url"), "{e}");
    assert!(problem_text(&e).contains("packaged builds"), "{e}");
}

#[test]
fn guard_values_accept_counts_percentages_and_both() {
    let fx = Fixture::new();
    let with = |v: &str| fx.load(&format!("{MINIMAL}\n[guards]\nmax_disable = {v}\n"));
    assert_eq!(with("0").unwrap().guards.max_disable, GuardLimit::count(0));
    assert_eq!(
        with("\"40\"").unwrap().guards.max_disable,
        GuardLimit::count(40)
    );
    assert_eq!(
        with("\"100%\"").unwrap().guards.max_disable,
        GuardLimit::percent(100)
    );
    assert_eq!(
        with("\"10% or 5\"").unwrap().guards.max_disable,
        GuardLimit::percent_or(10, 5)
    );
    for bad in ["-1", "\"101%\"", "\"lots\"", "1.5", "true"] {
        let e = with(bad).unwrap_err();
        assert!(e.mentions_key("guards.max_disable"), "{bad}: {e}");
    }
}

/// A malformed limit names the file, the line and the dotted key, says what is wrong with
/// the value and how to write one, for every guard.
#[test]
fn a_malformed_guard_value_says_where_and_what_to_write() {
    let fx = Fixture::new();
    let file = fx.path().display().to_string();
    let how =
        "write a count (25), a percentage (\"10%\"), or both (\"10% or 3\": whichever allows more)";
    for key in [
        "max_disable",
        "max_membership_removals",
        "max_role_revocations",
        "max_skipped",
    ] {
        for (value, says) in [
            (
                "\"10% or x\"",
                "`x` in \"10% or x\" is neither a count nor a percentage; ".to_string() + how,
            ),
            (
                "\"150%\"",
                "\"150%\" is over 100%: a percentage is of the managed total, so write 0% to 100%, e.g. \"10%\" or \"10% or 3\"".to_string(),
            ),
            ("-3", format!("-3 is negative; {how}")),
            (
                "2.5",
                format!("2.5 is not a whole count; a percentage goes in quotes (\"2.5%\"); {how}"),
            ),
        ] {
            let e = fx
                .load(&format!("{MINIMAL}\n[guards]\n{key} = {value}\n"))
                .unwrap_err();
            let text = problem_text(&e);
            assert!(e.mentions_key(&format!("guards.{key}")), "{value}: {text}");
            // MINIMAL takes 4 lines, then a blank one and [guards]: the value is on line 7.
            assert!(
                text.starts_with(&format!("{file}:7: key `guards.{key}`: ")),
                "{value}: {text}"
            );
            assert!(text.contains(&says), "{value}: {text}");
        }
    }
}

#[test]
fn ldap_url_and_tls_combinations_are_checked() {
    let fx = Fixture::new();
    let with = |url: &str, extra: &str| {
        fx.load(&format!(
            "[ldap]\nurl = \"{url}\"\nuser_base_dn = \"dc=x\"\n{extra}"
        ))
    };
    assert_eq!(
        with("ldaps://dc.example:636", "").unwrap().ldap.source,
        DirectorySource::Server {
            url: "ldaps://dc.example:636".into(),
            ldaps: true
        }
    );
    assert!(with("ldaps://dc.example", "starttls = true\n")
        .unwrap_err()
        .mentions_key("ldap.starttls"));
    assert!(with("http://dc.example", "")
        .unwrap_err()
        .mentions_key("ldap.url"));
    assert!(with("ldif:people.ldif", "starttls = true\n")
        .unwrap_err()
        .mentions_key("ldap.starttls"));
    assert!(
        with("ldap://x.example", "user_filter = \"objectClass=person\"\n")
            .unwrap_err()
            .mentions_key("ldap.user_filter")
    );
    assert!(with("ldap://x.example", "group_filter = \"(|(a=b)\"\n")
        .unwrap_err()
        .mentions_key("ldap.group_filter"));
    assert!(with("ldap://x.example", "page_size = 0\n")
        .unwrap_err()
        .mentions_key("ldap.page_size"));
    assert!(with("ldap://x.example", "ca_file = \"nope.pem\"\n")
        .unwrap_err()
        .mentions_key("ldap.ca_file"));
}

#[test]
fn all_problems_are_reported_at_once() {
    let fx = Fixture::new();
    let e = fx
        .load(
            r#"
[ldap]
url = "gopher://x"
user_base_dn = "people"
page_size = 0
[mappings]
username = "1uid"
[group_mappings]
"empty" = {}
[deprovision]
protected_users = [""]
"#,
        )
        .unwrap_err();
    for key in [
        "ldap.url",
        "ldap.user_base_dn",
        "ldap.page_size",
        "mappings.username",
        "group_mappings.\"empty\"",
        "deprovision.protected_users",
    ] {
        assert!(e.mentions_key(key), "{key} not reported in: {e}");
    }
    assert!(problem_text(&e).contains("6 problems"), "{e}");
}

#[test]
fn rules_need_an_existing_module_and_a_valid_hash() {
    let fx = Fixture::new();
    let e = fx
        .load(&format!("{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\n"))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].sha256"), "{e}");
    assert!(problem_text(&e).contains("pinned by hash"), "{e}");
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"gone.wasm\"\nsha256 = \"{}\"\n",
            "0".repeat(64)
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].module"), "{e}");
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"abc\"\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].sha256"), "{e}");
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{}\"\non_error = \"ignore\"\n",
            "0".repeat(64)
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].on_error"), "{e}");
}

#[test]
fn rule_bounds_are_names_or_globs() {
    let fx = Fixture::new();
    let sha = "0".repeat(64);
    let c = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{sha}\"\ngroups = [\"Comp *\"]\nroles = []\n\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{sha}\"\n"
        ))
        .unwrap();
    let bounds = &c.rules[0].bounds;
    assert!(bounds.declared());
    assert!(bounds.groups.as_ref().unwrap().allows("comp TEAM"));
    assert!(!bounds.groups.as_ref().unwrap().allows("Lighting"));
    assert_eq!(bounds.roles.as_ref().unwrap().written(), &[] as &[String]);
    assert!(!c.rules[1].bounds.declared(), "undeclared stays undeclared");

    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{sha}\"\ngroups = [\"\"]\nroles = [\"[Art\"]\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].groups"), "{e}");
    assert!(e.mentions_key("rules[0].roles"), "{e}");
    assert!(
        problem_text(&e).contains("`[Art` is not a name or glob"),
        "{e}"
    );
}

#[test]
fn the_required_directory_keys_are_reported_together() {
    let fx = Fixture::new();
    let e = fx.load("[ldap]\npage_size = 100\n").unwrap_err();
    assert!(e.mentions_key("ldap.url"), "{e}");
    assert!(e.mentions_key("ldap.user_base_dn"), "{e}");
    assert!(problem_text(&e).contains("e.g. url = \"ldaps://"), "{e}");
}

// Uses an `emulator:` server, which only a build with the emulator accepts.
#[cfg(feature = "emulator")]
#[test]
fn the_shipped_sync_toml_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("sync.toml");
    let c = Config::load_with_env(&path, &|_| None).unwrap();
    assert!(matches!(c.ldap.source, DirectorySource::LdifFile(_)));
    assert!(matches!(
        c.ftrack.server_url,
        Some(FtrackServer::Emulator { .. })
    ));
}

#[test]
fn run_budgets_and_the_skipped_guard() {
    let fx = Fixture::new();
    let sha = "0".repeat(64);
    let c = fx
        .load(&format!(
            "{MINIMAL}\n[guards]\nmax_skipped = 2\n\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{sha}\"\nmax_run_seconds = 30\n"
        ))
        .unwrap();
    assert_eq!(c.guards.max_skipped, GuardLimit::count(2));
    assert_eq!(c.rules[0].max_run_seconds, 30);
    let d = fx.load(MINIMAL).unwrap();
    assert_eq!(d.guards.max_skipped, GuardLimit::percent_or(5, 3));
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"module.wasm\"\nsha256 = \"{sha}\"\nmax_run_seconds = 0\n"
        ))
        .unwrap_err();
    assert!(e.mentions_key("rules[0].max_run_seconds"), "{e}");
}

#[test]
fn referenced_modules_are_named_by_their_pin_in_the_fetch_cache() {
    let fx = Fixture::new();
    let pin = "ab".repeat(32);
    let c = fx
        .load_env(
            &format!(
                "{MINIMAL}\n[[rules]]\nmodule = \"oci://127.0.0.1:5000/rules/x:1.0.0\"\nsha256 = \"{pin}\"\n\n\
                 [[rules]]\nmodule = \"https://rules.example.com/y.wasm\"\nsha256 = \"{pin}\"\n"
            ),
            &[("XDG_CACHE_HOME", "/var/cache/x")],
        )
        .unwrap();
    assert!(c.rules[0].source.is_remote());
    assert_eq!(
        c.rules[0].source.to_string(),
        "oci://127.0.0.1:5000/rules/x:1.0.0"
    );
    let cached = Path::new("/var/cache/x/ldap2ftrack/fetched/sha256").join(format!("{pin}.wasm"));
    assert_eq!(c.rules[0].module, cached);
    assert_eq!(c.rules[1].module, cached);
    // The compile cache is a folder of its own.
    assert_eq!(
        c.run.compile_cache_dir.as_deref(),
        Some(Path::new("/var/cache/x/ldap2ftrack/compiled"))
    );
    assert_eq!(
        c.rules[0].compile_cache.as_deref(),
        Some(Path::new("/var/cache/x/ldap2ftrack/compiled"))
    );

    // `[run] fetch_cache_dir` resolves against the config folder; so does its old name,
    // `cache_dir`, with a warning to rename it.
    for key in ["fetch_cache_dir", "cache_dir"] {
        let c = fx
            .load(&format!(
                "{MINIMAL}\n[[rules]]\nmodule = \"oci://reg.example.com/rules/x@sha256:{pin}\"\nsha256 = \"{pin}\"\n\n\
                 [run]\n{key} = \"cache\"\ncompile_cache_dir = \"native\"\n"
            ))
            .unwrap();
        assert_eq!(
            c.rules[0].module,
            fx.dir
                .path()
                .join("cache/sha256")
                .join(format!("{pin}.wasm"))
        );
        assert_eq!(c.rules[0].compile_cache, Some(fx.dir.path().join("native")));
        assert_eq!(
            c.warnings.iter().any(|w| w.contains("fetch_cache_dir")),
            key == "cache_dir",
            "{:?}",
            c.warnings
        );
    }

    // A malformed reference is a problem of the key, with an example.
    let e = fx
        .load(&format!(
            "{MINIMAL}\n[[rules]]\nmodule = \"oci://reg.example.com/rules/x\"\nsha256 = \"{pin}\"\n"
        ))
        .unwrap_err();
    let text = problem_text(&e);
    assert!(text.contains("rules[0].module"), "{text}");
    assert!(text.contains(":TAG"), "{text}");
}

#[test]
fn sync_events_are_published_unless_turned_off() {
    let fx = Fixture::new();
    assert!(fx.load(MINIMAL).unwrap().events.publish);
    let off = fx
        .load(&format!("{MINIMAL}\n[events]\npublish = false\n"))
        .unwrap();
    assert!(!off.events.publish);
    let e = fx
        .load(&format!("{MINIMAL}\n[events]\npublsh = true\n"))
        .unwrap_err();
    let text = problem_text(&e);
    assert!(text.contains("publsh"), "{text}");
}

#[test]
fn filters_are_checked_by_the_ldap_parser() {
    let fx = Fixture::new();
    let with = |extra: &str| fx.load(&format!("{MINIMAL}{extra}\n"));
    // Valid filters, however unusual, load as written (white space around them dropped: the
    // LDAP client takes none).
    for filter in [
        "(&(objectClass=user)(!(userAccountControl:1.2.840.113556.1.4.803:=2)))",
        "(memberOf:1.2.840.113556.1.4.1941:=cn=Leads,ou=groups,dc=example,dc=com)",
        "(|(cn=Doe\\\\2c Jane)(cn;lang-de=Zoë*)(sn~=smyth)(uidNumber>=1000))",
        "(objectGUID=\\\\a1\\\\ff\\\\00\\\\10)",
        "(ou:dn:=People)",
        "(&)",
    ] {
        let c = with(&format!(
            "user_filter = \"  {filter} \"\ngroup_filter = \"{filter}\""
        ))
        .unwrap_or_else(|e| panic!("{filter}: {e}"));
        let written = filter.replace("\\\\", "\\");
        assert_eq!(c.ldap.user_filter, written);
        assert_eq!(c.ldap.group_filter, written);
    }
    // Each refusal is the parser's: where, and what is wrong there.
    for (key, filter, says) in [
        (
            "user_filter",
            "(&(objectClass=person)(uid=*)",
            "at character 30: the `(` at character 1 is not closed: a `)` is missing",
        ),
        (
            "user_filter",
            "objectClass=person",
            "wrap it, e.g. (objectClass=person)",
        ),
        (
            "group_filter",
            "(cn=team**)",
            "at character 10: two `*` in a row",
        ),
        (
            "group_filter",
            "(cn=a(b)",
            "`(` inside a value must be escaped as \\28",
        ),
        (
            "user_filter",
            "(uidNumber>=1*)",
            "`*` in a `>=` value must be escaped as \\2a",
        ),
        ("user_filter", "(& (uid=a)(uid=b))", "white space"),
        ("user_filter", "(cn=\\\\x)", "is not an escape"),
        ("user_filter", "(user_name=a)", "after the attribute `user`"),
        ("user_filter", "(uid=a)(uid=b)", "to combine filters write"),
        ("user_filter", "", "the filter is empty"),
    ] {
        let e = with(&format!("{key} = \"{filter}\"")).unwrap_err();
        let text = problem_text(&e);
        assert!(e.mentions_key(&format!("ldap.{key}")), "{filter}: {text}");
        assert_eq!(e.problems.len(), 1, "{filter}: {text}");
        assert!(text.contains("invalid LDAP filter `"), "{filter}: {text}");
        assert!(text.contains(says), "{filter}: {text}");
        assert!(
            text.ends_with("; write an RFC 4515 filter, e.g. (&(objectClass=person)(uid=*))"),
            "{filter}: {text}"
        );
    }
}

#[test]
fn dns_are_checked_by_the_ldap_parser() {
    let fx = Fixture::new();
    let with = |key: &str, dn: &str| {
        let mut text = String::from("[ldap]\nurl = \"ldaps://ldap.example.com\"\n");
        if key != "user_base_dn" {
            text.push_str("user_base_dn = \"dc=example,dc=com\"\n");
        }
        if key == "bind_dn" {
            text.push_str("bind_password_env = \"PW\"\n");
        }
        text.push_str(&format!("{key} = \"{dn}\"\n"));
        fx.load(&text)
    };
    for key in ["user_base_dn", "group_base_dn", "bind_dn"] {
        for dn in [
            "CN=Doe\\\\, Jane,OU=People,DC=example,DC=com",
            "ou = People , dc=example;dc=com",
            "OID.2.5.4.11=People,dc=example",
            "cn=\\\"Doe, Jane\\\",dc=example",
            "cn=#04034a6f65,dc=example",
            "uid=Zoë+cn=Z,dc=example",
        ] {
            with(key, dn).unwrap_or_else(|e| panic!("{key} = {dn}: {e}"));
        }
        for (dn, says) in [
            (
                "people",
                "at character 7: `=` expected after attribute type `people`",
            ),
            (
                "ou=people,,dc=example",
                "at character 11: an attribute type is missing",
            ),
            (
                "ou=people,dc=example,",
                "at character 22: an attribute type is missing",
            ),
            (
                "cn=\\\"Doe, Jane,dc=example",
                "a quoted value is not closed",
            ),
            ("cn=a\\\\", "ends with a lone `\\`"),
            ("cn=a\\\\4,dc=x", "two hex digits"),
            ("cn=#zz,dc=x", "hex pairs"),
            (
                "  ",
                "is empty; give a DN, e.g. ou=people,dc=example,dc=com",
            ),
        ] {
            let e = with(key, dn).unwrap_err();
            let text = problem_text(&e);
            assert!(
                e.mentions_key(&format!("ldap.{key}")),
                "{key} = {dn}: {text}"
            );
            assert_eq!(e.problems.len(), 1, "{key} = {dn}: {text}");
            assert!(text.contains(says), "{key} = {dn}: {text}");
        }
    }
    let e = with("user_base_dn", "ou=a\\\"b,dc=x").unwrap_err();
    assert!(
        problem_text(&e).ends_with(
            "write a DN such as ou=people,dc=example,dc=com, with `\\,` for a comma inside a value"
        ),
        "{e}"
    );
}

#[test]
fn a_group_mapping_that_looks_like_a_dn_but_is_not_is_warned_about() {
    let fx = Fixture::new();
    let c = fx
        .load(&format!(
            "{MINIMAL}\n[group_mappings]\n\"cn=leads,,ou=groups\" = {{ groups = [\"Leads\"] }}\n\
             \"cn=comp,ou=groups,dc=example,dc=com\" = {{ groups = [\"Comp\"] }}\n\
             \"lighting\" = {{ groups = [\"Lighting\"] }}\n"
        ))
        .unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("\"cn=leads,,ou=groups\" contains `=` but is not a DN (invalid DN"),
        "{:?}",
        c.warnings
    );
    assert!(c.warnings[0].contains("looked up as a group's cn"));
}
