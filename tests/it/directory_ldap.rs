//! The LDAP-server reader against real servers: OpenLDAP slapd (started per test by
//! `support::slapd`) and an in-process fake Active Directory (`support::fake_ad`).
//!
//! What is proven here: a realistic directory (2,500+ users, a 1,600-member group, nested
//! groups with a cycle and a diamond, non-ASCII names, a comma in a DN, a ppolicy-locked user,
//! a posixGroup naming a missing user) reads completely, with exactly the expected flattened
//! memberships; AD range retrieval completes large groups; and every way a read can come back
//! short (size limits, page size limits, wrong base DN, bad password, refused connection,
//! unknown host, silent server, TLS without the right CA, referrals, dropped ranges, lost
//! paging control, dropped connection) is an error — never a smaller directory.

use crate::support;

use ldap2ftrack::config::{DirectorySource, LdapSettings, SecretSource};
use ldap2ftrack::directory::{self, ldap, DirectoryError, DirectorySnapshot};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use support::fake_ad::{self, AdObject, FakeAd, Fault};
use support::ldif_line;
use support::slapd::{self, Slapd, LIMITED_DN, SUFFIX, SYNC_DN, SYNC_PASSWORD};

const PASSWORD_VAR: &str = "TEST_LDAP_BIND_PASSWORD";

fn settings(url: &str, bind_dn: &str) -> LdapSettings {
    LdapSettings {
        source: DirectorySource::Server {
            url: url.to_string(),
            ldaps: url.starts_with("ldaps://"),
        },
        starttls: false,
        allow_insecure_ldap: false,
        ca_file: None,
        bind_dn: Some(bind_dn.to_string()),
        bind_password: Some(SecretSource::Env(PASSWORD_VAR.to_string())),
        user_base_dn: format!("ou=people,{SUFFIX}"),
        user_filter: "(objectClass=inetOrgPerson)".into(),
        group_base_dn: format!("ou=groups,{SUFFIX}"),
        group_filter:
            "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames)(objectClass=posixGroup))"
                .into(),
        user_attributes: Vec::new(),
        page_size: 500,
        timeout_s: 10,
    }
}

fn env(password: &'static str) -> impl Fn(&str) -> Option<String> {
    move |name| (name == PASSWORD_VAR).then(|| password.to_string())
}

async fn read(
    settings: &LdapSettings,
    password: &'static str,
) -> Result<DirectorySnapshot, DirectoryError> {
    directory::read_with_env(settings, &env(password)).await
}

// --- the realistic directory -------------------------------------------------------------

const USERS: usize = 2500;
const BIG_GROUP: usize = 1600;

fn uid(i: usize) -> String {
    format!("user{i:04}")
}

fn people(rdn: &str) -> String {
    format!("{rdn},ou=people,{SUFFIX}")
}

fn group_dn(cn: &str) -> String {
    format!("cn={cn},ou=groups,{SUFFIX}")
}

fn user_ldif(dn: &str, uid: &str, cn: &str, sn: &str, mail: Option<&str>, extra: &str) -> String {
    let mut s = ldif_line("dn", dn);
    s.push_str("objectClass: inetOrgPerson\n");
    s.push_str(&ldif_line("uid", uid));
    s.push_str(&ldif_line("cn", cn));
    s.push_str(&ldif_line("sn", sn));
    if let Some(mail) = mail {
        s.push_str(&ldif_line("mail", mail));
    }
    s.push_str(extra);
    s.push('\n');
    s
}

fn group_of_names(cn: &str, members: &[String]) -> String {
    let mut s = ldif_line("dn", &group_dn(cn));
    s.push_str("objectClass: groupOfNames\n");
    s.push_str(&ldif_line("cn", cn));
    for m in members {
        s.push_str(&ldif_line("member", m));
    }
    s.push('\n');
    s
}

const ZOE_CN: &str = "Zoë Ångström";
const LI_CN: &str = "李雷";

