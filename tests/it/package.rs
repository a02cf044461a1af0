//! The Debian package (issue 18): what `apt install ./ldap2ftrack_*.deb` puts on a server.
//!
//! The package is built once per run by packaging/build-deb.sh, the same script an admin runs,
//! but from the debug binary this `cargo test` already built (`--profile dev --no-build`), so
//! CI compiles nothing extra. It is unpacked into a scratch root (`dpkg-deb -x`) and each test
//! checks one promise: the binary runs, the units pass `systemd-analyze verify` and are
//! hardened, the postinst creates the user and enables and starts nothing, the conffile is
//! marked and refuses to run until the servers are set, completions load, the man pages render.
//! The tools come from tests/run.sh (cargo-deb, dpkg, systemd, man-db); a missing one fails the
//! test naming what to install.

use crate::support;

use std::ffi::OsStr;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

const CARGO_DEB: &str = "cargo install --locked cargo-deb@3.8.0";
const UNIT_DIR: &str = "usr/lib/systemd/system";
const CONFFILE: &str = "etc/ldap2ftrack/sync.toml";

struct Package {
    /// The unpacked data files: the scratch root.
    root: PathBuf,
    /// The unpacked control files (control, conffiles, postinst, ...).
    control: PathBuf,
    /// A folder each test may use for its own files, below `work/<test name>`.
    work: PathBuf,
}

/// Builds and unpacks the package once for all tests in this file.
fn package() -> &'static Package {
    static PACKAGE: OnceLock<Result<Package, String>> = OnceLock::new();
    match PACKAGE.get_or_init(build_package) {
        Ok(package) => package,
        Err(why) => panic!("{why}"),
    }
}

