//! A real OpenLDAP `slapd` for integration tests: its own config, database and certificates in
//! a temporary directory, on free loopback ports, killed when the [`Slapd`] is dropped.
//!
//! Why real: the fail-closed behaviour of the reader (size limits, paging, referrals, TLS
//! verification) is only worth something against the server admins actually run. The
//! directory is loaded with `slapadd` before slapd starts, so a 2,500-user directory is ready
//! in well under a second.
//!
//! What it sets up:
//! * `mdb` database for [`SUFFIX`], with the `memberof` and `ppolicy` overlays;
//! * `ldap://127.0.0.1:PORT` (StartTLS available) and `ldaps://127.0.0.1:PORT2`, with a server
//!   certificate for `localhost` / `127.0.0.1` signed by a CA generated per test process
//!   ([`Slapd::ca_file`]); [`wrong_ca_file`] is an unrelated CA;
//! * [`SYNC_DN`]: the sync account, size limit 1000 (soft and hard), so reading more than
//!   1000 entries needs paging, with pages of at most 1000;
//! * [`LIMITED_DN`]: an account whose paged searches stop after 1200 entries in total, so a
//!   read past that must fail instead of truncating.
//!
//! If slapd is not installed the harness panics, telling to run `bash tests/run.sh`: a test
//! that silently skips proves nothing.

use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const SLAPD: &str = "/usr/sbin/slapd";
pub const SLAPADD: &str = "/usr/sbin/slapadd";
pub const SUFFIX: &str = "dc=example,dc=org";
pub const SYNC_DN: &str = "cn=sync,dc=example,dc=org";
pub const LIMITED_DN: &str = "cn=limited,dc=example,dc=org";
/// An account without size or time limits, for sync searches (which cannot be paged).
pub const REPLICATOR_DN: &str = "cn=replicator,dc=example,dc=org";
/// Password of the service accounts.
pub const SYNC_PASSWORD: &str = "S3cret-sync-pw";

/// A running slapd. Dropping it kills the process and removes its directory.
/// `ou=people` and `ou=groups` below the suffix, where the tests put their entries.
pub fn people_and_groups() -> Vec<ldap2ftrack::directory::Entry> {
    ["people", "groups"]
        .into_iter()
        .map(|ou| {
            use ldap2ftrack::directory::{Entry, Value};
            let mut entry = Entry::new(format!("ou={ou},{SUFFIX}"));
            entry.push("objectClass", Value::Text("organizationalUnit".into()));
            entry.push("ou", Value::Text(ou.into()));
            entry
        })
        .collect()
}

pub struct Slapd {
    /// `ldap://127.0.0.1:PORT` (plain, or StartTLS).
    pub url: String,
    /// `ldaps://127.0.0.1:PORT`.
    pub ldaps_url: String,
    /// The CA that signed the server certificate (PEM).
    pub ca_file: PathBuf,
    /// How long starting took (slapadd + slapd until it accepts connections).
    pub start_time: Duration,
    _dir: tempfile::TempDir,
    child: Child,
}

/// Certificates shared by every slapd of this test process.
struct Certs {
    _dir: tempfile::TempDir,
    ca: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    wrong_ca: PathBuf,
}

fn certs() -> &'static Certs {
    static CERTS: OnceLock<Certs> = OnceLock::new();
    CERTS.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir for certificates");
        let p = |name: &str| dir.path().join(name);
        std::fs::write(
            p("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write server.ext");
        for ca in ["ca", "wrong-ca"] {
            openssl(
                dir.path(),
                &[
                    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", &format!("{ca}.key"), "-out", &format!("{ca}.pem"),
                    "-days", "2", "-subj", &format!("/CN=ldap2ftrack test {ca}"),
                    "-addext", "basicConstraints=critical,CA:TRUE",
                    "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                ],
            );
        }
        openssl(
            dir.path(),
            &[
                "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            ],
        );
        openssl(
            dir.path(),
            &[
                "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-set_serial", "2", "-days", "2", "-out", "server.pem", "-extfile", "server.ext",
            ],
        );
        Certs {
            ca: p("ca.pem"),
            server_cert: p("server.pem"),
            server_key: p("server.key"),
            wrong_ca: p("wrong-ca.pem"),
            _dir: dir,
        }
    })
}

