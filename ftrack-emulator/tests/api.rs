//! End-to-end tests of the HTTP API: auth, strict mode, atomicity, uniqueness, the
//! query language on real data, role actions, counters, faults and admin endpoints.

mod common;

use common::*;
use serde_json::{json, Value};

fn ids(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn create(t: &str, data: Value) -> Value {
    json!({"action": "create", "entity_type": t, "entity_data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_required_on_every_request() {
    let emu = start().await;
    for headers in [
        vec![],
        vec![("ftrack-user", USER), ("ftrack-api-key", "wrong")],
        vec![("ftrack-user", "nobody"), ("ftrack-api-key", KEY)],
    ] {
        let r = request(
            &emu,
            "POST",
            "/api",
            &headers,
            r#"[{"action":"query_server_information"}]"#,
        )
        .await;
        assert_eq!(r.status, 401);
        let v = r.json();
        assert_eq!(v["exception"], "InvalidCredentialsError");
        assert!(v["error_code"].is_null());
    }
    let r = api(&emu, json!([{"action": "query_server_information"}])).await;
    assert_eq!(r.status, 200);
    assert!(r.json()[0]["version"].is_string());
    assert_eq!(emu.counters().requests, 4);
    assert_eq!(emu.counters().errors, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_guarantees_and_schemas() {
    let emu = start().await;
    let page = query(&emu, "select username, is_active, user_type.name from User").await;
    assert_eq!(page["data"][0]["username"], USER);
    assert_eq!(page["data"][0]["is_active"], true);
    assert_eq!(page["data"][0]["user_type"]["name"], "ftrack");
    let r = api(&emu, json!([{"action": "query_schemas"}])).await.json();
    let names: Vec<&str> = r[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    for t in [
        "User",
        "Group",
        "Membership",
        "SecurityRole",
        "UserSecurityRole",
        "UserSecurityRoleProject",
        "Project",
        "UserType",
        "Metadata",
        "Location",
        "ProjectSchema",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    // Reset keeps the guarantees.
    emu.reset();
    assert_eq!(
        query(&emu, "User").await["data"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_is_atomic_and_strict_mode_sets_status() {
    let emu = start().await;
    let before = emu.dump();
    let ops = json!([
        create("User", json!({"username": "a"})),
        create("Group", json!({"name": "g"})),
        create("User", json!({"username": "a"})),
    ]);
    let r = api(&emu, ops.clone()).await;
    assert_eq!(r.status, 200, "non-strict errors are HTTP 200");
    let v = r.json();
    assert_eq!(v["exception"], "DuplicateEntryError");
    assert!(v["content"].as_str().unwrap().contains("operation 2"));
    assert!(v["content"].as_str().unwrap().contains("username"));
    assert_eq!(emu.dump(), before, "nothing of the failed batch remains");

    let r = api_strict(&emu, ops).await;
    assert_eq!(r.status, 409);
    assert_eq!(r.json()["exception"], "DuplicateEntryError");

    // Same for a failure in the middle of updates and deletes.
    let r = api(
        &emu,
        json!([create("User", json!({"id": "u1", "username": "u1"}))]),
    )
    .await;
    assert_eq!(r.json()[0]["data"]["username"], "u1");
    let snapshot = emu.dump();
    let r = api(
        &emu,
        json!([
            {"action": "update", "entity_type": "User", "entity_key": ["u1"], "entity_data": {"is_active": false}},
            {"action": "delete", "entity_type": "User", "entity_key": ["u1"]},
            {"action": "query", "expression": "User where"},
        ]),
    )
    .await;
    assert_eq!(r.json()["exception"], "ParseError");
    assert_eq!(emu.dump(), snapshot);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uniqueness_required_and_references() {
    let emu = start().await;
    let r = api(
        &emu,
        json!([
            create("User", json!({"id": "u1", "username": "alice"})),
            create(
                "Group",
                json!({"id": "g1", "name": "artists", "local": false})
            ),
            create(
                "Membership",
                json!({"user": {"__entity_type__": "User", "id": "u1"}, "group_id": "g1"})
            ),
        ]),
    )
    .await
    .json();
    assert_eq!(r[2]["data"]["user_id"], "u1");
    let dup = api(
        &emu,
        json!([create(
            "Membership",
            json!({"user_id": "u1", "group_id": "g1"})
        )]),
    )
    .await
    .json();
    assert_eq!(dup["exception"], "DuplicateEntryError");
    let missing = api(
        &emu,
        json!([create("Membership", json!({"user_id": "u1"}))]),
    )
    .await
    .json();
    assert_eq!(missing["exception"], "ValidationError");
    assert!(missing["content"].as_str().unwrap().contains("group_id"));
    let dangling = api(
        &emu,
        json!([create(
            "Membership",
            json!({"user_id": "u1", "group_id": "nope"})
        )]),
    )
    .await
    .json();
    assert!(dangling["content"]
        .as_str()
        .unwrap()
        .contains("does not exist"));
    let unknown_attr = api(
        &emu,
        json!([create("User", json!({"username": "b", "shoe_size": 4}))]),
    )
    .await
    .json();
    assert!(unknown_attr["content"]
        .as_str()
        .unwrap()
        .contains("shoe_size"));
    let wrong_type = api(
        &emu,
        json!([create("User", json!({"username": "b", "is_active": "yes"}))]),
    )
    .await
    .json();
    assert!(wrong_type["content"].as_str().unwrap().contains("boolean"));
    let dup_name = api(&emu, json!([{"action": "update", "entity_type": "User", "entity_key": ["u1"], "entity_data": {"username": USER}}]))
        .await
        .json();
    assert_eq!(dup_name["exception"], "DuplicateEntryError");
    let immut = api(&emu, json!([{"action": "update", "entity_type": "User", "entity_key": ["u1"], "entity_data": {"id": "other"}}]))
        .await
        .json();
    assert!(immut["content"].as_str().unwrap().contains("immutable"));
    // Deleting the user cascades to its membership.
    let r = api(
        &emu,
        json!([{"action": "delete", "entity_type": "User", "entity_key": ["u1"]}]),
    )
    .await
    .json();
    assert_eq!(r[0], json!({"action": "delete", "data": true}));
    assert_eq!(query(&emu, "Membership").await["data"], json!([]));
    let unknown = api(&emu, json!([{"action": "frobnicate"}])).await.json();
    assert!(unknown["content"]
        .as_str()
        .unwrap()
        .contains("Invalid action u'frobnicate'"));
}

async fn seed(emu: &ftrack_emulator::RunningEmulator) {
    let mut ops = vec![
        create("Group", json!({"id": "g1", "name": "artists"})),
        create(
            "Group",
            json!({"id": "g2", "name": "leads", "parent_id": "g1"}),
        ),
        create("Group", json!({"id": "g3", "name": "it", "local": true})),
        create(
            "SecurityRole",
            json!({"id": "r1", "name": "Project Manager", "type": "PROJECT"}),
        ),
        create(
            "SecurityRole",
            json!({"id": "r2", "name": "API", "type": "API"}),
        ),
        create("ProjectSchema", json!({"id": "ps1", "name": "Film"})),
        create(
            "Project",
            json!({"id": "p1", "name": "show1", "full_name": "Show One", "project_schema_id": "ps1"}),
        ),
        create(
            "Project",
            json!({"id": "p2", "name": "secret_show", "is_private": true,
                   "project_schema": {"__entity_type__": "ProjectSchema", "id": "ps1"}}),
        ),
    ];
    for i in 0..30 {
        ops.push(create(
            "User",
            json!({"id": format!("u{i:02}"), "username": format!("user{i:02}"), "email": format!("u{i}@studio.test"),
                   "is_active": i % 5 != 0, "first_name": if i % 2 == 0 {"Ann"} else {"Bob"}}),
        ));
        let g = if i < 10 { "g1" } else { "g3" };
        ops.push(create(
            "Membership",
            json!({"user_id": format!("u{i:02}"), "group_id": g}),
        ));
    }
    ops.push(create(
        "Membership",
        json!({"user_id": "u01", "group_id": "g2"}),
    ));
    ops.push(create(
        "Metadata",
        json!({"parent_id": "u03", "parent_type": "User", "key": "ldap.id", "value": "X-3"}),
    ));
    let r = api(emu, Value::Array(ops)).await;
    assert!(r.json().is_array(), "{}", r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_language_on_real_data() {
    let emu = start().await;
    seed(&emu).await;
    let n = |expr: &'static str| {
        let emu = &emu;
        async move {
            let p = query(emu, expr).await;
            p["data"].as_array().map(|a| a.len()).unwrap()
        }
    };
    assert_eq!(
        n("select id from User where username like 'user0%'").await,
        10
    );
    assert_eq!(
        n("select id from User where username not_like \"user0%\"").await,
        21
    );
    assert_eq!(n("select id from User where is_active is False").await, 6);
    assert_eq!(
        n("select id from User where is_active = false and first_name is 'Ann'").await,
        3
    );
    assert_eq!(
        n("select id from User where id in (u01, u02,'u03',\"zz\")").await,
        3
    );
    assert_eq!(
        n("select id from User where id not_in (u01, u02)").await,
        29
    );
    assert_eq!(n("select id from User where username > user25").await, 4);
    assert_eq!(
        n("select id from User where username >= user25 and username <= user27").await,
        3
    );
    assert_eq!(
        n("select id from User where memberships any (group.name is artists)").await,
        10
    );
    assert_eq!(
        n("select id from User where memberships.group.name is \"leads\"").await,
        1
    );
    assert_eq!(
        n("select id from User where not memberships any ()").await,
        1
    ); // the API user
    assert_eq!(
        n("select id from Group where parent has (name is artists)").await,
        1
    );
    assert_eq!(n("select id from Group where parent_id is None").await, 2);
    assert_eq!(n("select id from Group where parent is_not None").await, 1);
    assert_eq!(
        n("select id from User where metadata any (key is \"ldap.id\" and value is 'X-3')").await,
        1
    );
    assert_eq!(n("select id from User where id in (select user_id from Membership where group.local is True)").await, 20);
    assert_eq!(n("select id from User where (username is user01 or username is user02) and is_active is true").await, 2);
    assert_eq!(
        n("select id from Membership where user.username is user01").await,
        2
    );
    assert_eq!(
        n("select id from Membership where user_id in (u01, u02)").await,
        3
    );

    let p = query(&emu, "select username, memberships.group.name, metadata.key, metadata.value from User where id is u03").await;
    let u = &p["data"][0];
    assert_eq!(u["__entity_type__"], "User");
    assert_eq!(u["resource_type"], "user");
    assert_eq!(u["memberships"][0]["group"]["name"], "artists");
    assert_eq!(u["memberships"][0]["__entity_type__"], "Membership");
    assert_eq!(
        u["metadata"][0],
        json!({"__entity_type__": "Metadata", "parent_id": "u03", "parent_type": "User", "key": "ldap.id", "value": "X-3"})
    );

    let p = query(&emu, "select username from User where username like 'user%' order by username desc offset 2 limit 3").await;
    assert_eq!(ids(&p), vec!["u27", "u26", "u25"]);
    assert_eq!(p["metadata"]["next"]["offset"], 5);
    let p = query(
        &emu,
        "select username from User order by is_active, username limit 2",
    )
    .await;
    assert_eq!(ids(&p), vec!["u00", "u05"]);
    let p = query(&emu, "select id from User offset 30 limit 10").await;
    assert_eq!(p["metadata"]["next"]["offset"], Value::Null);
    assert_eq!(ids(&p).len(), 1);

    for bad in [
        "select nope from User",
        "User where nope is 1",
        "User where username has (id is 1)",
        "Nope",
        "select id from User where (",
        "select id from User where id in (select id from",
    ] {
        let r = api_strict(&emu, json!([{"action": "query", "expression": bad}])).await;
        assert_eq!(r.status, 400, "{bad}: {}", r.body);
        assert!(r.json()["exception"].is_string());
    }
}

fn role_op(action: &str, user: &str, role: &str, scope: Value) -> Value {
    let mut op = json!({"action": action, "user_id": user, "role_id": role});
    if let (Some(o), Value::Object(extra)) = (op.as_object_mut(), scope) {
        o.extend(extra);
    }
    op
}

fn add(user: &str, role: &str) -> Value {
    role_op("add_user_security_role", user, role, json!({}))
}

fn grant(user: &str, role: &str, scope: Value) -> Value {
    role_op("grant_user_security_role_project", user, role, scope)
}

fn revoke(user: &str, role: &str, scope: Value) -> Value {
    role_op("revoke_user_security_role_project", user, role, scope)
}

fn remove(user: &str, role: &str) -> Value {
    role_op("remove_user_security_role", user, role, json!({}))
}

/// Usernames a query selects, sorted.
async fn usernames(emu: &ftrack_emulator::RunningEmulator, expr: &str) -> Vec<String> {
    let mut names: Vec<String> = query(emu, expr).await["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn string_literals_take_backslash_escapes_in_both_quote_styles() {
    let emu = start().await;
    let awkward = r#"o"brien's\x"#;
    let names = [awkward, r"back\slash", "x", r#"x" or username like "%"#];
    let ops: Vec<Value> = names
        .iter()
        .map(|n| create("User", json!({"username": n})))
        .collect();
    assert!(api(&emu, Value::Array(ops)).await.json().is_array());
    for expr in [
        r#"select username from User where username is "o\"brien's\\x""#,
        r#"select username from User where username is "o\"brien\'s\\x""#,
        r#"select username from User where username is 'o"brien\'s\\x'"#,
        r#"select username from User where username = 'o\"brien\'s\\x'"#,
        r#"select username from User where username like "%\"brien's%""#,
        r#"select username from User where id in (select id from User where username is "o\"brien's\\x")"#,
    ] {
        assert_eq!(usernames(&emu, expr).await, [awkward], "{expr}");
    }
    assert_eq!(
        usernames(
            &emu,
            r#"select username from User where username in ('o"brien\'s\\x', "back\\slash")"#
        )
        .await,
        [r"back\slash", awkward]
    );
    // An escaped quote stays inside the value: this is one literal, not an `or`.
    assert_eq!(
        usernames(
            &emu,
            r#"select username from User where username is "x\" or username like \"%""#
        )
        .await,
        [r#"x" or username like "%"#]
    );

    // Malformed literals are a ParseError naming what is wrong, 400 in strict mode.
    for (expr, says) in [
        (r#"User where username is "back\slash""#, "unknown escape"),
        (r#"User where username like "50\%""#, "unknown escape"),
        (r#"User where username is "o\""#, "escaped quote"),
        (r#"User where username is 'o\'"#, "escaped quote"),
        (r#"User where username is "o\"#, "lone backslash"),
    ] {
        let r = api_strict(&emu, json!([{"action": "query", "expression": expr}])).await;
        assert_eq!(r.status, 400, "{expr}: {}", r.body);
        let v = r.json();
        assert_eq!(v["exception"], "ParseError", "{expr}: {v}");
        let content = v["content"].as_str().unwrap();
        assert!(content.starts_with("operation 0 (query)"), "{content}");
        assert!(content.contains(says), "{expr}: {content}");
    }
}

async fn count(emu: &ftrack_emulator::RunningEmulator, expr: &str) -> usize {
    query(emu, expr).await["data"].as_array().unwrap().len()
}

/// `(exception, content)` of a failed single-operation batch.
async fn fails(emu: &ftrack_emulator::RunningEmulator, op: Value) -> (String, String) {
    let v = api(emu, json!([op])).await.json();
    assert!(v.is_object(), "expected an error, got {v}");
    (
        v["exception"].as_str().unwrap().to_string(),
        v["content"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_gives_the_role_with_no_project_access() {
    let emu = start().await;
    seed(&emu).await;
    let r = api(&emu, json!([add("u01", "r1")])).await.json();
    assert_eq!(r[0]["action"], "add_user_security_role");
    assert_eq!(r[0]["data"]["user_id"], "u01");
    assert_eq!(r[0]["data"]["security_role_id"], "r1");
    assert_eq!(r[0]["data"]["is_all_open_projects"], false);
    assert_eq!(count(&emu, "UserSecurityRoleProject").await, 0);
    let p = query(&emu, "select is_all_open_projects, user_security_role_projects from UserSecurityRole where user_id is u01").await;
    assert_eq!(p["data"][0]["is_all_open_projects"], false);
    assert_eq!(p["data"][0]["user_security_role_projects"], json!([]));

    // Old behaviour: ValidationError.
    let (exc, msg) = fails(&emu, add("u01", "r1")).await;
    assert_eq!(exc, "DuplicateEntryError");
    assert!(msg.contains("\"u01\"") && msg.contains("\"r1\""), "{msg}");
    let r = api_strict(&emu, json!([add("u01", "r1")])).await;
    assert_eq!(r.status, 409);

    // Old behaviour: an API role was added like any other.
    let (exc, msg) = fails(&emu, add("u02", "r2")).await;
    assert_eq!(exc, "ValidationError");
    assert!(
        msg.contains("\"API\" (r2)") && msg.contains("of type \"API\"") && msg.contains("PROJECT"),
        "{msg}"
    );
    assert_eq!(
        count(&emu, "UserSecurityRole where user_id is u02").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_on_a_role_the_user_does_not_hold_are_not_found() {
    let emu = start().await;
    seed(&emu).await;
    let want = "User 'u01' does not have the security role 'r1'.";
    for op in [
        // Old behaviour: the grant created the role assignment.
        grant("u01", "r1", json!({"project_id": "p1"})),
        grant("u01", "r1", json!({"all_open_projects": true})),
        revoke("u01", "r1", json!({"project_id": "p1"})),
        remove("u01", "r1"),
        role_op("revoke_user_security_role", "u01", "r1", json!({})),
        role_op(
            "update_user_security_role",
            "u01",
            "r1",
            json!({"new_role_id": "r2"}),
        ),
    ] {
        let (exc, msg) = fails(&emu, op.clone()).await;
        assert_eq!(exc, "NotFoundError", "{op}");
        assert_eq!(msg, want, "{op}");
        let r = api_strict(&emu, json!([op.clone()])).await;
        assert_eq!(r.status, 404, "{op}");
        assert_eq!(r.json()["content"], want);
    }
    // Also inside a batch the content is the server's message, unprefixed.
    let r = api(
        &emu,
        json!([
            add("u02", "r1"),
            grant("u01", "r1", json!({"project_id": "p1"}))
        ]),
    )
    .await
    .json();
    assert_eq!(r["content"], want);
    assert_eq!(count(&emu, "UserSecurityRole").await, 0, "nothing created");
    // With the add in front, in the same batch, the grant works.
    let r = api(
        &emu,
        json!([
            add("u01", "r1"),
            grant("u01", "r1", json!({"project_id": "p1"}))
        ]),
    )
    .await
    .json();
    assert_eq!(r[1]["action"], "grant_user_security_role_project");
    assert_eq!(count(&emu, "UserSecurityRoleProject").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_checks_arguments_and_refuses_a_scope_already_granted() {
    let emu = start().await;
    seed(&emu).await;
    api(&emu, json!([add("u01", "r1")])).await;
    for (op, needle) in [
        (
            json!({"action": "grant_user_security_role_project", "role_id": "r1", "project_id": "p1"}),
            "user_id",
        ),
        (
            json!({"action": "grant_user_security_role_project", "user_id": "u01", "project_id": "p1"}),
            "role_id",
        ),
        (grant("nobody", "r1", json!({"project_id": "p1"})), "nobody"),
        (grant("u01", "nope", json!({"project_id": "p1"})), "nope"),
        (grant("u01", "r1", json!({"project_id": "p9"})), "p9"),
        (grant("u01", "r1", json!({})), "exactly one"),
        (
            grant("u01", "r1", json!({"all_open_projects": false})),
            "exactly one",
        ),
        (
            grant(
                "u01",
                "r1",
                json!({"project_id": "p1", "all_open_projects": true}),
            ),
            "exactly one",
        ),
        (
            grant("u01", "r1", json!({"all_open_projects": "yes"})),
            "all_open_projects",
        ),
        (grant("u01", "r1", json!({"project_id": 5})), "project_id"),
        (revoke("u01", "r1", json!({})), "exactly one"),
    ] {
        let (exc, msg) = fails(&emu, op.clone()).await;
        assert_eq!(exc, "ValidationError", "{op}: {msg}");
        assert!(msg.contains(needle), "{op}: {msg}");
    }

    let r = api(
        &emu,
        json!([grant("u01", "r1", json!({"all_open_projects": true}))]),
    )
    .await
    .json();
    assert_eq!(r[0]["data"]["is_all_open_projects"], true);
    // Old behaviour: granting again was accepted silently.
    let (exc, msg) = fails(&emu, grant("u01", "r1", json!({"all_open_projects": true}))).await;
    assert_eq!(exc, "DuplicateEntryError");
    assert!(msg.contains("all open projects"), "{msg}");
    api(
        &emu,
        json!([grant("u01", "r1", json!({"project_id": "p1"}))]),
    )
    .await;
    let (exc, msg) = fails(&emu, grant("u01", "r1", json!({"project_id": "p1"}))).await;
    assert_eq!(exc, "DuplicateEntryError");
    assert!(msg.contains("'p1'"), "{msg}");
    // A private project is granted by id like any other.
    let r = api(
        &emu,
        json!([grant("u01", "r1", json!({"project_id": "p2"}))]),
    )
    .await;
    assert!(r.json().is_array(), "{}", r.body);
    let p = query(&emu, "select project.name, project.is_private from UserSecurityRoleProject where user_security_role.user_id is u01 order by project.name").await;
    let rows: Vec<(Value, Value)> = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["project"]["name"].clone(),
                r["project"]["is_private"].clone(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (json!("secret_show"), json!(true)),
            (json!("show1"), json!(false))
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grant_refuses_a_held_role_that_is_not_a_project_role() {
    let text = r#"{
        "User": [{"id": "u1", "username": "alice"}],
        "SecurityRole": [{"id": "r2", "name": "API", "type": "API"}],
        "UserSecurityRole": [{"id": "usr1", "user_id": "u1", "security_role_id": "r2"}]
    }"#;
    let emu = start().await;
    emu.load(ftrack_emulator::StateDump::from_json(text).unwrap())
        .unwrap();
    let (exc, msg) = fails(&emu, grant("u1", "r2", json!({"all_open_projects": true}))).await;
    assert_eq!(exc, "ValidationError");
    assert!(msg.contains("of type \"API\""), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revoke_narrows_and_keeps_the_role() {
    let emu = start().await;
    seed(&emu).await;
    api(&emu, json!([add("u01", "r1")])).await;
    // Old behaviour: revoking what was not granted was accepted.
    for scope in [
        json!({"project_id": "p1"}),
        json!({"all_open_projects": true}),
    ] {
        let (exc, msg) = fails(&emu, revoke("u01", "r1", scope.clone())).await;
        assert_eq!(exc, "NotFoundError", "{scope}");
        assert!(msg.contains("'u01'") && msg.contains("'r1'"), "{msg}");
    }
    let r = api_strict(
        &emu,
        json!([revoke("u01", "r1", json!({"project_id": "p1"}))]),
    )
    .await;
    assert_eq!(r.status, 404);
    api(
        &emu,
        json!([
            grant("u01", "r1", json!({"project_id": "p1"})),
            grant("u01", "r1", json!({"all_open_projects": true}))
        ]),
    )
    .await;
    let r = api(
        &emu,
        json!([
            revoke("u01", "r1", json!({"project_id": "p1"})),
            revoke("u01", "r1", json!({"all_open_projects": true}))
        ]),
    )
    .await
    .json();
    assert_eq!(r[0]["action"], "revoke_user_security_role_project");
    assert_eq!(r[1]["data"]["is_all_open_projects"], false);
    assert_eq!(count(&emu, "UserSecurityRoleProject").await, 0);
    let left = query(
        &emu,
        "select user_id, security_role_id, is_all_open_projects from UserSecurityRole",
    )
    .await;
    assert_eq!(left["data"].as_array().unwrap().len(), 1, "the role stays");
    assert_eq!(left["data"][0]["is_all_open_projects"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_takes_the_role_and_its_scopes() {
    let emu = start().await;
    seed(&emu).await;
    for action in ["remove_user_security_role", "revoke_user_security_role"] {
        api(
            &emu,
            json!([
                add("u01", "r1"),
                grant("u01", "r1", json!({"project_id": "p1"})),
                grant("u01", "r1", json!({"all_open_projects": true}))
            ]),
        )
        .await;
        assert_eq!(count(&emu, "UserSecurityRoleProject").await, 1);
        let r = api(&emu, json!([role_op(action, "u01", "r1", json!({}))]))
            .await
            .json();
        assert_eq!(r[0], json!({"action": action, "data": true}));
        assert_eq!(count(&emu, "UserSecurityRole").await, 0, "{action}");
        assert_eq!(count(&emu, "UserSecurityRoleProject").await, 0, "{action}");
        let (exc, msg) = fails(&emu, role_op(action, "u01", "r1", json!({}))).await;
        assert_eq!(exc, "NotFoundError");
        assert_eq!(msg, "User 'u01' does not have the security role 'r1'.");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn update_user_security_role_swaps_the_role_and_keeps_the_scopes() {
    let emu = start().await;
    seed(&emu).await;
    let r = api(
        &emu,
        json!([
            create(
                "SecurityRole",
                json!({"id": "r3", "name": "Supervisor", "type": "PROJECT"})
            ),
            add("u01", "r1"),
            grant("u01", "r1", json!({"project_id": "p1"})),
            role_op(
                "update_user_security_role",
                "u01",
                "r1",
                json!({"new_role_id": "r3"})
            ),
        ]),
    )
    .await
    .json();
    assert_eq!(r[3]["action"], "update_user_security_role");
    assert_eq!(r[3]["data"]["security_role_id"], "r3");
    let p = query(
        &emu,
        "select security_role.name, user_security_role_projects.project_id from UserSecurityRole",
    )
    .await;
    assert_eq!(p["data"][0]["security_role"]["name"], "Supervisor");
    assert_eq!(
        p["data"][0]["user_security_role_projects"][0]["project_id"],
        "p1"
    );
    let (exc, _) = fails(
        &emu,
        role_op(
            "update_user_security_role",
            "u01",
            "r3",
            json!({"new_role_id": "nope"}),
        ),
    )
    .await;
    assert_eq!(exc, "ValidationError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_role_type_is_queryable() {
    let emu = start().await;
    seed(&emu).await;
    let p = query(
        &emu,
        "select id, name, type from SecurityRole order by name",
    )
    .await;
    let got: Vec<(Value, Value)> = p["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["name"].clone(), r["type"].clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (json!("API"), json!("API")),
            (json!("Project Manager"), json!("PROJECT"))
        ]
    );
    assert_eq!(
        count(
            &emu,
            "select id from SecurityRole where type is \"PROJECT\""
        )
        .await,
        1
    );
    let r = api(
        &emu,
        json!([create("SecurityRole", json!({"name": "Artist"}))]),
    )
    .await
    .json();
    assert_eq!(r[0]["data"]["type"], "PROJECT", "schema default");
    let schemas = api(&emu, json!([{"action": "query_schemas"}])).await.json();
    let role = schemas[0]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "SecurityRole")
        .unwrap();
    assert_eq!(role["properties"]["type"]["type"], "string");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn project_schema_is_seeded_and_required_on_create() {
    let emu = start().await;
    let seeded = query(&emu, "select id, name from ProjectSchema").await;
    assert_eq!(seeded["data"].as_array().unwrap().len(), 1);
    assert_eq!(seeded["data"][0]["name"], "VFX Scheme");
    let schema_id = seeded["data"][0]["id"].as_str().unwrap().to_string();

    // Old behaviour: a project without a schema was created.
    let (exc, msg) = fails(&emu, create("Project", json!({"name": "show1"}))).await;
    assert_eq!(exc, "ValidationError");
    assert!(
        msg.contains("project_schema") && msg.contains("`select id, name from ProjectSchema`"),
        "{msg}"
    );
    let (exc, _) = fails(
        &emu,
        create(
            "Project",
            json!({"name": "show1", "project_schema_id": "nope"}),
        ),
    )
    .await;
    assert_eq!(exc, "ValidationError");
    let r = api(
        &emu,
        json!([create(
            "Project",
            json!({"id": "p1", "name": "show1",
            "project_schema": {"__entity_type__": "ProjectSchema", "id": schema_id}})
        )]),
    )
    .await
    .json();
    let data = &r[0]["data"];
    assert_eq!(data["project_schema_id"], schema_id.as_str());
    assert_eq!(data["is_global"], false);
    assert_eq!(data["is_private"], false);
    assert_eq!(data["status"], "active");
    assert_eq!(data["context_type"], "show");
    assert_eq!(
        query(&emu, "select project_schema.name from Project").await["data"][0]["project_schema"]
            ["name"],
        "VFX Scheme"
    );
    // Clearing it on update is refused too.
    let (exc, msg) = fails(
        &emu,
        json!({"action": "update", "entity_type": "Project", "entity_key": ["p1"],
               "entity_data": {"project_schema_id": null}}),
    )
    .await;
    assert_eq!(exc, "ValidationError");
    assert!(msg.contains("project_schema"), "{msg}");
    // A schema in use cannot be deleted; names are unique.
    let (exc, msg) = fails(
        &emu,
        json!({"action": "delete", "entity_type": "ProjectSchema", "entity_key": [schema_id]}),
    )
    .await;
    assert_eq!(exc, "ValidationError");
    assert!(msg.contains("\"p1\""), "{msg}");
    let (exc, _) = fails(&emu, create("ProjectSchema", json!({"name": "VFX Scheme"}))).await;
    assert_eq!(exc, "DuplicateEntryError");

    // Reset and load keep it.
    emu.reset();
    assert_eq!(
        count(&emu, "ProjectSchema where name is \"VFX Scheme\"").await,
        1
    );
    let text = r#"{
        "ProjectSchema": [{"id": "ps1", "name": "Film"}],
        "Project": [{"id": "p1", "name": "old_show"},
                    {"id": "p2", "name": "new_show", "project_schema_id": "ps1", "is_private": true}]
    }"#;
    emu.load(ftrack_emulator::StateDump::from_json(text).unwrap())
        .unwrap();
    let p = query(
        &emu,
        "select name, is_private, project_schema.name from Project order by name",
    )
    .await;
    assert_eq!(p["data"][0]["name"], "new_show");
    assert_eq!(p["data"][0]["project_schema"]["name"], "Film");
    assert_eq!(p["data"][0]["is_private"], true);
    assert_eq!(p["data"][1]["project_schema"]["name"], "VFX Scheme");
    assert_eq!(p["data"][1]["is_private"], false);
    assert_eq!(count(&emu, "Project where is_private is true").await, 1);
    // A dump loads back unchanged (the seeded schema is not duplicated).
    let d = emu.dump();
    assert_eq!(d.of("ProjectSchema").len(), 2);
    emu.load(d.clone()).unwrap();
    assert_eq!(emu.dump(), d);
    let bad = emu
        .load(
            ftrack_emulator::StateDump::from_json(
                r#"{"Project": [{"name": "x", "project_schema_id": "nope"}]}"#,
            )
            .unwrap(),
        )
        .unwrap_err()
        .to_string();
    assert!(bad.contains("Project[0]") && bad.contains("nope"), "{bad}");
}

/// The host repository's seed and fixture state files keep loading.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_repository_state_files_still_load() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut files = vec![root.join("tests/demo/ftrack-seed.json")];
    for dir in ["tests/fixtures", "examples-rules"] {
        let mut stack = vec![root.join(dir)];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.is_dir() {
                    stack.push(p);
                } else if p.file_name().is_some_and(|n| n == "ftrack.json") {
                    files.push(p);
                }
            }
        }
    }
    let files: Vec<_> = files.into_iter().filter(|p| p.exists()).collect();
    if files.is_empty() {
        return; // the crate outside its workspace
    }
    let emu = start().await;
    for f in &files {
        let dump = ftrack_emulator::StateDump::from_file(f)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        emu.load(dump)
            .unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        let loaded = emu.dump();
        for p in loaded.of("Project") {
            assert!(p["project_schema_id"].is_string(), "{}: {p}", f.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_faults_and_admin_endpoints() {
    let emu = start().await;
    seed(&emu).await;
    emu.reset_counters();
    query(&emu, "User").await;
    query(
        &emu,
        "select id from User where id in (select user_id from Membership)",
    )
    .await;
    query(&emu, "Group").await;
    api(&emu, json!([create("User", json!({"username": "z"})), {"action": "query", "expression": "Membership"}])).await;
    let c = emu.counters();
    assert_eq!(c.requests, 4);
    assert_eq!(c.queries_on("User"), 2);
    assert_eq!(c.queries_on("Group"), 1);
    assert_eq!(c.queries_on("Membership"), 1);
    assert_eq!(c.operations_of("query"), 4);
    assert_eq!(c.operations_of("create"), 1);
    let r = request(&emu, "GET", "/_emulator/counters", &[], "")
        .await
        .json();
    assert_eq!(r["queries"]["User"], 2);

    // 500 every 2nd request, before executing.
    emu.set_faults(ftrack_emulator::Faults {
        error_every_nth: Some(2),
        ..Default::default()
    });
    assert_eq!(
        api(&emu, json!([{"action": "query_server_information"}]))
            .await
            .status,
        200
    );
    let r = api(&emu, json!([create("User", json!({"username": "f1"}))])).await;
    assert_eq!(r.status, 500);
    assert_eq!(r.json()["exception"], "ServerError");
    assert_eq!(
        query(&emu, "select id from User where username is f1").await["data"],
        json!([])
    );

    // After executing: the change is kept although the reply is 500.
    let body = r#"{"error_every_nth": 1, "error_after_execute": true}"#;
    assert_eq!(
        request(&emu, "PUT", "/_emulator/faults", &[], body)
            .await
            .status,
        200
    );
    let r = api(&emu, json!([create("User", json!({"username": "f2"}))])).await;
    assert_eq!(r.status, 500);
    emu.set_faults(ftrack_emulator::Faults::none());
    assert_eq!(
        query(&emu, "select id from User where username is f2").await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // 429 with Retry-After.
    let body = r#"{"rate_limit_every_nth": 1, "retry_after_secs": 3}"#;
    request(&emu, "PUT", "/_emulator/faults", &[], body).await;
    let r = api(&emu, json!([{"action": "query_server_information"}])).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.header("retry-after"), Some("3"));

    // Everything after the 2nd request fails.
    emu.set_faults(ftrack_emulator::Faults {
        fail_after_requests: Some(2),
        ..Default::default()
    });
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.push(
            api(&emu, json!([{"action": "query_server_information"}]))
                .await
                .status,
        );
    }
    assert_eq!(statuses, vec![200, 200, 500, 500]);
    let bad = request(&emu, "PUT", "/_emulator/faults", &[], r#"{"nope": 1}"#).await;
    assert_eq!(bad.status, 400);
    emu.set_faults(ftrack_emulator::Faults::none());

    // Latency.
    emu.set_faults(ftrack_emulator::Faults {
        latency_ms: 150,
        ..Default::default()
    });
    let t = std::time::Instant::now();
    api(&emu, json!([{"action": "query_server_information"}])).await;
    assert!(t.elapsed() >= std::time::Duration::from_millis(150));
    emu.set_faults(ftrack_emulator::Faults::none());

    // State round trip through the admin endpoints.
    let state = request(&emu, "GET", "/_emulator/state", &[], "").await;
    assert_eq!(state.status, 200);
    let dump: ftrack_emulator::StateDump = serde_json::from_str(&state.body).unwrap();
    assert_eq!(dump, emu.dump());
    assert_eq!(
        request(&emu, "POST", "/_emulator/reset", &[], "")
            .await
            .status,
        200
    );
    assert_eq!(emu.dump().of("User").len(), 1);
    assert_eq!(
        request(&emu, "PUT", "/_emulator/state", &[], &state.body)
            .await
            .status,
        200
    );
    assert_eq!(emu.dump(), dump);
    let bad = request(
        &emu,
        "PUT",
        "/_emulator/state",
        &[],
        r#"{"User": [{"username": "a"}, {"id": 5}]}"#,
    )
    .await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.json()["error"].as_str().unwrap().contains("User[1]"),
        "{}",
        bad.body
    );
    emu.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_files_are_hand_writable() {
    let text = r#"{
        "User": [{"id": "u1", "username": "alice", "email": "alice@studio.test"}],
        "Group": [{"id": "g1", "name": "artists"}],
        "Membership": [{"user_id": "u1", "group_id": "g1"}],
        "SecurityRole": [{"id": "r1", "name": "Supervisor"}],
        "UserSecurityRole": [{"user_id": "u1", "security_role_id": "r1", "is_all_projects": true}],
        "Metadata": [{"parent_id": "u1", "parent_type": "User", "key": "ldap2ftrack.id", "value": "abc"}]
    }"#;
    let state = ftrack_emulator::StateDump::from_json(text).unwrap();
    let emu = ftrack_emulator::spawn(common_config().state(state))
        .await
        .unwrap();
    let d = emu.dump();
    assert_eq!(d.of("User").len(), 2, "alice plus the API user");
    assert_eq!(d.of("User")[0]["is_active"], true, "schema default");
    assert_eq!(d.of("Group")[0]["local"], false);
    assert_eq!(d.of("UserSecurityRole")[0]["is_all_open_projects"], true);
    assert_eq!(
        d.of("SecurityRole")[0]["type"],
        "PROJECT",
        "type defaults to PROJECT"
    );
    assert!(d.of("Membership")[0]["id"].is_string(), "ids are generated");
    assert_eq!(d.of("UserType")[0]["name"], "ftrack");

    for (bad, needle) in [
        (r#"{"Usr": []}"#, "Usr"),
        (
            r#"{"User": [{"id": "u1"}]}"#,
            "User[0]: missing required attribute(s): username",
        ),
        (
            r#"{"User": [{"username": "a"}, {"username": "a"}]}"#,
            "User[1]: Duplicate",
        ),
        (
            r#"{"Membership": [{"user_id": "x", "group_id": "y"}]}"#,
            "Membership[0]",
        ),
        (
            r#"{"User": [{"username": "a", "is_active": "yes"}]}"#,
            "User[0]",
        ),
        (r#"{"Group": [{"name": "a", "parent": "g"}]}"#, "parent_id"),
    ] {
        let err = emu
            .load(ftrack_emulator::StateDump::from_json(bad).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(needle), "{bad}: {err}");
    }
    assert!(ftrack_emulator::StateDump::from_json(r#"{"User": 5}"#).is_err());
    assert_eq!(emu.dump(), d, "a failed load leaves the data alone");
}

fn common_config() -> ftrack_emulator::EmulatorConfig {
    ftrack_emulator::EmulatorConfig::new(USER, KEY)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_error_objects() {
    let emu = start().await;
    for body in [
        "",
        "{",
        "{}",
        "[1]",
        "[{\"action\": 5}]",
        "[{\"action\": \"query\"}]",
    ] {
        let r = request(
            &emu,
            "POST",
            "/api",
            &[
                ("ftrack-user", USER),
                ("ftrack-api-key", KEY),
                ("ftrack-strict-api", "true"),
            ],
            body,
        )
        .await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
        assert!(r.json()["exception"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_are_serialised_safely() {
    let emu = std::sync::Arc::new(start().await);
    let mut tasks = Vec::new();
    for i in 0..40 {
        let emu = emu.clone();
        tasks.push(tokio::spawn(async move {
            // Every task also tries the same duplicate username: exactly one wins.
            let r = api(
                &emu,
                json!([
                    create("User", json!({"username": format!("c{i}")})),
                    create("User", json!({"username": "same"}))
                ]),
            )
            .await;
            r.json().is_array()
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if t.await.unwrap() {
            ok += 1;
        }
    }
    assert_eq!(
        ok, 1,
        "one batch wins the duplicate, the others roll back whole"
    );
    assert_eq!(emu.dump().of("User").len(), 3, "API user + c<i> + same");
    assert_eq!(emu.counters().requests, 40);
    let r = api(
        &emu,
        json!([{"action": "send_user_invite", "user_id": "nope"}]),
    )
    .await
    .json();
    assert_eq!(r["exception"], "ValidationError");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_output_never_shows_the_key() {
    let config = ftrack_emulator::EmulatorConfig::new(USER, KEY);
    assert!(!format!("{config:?}").contains(KEY));
    let emu = ftrack_emulator::spawn(config).await.unwrap();
    assert!(!format!("{emu:?}").contains(KEY));
}
