//! Scale benchmark (issues 9 and 21): how long a full `plan`, an `apply` and a no-change
//! `plan` take for an organisation of N users, against a real slapd and the ftrack
//! emulator, with the real `ldap2ftrack` binary — and how that compares to a plain
//! `ldapsearch` paged dump and to the seed-style script a studio writes by hand.
//!
//! For each N it generates a directory ([`org`]), loads it into a throw-away slapd with
//! slapadd (the test harness in `tests/it/support/slapd.rs`) and a matching, partly drifted
//! ftrack state into the in-process emulator, then measures ([`measure`]):
//! - the full `plan --output json` (best of `--repeat`), `apply`, and a no-change `plan`;
//! - a first run into an empty ftrack: `plan --output json` and the human plan (each the
//!   best of `--repeat`: wall, peak RSS, document size);
//! - at 10,000 users, the first `apply` into an empty ftrack (wall, requests, the `write`
//!   syscalls it makes, under strace in a second, untimed run) against [`seed`]'s script.
//!
//! It prints markdown tables ([`report`]), PASS/FAIL against the targets of issues 9 and
//! 21, and compares every figure with the ones recorded for this machine ([`recorded`]):
//! more than 25% worse fails.
//!
//! Run: `cargo bench --bench scale` (1k, 10k, 100k users; BENCHMARKS.md, "Scale"); after
//! `--`, `--help` lists the options (`--users 1000000 --groups 50000` is the million-user
//! run). Needs slapd, slapadd, ldapsearch, strace and the `.venv` with ftrack_api and ldap3
//! (`bash tests/run.sh` installs them) and `/usr/bin/time`.

#[path = "../../tests/it/support/slapd.rs"]
#[allow(dead_code)]
mod slapd;

mod incremental;
mod measure;
mod org;
mod recorded;
mod report;
mod seed;