/// A CA certificate that did not sign the server certificate.
pub fn wrong_ca_file() -> PathBuf {
    certs().wrong_ca.clone()
}

/// The test CA, and the certificate (for localhost and 127.0.0.1) and key it signed: for the
/// other TLS servers of the tests (`support::tls`).
pub fn test_ca_and_server() -> (PathBuf, PathBuf, PathBuf) {
    let c = certs();
    (c.ca.clone(), c.server_cert.clone(), c.server_key.clone())
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl not found: run `bash tests/run.sh`, which installs it");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn require_slapd() {
    for tool in [SLAPD, SLAPADD] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is not installed: run `bash tests/run.sh` (it installs slapd and ldap-utils); \
             these tests need a real OpenLDAP server and are not skipped"
        );
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The entries every harness directory has: the suffix and the three service accounts.
/// Starts slapd from `dir`'s slapd.conf on the two URLs and waits until both accept
/// connections; `None` when a port was taken (slapd exits saying so).
fn launch(dir: &Path, url: &str, ldaps_url: &str) -> Option<Child> {
    let port = |u: &str| -> u16 {
        u.rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port in URL")
    };
    let (port, tls_port) = (port(url), port(ldaps_url));
    let log = std::fs::File::create(dir.join("slapd.log")).expect("slapd.log");
    let mut child = Command::new(SLAPD)
        .arg("-f")
        .arg(dir.join("slapd.conf"))
        .arg("-h")
        .arg(format!("{url}/ {ldaps_url}/"))
        .arg("-d")
        .arg("0")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log handle"))
        .stderr(log)
        .spawn()
        .expect("start slapd");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(status) = child.try_wait().expect("slapd status") {
            let log = std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default();
            if log.contains("Address already in use") {
                return None; // port race: the caller tries again
            }
            panic!("slapd exited with {status}: {log}");
        }
        let up = |p: u16| {
            TcpStream::connect_timeout(&([127, 0, 0, 1], p).into(), Duration::from_millis(100))
                .is_ok()
        };
        if up(port) && up(tls_port) {
            return Some(child);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "slapd did not accept connections within 10 s: {}",
                std::fs::read_to_string(dir.join("slapd.log")).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn base_ldif() -> String {
    let mut s = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\no: Example\ndc: example\n\n"
    );
    for dn in [SYNC_DN, LIMITED_DN, REPLICATOR_DN] {
        let cn = dn
            .trim_start_matches("cn=")
            .split(',')
            .next()
            .unwrap_or("x");
        s.push_str(&format!(
            "dn: {dn}\nobjectClass: person\nobjectClass: simpleSecurityObject\ncn: {cn}\nsn: {cn}\nuserPassword: {SYNC_PASSWORD}\n\n"
        ));
    }
    s
}

/// What a test server has besides the usual overlays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlays {
    Usual,
    /// The syncprov overlay (RFC 4533 provider), with a session log of this many changes
    /// (0: none, so a refresh from a cookie is a present phase).
    Syncprov {
        sessionlog: u32,
    },
}

fn config(dir: &Path, certs: &Certs, overlays: Overlays) -> String {
    let d = dir.display();
    let (module, syncprov) = match overlays {
        Overlays::Usual => ("", String::new()),
        Overlays::Syncprov { sessionlog } => (
            "moduleload syncprov\n",
            format!(
                "overlay syncprov\nsyncprov-checkpoint 1 1\n{}",
                if sessionlog > 0 {
                    format!("syncprov-sessionlog {sessionlog}\n")
                } else {
                    String::new()
                }
            ),
        ),
    };
    format!(
        r#"include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
moduleload ppolicy
{module}pidfile {d}/slapd.pid
argsfile {d}/slapd.args
TLSCACertificateFile {ca}
TLSCertificateFile {cert}
TLSCertificateKeyFile {key}
database mdb
maxsize 17179869184
suffix "{SUFFIX}"
rootdn "cn=admin,{SUFFIX}"
rootpw admin-{SYNC_PASSWORD}
directory {d}/db
index objectClass eq
index uid eq
index entryCSN eq
index entryUUID eq
limits dn.exact="{SYNC_DN}" size=1000 size.pr=1000 size.prtotal=unlimited
limits dn.exact="{LIMITED_DN}" size=1000 size.prtotal=1200
limits dn.exact="{REPLICATOR_DN}" size=unlimited time=unlimited
access to attrs=userPassword by anonymous auth by * none
access to * by * read
overlay memberof
overlay ppolicy
{syncprov}"#,
        ca = certs.ca.display(),
        cert = certs.server_cert.display(),
        key = certs.server_key.display(),
    )
}

