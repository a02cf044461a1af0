//! A real Active Directory domain controller: Samba's, provisioned once (into cargo's
//! target tmp dir, reused across runs) and started per test from a copy of that template.
//!
//! Samba's LDAP port cannot be changed (there is no setting for it), so a DC listens on
//! 127.0.0.1:389: that needs root (tests/run.sh runs as root, or installs with sudo), and
//! only one DC can run at a time — [`SambaDc::start`] holds a process-wide lock until the DC
//! is dropped. It runs in the foreground (`-i`, one process) with its stdin a pipe: it also
//! exits when the test process dies. Only the LDAP service is started, with simple binds
//! over plain LDAP allowed (loopback only) and without fsync.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const URL: &str = "ldap://127.0.0.1";
pub const SUFFIX: &str = "DC=ad,DC=test";
pub const ADMIN_DN: &str = "CN=Administrator,CN=Users,DC=ad,DC=test";
pub const ADMIN_PASSWORD: &str = "Adm1n-Pa55word!";

/// One DC at a time: they all want 127.0.0.1:389.
static PORT_389: Mutex<()> = Mutex::new(());

pub struct SambaDc {
    child: Child,
    dir: tempfile::TempDir,
    _port: MutexGuard<'static, ()>,
}

/// The provisioned domain, made once; `ready` is written last, so a half-made one is
/// made again.
fn template() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("samba-dc-template");
    if dir.join("ready").is_file() {
        return dir;
    }
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("samba template dir");
    let out = Command::new("samba-tool")
        .args(["domain", "provision", "--realm=AD.TEST", "--domain=AD"])
        .args(["--server-role=dc", "--dns-backend=NONE", "--use-rfc2307"])
        .arg(format!("--adminpass={ADMIN_PASSWORD}"))
        .args(["--host-name=dc1", "--option=interfaces=127.0.0.1"])
        .args(["--option=bind interfaces only=yes", "--option=ldb:nosync=true"])
        .arg(format!("--targetdir={}", dir.display()))
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "samba-tool does not run ({e}); run `bash tests/run.sh`, which installs samba samba-ad-provision samba-dsdb-modules samba-vfs-modules winbind"
            )
        });
    assert!(
        out.status.success(),
        "samba-tool domain provision failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.join("ready"), "").expect("samba template stamp");
    dir
}

/// The settings that keep a DC inside `dir` and serve only LDAP.
fn smb_conf(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[global]
\tnetbios name = DC1
\trealm = AD.TEST
\tworkgroup = AD
\tserver role = active directory domain controller
\tserver services = ldap
\tinterfaces = 127.0.0.1
\tbind interfaces only = yes
\tprivate dir = {d}/private
\tstate directory = {d}/state
\tcache directory = {d}/cache
\tlock directory = {d}
\tbinddns dir = {d}/bind-dns
\tpid directory = {d}/run
\tncalrpc dir = {d}/run/ncalrpc
\twinbindd socket directory = {d}/run/winbindd
\tntp signd socket directory = {d}/run/ntp_signd
\tlog file = {d}/log.%m
\tlogging = file
\tldap server require strong auth = no
\tldb:nosync = true
\ttls enabled = no
\tidmap_ldb:use rfc2307 = yes
"
    )
}

impl SambaDc {
    /// A fresh DC from the template, answering LDAP on [`URL`], with `ldif` added (as the
    /// Administrator).
    pub fn start(ldif: &str) -> SambaDc {
        let port = PORT_389.lock().unwrap_or_else(|e| e.into_inner());
        assert!(
            TcpStream::connect("127.0.0.1:389").is_err(),
            "127.0.0.1:389 is already taken, and Samba's LDAP port cannot be moved; stop that server (e.g. systemctl stop slapd samba-ad-dc)"
        );
        let template = template();
        let dir = tempfile::tempdir().expect("temp dir for samba");
        let copied = Command::new("cp")
            .arg("-a")
            .arg(format!("{}/.", template.display()))
            .arg(dir.path())
            .status()
            .expect("cp");
        assert!(copied.success(), "copying the samba template");
        std::fs::create_dir_all(dir.path().join("run")).expect("samba run dir");
        let conf = dir.path().join("etc/smb.conf");
        std::fs::write(&conf, smb_conf(dir.path())).expect("write smb.conf");
        let log = std::fs::File::create(dir.path().join("samba.out")).expect("samba.out");
        let child = Command::new("samba")
            .args(["-i", "-M", "single", "--maximum-runtime=3600", "-s"])
            .arg(&conf)
            .stdin(Stdio::piped())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("samba does not run ({e}); run `bash tests/run.sh`, which installs it")
            });
        let mut dc = SambaDc {
            child,
            dir,
            _port: port,
        };
        dc.wait_until_ready();
        if !ldif.trim().is_empty() {
            dc.ldap("ldapadd", ldif);
        }
        dc
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("samba status") {
                let log =
                    std::fs::read_to_string(self.dir.path().join("samba.out")).unwrap_or_default();
                panic!("samba exited with {status} (it needs root for port 389): {log}");
            }
            let answers = Command::new("ldapsearch")
                .args(["-x", "-H", URL, "-b", "", "-s", "base", "dsServiceName"])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            if answers {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "samba did not answer LDAP in 30 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs `tool` (ldapadd, ldapmodify, ldapdelete) as the Administrator with `input` on
    /// stdin; panics with its message when the DC refuses.
    pub fn ldap(&self, tool: &str, input: &str) {
        super::slapd::ldap_tool(tool, URL, ADMIN_DN, ADMIN_PASSWORD, input);
    }

    /// Adds a user with a password in CN=Users (samba-tool on the DC's database: a password
    /// cannot be set over plain LDAP).
    pub fn add_user(&self, name: &str, password: &str) {
        let out = Command::new("samba-tool")
            .args(["user", "add", name, password, "-s"])
            .arg(self.dir.path().join("etc/smb.conf"))
            .output()
            .expect("samba-tool");
        assert!(
            out.status.success(),
            "samba-tool user add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Applies LDIF change records.
    pub fn modify(&self, changes: &str) {
        self.ldap("ldapmodify", changes);
    }
}

impl Drop for SambaDc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