use clap::Parser;
use ftrack_emulator::{EmulatorConfig, RunningEmulator, StateDump};
use measure::{run_child, ChildRun, Measured};
use org::{API_KEY, API_USER};
use report::{Apply, FirstApply, FirstRun, Row};
use slapd::{Slapd, SYNC_PASSWORD};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The emulator serves from this process. With glibc malloc its heap fragmented during the
/// apply, and the no-change plan after it read ftrack twice as slowly (malloc_consolidate
/// in the profile); ldap2ftrack itself runs on mimalloc too.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The scale benchmark: plan and apply against a real slapd and the ftrack emulator.
#[derive(Parser, Debug)]
struct Args {
    /// Organisation sizes, in users.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    users: Vec<usize>,
    /// LDAP groups (default: one per ten users).
    #[arg(long)]
    groups: Option<usize>,
    /// Full plans (and first-run plans) per size; the fastest is reported, as is the best
    /// of 3 `ldapsearch` dumps (the machine may be shared).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Only the full plan (no apply, no first run).
    #[arg(long)]
    plan_only: bool,
    /// Skip the first run into an empty ftrack (and the seed-style comparison).
    #[arg(long)]
    no_first_run: bool,
    /// The size at which the first apply is compared with the seed-style script.
    #[arg(long, default_value_t = 10_000)]
    first_apply_at: usize,
    /// Measure another build of ldap2ftrack.
    #[arg(long)]
    bin: Option<PathBuf>,
    /// Set up the first size, write DIR/sync.toml and keep slapd and the emulator running
    /// (for profiling by hand); `--serve-empty` does the same with an empty ftrack.
    #[arg(long, value_name = "DIR")]
    serve: Option<PathBuf>,
    #[arg(long)]
    serve_empty: bool,
    /// Only issue 24's figure: a no-change `plan --check`, incremental against full, on a
    /// slapd with syncprov (LDAP entries and bytes read, wall).
    #[arg(long)]
    incremental: bool,
    /// Only issue 24's watch figure: `watch` running, a user disabled in LDAP this many
    /// times, the time until ftrack has them inactive (median and worst).
    #[arg(long, value_name = "TRIALS")]
    watch: Option<usize>,
    /// Record this run's figures as the ones later runs on this machine are held to.
    #[arg(long)]
    record: bool,
    /// Record only this run's peak-memory figures (`*_rss_mb`). Memory does not move with
    /// the machine's load and walls do, so a run on a slow day can tighten the memory guard
    /// without loosening the wall guard.
    #[arg(long, conflicts_with = "record")]
    record_memory: bool,
    /// `cargo bench` passes `--bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    // The binary cargo built with this bench, or another one to compare (`--bin PATH`).
    let binary = args
        .bin
        .clone()
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ldap2ftrack")));
    let rt = tokio::runtime::Runtime::new().expect("tokio runtime");
    let machine = recorded::machine();
    eprintln!("machine: {machine}");
    eprintln!("binary: {}", binary.display());
    if let Some(dir) = &args.serve {
        rt.block_on(serve_size(
            dir,
            args.users[0],
            args.groups,
            args.serve_empty,
        ));
        return;
    }
    if let Some(trials) = args.watch {
        println!("\n{machine}\n");
        println!("| users | trials | disabled in ftrack after: median | worst | best |");
        println!("|---:|---:|---:|---:|---:|");
        for &n in &args.users {
            let mut l = rt.block_on(incremental::watch_latency(&binary, n, trials));
            l.sort_by(f64::total_cmp);
            let median = if l.len() % 2 == 1 {
                l[l.len() / 2]
            } else {
                (l[l.len() / 2 - 1] + l[l.len() / 2]) / 2.0
            };
            println!(
                "| {n} | {} | {median:.2} s | {:.2} s | {:.2} s |",
                l.len(),
                l.last().copied().unwrap_or(0.0),
                l.first().copied().unwrap_or(0.0)
            );
        }
        return;
    }
    if args.incremental {
        println!("\n{machine}\n");
        println!("| users | nothing changed: full `plan --check` (LDAP entries, bytes, wall) | incremental | bytes read ÷ full | one mail changed: incremental `plan` | full `plan` |");
        println!("|---:|---|---|---:|---|---|");
        for &n in &args.users {
            let [full, inc, one, one_full] =
                rt.block_on(incremental::no_change(&binary, n, args.groups));
            let cell =
                |r: &incremental::Read| format!("{}, {} B, {:.3} s", r.entries, r.bytes, r.wall);
            println!(
                "| {n} | {} | {} | {:.4}% | {} | {} |",
                cell(&full),
                cell(&inc),
                100.0 * inc.bytes as f64 / full.bytes.max(1) as f64,
                cell(&one),
                cell(&one_full)
            );
        }
        return;
    }
    let mut rows = Vec::new();
    for &n in &args.users {
        let row = rt.block_on(bench_size(&binary, n, &args));
        eprintln!("{}", row.markdown_row());
        rows.push(row);
    }
    println!("\n{machine}\n");
    println!("{}", Row::markdown_header());
    rows.iter().for_each(|r| println!("{}", r.markdown_row()));
    println!("\n{}", Row::phase_header());
    rows.iter().for_each(|r| println!("{}", r.phase_row()));
    if rows.iter().any(|r| r.first_run.is_some()) {
        println!("\n{}", Row::first_run_header());
        rows.iter()
            .filter_map(Row::first_run_row)
            .for_each(|l| println!("{l}"));
    }
    if rows.iter().any(|r| r.first_apply.is_some()) {
        println!("\n{}", Row::first_apply_header());
        rows.iter()
            .filter_map(Row::first_apply_row)
            .for_each(|l| println!("{l}"));
    }
    println!();
    let mut failed = false;
    let mut verdict = |ok: bool, what: String| {
        failed |= !ok;
        println!("{} {what}", if ok { "PASS" } else { "FAIL" });
    };
    targets(&rows, &mut verdict);