impl Slapd {
    /// The server's process id (the scale bench reads its CPU time).
    #[allow(dead_code)] // only benches/scale, which includes this file, calls it
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Loads the suffix, the service accounts and `ldif` (entries below [`SUFFIX`], parents
    /// first) with slapadd, then starts slapd and waits until it accepts connections. `ldif`
    /// may be the output of `ldap2ftrack::directory::ldif::write`: its `version: 1` header
    /// is dropped, since the file slapadd reads starts with the base entries.
    pub fn start(ldif: &str) -> Slapd {
        Slapd::start_with(ldif, Overlays::Usual)
    }

    /// [`Slapd::start`] with more overlays (syncprov).
    pub fn start_with(ldif: &str, overlays: Overlays) -> Slapd {
        let ldif = ldif.strip_prefix("version: 1\n").unwrap_or(ldif);
        require_slapd();
        let started = Instant::now();
        let certs = certs();
        let dir = tempfile::tempdir().expect("temp dir for slapd");
        std::fs::create_dir(dir.path().join("db")).expect("db dir");
        let conf = dir.path().join("slapd.conf");
        std::fs::write(&conf, config(dir.path(), certs, overlays)).expect("write slapd.conf");
        let data = dir.path().join("data.ldif");
        let mut file = std::fs::File::create(&data).expect("create data.ldif");
        file.write_all(base_ldif().as_bytes())
            .expect("write data.ldif");
        file.write_all(ldif.as_bytes()).expect("write data.ldif");
        drop(file);
        let out = Command::new(SLAPADD)
            .arg("-q")
            .arg("-f")
            .arg(&conf)
            .arg("-l")
            .arg(&data)
            .output()
            .expect("run slapadd");
        assert!(
            out.status.success(),
            "slapadd failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );

        for _attempt in 0..5 {
            let (port, tls_port) = (free_port(), free_port());
            if port == tls_port {
                continue;
            }
            let url = format!("ldap://127.0.0.1:{port}");
            let ldaps_url = format!("ldaps://127.0.0.1:{tls_port}");
            if let Some(child) = launch(dir.path(), &url, &ldaps_url) {
                return Slapd {
                    url,
                    ldaps_url,
                    ca_file: certs.ca.clone(),
                    start_time: started.elapsed(),
                    _dir: dir,
                    child,
                };
            }
        }
        panic!("could not find free ports for slapd");
    }

    /// Stops the server and starts it again on the same ports with the same database (a
    /// directory that went away and came back).
    #[allow(dead_code)] // the scale bench includes this file and does not call it
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // The old process's ports may take a moment to be free again.
            if let Some(child) = launch(self._dir.path(), &self.url, &self.ldaps_url) {
                self.child = child;
                return;
            }
            assert!(
                Instant::now() < deadline,
                "slapd did not come back on its ports"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Applies LDIF change records as the directory's admin (`ldapmodify`); panics with
    /// ldapmodify's message when the server refuses them.
    pub fn modify(&self, changes: &str) {
        ldap_tool(
            "ldapmodify",
            &self.url,
            &format!("cn=admin,{SUFFIX}"),
            &format!("admin-{SYNC_PASSWORD}"),
            changes,
        );
    }

    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Slapd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs an ldap-utils tool (`ldapadd`, `ldapmodify`, …) against `url`, bound as `dn`, with
/// `input` on stdin; panics with the tool's message when the server refuses.
pub fn ldap_tool(tool: &str, url: &str, dn: &str, password: &str, input: &str) {
    let mut child = Command::new(tool)
        .args(["-x", "-H", url, "-D", dn, "-w", password])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{tool} does not run ({e}); apt install ldap-utils"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{tool}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