fn build_package() -> Result<Package, String> {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // Below target/, not /tmp: a static is never dropped, and the files stay for inspection.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("package");
    if dir.exists() {
        fs::remove_dir_all(&dir).map_err(|e| format!("cannot clear {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let deb = dir.join("ldap2ftrack.deb");
    // The script packages target/<profile>/ldap2ftrack; make sure that is the binary under test.
    let bin = Path::new(env!("CARGO_BIN_EXE_ldap2ftrack"));
    if bin.parent().and_then(Path::file_name) != Some(OsStr::new("debug")) {
        return Err(format!(
            "expected the dev-profile binary in target/debug, got {}",
            bin.display()
        ));
    }
    let built = run(Command::new("bash")
        .arg(manifest_dir.join("packaging/build-deb.sh"))
        .args(["--profile", "dev", "--no-build", "--fast", "--output"])
        .arg(&deb)
        .current_dir(manifest_dir));
    if !built.status.success() {
        return Err(format!(
            "packaging/build-deb.sh failed ({}); it needs cargo-deb: {CARGO_DEB}\n{}",
            built.status,
            both(&built)
        ));
    }
    let root = dir.join("root");
    let control = dir.join("control");
    for (flag, into) in [("-x", &root), ("-e", &control)] {
        let out = run(Command::new("dpkg-deb").arg(flag).arg(&deb).arg(into));
        if !out.status.success() {
            return Err(format!("dpkg-deb {flag} failed: {}", both(&out)));
        }
    }
    Ok(Package {
        root,
        control,
        work: dir.join("work"),
    })
}

impl Package {
    fn path(&self, rel: &str) -> PathBuf {
        self.root.join(rel)
    }

    fn control_file(&self, name: &str) -> String {
        read(&self.control.join(name))
    }

    /// A fresh, empty folder for one test.
    fn scratch(&self, name: &str) -> PathBuf {
        let dir = self.work.join(name);
        if dir.exists() {
            fs::remove_dir_all(&dir).unwrap();
        }
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The packaged binary, with the tests' clean environment (support::clean_env).
    fn binary(&self) -> Command {
        let mut cmd = Command::new(self.path("usr/bin/ldap2ftrack"));
        support::clean_env(&mut cmd);
        cmd
    }
}

/// Runs a command; a tool that is not installed fails the test saying which package has it.
fn run(cmd: &mut Command) -> Output {
    let program = cmd.get_program().to_string_lossy().into_owned();
    match cmd.output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let install = match program.as_str() {
                "dpkg-deb" => "apt-get install dpkg",
                "systemd-analyze" | "systemd-sysusers" | "systemd-tmpfiles" => {
                    "apt-get install systemd"
                }
                "man" => "apt-get install man-db",
                "bash" | "sh" => "apt-get install bash",
                _ => "see tests/run.sh",
            };
            panic!("`{program}` is not installed: {install} (tests/run.sh installs it)")
        }
        Err(e) => panic!("cannot run {program}: {e}"),
    }
}

fn both(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

#[test]
fn packaged_binary_runs_and_reports_its_version() {
    let p = package();
    let out = run(p.binary().arg("--version"));
    assert!(out.status.success(), "{}", both(&out));
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        concat!("ldap2ftrack ", env!("CARGO_PKG_VERSION"))
    );
    let control = p.control_file("control");
    assert!(control.contains("Package: ldap2ftrack\n"), "{control}");
    assert!(control.contains("systemd-sysusers"), "{control}");
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let p = package();
    // verify resolves ExecStart= and the units' dependencies inside --root, so the scratch
    // root gets the stock targets (sysinit.target, timers.target, ...) from this machine's
    // systemd; MANPATH lets it resolve Documentation=man:ldap2ftrack(1) to the packaged page.
    let vroot = p.scratch("verify-root");
    copy_tree(&p.root, &vroot);
    let host_units = Path::new("/usr/lib/systemd/system");
    let units = fs::read_dir(host_units).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; apt-get install systemd",
            host_units.display()
        )
    });
    for unit in units.map(Result::unwrap) {
        if unit.path().extension() == Some(OsStr::new("target")) {
            fs::copy(unit.path(), vroot.join(UNIT_DIR).join(unit.file_name())).unwrap();
        }
    }
    let out = run(Command::new("systemd-analyze")
        .arg("verify")
        .arg(format!("--root={}", vroot.display()))
        .arg(vroot.join(UNIT_DIR).join("ldap2ftrack.service"))
        .arg(vroot.join(UNIT_DIR).join("ldap2ftrack.timer"))
        .arg(vroot.join(UNIT_DIR).join("ldap2ftrack-listen.service"))
        .arg(vroot.join(UNIT_DIR).join("ldap2ftrack-watch.service"))
        .env("MANPATH", vroot.join("usr/share/man")));
    // Unknown keys and unparsable values are warnings with exit 0: any output is a failure.
    assert!(
        out.status.success() && both(&out).trim().is_empty(),
        "systemd-analyze verify: {}\n{}",
        out.status,
        both(&out)
    );
}

#[test]
fn service_runs_as_its_user_with_the_hardening() {
    let p = package();
    assert_hardened(
        p,
        "ldap2ftrack.service",
        &[
            "Type=oneshot",
            "ExecStart=/usr/bin/ldap2ftrack --config /etc/ldap2ftrack/sync.toml --log-format json apply",
        ],
    );
    let timer = read(&p.path(&format!("{UNIT_DIR}/ldap2ftrack.timer")));
    assert!(timer.contains("OnCalendar=*:0/30"), "{timer}");
    assert!(timer.contains("WantedBy=timers.target"), "{timer}");
}

/// The actions service (issue 22) runs `listen` with the same user, secrets, state and
/// hardening as the timer's service, restarted after a crash.
#[test]
fn the_listen_service_has_the_same_hardening() {
    let p = package();
    assert_hardened(
        p,
        "ldap2ftrack-listen.service",
        &[
            "Type=exec",
            "Restart=on-failure",
            "ExecStart=/usr/bin/ldap2ftrack --config /etc/ldap2ftrack/sync.toml --log-format json listen",
        ],
    );
}