    let figures: std::collections::BTreeMap<String, f64> =
        rows.iter().flat_map(Row::figures).collect();
    let before = recorded::recorded();
    for (name, now) in &figures {
        if let Some(line) = before
            .get(name)
            .and_then(|was| recorded::compare(name, *now, *was))
        {
            verdict(line.0, line.1);
        }
    }
    if before.is_empty() {
        println!(
            "no figures recorded for this machine in {}: run with --record to set them",
            recorded::path().display()
        );
    }
    if args.record {
        recorded::record(&figures, &commit(), false);
    } else if args.record_memory {
        let memory = figures
            .into_iter()
            .filter(|(name, _)| name.ends_with("_rss_mb"))
            .collect();
        recorded::record(&memory, &commit(), true);
    }
    if failed {
        std::process::exit(1);
    }
}

/// The targets of issues 9 and 21 (DESIGN.md, "Performance targets").
fn targets(rows: &[Row], verdict: &mut impl FnMut(bool, String)) {
    for row in rows {
        if let Some(a) = &row.apply {
            verdict(
                a.no_change_writes == 0 && a.no_change_ops == 0,
                format!(
                    "{} users: no-change plan has {} operations and sends {} requests, {} of them writes (only paged reads allowed)",
                    row.users, a.no_change_ops, a.no_change_requests, a.no_change_writes
                ),
            );
        }
        if let Some(a) = &row.first_apply {
            verdict(
                a.speedup() >= 20.0,
                format!(
                    "{} users: first apply {:.2} s is ×{:.1} faster than the seed-style script ({:.1} s); target ≥ ×20",
                    row.users, a.wall, a.speedup(), a.seed_wall
                ),
            );
            verdict(
                a.writes_per_op() <= 5.0,
                format!(
                    "{} users: first apply makes {} write calls for {} operations ({:.2} each); target ≤ 5",
                    row.users, a.write_calls, a.creates, a.writes_per_op()
                ),
            );
            let per_10k = a.requests as f64 * 10_000.0 / a.creates.max(1) as f64;
            verdict(
                per_10k <= 100.0,
                format!(
                    "{} users: first apply sends {} requests for {} create operations: {per_10k:.0} per 10,000 ≤ 100",
                    row.users, a.requests, a.creates
                ),
            );
        }
    }
    if let Some(big) = rows.iter().find(|r| r.users == 100_000) {
        verdict(
            big.plan_wall <= 10.0,
            format!("{} users: plan {:.2} s ≤ 10 s", big.users, big.plan_wall),
        );
        verdict(
            big.ratio() <= 2.0,
            format!(
                "{} users: plan {:.2} s within 2× the ldapsearch dump {:.2} s (×{:.2})",
                big.users,
                big.plan_wall,
                big.ldapsearch,
                big.ratio()
            ),
        );
        verdict(
            big.plan_rss_mb <= 500.0,
            format!(
                "{} users: plan --output json peak RSS {:.0} MB ≤ 500 MB",
                big.users, big.plan_rss_mb
            ),
        );
        if let Some(r) = &big.first_run {
            verdict(
                r.json_rss_mb <= 500.0,
                format!(
                    "{} users, first run: plan --output json peak RSS {:.0} MB ≤ 500 MB",
                    big.users, r.json_rss_mb
                ),
            );
            verdict(
                r.human_rss_mb <= 400.0,
                format!(
                    "{} users, first run: human plan peak RSS {:.0} MB ≤ 400 MB",
                    big.users, r.human_rss_mb
                ),
            );
            let ratio = r.json_wall / big.ldapsearch.max(1e-9);
            verdict(
                ratio <= 2.0,
                format!(
                    "{} users, first run: plan --output json {:.2} s within 2× the ldapsearch dump (×{ratio:.2})",
                    big.users, r.json_wall
                ),
            );
        }
    }
    if let Some(huge) = rows.iter().find(|r| r.users >= 1_000_000) {
        verdict(
            huge.plan_rss_mb <= 4096.0,
            format!(
                "{} users: plan peak RSS {:.0} MB ≤ 4096 MB",
                huge.users, huge.plan_rss_mb
            ),
        );
        verdict(
            huge.ratio() <= 2.5,
            format!(
                "{} users: plan {:.1} s within 2.5× the ldapsearch dump {:.1} s (×{:.2})",
                huge.users,
                huge.plan_wall,
                huge.ldapsearch,
                huge.ratio()
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
}

/// The commit the measured binary was built from (for the recorded figures).
fn commit() -> String {
    std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// A size's servers: slapd with the directory, the emulator with the drifted state.
struct Servers {
    slapd: Slapd,
    emulator: RunningEmulator,
    dir: tempfile::TempDir,
}

impl Servers {
    fn child(&self, binary: &Path, run: ChildRun) -> Measured {
        let m = tokio::task::block_in_place(|| {
            run_child(binary, self.dir.path(), run, self.slapd.pid())
        });
        settle();
        m
    }
}

async fn bench_size(binary: &Path, n: usize, args: &Args) -> Row {
    let started = Instant::now();
    let org = org::generate(n, args.groups);
    eprintln!(
        "{n} users: generated {} groups, {} member values, {} ftrack memberships in {:.1?}",
        org.groups,
        org.member_values,
        org.ftrack_memberships,
        started.elapsed()
    );
    let slapd = tokio::task::block_in_place(|| Slapd::start(&org.ldif));
    eprintln!("{n} users: slapd loaded and up in {:.1?}", slapd.start_time);
    let state = StateDump::from_json(&org.state.to_string()).expect("generated state is valid");
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    let dir = tempfile::tempdir().expect("temp dir");
    org::write_config(dir.path(), &slapd.url, &emulator.url(), &org.mappings);
    let ldapsearch = tokio::task::block_in_place(|| measure::ldapsearch(&slapd.url));
    let servers = Servers {
        slapd,
        emulator,
        dir,
    };
    let mut row = Row {
        users: n,
        groups: org.groups,
        member_values: org.member_values,
        ftrack_memberships: org.ftrack_memberships,
        ldapsearch,
        ..Row::default()
    };
    let emulator = &servers.emulator;

    let (plan, plan_requests) = measure::best_of(
        args.repeat,
        || {
            emulator.reset_counters();
            let plan = servers.child(binary, ChildRun::json("plan"));
            (plan, emulator.counters().requests)
        },
        |(plan, _)| plan.wall,
    );
    row.plan_ops = plan.planned();
    row.plan_cpu = plan.cpu;
    row.plan_wall = plan.wall;
    row.plan_rss_mb = plan.rss_mb;
    row.plan_requests = plan_requests;
    row.phases = measure::samples(&plan.metrics, "ldap2ftrack_phase_duration_seconds");
    row.ldap_pages = measure::samples(&plan.metrics, "ldap2ftrack_read_pages")
        .get("ldap")
        .copied()
        .unwrap_or(f64::NAN);
    eprintln!(
        "{n} users: plan {:.2} s, {} operations, phases {:?}",
        plan.wall, row.plan_ops, row.phases
    );
    if args.plan_only {
        servers.emulator.shutdown().await;
        return row;
    }

    emulator.reset_counters();
    let apply = servers.child(binary, ChildRun::json("apply"));
    let requests = emulator.counters().requests;
    emulator.reset_counters();
    let again = servers.child(binary, ChildRun::json("plan"));
    row.apply = Some(Apply {
        wall: apply.wall,
        rss_mb: apply.rss_mb,
        requests,
        no_change_wall: again.wall,
        no_change_ops: again.planned(),
        no_change_requests: emulator.counters().requests,
        no_change_writes: measure::writes(emulator),
    });

    if !args.no_first_run {
        row.first_run = Some(first_run(binary, &servers, args.repeat));
        eprintln!("{n} users: first run {:?}", row.first_run);
        if n == args.first_apply_at {
            row.first_apply = Some(first_apply(binary, &servers));
            eprintln!("{n} users: first apply {:?}", row.first_apply);
        }
    }
    servers.emulator.shutdown().await;
    row
}

/// The plan of the whole directory into an empty ftrack, as JSON and for a person.
fn first_run(binary: &Path, servers: &Servers, repeat: usize) -> FirstRun {
    servers
        .emulator
        .load(org::empty_state())
        .expect("load the empty state");
    let best = |run: fn(&'static str) -> ChildRun| {
        measure::best_of(repeat, || servers.child(binary, run("plan")), |m| m.wall)
    };
    let json = best(ChildRun::json);
    let human = best(ChildRun::human);
    FirstRun {
        ops: json.planned(),
        json_wall: json.wall,
        json_rss_mb: json.rss_mb,
        json_bytes: json.stdout_bytes,
        human_wall: human.wall,
        human_rss_mb: human.rss_mb,
    }
}

/// The first apply into an empty ftrack, then its syscalls (a second, traced apply), then
/// the seed-style script doing the same.
fn first_apply(binary: &Path, servers: &Servers) -> FirstApply {
    let emulator = &servers.emulator;
    let empty = || {
        emulator
            .load(org::empty_state())
            .expect("load the empty state")
    };
    empty();
    emulator.reset_counters();
    let timed = servers.child(binary, ChildRun::json("apply"));
    let counters = emulator.counters();

    empty();
    let trace = servers.dir.path().join("strace.txt");
    let mut traced = ChildRun::json("apply");
    traced.strace = Some(&trace);
    servers.child(binary, traced);
    let summary = std::fs::read_to_string(&trace).expect("strace -c output (install strace)");

    empty();
    emulator.reset_counters();
    let seed_wall = tokio::task::block_in_place(|| seed::run(servers.dir.path()));
    FirstApply {
        creates: counters
            .operations
            .iter()
            .filter(|(a, _)| a.as_str() != "query" && a.as_str() != "query_schemas")
            .map(|(_, n)| n)
            .sum(),
        wall: timed.wall,
        requests: counters.requests,
        write_calls: measure::syscalls(
            &summary,
            &[
                "write", "writev", "pwrite64", "pwritev", "sendto", "sendmsg",
            ],
        ),
        fsync_calls: measure::syscalls(&summary, &["fdatasync", "fsync"]),
        seed_wall,
        seed_requests: emulator.counters().requests,
    }
}

/// Sets up one size and keeps it running until the process is killed.
async fn serve_size(dir: &Path, n: usize, groups: Option<usize>, empty: bool) {
    let org = org::generate(n, groups);
    let slapd = tokio::task::block_in_place(|| Slapd::start(&org.ldif));
    let state = if empty {
        org::empty_state()
    } else {
        StateDump::from_json(&org.state.to_string()).expect("generated state is valid")
    };
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(API_USER, API_KEY).state(state))
        .await
        .expect("emulator");
    std::fs::create_dir_all(dir).expect("create the --serve folder");
    org::write_config(dir, &slapd.url, &emulator.url(), &org.mappings);
    eprintln!(
        "{n} users: slapd {} and the emulator {} are up; run\n  BENCH_LDAP_PASSWORD={SYNC_PASSWORD} FTRACK_API_KEY={API_KEY} ldap2ftrack --config {} plan\nCtrl-C stops them.",
        slapd.url,
        emulator.url(),
        dir.join("sync.toml").display()
    );
    let _ = tokio::signal::ctrl_c().await;
    drop(slapd);
}

/// Lets the machine calm down between runs (page cache, the emulator's last responses).
fn settle() {
    std::thread::sleep(Duration::from_millis(300));
}
