//! The organisation the scale bench syncs: a generated directory (LDIF for slapd), the
//! matching ftrack state (mostly in sync, partly drifted, or empty for a first run), the
//! group mappings, and the `sync.toml` that ties them together.

use crate::slapd::{SUFFIX, SYNC_DN};
use ftrack_emulator::StateDump;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

pub const API_USER: &str = "ldap2ftrack";
pub const API_KEY: &str = "bench-api-key";
const ARTIST_ROLE_ID: &str = "5ca1e000-0000-4000-8000-00000000a001";

/// The generated organisation: LDIF for slapd, the ftrack state, the group mappings.
pub struct Org {
    pub groups: usize,
    pub member_values: usize,
    pub ldif: String,
    pub state: Value,
    pub mappings: String,
    pub ftrack_memberships: usize,
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
    /// `groups` defaults to one per ten users.
    fn new(users: usize, groups: Option<usize>) -> Layout {
        let groups = groups.unwrap_or(users / 10).max(40);
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

/// The organisation of `users` people in `groups` LDAP groups (default: one per ten users).
pub fn generate(users: usize, groups: Option<usize>) -> Org {
    let layout = Layout::new(users, groups);
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
pub fn empty_state() -> StateDump {
    let value = json!({
        "SecurityRole": [
            {"id": "5ca1e000-0000-4000-8000-00000000a000", "name": "Administrator", "type": "API"},
            {"id": ARTIST_ROLE_ID, "name": "Artist", "type": "PROJECT"}
        ],
        "Project": [{"id": "5ca1e000-0000-4000-8000-00000000b001", "name": "feature", "full_name": "Feature"}],
    });
    StateDump::from_json(&value.to_string()).expect("empty state")
}

pub fn write_config(dir: &Path, ldap_url: &str, ftrack_url: &str, mappings: &str) -> PathBuf {
    let path = dir.join("sync.toml");
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
