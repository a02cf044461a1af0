//! Scale benchmark (issue 9): how long a full `plan`, an `apply` and a no-change `plan` take
//! for an organisation of N users, against a real slapd and the ftrack emulator, with the
//! real `ldap2ftrack` binary — and how that compares to a plain `ldapsearch` paged dump.
//!
//! For each N it generates a directory (N users with entryUUID, N/10 groups: one group of
//! everyone, four large site groups, department groups that nest team groups, ~10 direct
//! memberships per user), loads it into a throw-away slapd with slapadd (the test harness in
//! `tests/support/slapd.rs`), and a matching ftrack state into the in-process emulator:
//! mostly in sync, partly drifted (5% of users missing, changed mails, missing and extra
//! memberships, missing role grants, unanchored users to adopt, departed users, a few
//! missing groups). The child's wall time and peak RSS come from `/usr/bin/time`, the
//! per-phase times and LDAP pages from the `[run] metrics_file` textfile, the ftrack
//! requests from the emulator's counters. It prints a markdown table and PASS/FAIL against
//! the targets of issue 9.
//!
//! Run: `cargo bench --bench scale` (1k, 10k, 100k users; BENCHMARKS.md, "Scale"). Options
//! after `--`: `--users 1000,10000` (the sizes); `--repeat N` (the full plan runs N times,
//! default 3, and the fastest run is reported, as is the best of 3 `ldapsearch` dumps: the
//! machine may be shared); `--plan-only`; `--bin PATH` (measure another build of
//! ldap2ftrack); `--serve DIR` (set up the first size, write DIR/sync.toml and keep slapd
//! and the emulator running, for profiling by hand). Needs slapd, slapadd and ldapsearch
//! (`bash tests/run.sh` installs them) and `/usr/bin/time`.

#[path = "../tests/support/slapd.rs"]
#[allow(dead_code)]
mod slapd;

use ftrack_emulator::{EmulatorConfig, RunningEmulator, StateDump};
use serde_json::{json, Value};
use slapd::{Slapd, SUFFIX, SYNC_DN, SYNC_PASSWORD};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The emulator serves from this process. With glibc malloc its heap fragmented during the
/// apply, and the no-change plan after it read ftrack twice as slowly (malloc_consolidate
/// in the profile); ldap2ftrack itself runs on mimalloc too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const API_USER: &str = "ldap2ftrack";
const API_KEY: &str = "bench-api-key";
const ARTIST_ROLE_ID: &str = "5ca1e000-0000-4000-8000-00000000a001";

