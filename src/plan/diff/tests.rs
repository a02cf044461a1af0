//! The diff in-process: desired users and an ftrack snapshot built by hand, no servers.

use super::*;
use crate::config::DeprovisionAction;
use crate::ftrack::snapshot::{
    FtrackProject, FtrackSecurityRole, FtrackSnapshot, FtrackUser, FtrackUserSecurityRole,
};
use crate::rules::pipeline::{DesiredUser, Evaluation};
use crate::rules::{Access, RoleGrant, RoleScope, RuleEntry, UserFields};

const ARTIST: &str = "r-artist";
const ADMIN: &str = "r-admin";
const SHOW: &str = "p-show";

fn settings() -> PlanSettings {
    PlanSettings {
        api_user: "sync-bot".into(),
        protected_users: vec!["boss".into()],
        deprovision_action: DeprovisionAction::Disable,
        managed_groups: Vec::new(),
        managed_roles: vec!["Artist".into()],
        today: "2026-11-29".into(),
    }
}

fn desired(uid: &str, roles: &[(&str, Option<&str>)]) -> DesiredUser {
    DesiredUser {
        entry: RuleEntry {
            dn: format!("uid={uid},ou=people,dc=x"),
            stable_id: Some(format!("id-{uid}")),
            disabled: false,
            attributes: Vec::new(),
            groups: Vec::new(),
        },
        source: usize::MAX,
        fields: UserFields {
            username: uid.into(),
            email: Some(format!("{uid}@x.example")),
            first_name: None,
            last_name: None,
        },
        access: Access {
            groups: Default::default(),
            roles: roles
                .iter()
                .map(|(role, project)| RoleGrant {
                    role: (*role).into(),
                    scope: match project {
                        Some(p) => RoleScope::Project((*p).into()),
                        None => RoleScope::AllOpenProjects,
                    },
                })
                .collect(),
        },
        proposed_by: Vec::new(),
    }
}

fn ftrack_user(uid: &str) -> FtrackUser {
    FtrackUser {
        id: format!("u-{uid}"),
        username: uid.into(),
        email: Some(format!("{uid}@x.example")),
        is_active: true,
        metadata: [(ANCHOR_KEY.to_string(), format!("id-{uid}"))]
            .into_iter()
            .collect(),
        ..FtrackUser::default()
    }
}

fn grant(uid: &str, role: &str, all: bool, projects: &[&str]) -> FtrackUserSecurityRole {
    FtrackUserSecurityRole {
        id: format!("usr-{uid}-{role}").as_str().into(),
        user_id: format!("u-{uid}").into(),
        security_role_id: role.into(),
        is_all_open_projects: all,
        project_ids: projects.iter().map(|p| p.to_string()).collect(),
    }
}

fn ftrack(users: &[&str], grants: Vec<FtrackUserSecurityRole>) -> FtrackSnapshot {
    let role = |id: &str, name: &str, kind: &str| FtrackSecurityRole {
        id: id.into(),
        name: name.into(),
        role_type: Some(kind.into()),
    };
    FtrackSnapshot {
        users: users.iter().map(|u| ftrack_user(u)).collect(),
        security_roles: vec![
            role(ARTIST, "Artist", "PROJECT"),
            role(ADMIN, "Administrator", "API"),
        ],
        user_security_roles: grants,
        projects: vec![FtrackProject {
            id: SHOW.into(),
            name: "show".into(),
            status: None,
        }],
        ..FtrackSnapshot::default()
    }
}

/// The plan for `users` against `ftrack`, every departed user given `verdict`.
fn plan_with(users: Vec<DesiredUser>, ftrack: &FtrackSnapshot, verdict: Verdict) -> Plan {
    plan_in_parts(users, ftrack, verdict, 1)
}

/// [`plan_with`], the users planned in `parts` parts on as many threads.
fn plan_in_parts(
    users: Vec<DesiredUser>,
    ftrack: &FtrackSnapshot,
    verdict: Verdict,
    parts: usize,
) -> Plan {
    let evaluation = Evaluation {
        users,
        skipped: Vec::new(),
    };
    let settings = settings();
    let matching = Matching::new(&evaluation, ftrack, None, &settings);
    let verdicts: Vec<(Verdict, String)> = matching
        .departed_users(&settings.today)
        .iter()
        .map(|_| (verdict.clone(), "a rule".to_string()))
        .collect();
    let pipeline = Pipeline::new(Vec::new());
    diff_in_parts(
        &matching,
        &DirectorySnapshot::default(),
        &settings,
        &verdicts,
        &pipeline,
        parts,
    )
}