/// The test directory, and for every user's uid the exact set of groups (flattened) it must
/// end up in.
fn realistic_directory() -> (String, BTreeMap<String, BTreeSet<&'static str>>) {
    let mut ldif = format!(
        "dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    let mut expected: BTreeMap<String, BTreeSet<&'static str>> = BTreeMap::new();
    for i in 0..USERS {
        let u = uid(i);
        ldif.push_str(&user_ldif(
            &people(&format!("uid={u}")),
            &u,
            &format!("User {i}"),
            "User",
            Some(&format!("{u}@example.org")),
            "",
        ));
        expected.insert(u, BTreeSet::new());
    }
    ldif.push_str(&user_ldif(
        &people("cn=Doe\\, Jane"),
        "jdoe",
        "Doe, Jane",
        "Doe",
        Some("jane.doe@example.org"),
        "",
    ));
    ldif.push_str(&user_ldif(
        &people(&format!("cn={ZOE_CN}")),
        "zoe",
        ZOE_CN,
        "Ångström",
        Some("zoe@example.org"),
        "",
    ));
    ldif.push_str(&user_ldif(
        &people("uid=li"),
        "li",
        LI_CN,
        "李",
        Some("li@example.org"),
        "",
    ));
    ldif.push_str(&user_ldif(
        &people("uid=nomail"),
        "nomail",
        "No Mail",
        "Mail",
        None,
        "",
    ));
    ldif.push_str(&user_ldif(
        &people("uid=locked"),
        "locked",
        "Locked Out",
        "Out",
        Some("locked@example.org"),
        "pwdAccountLockedTime: 000001010000Z\n",
    ));
    for u in ["jdoe", "zoe", "li", "nomail", "locked"] {
        expected.insert(u.to_string(), BTreeSet::new());
    }
    let user = |i: usize| people(&format!("uid={}", uid(i)));
    let mut member_of = |u: String, groups: &[&'static str]| {
        expected
            .get_mut(&u)
            .expect("known user")
            .extend(groups.iter().copied());
    };

    // A group larger than one page and than AD's 1500-value range.
    let big: Vec<String> = (0..BIG_GROUP).map(user).collect();
    ldif.push_str(&group_of_names("big", &big));
    for i in 0..BIG_GROUP {
        member_of(uid(i), &["big"]);
    }
    // Three levels: l1 ⊃ l2 ⊃ l3.
    ldif.push_str(&group_of_names("l1", &[group_dn("l2"), user(2000)]));
    ldif.push_str(&group_of_names("l2", &[group_dn("l3"), user(2001)]));
    ldif.push_str(&group_of_names("l3", &[user(2002), user(2003)]));
    member_of(uid(2000), &["l1"]);
    member_of(uid(2001), &["l1", "l2"]);
    member_of(uid(2002), &["l1", "l2", "l3"]);
    member_of(uid(2003), &["l1", "l2", "l3"]);
    // A cycle: cycA ⊃ cycB ⊃ cycA.
    ldif.push_str(&group_of_names("cycA", &[group_dn("cycB"), user(2010)]));
    ldif.push_str(&group_of_names("cycB", &[group_dn("cycA"), user(2011)]));
    member_of(uid(2010), &["cycA", "cycB"]);
    member_of(uid(2011), &["cycA", "cycB"]);
    // A diamond: top ⊃ left, right ⊃ bottom.
    ldif.push_str(&group_of_names(
        "top",
        &[group_dn("left"), group_dn("right")],
    ));
    ldif.push_str(&group_of_names("left", &[group_dn("bottom"), user(2020)]));
    ldif.push_str(&group_of_names("right", &[group_dn("bottom"), user(2021)]));
    ldif.push_str(&group_of_names("bottom", &[user(2022)]));
    member_of(uid(2020), &["left", "top"]);
    member_of(uid(2021), &["right", "top"]);
    member_of(uid(2022), &["bottom", "left", "right", "top"]);
    // uniqueMember with DNs spelled differently from the entries, and one unknown DN.
    ldif.push_str(&ldif_line("dn", &group_dn("uniq")));
    ldif.push_str("objectClass: groupOfUniqueNames\ncn: uniq\n");
    for m in [
        format!("CN=Doe\\, Jane,OU=People,{}", SUFFIX.to_uppercase()),
        format!("cn={ZOE_CN}, ou=people, {SUFFIX}"),
        people("UID=li"),
        people("uid=ghost"),
    ] {
        ldif.push_str(&ldif_line("uniqueMember", &m));
    }
    ldif.push('\n');
    member_of("jdoe".into(), &["uniq"]);
    member_of("zoe".into(), &["uniq"]);
    member_of("li".into(), &["uniq"]);
    // posixGroup with memberUid, one naming nobody.
    ldif.push_str(&format!(
        "dn: {}\nobjectClass: posixGroup\ncn: posix\ngidNumber: 5000\nmemberUid: {}\nmemberUid: nomail\nmemberUid: ghost\n\n",
        group_dn("posix"),
        uid(1)
    ));
    member_of(uid(1), &["posix"]);
    member_of("nomail".into(), &["posix"]);
    (ldif, expected)
}

fn memberships(snapshot: &DirectorySnapshot) -> BTreeMap<String, BTreeSet<String>> {
    snapshot
        .users
        .iter()
        .map(|u| {
            let uid = u
                .entry
                .first_text("uid")
                .expect("every test user has a uid");
            let groups = u
                .groups
                .iter()
                .map(|&g| snapshot.group(g).name.clone())
                .collect();
            (uid.to_string(), groups)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_a_realistic_directory_over_starttls_with_exact_memberships() {
    let (ldif, expected) = realistic_directory();
    let server = Slapd::start(&ldif);
    let mut s = settings(&server.url, SYNC_DN);
    s.starttls = true;
    s.ca_file = Some(server.ca_file.clone());

    let started = Instant::now();
    let snapshot = read(&s, SYNC_PASSWORD).await.expect("complete read");
    let elapsed = started.elapsed();
    eprintln!(
        "slapd with {} users started in {:?}; StartTLS read + assemble took {:?} ({:?})",
        expected.len(),
        server.start_time,
        elapsed,
        snapshot.stats
    );

    // Every user, and exactly the expected flattened groups for each.
    let got = memberships(&snapshot);
    let want: BTreeMap<String, BTreeSet<String>> = expected
        .iter()
        .map(|(u, g)| (u.clone(), g.iter().map(|s| s.to_string()).collect()))
        .collect();
    assert_eq!(got.len(), USERS + 5);
    let wrong: Vec<_> = want
        .iter()
        .filter(|(u, g)| got.get(*u) != Some(*g))
        .map(|(u, g)| format!("{u}: want {g:?}, got {:?}", got.get(u)))
        .take(10)
        .collect();
    assert!(wrong.is_empty(), "wrong memberships:\n{}", wrong.join("\n"));
    assert_eq!(got, want);

    assert_eq!(snapshot.skipped.unknown_dn, 1, "{:?}", snapshot.skipped);
    assert_eq!(snapshot.skipped.missing_uid, 1, "{:?}", snapshot.skipped);
    assert_eq!(snapshot.skipped.invalid_dn, 0, "{:?}", snapshot.skipped);

    let groups: BTreeMap<&str, bool> = snapshot
        .groups
        .iter()
        .map(|g| (g.name.as_str(), g.in_cycle))
        .collect();
    assert_eq!(groups.len(), 12);
    assert_eq!(
        groups
            .iter()
            .filter(|(_, c)| **c)
            .map(|(n, _)| *n)
            .collect::<Vec<_>>(),
        vec!["cycA", "cycB"]
    );

    let by_uid = |u: &str| {
        snapshot
            .users
            .iter()
            .find(|x| x.entry.first_text("uid") == Some(u))
            .unwrap_or_else(|| panic!("user {u} missing"))
    };
    assert!(
        by_uid("locked").disabled,
        "ppolicy-locked user must be disabled"
    );
    assert_eq!(snapshot.disabled_users(), 1);
    assert!(by_uid("nomail").entry.values("mail").is_empty());
    assert_eq!(by_uid("zoe").entry.first_text("cn"), Some(ZOE_CN));
    assert_eq!(by_uid("li").entry.first_text("cn"), Some(LI_CN));
    assert_eq!(by_uid("jdoe").entry.first_text("cn"), Some("Doe, Jane"));
    // slapd sends the comma as `\2C`; both spellings are the same DN.
    let jdoe_dn = &by_uid("jdoe").entry.dn;
    assert_eq!(
        ldap2ftrack::ldap_syntax::NormalizedDn::parse(jdoe_dn).expect("valid DN"),
        ldap2ftrack::ldap_syntax::NormalizedDn::parse(&people("cn=Doe\\, Jane")).expect("valid DN"),
        "{jdoe_dn}"
    );
    assert!(
        snapshot.users.iter().all(|u| u.stable_id.is_some()),
        "every OpenLDAP user has an entryUUID"
    );
    assert_eq!(snapshot.stats.entries, (USERS + 5 + 12) as u64);
    // 2,505 users in pages of 500, and one page of groups.
    assert!(snapshot.stats.pages >= 7, "{:?}", snapshot.stats);
    assert_eq!(snapshot.stats.range_requests, 0);
}

#[tokio::test]
async fn named_user_attributes_still_bring_the_operational_ones() {
    let (ldif, _) = realistic_directory();
    let server = Slapd::start(&ldif);
    let mut s = settings(&server.url, SYNC_DN);
    s.user_attributes = vec!["uid".into(), "mail".into()];
    s.page_size = 1000;
    let set = ldap::read_entries(&s, &env(SYNC_PASSWORD))
        .await
        .expect("read");
    assert_eq!(set.users.len(), USERS + 5);
    assert_eq!(set.groups.len(), 12);
    let locked = set
        .users
        .iter()
        .find(|u| u.first_text("uid") == Some("locked"))
        .expect("locked user");
    assert!(locked.first_text("entryUUID").is_some());
    assert_eq!(
        locked.first_text("pwdAccountLockedTime"),
        Some("000001010000Z")
    );
    assert!(locked.first_text("cn").is_none(), "cn was not asked for");
    let big = set
        .groups
        .iter()
        .find(|g| g.first_text("cn") == Some("big"))
        .expect("big group");
    assert_eq!(big.values("member").len(), BIG_GROUP);
}

// --- fail closed against slapd ------------------------------------------------------------

/// 1,300 users: more than the 1,000 the sync account may see without paging.
fn plain_users(n: usize) -> String {
    let mut ldif = format!(
        "dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for i in 0..n {
        let u = uid(i);
        ldif.push_str(&user_ldif(
            &people(&format!("uid={u}")),
            &u,
            &u,
            "U",
            None,
            "",
        ));
    }
    ldif.push_str(&group_of_names("g", &[people("uid=user0000")]));
    ldif
}

#[tokio::test]
async fn a_total_size_limit_fails_the_read_instead_of_truncating_it() {
    let server = Slapd::start(&plain_users(1300));
    // This account's paged searches stop after 1,200 entries in total (sizeLimitExceeded on
    // the third page, after two good pages).
    let s = settings(&server.url, LIMITED_DN);
    let err = read(&s, SYNC_PASSWORD)
        .await
        .expect_err("must not truncate");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(msg.contains("sizeLimitExceeded"), "{msg}");
    assert!(msg.contains("ou=people,dc=example,dc=org"), "{msg}");

    // The same directory through the sync account is complete.
    let s = settings(&server.url, SYNC_DN);
    assert_eq!(
        read(&s, SYNC_PASSWORD).await.expect("complete").users.len(),
        1300
    );
}

#[tokio::test]
async fn a_page_size_above_the_servers_limit_is_an_error_not_a_short_read() {
    let server = Slapd::start(&plain_users(1300));
    let mut s = settings(&server.url, SYNC_DN);
    s.page_size = 2000; // the sync account may have pages of at most 1000
    let err = read(&s, SYNC_PASSWORD).await.expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(msg.contains("adminLimitExceeded"), "{msg}");
}

#[tokio::test]
async fn a_wrong_base_dn_is_an_error_not_an_empty_directory() {
    let server = Slapd::start(&plain_users(3));
    let mut s = settings(&server.url, SYNC_DN);
    s.user_base_dn = format!("ou=staff,{SUFFIX}");
    let err = read(&s, SYNC_PASSWORD).await.expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Search { .. }), "{msg}");
    assert!(
        msg.contains("noSuchObject") && msg.contains("ou=staff,dc=example,dc=org"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_bad_password_is_a_bind_error_that_does_not_show_the_password() {
    let server = Slapd::start(&plain_users(3));
    let s = settings(&server.url, SYNC_DN);
    const WRONG: &str = "Wr0ng-but-secret-Pa55";
    let err = read(&s, WRONG).await.expect_err("must fail");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Bind { .. }), "{msg}");
    assert!(
        msg.contains("invalidCredentials") && msg.contains(SYNC_DN),
        "{msg}"
    );
    assert!(msg.contains(&server.url), "{msg}");
    assert!(
        !msg.contains(WRONG) && !format!("{err:?}").contains(WRONG),
        "{msg}"
    );
    assert!(!msg.contains(SYNC_PASSWORD), "{msg}");
}

#[tokio::test]
async fn a_missing_password_variable_is_named() {
    let s = settings("ldap://127.0.0.1:1", SYNC_DN);
    let err = directory::read_with_env(&s, &|_| None)
        .await
        .expect_err("must fail");
    assert!(matches!(err, DirectoryError::Secret(_)), "{err}");
    assert!(err.to_string().contains(PASSWORD_VAR), "{err}");
}

#[tokio::test]
async fn a_refused_connection_is_a_connect_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port(); // closed again when the listener drops
    let url = format!("ldap://127.0.0.1:{port}");
    let err = read(&settings(&url, SYNC_DN), SYNC_PASSWORD)
        .await
        .expect_err("must fail");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Connect { .. }), "{err}");
    assert!(err.to_string().contains(&url), "{err}");
}