/// The watch service (issue 24) runs `watch` the same way.
#[test]
fn the_watch_service_has_the_same_hardening() {
    let p = package();
    assert_hardened(
        p,
        "ldap2ftrack-watch.service",
        &[
            "Type=exec",
            "Restart=on-failure",
            "ExecStart=/usr/bin/ldap2ftrack --config /etc/ldap2ftrack/sync.toml --log-format json watch",
        ],
    );
}

/// `unit` has `own` lines, the user, secrets, state folder and limits every service of the
/// package has, and systemd reads its hardening as set.
fn assert_hardened(p: &Package, unit: &str, own: &[&str]) {
    let service = read(&p.path(&format!("{UNIT_DIR}/{unit}")));
    let shared = [
        "User=ldap2ftrack",
        "EnvironmentFile=-/etc/ldap2ftrack/secrets.env",
        "StateDirectory=ldap2ftrack",
        "WorkingDirectory=/var/lib/ldap2ftrack",
        "ReadWritePaths=/var/lib/ldap2ftrack",
        "MemoryMax=8G",
        "SystemCallFilter=@system-service",
        "SystemCallErrorNumber=EPERM",
        "ProtectProc=invisible",
    ];
    for line in own.iter().chain(shared.iter()) {
        assert!(
            service.lines().any(|l| l == *line),
            "{unit}: {line} missing"
        );
    }
    // How systemd itself reads the hardening (not a text match), per setting.
    let out = run(Command::new("systemd-analyze")
        .args(["security", "--offline=yes", "--json=short"])
        .arg(format!("--root={}", p.root.display()))
        .arg(unit));
    assert!(out.status.success(), "{}", both(&out));
    let report: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    let is_set = |field: &str| {
        report
            .iter()
            .find(|r| r["json_field"] == field)
            .unwrap_or_else(|| panic!("{field} not in the security report"))["set"]
            == true
    };
    for field in [
        "UserOrDynamicUser",
        "NoNewPrivileges",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectControlGroups",
        "RestrictSUIDSGID",
        "RestrictNamespaces_user",
        "CapabilityBoundingSet_CAP_SYS_ADMIN",
        "SystemCallArchitectures",
        "SystemCallFilter_mount",
        "SystemCallFilter_reboot",
        "SystemCallFilter_debug",
        "SystemCallFilter_module",
        "SystemCallFilter_raw_io",
        "ProtectProc",
    ] {
        assert!(is_set(field), "{unit}: {field} is not hardened");
    }
    // Rule modules are compiled to native code at run time: W^X memory would kill every run.
    assert!(!is_set("MemoryDenyWriteExecute"));
}