fn plan(users: Vec<DesiredUser>, ftrack: &FtrackSnapshot) -> Plan {
    plan_with(users, ftrack, Verdict::Disable("gone".into()))
}

fn summary(plan: &Plan) -> Vec<String> {
    plan.operations
        .iter()
        .map(|op| {
            let add = if op.add_role { " (add)" } else { "" };
            format!("{}{add}", op.summary())
        })
        .collect()
}

#[test]
fn a_new_user_is_created_then_given_the_role_it_lacks() {
    let p = plan(
        vec![desired(
            "ann",
            &[("Artist", None), ("Artist", Some("show"))],
        )],
        &ftrack(&[], Vec::new()),
    );
    assert_eq!(
        summary(&p),
        [
            "+ user ann",
            "+ ann role Artist on all open projects (add)",
            "+ ann role Artist on show",
        ],
        "one add, on the first grant in plan order"
    );
}

#[test]
fn a_held_role_is_only_widened() {
    let p = plan(
        vec![desired(
            "ann",
            &[("Artist", None), ("Artist", Some("show"))],
        )],
        &ftrack(&["ann"], vec![grant("ann", ARTIST, false, &[])]),
    );
    assert_eq!(
        summary(&p),
        [
            "+ ann role Artist on all open projects",
            "+ ann role Artist on show"
        ]
    );
}

#[test]
fn a_role_of_another_type_is_noted_once_and_never_granted_or_revoked() {
    let p = plan(
        vec![
            desired("ann", &[("Administrator", None)]),
            desired("bob", &[("administrator", None)]),
        ],
        &ftrack(&["ann", "bob"], vec![grant("bob", ADMIN, true, &[])]),
    );
    assert_eq!(summary(&p), Vec::<String>::new());
    assert_eq!(p.notes.len(), 1, "{:?}", p.notes);
    assert!(
        p.notes[0].starts_with("security role `Administrator` has type API")
            && p.notes[0].ends_with("2 users: `ann`, `bob`"),
        "{}",
        p.notes[0]
    );
}

#[test]
fn narrowing_revokes_a_scope_and_no_scope_left_removes_the_role() {
    let grants = || {
        vec![
            grant("ann", ARTIST, true, &[SHOW]),
            grant("bob", ARTIST, true, &[]),
        ]
    };
    let mut sent_twice = grants();
    sent_twice.push(grant("bob", ARTIST, true, &[]));
    // A grant ftrack sent twice is planned and counted once: the one the index keeps.
    for grants in [grants(), sent_twice] {
        let p = plan(
            vec![desired("ann", &[("Artist", None)]), desired("bob", &[])],
            &ftrack(&["ann", "bob"], grants),
        );
        assert_eq!(
            summary(&p),
            ["- ann role Artist on show", "- bob role Artist (entirely)"]
        );
        assert_eq!(p.managed.role_grants, 3);
    }
}

#[test]
fn a_missing_project_is_noted_with_the_users_and_skipped() {
    let p = plan(
        vec![desired("ann", &[("Artist", Some("gone"))])],
        &ftrack(&["ann"], Vec::new()),
    );
    assert_eq!(summary(&p), Vec::<String>::new());
    assert_eq!(
        p.notes,
        ["project `gone` does not exist in ftrack; grants of Artist on it are skipped; 1 user: `ann`"]
    );
}

#[test]
fn departed_users_follow_the_verdict_and_protected_users_are_left_alone() {
    let snapshot = ftrack(&["ann", "gone", "boss"], Vec::new());
    let p = plan(vec![desired("ann", &[])], &snapshot);
    assert_eq!(summary(&p), ["- user gone: disable"]);
    let op = &p.operations[0];
    assert_eq!(&*op.reason, "a rule: gone");
    assert_eq!(
        op.metadata.keys().collect::<Vec<_>>(),
        [DISABLED_BY_SYNC_KEY, MISSING_SINCE_KEY]
    );

    let kept = plan_with(
        vec![desired("ann", &[])],
        &snapshot,
        Verdict::Keep("grace".into()),
    );
    assert_eq!(
        summary(&kept),
        ["~ user gone"],
        "only the missing-since date"
    );
    assert_eq!(&*kept.operations[0].reason, "a rule: kept: grace");
}