#[tokio::test]
async fn an_unknown_host_is_a_dns_error() {
    let url = "ldap://ldap.does-not-exist.invalid";
    let err = read(&settings(url, SYNC_DN), SYNC_PASSWORD)
        .await
        .expect_err("must fail");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Dns { .. }), "{err}");
    assert!(err.to_string().contains(url), "{err}");
}

#[tokio::test]
async fn a_server_that_never_answers_times_out() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "ldap://127.0.0.1:{}",
        listener.local_addr().expect("addr").port()
    );
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket); // accept, never answer
        }
    });
    let mut s = settings(&url, SYNC_DN);
    s.timeout_s = 1;
    let started = Instant::now();
    let err = read(&s, SYNC_PASSWORD).await.expect_err("must fail");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!err.to_string().contains(SYNC_PASSWORD));
    hold.abort();
}

#[tokio::test]
async fn tls_verifies_the_server_against_the_configured_ca() {
    let server = Slapd::start(&plain_users(3));
    // ldaps:// with the harness CA.
    let mut s = settings(&server.ldaps_url, SYNC_DN);
    s.ca_file = Some(server.ca_file.clone());
    assert_eq!(read(&s, SYNC_PASSWORD).await.expect("ldaps").users.len(), 3);
    // StartTLS with the harness CA.
    let mut s = settings(&server.url, SYNC_DN);
    s.starttls = true;
    s.ca_file = Some(server.ca_file.clone());
    assert_eq!(
        read(&s, SYNC_PASSWORD).await.expect("StartTLS").users.len(),
        3
    );
    // StartTLS with a CA that did not sign the server certificate.
    s.ca_file = Some(slapd::wrong_ca_file());
    let err = read(&s, SYNC_PASSWORD).await.expect_err("unknown issuer");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err}");
    assert!(err.to_string().contains(&server.url), "{err}");
    // StartTLS with no CA configured: the system roots do not know the harness CA.
    s.ca_file = None;
    let err = read(&s, SYNC_PASSWORD).await.expect_err("system roots");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err}");
    // ldaps:// without the CA.
    let mut s = settings(&server.ldaps_url, SYNC_DN);
    s.ca_file = Some(slapd::wrong_ca_file());
    let err = read(&s, SYNC_PASSWORD)
        .await
        .expect_err("ldaps, unknown issuer");
    eprintln!("{err}");
    assert!(matches!(err, DirectoryError::Tls { .. }), "{err}");
    // A CA file that is not PEM.
    let dir = tempfile::tempdir().expect("tmp");
    let junk: PathBuf = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate\n").expect("write");
    s.ca_file = Some(junk);
    let err = read(&s, SYNC_PASSWORD).await.expect_err("junk CA");
    assert!(
        matches!(err, DirectoryError::Tls { .. }) && err.to_string().contains("junk.pem"),
        "{err}"
    );
}

