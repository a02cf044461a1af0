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
        create(
            "Project",
            json!({"id": "p1", "name": "show1", "full_name": "Show One"}),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_role_actions() {
    let emu = start().await;
    seed(&emu).await;
    let r = api(
        &emu,
        json!([
            {"action": "add_user_security_role", "user_id": "u01", "role_id": "r1"},
            {"action": "grant_user_security_role_project", "user_id": "u01", "role_id": "r1", "project_id": "p1"},
            {"action": "grant_user_security_role_project", "user_id": "u02", "role_id": "r1", "all_open_projects": true},
        ]),
    )
    .await
    .json();
    assert_eq!(r[0]["action"], "add_user_security_role");
    assert_eq!(r[2]["data"]["is_all_open_projects"], true);
    assert_eq!(r[2]["data"]["is_all_projects"], true);
    let p = query(&emu, "select user.username, security_role.name, is_all_projects, user_security_role_projects.project.name from UserSecurityRole order by user.username").await;
    assert_eq!(
        p["data"][0]["user_security_role_projects"][0]["project"]["name"],
        "show1"
    );
    assert_eq!(p["data"][1]["is_all_projects"], true);
    assert_eq!(
        query(
            &emu,
            "select id from UserSecurityRole where is_all_open_projects is true"
        )
        .await["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let again = api(
        &emu,
        json!([{"action": "add_user_security_role", "user_id": "u01", "role_id": "r1"}]),
    )
    .await
    .json();
    assert_eq!(again["exception"], "ValidationError");
    let r = api(
        &emu,
        json!([
            {"action": "revoke_user_security_role_project", "user_id": "u01", "role_id": "r1", "project_id": "p1"},
            {"action": "update_user_security_role", "user_id": "u02", "role_id": "r1", "new_role_id": "r2"},
            {"action": "remove_user_security_role", "user_id": "u01", "role_id": "r1"},
        ]),
    )
    .await
    .json();
    assert_eq!(r[1]["data"]["security_role_id"], "r2");
    assert_eq!(
        query(&emu, "UserSecurityRoleProject").await["data"],
        json!([])
    );
    let left = query(
        &emu,
        "select user_id, security_role_id from UserSecurityRole",
    )
    .await;
    assert_eq!(left["data"].as_array().unwrap().len(), 1);
    assert_eq!(left["data"][0]["user_id"], "u02");
    let bad = api(
        &emu,
        json!([{"action": "revoke_user_security_role", "user_id": "u01", "role_id": "r1"}]),
    )
    .await
    .json();
    assert_eq!(bad["exception"], "ValidationError");
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