#[test]
fn install_creates_the_user_and_state_dir_and_enables_and_starts_nothing() {
    let p = package();
    let root = p.scratch("install-root");
    copy_tree(&p.root, &root);
    // The package's own postinst, as dpkg runs it for a fresh install on a host where systemd
    // is running: systemd-sysusers is real (into the scratch root, via DPKG_ROOT); the service
    // manager's helpers are stubs that log their arguments and answer as on a fresh install;
    // "systemd is running" (/run/systemd/system) is pointed at a folder of the test's own.
    let stubs = p.scratch("install-stubs");
    let calls = stubs.join("calls.log");
    for tool in [
        "deb-systemd-helper",
        "deb-systemd-invoke",
        "systemctl",
        "systemd-tmpfiles",
    ] {
        let script = format!(
            "#!/bin/sh\necho \"{tool} $*\" >> '{}'\n\
             # fresh install: never installed before; was-enabled defaults to true\n\
             [ \"$1\" = debian-installed ] && exit 1\nexit 0\n",
            calls.display()
        );
        write_executable(&stubs.join(tool), &script);
    }
    let running = stubs.join("run-systemd-system");
    fs::create_dir(&running).unwrap();
    let postinst = p
        .control_file("postinst")
        .replace("/run/systemd/system", &running.display().to_string());
    let path = format!(
        "{}:{}",
        stubs.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = run(Command::new("sh")
        .args(["-e", "-c", &postinst, "postinst", "configure"])
        .env("DPKG_ROOT", &root)
        .env("PATH", path));
    assert!(out.status.success(), "postinst failed: {}", both(&out));

    let passwd = read(&root.join("etc/passwd"));
    let user = passwd
        .lines()
        .find(|l| l.starts_with("ldap2ftrack:"))
        .unwrap_or_else(|| panic!("no ldap2ftrack user in {passwd}"));
    let fields: Vec<&str> = user.split(':').collect();
    let uid: u32 = fields[2].parse().unwrap();
    assert!(uid > 0 && uid < 1000, "not a system user: {user}");
    assert_eq!(fields[5], "/var/lib/ldap2ftrack", "{user}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "{user}");

    // The service's secrets file, created root-only; run again, an existing one is kept.
    use std::os::unix::fs::MetadataExt;
    let secrets = root.join("etc/ldap2ftrack/secrets.env");
    let meta = fs::metadata(&secrets).unwrap_or_else(|e| panic!("no secrets.env: {e}"));
    assert_eq!(meta.mode() & 0o777, 0o600);
    fs::write(&secrets, "FTRACK_API_KEY=kept\n").unwrap();
    let out = run(Command::new("sh")
        .args(["-e", "-c", &postinst, "postinst", "configure"])
        .env("DPKG_ROOT", &root)
        .env(
            "PATH",
            format!(
                "{}:{}",
                stubs.display(),
                std::env::var("PATH").unwrap_or_default()
            ),
        ));
    assert!(out.status.success(), "postinst failed: {}", both(&out));
    assert_eq!(read(&secrets), "FTRACK_API_KEY=kept\n");

    let calls = fs::read_to_string(&calls).unwrap_or_default();
    assert!(
        calls.contains("systemd-tmpfiles --create ldap2ftrack.conf"),
        "{calls}"
    );
    for call in calls.lines() {
        assert!(
            !call.contains(" enable ") && !call.starts_with("deb-systemd-invoke"),
            "the postinst enables or starts a unit: {call}\nall calls:\n{calls}"
        );
    }

    // What that systemd-tmpfiles call creates, done for real inside the scratch root.
    let out = run(Command::new("systemd-tmpfiles")
        .arg(format!("--root={}", root.display()))
        .args(["--create", "ldap2ftrack.conf"]));
    assert!(
        out.status.success(),
        "systemd-tmpfiles (needs root to chown, as CI runs): {}",
        both(&out)
    );
    let state = fs::metadata(root.join("var/lib/ldap2ftrack")).unwrap();
    assert!(state.is_dir());
    assert_eq!(state.uid(), uid);
    assert_eq!(state.mode() & 0o777, 0o750);
}

#[test]
fn conffile_is_marked_and_refuses_to_run_until_the_servers_are_set() {
    let p = package();
    let conffiles = p.control_file("conffiles");
    assert!(
        conffiles.lines().any(|l| l == format!("/{CONFFILE}")),
        "{conffiles}"
    );

    let shipped = p.path(CONFFILE);
    let text = read(&shipped);
    assert!(
        !text.contains("emulator:") && !text.contains("ldif:"),
        "{text}"
    );
    let out = run(p.binary().arg("--config").arg(&shipped).arg("check"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
    assert!(stderr.contains(&shipped.display().to_string()), "{stderr}");
    assert!(
        stderr.contains("`url`") || stderr.contains("ldap.url"),
        "{stderr}"
    );

    // With only the REQUIRED keys filled in (here: the demo directory and emulator) and the API
    // key in the environment, the rest of the shipped file is valid and `check` passes.
    let demo = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/demo");
    let work = p.scratch("conffile");
    let filled = text
        .replace(
            "# url = \"ldaps://ldap.studio.example\"",
            &format!("url = \"ldif:{}\"", demo.join("directory.ldif").display()),
        )
        .replace("# user_base_dn = ", "user_base_dn = ")
        .replace("# api_user = ", "api_user = ")
        .replace(
            "# server_url = \"https://yourstudio.ftrackapp.com\"",
            &format!(
                "server_url = \"emulator:{}\"\nemulator_seed = \"{}\"",
                work.join("state.json").display(),
                demo.join("ftrack-seed.json").display()
            ),
        );
    let config = work.join("sync.toml");
    fs::write(&config, &filled).unwrap();
    let out = run(p
        .binary()
        .arg("--config")
        .arg(&config)
        .arg("check")
        .env("FTRACK_API_KEY", "unused-by-the-emulator"));
    assert!(out.status.success(), "{}\n{filled}", both(&out));
}

#[test]
fn bash_completion_loads_and_completes_the_public_subcommands() {
    let p = package();
    let file = p.path("usr/share/bash-completion/completions/ldap2ftrack");
    let script = format!(
        "source '{}' || exit 1\n\
         complete -p ldap2ftrack || exit 1\n\
         COMP_WORDS=(ldap2ftrack ''); COMP_CWORD=1; _ldap2ftrack ldap2ftrack '' ldap2ftrack\n\
         echo \"top: ${{COMPREPLY[*]}}\"\n\
         COMP_WORDS=(ldap2ftrack rules ''); COMP_CWORD=2; _ldap2ftrack ldap2ftrack '' rules\n\
         echo \"rules: ${{COMPREPLY[*]}}\"\n",
        file.display()
    );
    let out = run(Command::new("bash").args(["--norc", "--noprofile", "-c", &script]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", both(&out));
    assert!(stdout.contains("-F _ldap2ftrack ldap2ftrack\n"), "{stdout}");
    let top: Vec<&str> = line_after(&stdout, "top: ").split(' ').collect();
    for sub in [
        "plan", "apply", "test", "check", "explain", "rules", "--config",
    ] {
        assert!(top.contains(&sub), "{sub} not completed: {top:?}");
    }
    assert!(
        !top.contains(&"generate"),
        "hidden subcommand offered: {top:?}"
    );
    let rules: Vec<&str> = line_after(&stdout, "rules: ").split(' ').collect();
    assert!(
        rules.contains(&"inspect") && rules.contains(&"new"),
        "{rules:?}"
    );
}

fn line_after<'a>(text: &'a str, prefix: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` line in {text}"))
}

#[test]
fn zsh_and_fish_completions_are_shipped_where_the_shells_look() {
    // Only bash is installed here: these are checked for place and content, not loaded.
    let p = package();
    let zsh = read(&p.path("usr/share/zsh/vendor-completions/_ldap2ftrack"));
    assert!(zsh.starts_with("#compdef ldap2ftrack"), "{zsh}");
    let fish = read(&p.path("usr/share/fish/vendor_completions.d/ldap2ftrack.fish"));
    assert!(fish.contains("complete -c ldap2ftrack"), "{fish}");
    for script in [&zsh, &fish] {
        assert!(script.contains("explain") && !script.contains("generate"));
    }
}

#[test]
fn man_pages_render_for_the_command_and_each_subcommand() {
    let p = package();
    let man_dir = p.path("usr/share/man/man1");
    let page = |name: &str| {
        let file = man_dir.join(format!("{name}.1.gz"));
        assert!(file.is_file(), "{} missing", file.display());
        let out = run(Command::new("man")
            .args(["--warnings", "-l"])
            .arg(&file)
            .env("MANWIDTH", "100"));
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "man -l {}: {}",
            file.display(),
            both(&out)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let main = page("ldap2ftrack");
    for text in ["SYNOPSIS", "--config", "Exit codes", "ldap2ftrack-plan(1)"] {
        assert!(main.contains(text), "{text} missing:\n{main}");
    }
    assert!(!main.contains("generate"), "{main}");
    for sub in [
        "plan",
        "apply",
        "test",
        "check",
        "explain",
        "rules",
        "rules-new",
    ] {
        let text = page(&format!("ldap2ftrack-{sub}"));
        assert!(text.contains("SYNOPSIS"), "{text}");
    }
}

#[test]
fn generate_is_hidden_from_help_but_writes_what_the_package_ships() {
    let dir = tempfile::tempdir().unwrap();
    let bin = || support::ldap2ftrack(dir.path());
    let out = run(bin().arg("--help"));
    assert!(out.status.success());
    assert!(!String::from_utf8_lossy(&out.stdout).contains("generate"));
    let out = run(bin()
        .args(["generate", "completions", "bash"])
        .arg(dir.path().join("new-folder")));
    assert!(out.status.success(), "{}", both(&out));
    let written = String::from_utf8_lossy(&out.stdout);
    assert!(Path::new(written.trim()).is_file(), "{written}");
    let out = run(bin().args(["generate", "completions", "tcsh", "x"]));
    assert_eq!(out.status.code(), Some(2), "{}", both(&out));
}

#[test]
fn a_run_makes_only_the_system_calls_the_unit_allows() {
    // The unit's SystemCallFilter=@system-service answers any other call with EPERM: trace
    // the demo, with its rule module compiled (no compile cache) and run, and check that
    // every call made is in the set, as systemd lists it.
    let p = package();
    let groups = run(Command::new("systemd-analyze").arg("syscall-filter"));
    assert!(groups.status.success(), "{}", both(&groups));
    let groups = String::from_utf8_lossy(&groups.stdout).into_owned();
    let allowed = expand_syscall_group(&syscall_groups(&groups), "@system-service");
    assert!(
        allowed.contains("openat") && allowed.contains("mmap"),
        "{allowed:?}"
    );

    let demo = support::demo_copy();
    let trace = p.scratch("syscalls").join("trace.txt");
    let out = run(Command::new("strace")
        .args(["-f", "-qq", "-c", "-o"])
        .arg(&trace)
        .arg(p.path("usr/bin/ldap2ftrack"))
        .args(["apply"])
        .current_dir(demo.path())
        .env("LDAP2FTRACK_CACHE_DIR", demo.path().join("no-cache"))
        .env("NO_COLOR", "1"));
    assert!(
        out.status.success(),
        "the demo apply failed: {}",
        both(&out)
    );
    let summary = read(&trace);
    // The summary table: a header, then one row per call with its name last, then "total".
    let used: Vec<&str> = summary
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('%') && !l.starts_with('-'))
        .filter_map(|l| l.split_whitespace().last())
        .filter(|name| *name != "total")
        .collect();
    assert!(used.contains(&"openat"), "{summary}");
    let outside: Vec<&&str> = used.iter().filter(|c| !allowed.contains(**c)).collect();
    assert!(
        outside.is_empty(),
        "system calls outside @system-service, refused under the unit: {outside:?}\n{summary}"
    );
}

#[test]
fn the_packaged_build_and_the_image_leave_the_emulator_out() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = read(&repo.join("packaging/build-deb.sh"));
    assert!(
        script
            .lines()
            .any(|l| l.trim_start().starts_with("cargo build")
                && l.contains("--no-default-features")),
        "{script}"
    );
    let image = joined_instructions(&read(&repo.join("Containerfile")));
    assert!(
        image
            .iter()
            .any(|i| i.contains("cargo build") && i.contains("--no-default-features")),
        "{image:?}"
    );
}

#[test]
fn containerfile_copies_existing_sources_from_pinned_bases() {
    // No container engine runs here (CI neither): the image is documented in README and this
    // checks what can be checked without building it.
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let file = read(&repo.join("Containerfile"));
    let instructions: Vec<String> = joined_instructions(&file);
    let froms: Vec<&String> = instructions
        .iter()
        .filter(|i| i.starts_with("FROM "))
        .collect();
    assert_eq!(
        froms.len(),
        2,
        "a build stage and a runtime stage: {froms:?}"
    );
    for from in &froms {
        let image = from.split_whitespace().nth(1).unwrap();
        let tag = image.rsplit_once(':').map(|(_, t)| t).unwrap_or("");
        assert!(
            !tag.is_empty() && tag != "latest" && !tag.contains('/'),
            "base image not pinned to a tag: {from}"
        );
    }
    assert!(
        froms[0].contains("rust:1.95"),
        "toolchain = rust-version: {}",
        froms[0]
    );
    let mut stages = vec![];
    for i in &instructions {
        if let Some(rest) = i.strip_prefix("FROM ") {
            stages.extend(rest.split_whitespace().last().map(str::to_string));
        }
        if let Some(rest) = i.strip_prefix("COPY ") {
            let args: Vec<&str> = rest.split_whitespace().collect();
            if let Some(stage) = args.iter().find_map(|a| a.strip_prefix("--from=")) {
                assert!(stages.contains(&stage.to_string()), "unknown stage: {i}");
                continue;
            }
            for source in &args[..args.len() - 1] {
                assert!(repo.join(source).exists(), "COPY source missing: {i}");
            }
        }
    }
    assert!(
        instructions.iter().any(|i| i.contains("ca-certificates")),
        "the image needs CA certificates for LDAPS and https"
    );
    assert!(
        instructions
            .iter()
            .any(|i| i == "ENTRYPOINT [\"/usr/bin/ldap2ftrack\"]"),
        "{instructions:?}"
    );
    let ignore = read(&repo.join(".dockerignore"));
    assert!(
        ignore.lines().any(|l| l == "**/target"),
        "build outputs would be sent as context"
    );
}

/// `systemd-analyze syscall-filter`'s listing: each `@group` with its members (calls and
/// other groups), comments dropped.
fn syscall_groups(listing: &str) -> std::collections::BTreeMap<&str, Vec<&str>> {
    let mut groups = std::collections::BTreeMap::new();
    let mut current: Option<&str> = None;
    for line in listing.lines() {
        if line.starts_with('@') {
            current = Some(line.trim());
            groups.insert(line.trim(), Vec::new());
        } else if let Some(group) = current {
            let member = line.trim();
            if !member.is_empty() && !member.starts_with('#') && !member.contains(' ') {
                groups.entry(group).or_insert_with(Vec::new).push(member);
            }
        }
    }
    groups
}

/// Every system call in `group`, its nested groups expanded.
fn expand_syscall_group<'a>(
    groups: &std::collections::BTreeMap<&'a str, Vec<&'a str>>,
    group: &str,
) -> std::collections::BTreeSet<&'a str> {
    let mut calls = std::collections::BTreeSet::new();
    let mut pending = vec![group.to_string()];
    let mut seen = std::collections::BTreeSet::new();
    while let Some(g) = pending.pop() {
        if !seen.insert(g.clone()) {
            continue;
        }
        let members = groups
            .get(g.as_str())
            .unwrap_or_else(|| panic!("systemd-analyze lists no group {g}"));
        for member in members {
            if member.starts_with('@') {
                pending.push(member.to_string());
            } else {
                calls.insert(*member);
            }
        }
    }
    calls
}

/// Containerfile instructions with `\` continuations joined and comments dropped.
fn joined_instructions(file: &str) -> Vec<String> {
    let mut out = vec![];
    let mut current = String::new();
    for line in file.lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

fn copy_tree(from: &Path, to: &Path) {
    let out = run(Command::new("cp")
        .arg("-a")
        .arg(format!("{}/.", from.display()))
        .arg(to));
    assert!(out.status.success(), "{}", both(&out));
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}