#[test]
fn the_read_future_is_send() {
    fn assert_send<T: Send>(_: &T) {}
    let s = settings("ldap://127.0.0.1:1", SYNC_DN);
    let e = env(SYNC_PASSWORD);
    let future = directory::read_with_env(&s, &e);
    assert_send(&future);
}

// --- Active Directory range retrieval (fake AD) ------------------------------------------

fn ad_user_dn(i: usize) -> String {
    format!("CN=User {i:04},{}", fake_ad::USERS_BASE)
}

/// 3,700 users (in pages of 1000) with binary objectGUIDs, one group holding all of them
/// (three `member;range=` slices), one small group nested in it.
fn ad_directory() -> (Vec<AdObject>, Vec<AdObject>) {
    let users: Vec<AdObject> = (0..3700)
        .map(|i| {
            let mut guid = [0u8; 16];
            guid[..8].copy_from_slice(&(i as u64).to_le_bytes());
            guid[8..].copy_from_slice(&[0x9f, 0xfe, 0x80, 0x01, 0xc3, 0x28, 0xa0, 0xa1]);
            if i == 7 {
                guid = *b"ABCDEFGHIJKLMNOP"; // a GUID that happens to be valid UTF-8
            }
            AdObject::new(ad_user_dn(i))
                .text("objectClass", "user")
                .text("sAMAccountName", &format!("user{i:04}"))
                .text("cn", &format!("User {i:04}"))
                .text("userAccountControl", if i == 5 { "514" } else { "512" })
                .with("objectGUID", vec![guid.to_vec()])
        })
        .collect();
    let huge_dn = format!("CN=Huge,{}", fake_ad::GROUPS_BASE);
    let small_dn = format!("CN=Small,{}", fake_ad::GROUPS_BASE);
    let mut huge_members: Vec<Vec<u8>> = (0..3700).map(|i| ad_user_dn(i).into_bytes()).collect();
    huge_members.push(small_dn.clone().into_bytes());
    let groups = vec![
        AdObject::new(huge_dn)
            .text("objectClass", "group")
            .text("cn", "Huge")
            .with("member", huge_members),
        AdObject::new(small_dn)
            .text("objectClass", "group")
            .text("cn", "Small")
            .with(
                "member",
                vec![ad_user_dn(1).into_bytes(), ad_user_dn(2).into_bytes()],
            ),
    ];
    (users, groups)
}