fn main() {
    let mut sizes = vec![1_000usize, 10_000, 100_000];
    let mut binary = None;
    let mut plan_only = false;
    let mut repeat = 3;
    let mut serve: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--users" => {
                let list = args.next().expect("--users needs a list, e.g. 1000,10000");
                sizes = list
                    .split(',')
                    .map(|s| s.trim().replace('_', "").parse().expect("a user count"))
                    .collect();
            }
            "--plan-only" => plan_only = true,
            "--repeat" => {
                repeat = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--repeat needs a count")
            }
            "--serve" => serve = Some(PathBuf::from(args.next().expect("--serve needs a folder"))),
            "--bin" => binary = Some(PathBuf::from(args.next().expect("--bin needs a path"))),
            // `cargo bench` passes `--bench`; anything else is a mistake worth naming.
            "--bench" => {}
            other => panic!("unknown argument {other}; usage: -- [--users 1000,10000,100000] [--bin PATH] [--plan-only] [--repeat N] [--serve DIR]"),
        }
    }
    // The binary cargo built with this bench, or another one to compare (`--bin PATH`).
    let binary = binary.unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ldap2ftrack")));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    eprintln!("machine: {}", machine());
    eprintln!("binary: {}", binary.display());
    if let Some(dir) = serve {
        rt.block_on(serve_size(&dir, sizes[0]));
        return;
    }
    let mut rows = Vec::new();
    let mut creates = Vec::new();
    for &n in &sizes {
        let row = rt.block_on(bench_size(&binary, n, plan_only, repeat, &mut creates));
        eprintln!("{}", row.markdown_row());
        rows.push(row);
    }
    println!("\n{}\n", machine());
    println!("{}", Row::markdown_header());
    for row in &rows {
        println!("{}", row.markdown_row());
    }
    println!();
    println!("{}", Row::phase_header());
    for row in &rows {
        println!("{}", row.phase_row());
    }
    println!();
    let mut failed = false;
    let mut verdict = |ok: bool, what: String| {
        failed |= !ok;
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
    };
    for row in &rows {
        verdict(
            row.no_change_writes == 0 && row.no_change_ops == 0,
            format!(
                "{} users: no-change plan has {} operations and sends {} requests, {} of them writes (only paged reads allowed)",
                row.users, row.no_change_ops, row.no_change_requests, row.no_change_writes
            ),
        );
    }
    if let Some(big) = rows.iter().find(|r| r.users >= 100_000) {
        verdict(
            big.plan_wall <= 10.0,
            format!("{} users: plan {:.2} s ≤ 10 s", big.users, big.plan_wall),
        );
        verdict(
            big.plan_rss_mb <= 1024.0,
            format!(
                "{} users: plan peak RSS {:.0} MB ≤ 1024 MB",
                big.users, big.plan_rss_mb
            ),
        );
        verdict(
            big.ratio() <= 4.0,
            format!(
                "{} users: plan {:.2} s within 4× the ldapsearch dump {:.2} s (×{:.2})",
                big.users,
                big.plan_wall,
                big.ldapsearch,
                big.ratio()
            ),
        );
    }
    for c in &creates {
        // Requests per 10,000 create operations (the reads before the apply included).
        let per_10k = c.requests as f64 * 10_000.0 / c.creates.max(1) as f64;
        verdict(
            per_10k <= 100.0,
            format!(
                "apply into an empty ftrack, batch_size {}: {} new users = {} create operations (users, anchors, memberships, role grants) in {} requests, {:.2} s: {:.0} requests per 10,000 creates ≤ 100",
                c.batch_size, c.users, c.creates, c.requests, c.wall, per_10k
            ),
        );
    }
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.users >= 10_000 {
            let per_a = a.plan_wall / a.users as f64;
            let per_b = b.plan_wall / b.users as f64;
            verdict(
                per_b <= per_a * 1.5,
                format!(
                    "linear: plan time per user {:.1} µs at {} vs {:.1} µs at {}",
                    per_a * 1e6,
                    a.users,
                    per_b * 1e6,
                    b.users
                ),
            );
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// One size's measurements.
#[derive(Debug, Default)]
struct Row {
    users: usize,
    groups: usize,
    member_values: usize,
    ftrack_memberships: usize,
    plan_ops: usize,
    plan_wall: f64,
    plan_rss_mb: f64,
    ldap_pages: f64,
    plan_requests: u64,
    phases: BTreeMap<String, f64>,
    /// CPU seconds of the reported plan: ldap2ftrack, emulator, slapd.
    plan_cpu: [f64; 3],
    ldapsearch: f64,
    apply_wall: f64,
    apply_rss_mb: f64,
    apply_requests: u64,
    no_change_wall: f64,
    no_change_ops: usize,
    no_change_requests: u64,
    no_change_writes: u64,
}

impl Row {
    fn ratio(&self) -> f64 {
        self.plan_wall / self.ldapsearch.max(1e-9)
    }

    fn markdown_header() -> String {
        "| users | groups | LDAP member values | ftrack memberships | plan: operations | plan wall | plan peak RSS | LDAP pages | ftrack requests | `ldapsearch` dump | plan ÷ ldapsearch | apply wall (requests, peak RSS) | no-change plan wall (requests, writes) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_string()
    }

    fn markdown_row(&self) -> String {
        format!(
            "| {} | {} | {} | {} | {} | {:.2} s | {:.0} MB | {:.0} | {} | {:.2} s | ×{:.2} | {:.2} s ({}, {:.0} MB) | {:.2} s ({}, {}) |",
            self.users,
            self.groups,
            self.member_values,
            self.ftrack_memberships,
            self.plan_ops,
            self.plan_wall,
            self.plan_rss_mb,
            self.ldap_pages,
            self.plan_requests,
            self.ldapsearch,
            self.ratio(),
            self.apply_wall,
            self.apply_requests,
            self.apply_rss_mb,
            self.no_change_wall,
            self.no_change_requests,
            self.no_change_writes,
        )
    }

    const PHASES: [&'static str; 6] = [
        "ldap_read",
        "assemble",
        "ftrack_read",
        "rules",
        "diff",
        "total",
    ];

    fn phase_header() -> String {
        let mut s = "| users (full plan) |".to_string();
        for p in Self::PHASES {
            let _ = write!(s, " {p} |");
        }
        s.push_str(" CPU: ldap2ftrack + emulator + slapd |\n|---:|");
        for _ in Self::PHASES {
            s.push_str("---:|");
        }
        s.push_str("---:|");
        s
    }

    fn phase_row(&self) -> String {
        let mut s = format!("| {} |", self.users);
        for p in Self::PHASES {
            match self.phases.get(p) {
                Some(v) => {
                    let _ = write!(s, " {v:.2} s |");
                }
                None => s.push_str(" – |"),
            }
        }
        let [own, emulator, slapd] = self.plan_cpu;
        let _ = write!(
            s,
            " {own:.2} + {emulator:.2} + {slapd:.2} = {:.2} s |",
            own + emulator + slapd
        );
        s
    }
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let mem_gb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "{cores} cores, {model}, {mem_gb:.0} GiB RAM; load average at start {}",
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// The generated organisation: LDIF for slapd, the ftrack state, the group mappings.
struct Org {
    groups: usize,
    member_values: usize,
    ldif: String,
    state: Value,
    mappings: String,
    ftrack_memberships: usize,
}

fn entry_uuid(i: usize) -> String {
    format!("5ca1e000-0000-4000-8000-{i:012x}")
}

fn id(prefix: u32, n: usize) -> String {
    format!("{prefix:08x}-0000-4000-8000-{n:012x}")
}

/// Group layout for N users: 0 = everyone, 1..=4 = sites, then departments (5% of the
/// groups, each nesting the teams with `team % departments == d`), then teams.
struct Layout {
    departments: usize,
    teams: usize,
}

impl Layout {
    fn new(users: usize) -> Layout {
        let groups = (users / 10).max(40);
        let departments = (groups / 20).max(8);
        Layout {
            departments,
            teams: groups - 5 - departments,
        }
    }
    fn groups(&self) -> usize {
        5 + self.departments + self.teams
    }
    /// The 8 teams user `i` is directly in (distinct, evenly spread).
    fn teams_of(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        (0..8).map(move |k| (i * 8 + k) % self.teams)
    }
    fn site_of(i: usize) -> usize {
        1 + i % 4
    }
    /// The ftrack groups user `i` should be in, by the mappings: its site, the mapped
    /// departments of its teams (every 5th), its mapped teams (every 10th).
    fn ftrack_groups_of(&self, i: usize) -> Vec<String> {
        let mut out = vec![format!("Site {}", Self::site_of(i))];
        for t in self.teams_of(i) {
            let d = t % self.departments;
            if d.is_multiple_of(5) {
                out.push(format!("Dept {d}"));
            }
            if t.is_multiple_of(10) {
                out.push(format!("Team {t}"));
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

fn generate(users: usize) -> Org {
    let layout = Layout::new(users);
    let mut ldif = String::with_capacity(users * 400);
    let _ = write!(
        ldif,
        "dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n"
    );
    for i in 0..users {
        let _ = write!(
            ldif,
            "dn: uid=u{i:06},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nuid: u{i:06}\ncn: Given{i} Surname{i}\nsn: Surname{i}\ngivenName: Given{i}\nmail: u{i:06}@studio.example\nentryUUID: {}\n\n",
            entry_uuid(i)
        );
    }
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); layout.groups()];
    for i in 0..users {
        members[0].push(i);
        members[Layout::site_of(i)].push(i);
        for t in layout.teams_of(i) {
            members[5 + layout.departments + t].push(i);
        }
    }
    let group_cn = |g: usize| -> String {
        match g {
            0 => "all-staff".into(),
            1..=4 => format!("site-{g}"),
            g if g < 5 + layout.departments => format!("dept-{:05}", g - 5),
            g => format!("team-{:05}", g - 5 - layout.departments),
        }
    };
    let mut member_values = 0;
    for (g, list) in members.iter().enumerate() {
        let cn = group_cn(g);
        let _ = write!(
            ldif,
            "dn: cn={cn},ou=groups,{SUFFIX}\nobjectClass: groupOfNames\ncn: {cn}\n"
        );
        for &u in list {
            let _ = writeln!(ldif, "member: uid=u{u:06},ou=people,{SUFFIX}");
        }
        member_values += list.len();
        if (5..5 + layout.departments).contains(&g) {
            let d = g - 5;
            for t in (d..layout.teams).step_by(layout.departments) {
                let _ = writeln!(
                    ldif,
                    "member: cn={},ou=groups,{SUFFIX}",
                    group_cn(5 + layout.departments + t)
                );
                member_values += 1;
            }
        }
        ldif.push('\n');
    }

    // Group mappings: everyone → the Artist role; sites; every 5th department; every 10th team.
    let mut mappings = String::from("\"all-staff\" = { roles = [\"Artist\"] }\n");
    let mut ftrack_groups: Vec<String> = Vec::new();
    for s in 1..=4 {
        let _ = writeln!(mappings, "\"site-{s}\" = {{ groups = [\"Site {s}\"] }}");
        ftrack_groups.push(format!("Site {s}"));
    }
    for d in (0..layout.departments).step_by(5) {
        let _ = writeln!(mappings, "\"dept-{d:05}\" = {{ groups = [\"Dept {d}\"] }}");
        ftrack_groups.push(format!("Dept {d}"));
    }
    for t in (0..layout.teams).step_by(10) {
        let _ = writeln!(mappings, "\"team-{t:05}\" = {{ groups = [\"Team {t}\"] }}");
        ftrack_groups.push(format!("Team {t}"));
    }

    // ftrack: every mapped group but 1 in 100; users mostly in sync, with drift.
    let mut group_ids: BTreeMap<String, String> = BTreeMap::new();
    let mut state_groups = Vec::new();
    for (k, name) in ftrack_groups.iter().enumerate() {
        if k % 100 == 99 {
            continue;
        }
        let gid = id(0x6a0u32, k);
        state_groups.push(json!({"id": gid, "name": name, "local": false}));
        group_ids.insert(name.clone(), gid);
    }
    let mut state_users = Vec::with_capacity(users);
    let mut metadata = Vec::with_capacity(users);
    let mut memberships = Vec::new();
    let mut grants = Vec::new();
    let mut membership_n = 0usize;
    let mut add_membership = |memberships: &mut Vec<Value>, uid: &str, gid: &str| {
        memberships.push(json!({"id": id(0x3e3, membership_n), "user_id": uid, "group_id": gid}));
        membership_n += 1;
    };
    for i in 0..users {
        if i % 20 == 19 {
            continue; // not in ftrack yet: created
        }
        let uid = id(0x05e2, i);
        let email = if i % 50 == 1 {
            format!("old.u{i:06}@studio.example") // mail changed in LDAP
        } else {
            format!("u{i:06}@studio.example")
        };
        state_users.push(json!({
            "id": uid, "username": format!("u{i:06}"), "email": email,
            "first_name": format!("Given{i}"), "last_name": format!("Surname{i}"), "is_active": true
        }));
        if i % 40 != 18 {
            // anchored; the others are adopted by username
            metadata.push(json!({"parent_id": uid, "parent_type": "User", "key": "ldap2ftrack.anchor", "value": entry_uuid(i)}));
        }
        let wanted = layout.ftrack_groups_of(i);
        for (k, name) in wanted.iter().enumerate() {
            if i % 100 == 3 && k == 0 {
                continue; // a missing membership
            }
            if let Some(gid) = group_ids.get(name) {
                add_membership(&mut memberships, &uid, gid);
            }
        }
        if i % 200 == 7 {
            // an extra membership in a managed group: removed
            let wrong = format!("Site {}", 1 + (i + 1) % 4);
            if let Some(gid) = group_ids.get(&wrong) {
                add_membership(&mut memberships, &uid, gid);
            }
        }
        if i % 100 != 5 {
            grants.push(json!({"id": id(0x9a7, i), "user_id": uid, "security_role_id": ARTIST_ROLE_ID, "is_all_open_projects": true}));
        }
    }
    // Departed: anchored users LDAP no longer has (disabled).
    for j in 0..users / 200 {
        let uid = id(0xdead, j);
        state_users.push(json!({
            "id": uid, "username": format!("gone{j:05}"), "email": format!("gone{j:05}@studio.example"),
            "first_name": "Gone", "last_name": format!("User{j}"), "is_active": true
        }));
        metadata.push(json!({"parent_id": uid, "parent_type": "User", "key": "ldap2ftrack.anchor", "value": id(0xdead_0001, j)}));
    }
    let ftrack_memberships = memberships.len();
    let state = json!({
        "SecurityRole": [
            {"id": "5ca1e000-0000-4000-8000-00000000a000", "name": "Administrator", "type": "API"},
            {"id": ARTIST_ROLE_ID, "name": "Artist", "type": "PROJECT"}
        ],
        "Project": [{"id": "5ca1e000-0000-4000-8000-00000000b001", "name": "feature", "full_name": "Feature"}],
        "Group": state_groups,
        "User": state_users,
        "Metadata": metadata,
        "Membership": memberships,
        "UserSecurityRole": grants,
    });
    Org {
        groups: layout.groups(),
        member_values,
        ldif,
        state,
        mappings,
        ftrack_memberships,
    }
}

/// An empty ftrack (roles and a project only), for the creates measurement.
fn empty_state() -> StateDump {
    let value = json!({
        "SecurityRole": [
            {"id": "5ca1e000-0000-4000-8000-00000000a000", "name": "Administrator", "type": "API"},
            {"id": ARTIST_ROLE_ID, "name": "Artist", "type": "PROJECT"}
        ],
        "Project": [{"id": "5ca1e000-0000-4000-8000-00000000b001", "name": "feature", "full_name": "Feature"}],
    });
    StateDump::from_json(&value.to_string()).expect("empty state")
}

fn write_config(
    dir: &Path,
    ldap_url: &str,
    ftrack_url: &str,
    mappings: &str,
    batch_size: Option<usize>,
) -> PathBuf {
    let path = dir.join("sync.toml");
    let batch = batch_size.map_or(String::new(), |n| format!("batch_size = {n}\n"));
    let text = format!(
        r#"[ldap]
url = "{ldap_url}"
bind_dn = "{SYNC_DN}"
bind_password_env = "BENCH_LDAP_PASSWORD"
user_base_dn = "ou=people,{SUFFIX}"
user_filter = "(objectClass=inetOrgPerson)"
group_base_dn = "ou=groups,{SUFFIX}"
page_size = 1000
timeout_s = 300

[ftrack]
server_url = "{ftrack_url}"
api_user = "{API_USER}"
timeout_s = 600
{batch}
[group_mappings]
{mappings}
[deprovision]
action = "disable"

[guards]
max_disable = "100%"
max_membership_removals = "100%"
max_role_revocations = "100%"

[run]
metrics_file = "metrics.prom"
"#
    );
    std::fs::write(&path, text).expect("write sync.toml");
    path
}

/// What one child run cost.
struct Measured {
    wall: f64,
    rss_mb: f64,
    /// CPU seconds (user + system) during the run: ldap2ftrack, the emulator (this
    /// process), slapd. With two cores, their sum over two is the least wall time possible.
    cpu: [f64; 3],
    stdout: Value,
    metrics: String,
}

/// CPU seconds (user + system) a process has used so far, from /proc (0 if unreadable).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or(Vec::new(), |(_, rest)| rest.split_whitespace().collect());
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

/// The kernel's clock tick (asked of `getconf` once per bench run).
fn clock_ticks_per_second() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

fn run_child(binary: &Path, dir: &Path, command: &str, slapd_pid: u32) -> Measured {
    let time_file = dir.join("time.txt");
    let out_file = dir.join(format!("{command}.json"));
    let _ = std::fs::remove_file(dir.join("metrics.prom"));
    let slapd_pid = slapd_pid.to_string();
    let cpu_before = (cpu_seconds("self"), cpu_seconds(&slapd_pid));
    let started = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%e %M %U %S")
        .arg("-o")
        .arg(&time_file)
        .arg(binary)
        .arg("--config")
        .arg(dir.join("sync.toml"))
        .arg("--output")
        .arg("json")
        .arg("-q")
        .arg(command)
        .env("BENCH_LDAP_PASSWORD", SYNC_PASSWORD)
        .env("FTRACK_API_KEY", API_KEY)
        .env_remove("LDAP2FTRACK_LOG")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_file).expect("stdout file"))
        .status()
        .expect("run /usr/bin/time ldap2ftrack");
    let outer = started.elapsed().as_secs_f64();
    assert!(status.success(), "ldap2ftrack {command} failed: {status}");
    let time = std::fs::read_to_string(&time_file).expect("time output");
    let mut fields = time
        .lines()
        .last()
        .unwrap_or_default()
        .split_whitespace()
        .map(|f| f.parse::<f64>().unwrap_or(0.0));
    let wall = fields.next().unwrap_or(outer);
    let rss_kb = fields.next().unwrap_or(0.0);
    let child_cpu = fields.next().unwrap_or(0.0) + fields.next().unwrap_or(0.0);
    let cpu = [
        child_cpu,
        cpu_seconds("self") - cpu_before.0,
        cpu_seconds(&slapd_pid) - cpu_before.1,
    ];
    let stdout = std::fs::read_to_string(&out_file).expect("stdout");
    Measured {
        // /usr/bin/time rounds to 10 ms; the outer clock includes its own start-up.
        wall: if wall > 0.0 {
            outer.min(wall + 0.01)
        } else {
            outer
        },
        rss_mb: rss_kb / 1024.0,
        cpu,
        stdout: serde_json::from_str(&stdout).unwrap_or(Value::Null),
        metrics: std::fs::read_to_string(dir.join("metrics.prom")).unwrap_or_default(),
    }
}

/// `name{label="key"} value` samples of one metric.
fn samples(metrics: &str, name: &str) -> BTreeMap<String, f64> {
    metrics
        .lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            let (labels, value) = rest.rsplit_once(' ')?;
            let key = labels
                .split('"')
                .nth(1)
                .map_or(String::new(), str::to_string);
            Some((key, value.parse().ok()?))
        })
        .collect()
}