#[test]
fn users_planned_in_parts_on_several_threads_give_the_plan_of_one() {
    // Every kind of per-user outcome, spread so each part has some: new users lacking a
    // role, groups to create, notes about a missing project and a role of the wrong type.
    let users = |n: usize| -> Vec<DesiredUser> {
        (0..n)
            .map(|i| {
                let uid = format!("user{i:03}");
                let mut user = match i % 4 {
                    0 => desired(&uid, &[("Artist", None), ("Artist", Some("show"))]),
                    1 => desired(&uid, &[("Artist", Some("gone"))]),
                    2 => desired(&uid, &[("Administrator", None)]),
                    _ => desired(&uid, &[]),
                };
                user.access.groups = [format!("Team {}", i % 3)]
                    .iter()
                    .map(|g| ArcStr::from(g.as_str()))
                    .collect();
                user
            })
            .collect()
    };
    let existing: Vec<String> = (0..40).step_by(2).map(|i| format!("user{i:03}")).collect();
    let existing: Vec<&str> = existing.iter().map(String::as_str).collect();
    let snapshot = ftrack(&existing, vec![grant("user002", ARTIST, true, &[SHOW])]);
    let one = plan_in_parts(users(40), &snapshot, Verdict::Disable("gone".into()), 1);
    assert!(
        one.count(OperationKind::CreateGroup) == 3 && one.notes.len() == 2,
        "{one:?}"
    );
    assert!(one.operations.iter().any(|op| op.add_role));
    for parts in [2, 3, 7] {
        let split = plan_in_parts(users(40), &snapshot, Verdict::Disable("gone".into()), parts);
        assert_eq!(split, one, "{parts} parts");
    }
}

#[test]
fn planned_ids_are_the_version_5_uuids_of_their_names() {
    let cases: [(&str, &[&str]); 4] = [
        ("user", &["6f0c1a9e-0000-4000-8000-000000000001"]),
        ("group", &["dept 5"]),
        (
            "membership",
            &["22d597f5-7239-5da1-9c59-29cea185021e", "/", "g-1"],
        ),
        ("group", &["élodie's ünïcode group"]),
    ];
    for (kind, key) in cases {
        let name = format!("{kind}:{}", key.concat());
        assert_eq!(
            planned_uuid(kind, key),
            uuid::Uuid::new_v5(&ID_NAMESPACE, name.as_bytes()),
            "{name}"
        );
    }
    // The id earlier versions planned for the group `Dept 0`: a retried create is still
    // recognised after an upgrade.
    assert_eq!(
        planned_id("group", "dept 0"),
        "162797e6-14ca-5ff8-95a2-d3f25a90f072"
    );
}

#[test]
fn operations_kept_by_kind_come_out_in_plan_order() {
    use OperationKind::{AddMembership, CreateGroup, CreateUser, UpdateUser};
    let op = |kind, target: &str, group: Option<&str>| {
        let mut op = Operation::new(kind, target, "");
        op.group = group.map(Name::from);
        Box::new(op)
    };
    // Two parts, each sorted on its own. The second's update comes before the first's (a
    // rename keeps the old username as its target); their memberships follow each other.
    let mut first = ByKind::default();
    first.extend([
        op(AddMembership, "ann", Some("B")),
        op(UpdateUser, "zed", None),
        op(AddMembership, "Ann", Some("A")),
        op(AddMembership, "bob", Some("A")),
    ]);
    first.sort();
    let mut second = ByKind::default();
    second.extend([
        op(UpdateUser, "amy", None),
        op(AddMembership, "carl", Some("A")),
        op(CreateUser, "carl", None),
    ]);
    second.sort();
    let mut all = ByKind::default();
    all.append(first);
    all.append(second);
    all.extend([op(CreateGroup, "team", None), op(CreateGroup, "Band", None)]);
    let mut expected: Vec<Box<Operation>> = all.lists.iter().flatten().cloned().collect();
    expected.sort_by(|a, b| a.plan_order(b));
    let summaries = |ops: &[Box<Operation>]| ops.iter().map(|op| op.summary()).collect::<Vec<_>>();
    let planned = all.in_plan_order();
    assert_eq!(summaries(&planned), summaries(&expected));
    assert_eq!(
        planned[3].target.as_str(),
        "amy",
        "{:?}",
        summaries(&planned)
    );
}