fn ad_settings(url: &str) -> LdapSettings {
    let mut s = settings(url, fake_ad::BIND_DN);
    s.user_base_dn = fake_ad::USERS_BASE.into();
    s.group_base_dn = fake_ad::GROUPS_BASE.into();
    s.user_filter = "(objectClass=user)".into();
    s.group_filter = "(objectClass=group)".into();
    s.page_size = 1000;
    s
}

#[tokio::test]
async fn ad_range_retrieval_completes_large_groups() {
    let (users, groups) = ad_directory();
    let ad = FakeAd::start(users, groups, Fault::None).await;
    let s = ad_settings(&ad.url);
    let set = ldap::read_entries(&s, &env(fake_ad::BIND_PASSWORD))
        .await
        .expect("read");
    assert_eq!(set.users.len(), 3700);
    assert_eq!(set.stats.range_requests, 2, "1500-* and 3000-*");
    assert_eq!(
        ad.range_searches.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
    let huge = set
        .groups
        .iter()
        .find(|g| g.first_text("cn") == Some("Huge"))
        .expect("Huge");
    assert!(
        huge.attributes.iter().all(|a| !a.name.contains(';')),
        "range slices are merged into one plain attribute: {:?}",
        huge.attributes.iter().map(|a| &a.name).collect::<Vec<_>>()
    );
    let members: Vec<&str> = huge.texts("member").collect();
    assert_eq!(members.len(), 3701);
    let distinct: BTreeSet<&str> = members.iter().copied().collect();
    assert_eq!(distinct.len(), 3701, "no value twice");
    assert_eq!(members[0], ad_user_dn(0));
    assert_eq!(members[3699], ad_user_dn(3699));
    let user7 = &set.users[7];
    assert_eq!(
        user7.values("objectGUID"),
        &[directory::Value::Binary(b"ABCDEFGHIJKLMNOP".to_vec())]
    );

    let snapshot = directory::snapshot::assemble(set).expect("assemble");
    let huge_id = snapshot
        .groups
        .iter()
        .position(|g| g.name == "Huge")
        .expect("Huge") as u32;
    let small_id = snapshot
        .groups
        .iter()
        .position(|g| g.name == "Small")
        .expect("Small") as u32;
    assert!(snapshot.users.iter().all(|u| u.groups.contains(&huge_id)));
    let in_small: Vec<_> = snapshot
        .users
        .iter()
        .filter(|u| u.groups.contains(&small_id))
        .map(|u| {
            u.entry
                .first_text("sAMAccountName")
                .unwrap_or_default()
                .to_string()
        })
        .collect();
    assert_eq!(in_small, vec!["user0001", "user0002"]);
    assert_eq!(snapshot.memberships(), 3702);
    assert_eq!(snapshot.disabled_users(), 1);
    assert_eq!(snapshot.skipped.total(), 0);
    assert!(snapshot.users.iter().all(|u| u.stable_id.is_some()));
}

async fn ad_read_error(fault: Fault) -> DirectoryError {
    let (users, groups) = ad_directory();
    let ad = FakeAd::start(users, groups, fault).await;
    let s = ad_settings(&ad.url);
    match ldap::read_entries(&s, &env(fake_ad::BIND_PASSWORD)).await {
        Ok(set) => panic!(
            "{fault:?}: expected an error, got {} users, {} groups",
            set.users.len(),
            set.groups.len()
        ),
        Err(e) => e,
    }
}

#[tokio::test]
async fn a_dropped_range_is_incomplete() {
    let err = ad_read_error(Fault::DropRange).await;
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(
        msg.contains("CN=Huge") && msg.contains("member;range=1500-*"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_short_range_slice_is_incomplete() {
    let err = ad_read_error(Fault::ShortRange).await;
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(msg.contains("1000 values instead of 1500"), "{msg}");
}

#[tokio::test]
async fn a_continuation_reference_is_not_followed_but_fails() {
    let err = ad_read_error(Fault::Referral).await;
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(msg.contains("ldap://emea.ad.test/"), "{msg}");
}

#[tokio::test]
async fn a_lost_paging_control_is_incomplete() {
    let err = ad_read_error(Fault::NoPagingControl).await;
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(msg.contains("paged-results control"), "{msg}");
}

#[tokio::test]
async fn a_connection_dropped_mid_search_is_incomplete() {
    let err = ad_read_error(Fault::DropConnection).await;
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Incomplete { .. }), "{msg}");
    assert!(
        msg.contains(fake_ad::USERS_BASE) && msg.contains("lost"),
        "{msg}"
    );
}

#[tokio::test]
async fn ad_bind_failure_names_the_account_not_the_password() {
    let (users, groups) = ad_directory();
    let ad = FakeAd::start(users, groups, Fault::None).await;
    let s = ad_settings(&ad.url);
    let err = ldap::read_entries(&s, &env("not-the-password"))
        .await
        .expect_err("bind");
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(matches!(err, DirectoryError::Bind { .. }), "{msg}");
    assert!(
        msg.contains(fake_ad::BIND_DN) && !msg.contains("not-the-password"),
        "{msg}"
    );
}

// --- scale (a benchmark, not a timed test) -----------------------------------------------

/// 100,000 users and 10,000 groups of 100 members (1,000,000 memberships) read through the
/// size-limited sync account. Run with
/// `cargo test --release --test it -- --ignored --nocapture directory_ldap::scale`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run explicitly with --ignored"]
async fn scale_100k_users_10k_groups() {
    const N_USERS: usize = 100_000;
    const N_GROUPS: usize = 10_000;
    let mut ldif = format!(
        "dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for i in 0..N_USERS {
        ldif.push_str(&format!(
            "dn: uid=u{i},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: u{i}\ncn: User {i}\nsn: User\ngivenName: U{i}\nmail: u{i}@example.org\n\n"
        ));
    }
    for g in 0..N_GROUPS {
        ldif.push_str(&format!(
            "dn: cn=g{g},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: g{g}\n"
        ));
        for k in 0..100 {
            let u = (g * 100 + k * 7) % N_USERS;
            ldif.push_str(&format!("member: uid=u{u},ou=people,{SUFFIX}\n"));
        }
        ldif.push('\n');
    }
    let server = Slapd::start(&ldif);
    let mut s = settings(&server.url, SYNC_DN);
    s.page_size = 1000;
    let started = Instant::now();
    let set = ldap::read_entries(&s, &env(SYNC_PASSWORD))
        .await
        .expect("complete read");
    let read_time = started.elapsed();
    let stats = set.stats;
    let snapshot = directory::snapshot::assemble(set).expect("assemble");
    eprintln!(
        "slapd (slapadd {N_USERS} users, {N_GROUPS} groups) started in {:?}; read {:?} in {read_time:?}; assemble {:?}; {} memberships",
        server.start_time,
        stats,
        started.elapsed() - read_time,
        snapshot.memberships()
    );
    assert_eq!(snapshot.users.len(), N_USERS);
    assert_eq!(snapshot.groups.len(), N_GROUPS);
}
