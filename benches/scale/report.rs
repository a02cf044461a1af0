//! The scale bench's figures for one organisation size, and the markdown tables
//! BENCHMARKS.md quotes.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// One size's measurements.
#[derive(Debug, Default)]
pub struct Row {
    pub users: usize,
    pub groups: usize,
    pub member_values: usize,
    pub ftrack_memberships: usize,
    pub plan_ops: usize,
    pub plan_wall: f64,
    pub plan_rss_mb: f64,
    pub ldap_pages: f64,
    pub plan_requests: u64,
    pub phases: BTreeMap<String, f64>,
    /// CPU seconds of the reported plan: ldap2ftrack, emulator, slapd.
    pub plan_cpu: [f64; 3],
    pub ldapsearch: f64,
    pub apply: Option<Apply>,
    pub first_run: Option<FirstRun>,
    pub first_apply: Option<FirstApply>,
}

/// The apply of the drifted state, and the no-change plan after it.
#[derive(Debug, Default)]
pub struct Apply {
    pub wall: f64,
    pub rss_mb: f64,
    pub requests: u64,
    pub no_change_wall: f64,
    pub no_change_ops: usize,
    pub no_change_requests: u64,
    pub no_change_writes: u64,
}

/// The plan of a first run: the whole directory into an empty ftrack.
#[derive(Debug, Default)]
pub struct FirstRun {
    pub ops: usize,
    pub json_wall: f64,
    pub json_rss_mb: f64,
    pub json_bytes: u64,
    pub human_wall: f64,
    pub human_rss_mb: f64,
}

/// A first apply into an empty ftrack against the seed-style script on the same data.
#[derive(Debug, Default)]
pub struct FirstApply {
    pub creates: u64,
    pub wall: f64,
    pub requests: u64,
    /// write, writev, sendto, sendmsg, pwrite64 of the whole process (strace -f -c).
    pub write_calls: u64,
    pub fsync_calls: u64,
    pub seed_wall: f64,
    pub seed_requests: u64,
}

impl FirstApply {
    pub fn speedup(&self) -> f64 {
        self.seed_wall / self.wall.max(1e-9)
    }
    pub fn writes_per_op(&self) -> f64 {
        self.write_calls as f64 / self.creates.max(1) as f64
    }
}

impl Row {
    pub fn ratio(&self) -> f64 {
        self.plan_wall / self.ldapsearch.max(1e-9)
    }

    /// Every figure where lower is better, named for the regression guard.
    pub fn figures(&self) -> BTreeMap<String, f64> {
        let n = self.users;
        let mut f = BTreeMap::new();
        let mut put = |name: &str, v: f64| {
            f.insert(format!("{n}/{name}"), v);
        };
        put("plan_wall_s", self.plan_wall);
        put("plan_rss_mb", self.plan_rss_mb);
        put("plan_over_ldapsearch", self.ratio());
        if let Some(a) = &self.apply {
            put("apply_wall_s", a.wall);
            put("no_change_wall_s", a.no_change_wall);
        }
        if let Some(r) = &self.first_run {
            put("first_json_wall_s", r.json_wall);
            put("first_json_rss_mb", r.json_rss_mb);
            put(
                "first_json_over_ldapsearch",
                r.json_wall / self.ldapsearch.max(1e-9),
            );
            put("first_human_wall_s", r.human_wall);
            put("first_human_rss_mb", r.human_rss_mb);
        }
        if let Some(a) = &self.first_apply {
            put("first_apply_wall_s", a.wall);
            put("first_apply_writes_per_op", a.writes_per_op());
            put("first_apply_over_seed", 1.0 / a.speedup().max(1e-9));
        }
        f
    }

    pub fn markdown_header() -> String {
        "| users | groups | LDAP member values | ftrack memberships | plan: operations | plan wall | plan peak RSS | LDAP pages | ftrack requests | `ldapsearch` dump | plan ÷ ldapsearch | apply wall (requests, peak RSS) | no-change plan wall (requests, writes) |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|".to_string()
    }

    pub fn markdown_row(&self) -> String {
        let (apply, no_change) = match &self.apply {
            Some(a) => (
                format!("{:.2} s ({}, {:.0} MB)", a.wall, a.requests, a.rss_mb),
                format!(
                    "{:.2} s ({}, {})",
                    a.no_change_wall, a.no_change_requests, a.no_change_writes
                ),
            ),
            None => ("–".into(), "–".into()),
        };
        format!(
            "| {} | {} | {} | {} | {} | {:.2} s | {:.0} MB | {:.0} | {} | {:.2} s | ×{:.2} | {apply} | {no_change} |",
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
        )
    }

    pub const PHASES: [&'static str; 6] = [
        "ldap_read",
        "assemble",
        "ftrack_read",
        "rules",
        "diff",
        "total",
    ];

    pub fn phase_header() -> String {
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

    pub fn phase_row(&self) -> String {
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

    pub fn first_run_header() -> &'static str {
        "| users (first run, empty ftrack) | operations | `--output json` wall | json peak RSS | json document | human wall | human peak RSS | `ldapsearch` dump | json ÷ ldapsearch |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    pub fn first_run_row(&self) -> Option<String> {
        let r = self.first_run.as_ref()?;
        Some(format!(
            "| {} | {} | {:.2} s | {:.0} MB | {:.0} MB | {:.2} s | {:.0} MB | {:.2} s | ×{:.2} |",
            self.users,
            r.ops,
            r.json_wall,
            r.json_rss_mb,
            r.json_bytes as f64 / 1e6,
            r.human_wall,
            r.human_rss_mb,
            self.ldapsearch,
            r.json_wall / self.ldapsearch.max(1e-9)
        ))
    }

    pub fn first_apply_header() -> &'static str {
        "| users (first apply, empty ftrack) | create operations | ldap2ftrack apply | requests | `write` calls (per operation) | `fdatasync` | seed-style script | its requests | faster |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    }

    pub fn first_apply_row(&self) -> Option<String> {
        let a = self.first_apply.as_ref()?;
        Some(format!(
            "| {} | {} | {:.2} s | {} | {} ({:.2}) | {} | {:.1} s | {} | ×{:.1} |",
            self.users,
            a.creates,
            a.wall,
            a.requests,
            a.write_calls,
            a.writes_per_op(),
            a.fsync_calls,
            a.seed_wall,
            a.seed_requests,
            a.speedup()
        ))
    }
}