fn operations(plan: &Value) -> usize {
    plan["operations"].as_array().map_or(0, Vec::len)
}

fn writes(emulator: &RunningEmulator) -> u64 {
    let c = emulator.counters();
    c.operations
        .iter()
        .filter(|(action, _)| action.as_str() != "query" && action.as_str() != "query_schemas")
        .map(|(_, n)| n)
        .sum()
}

fn ldapsearch(url: &str) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        let status = Command::new("ldapsearch")
            .args(["-x", "-LLL", "-H", url, "-D", SYNC_DN, "-w", SYNC_PASSWORD])
            .args([
                "-b",
                SUFFIX,
                "-E",
                "pr=1000/noprompt",
                "(objectClass=*)",
                "*",
                "entryUUID",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("run ldapsearch (install ldap-utils)");
        assert!(status.success(), "ldapsearch failed: {status}");
        best = best.min(started.elapsed().as_secs_f64());
    }
    best
}

/// Measured creates: a directory of N users into an empty ftrack.
struct Creates {
    users: usize,
    batch_size: usize,
    creates: u64,
    requests: u64,
    wall: f64,
}

async fn bench_size(
    binary: &Path,
    n: usize,
    plan_only: bool,
    repeat: usize,
    creates: &mut Vec<Creates>,
) -> Row {
    let started = Instant::now();
    let org = generate(n);
    eprintln!(
        "{n} users: generated {} groups, {} member values, {} ftrack memberships in {:.1?}",
        org.groups,
        org.member_values,
        org.ftrack_memberships,
        started.elapsed()
    );
    let server = tokio::task::block_in_place(|| Slapd::start(&org.ldif));
    eprintln!(
        "{n} users: slapd loaded and up in {:.1?}",
        server.start_time
    );
    let state = StateDump::from_json(&org.state.to_string()).expect("generated state is valid");
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    write_config(
        dir.path(),
        &server.url,
        &emulator.url(),
        &org.mappings,
        None,
    );
    let ldapsearch_time = tokio::task::block_in_place(|| ldapsearch(&server.url));

    let mut row = Row {
        users: n,
        groups: org.groups,
        member_values: org.member_values,
        ftrack_memberships: org.ftrack_memberships,
        ldapsearch: ldapsearch_time,
        ..Row::default()
    };
    let child = |command: &str| {
        let m =
            tokio::task::block_in_place(|| run_child(binary, dir.path(), command, server.pid()));
        settle();
        m
    };

    // The machine is shared: the best of a few runs is the figure least disturbed by others.
    let mut best: Option<(Measured, u64)> = None;
    for _ in 0..repeat.max(1) {
        emulator.reset_counters();
        let plan = child("plan");
        let requests = emulator.counters().requests;
        if best.as_ref().is_none_or(|(b, _)| plan.wall < b.wall) {
            best = Some((plan, requests));
        }
    }
    let Some((plan, plan_requests)) = best else {
        unreachable!("at least one run")
    };
    row.plan_ops = operations(&plan.stdout);
    row.plan_cpu = plan.cpu;
    row.plan_wall = plan.wall;
    row.plan_rss_mb = plan.rss_mb;
    row.plan_requests = plan_requests;
    row.phases = samples(&plan.metrics, "ldap2ftrack_phase_duration_seconds");
    row.ldap_pages = samples(&plan.metrics, "ldap2ftrack_read_pages")
        .get("ldap")
        .copied()
        .unwrap_or(f64::NAN);
    eprintln!(
        "{n} users: plan {:.2} s, {} operations, phases {:?}",
        plan.wall, row.plan_ops, row.phases
    );

    if plan_only {
        emulator.shutdown().await;
        return row;
    }
    emulator.reset_counters();
    let apply = child("apply");
    row.apply_wall = apply.wall;
    row.apply_rss_mb = apply.rss_mb;
    row.apply_requests = emulator.counters().requests;

    emulator.reset_counters();
    let again = child("plan");
    row.no_change_wall = again.wall;
    row.no_change_ops = operations(&again.stdout);
    row.no_change_requests = emulator.counters().requests;
    row.no_change_writes = writes(&emulator);

    if n == 10_000 || (creates.is_empty() && n > 10_000) {
        // The default batch size, then a larger one (ftrack takes a batch of any size).
        for batch_size in [None, Some(1000)] {
            write_config(
                dir.path(),
                &server.url,
                &emulator.url(),
                &org.mappings,
                batch_size,
            );
            emulator.load(empty_state()).expect("load the empty state");
            emulator.reset_counters();
            let created = child("apply");
            let c = emulator.counters();
            creates.push(Creates {
                users: n,
                batch_size: batch_size.unwrap_or(500),
                creates: c.operations_of("create"),
                requests: c.requests,
                wall: created.wall,
            });
        }
    }
    emulator.shutdown().await;
    drop(server);
    row
}

/// Sets up one size and keeps it running until the process is killed.
async fn serve_size(dir: &Path, n: usize) {
    let org = generate(n);
    let server = tokio::task::block_in_place(|| Slapd::start(&org.ldif));
    let state = StateDump::from_json(&org.state.to_string()).expect("generated state is valid");
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    std::fs::create_dir_all(dir).expect("create the --serve folder");
    write_config(dir, &server.url, &emulator.url(), &org.mappings, None);
    eprintln!(
        "{n} users: slapd {} and the emulator {} are up; run\n  BENCH_LDAP_PASSWORD={SYNC_PASSWORD} FTRACK_API_KEY={API_KEY} ldap2ftrack --config {} plan\nCtrl-C stops them.",
        server.url,
        emulator.url(),
        dir.join("sync.toml").display()
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(server);
}

/// Lets the machine calm down between runs (page cache, the emulator's last responses).
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
