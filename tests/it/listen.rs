//! `ldap2ftrack listen` (issue 22, item 3) driven as ftrack's web UI drives it: a Python script
//! on the official client publishes `ftrack.action.discover` and `ftrack.action.launch` with
//! the user who clicked, and collects the replies. An administrator sees both actions and
//! previews, confirms and applies; anyone else sees none and is refused; a directory that
//! changed between the confirmation form and the confirm is refused; the service survives a
//! hub restart and a malformed event.

use crate::support;
use crate::sync_e2e::{Studio, API_KEY, API_USER};
use ldap2ftrack::config::Secret;
use ldap2ftrack::ftrack::{RetryPolicy, Session, SessionSettings};
use serde_json::{json, Value};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// The web UI: `discover USER` prints the actionIdentifiers offered to USER;
/// `launch USER ACTION [VALUES]` prints the first reply's data.
const WEB_UI: &str = r#"
import json, sys, time, ftrack_api
from ftrack_api.event.base import Event
s = ftrack_api.Session(plugin_paths=[], auto_connect_event_hub=False, schema_cache_path=False)
s.event_hub.connect()
mode, user = sys.argv[1], sys.argv[2]
replies = []
source = {'user': {'username': user}, 'applicationId': 'ftrack.client.web'}
if mode == 'discover':
    s.event_hub.publish(Event(topic='ftrack.action.discover', data={'selection': []}, source=source),
                        on_reply=lambda e: replies.append(e['data']))
    s.event_hub.wait(3)
    print(json.dumps(sorted(i['actionIdentifier'] for r in replies for i in r.get('items', []))))
else:
    data = {'actionIdentifier': sys.argv[3], 'selection': []}
    if len(sys.argv) > 4:
        data['values'] = json.loads(sys.argv[4])
    s.event_hub.publish(Event(topic='ftrack.action.launch', data=data, source=source),
                        on_reply=lambda e: replies.append(e['data']))
    deadline = time.time() + 90
    while not replies and time.time() < deadline:
        s.event_hub.wait(0.2)
    print(json.dumps(replies[0] if replies else None))
"#;

fn web_ui(studio: &Studio, args: &[&str]) -> Value {
    let out = support::official_client(&studio.emulator.url(), API_USER, API_KEY)
        .args(["-c", WEB_UI])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "web UI: {}",
        support::text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", support::text(&out.stdout)))
}

/// The service, killed when dropped; its log kept for messages.
struct Listen {
    child: Child,
    log: std::path::PathBuf,
}

impl Listen {
    fn start(studio: &Studio) -> Listen {
        let log = studio.dir.path().join("listen.log");
        let child = support::ldap2ftrack(studio.dir.path())
            .args(["-v", "listen"])
            .env("FTRACK_API_KEY", API_KEY)
            .env("LDAP2FTRACK_TODAY", "2026-11-27")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let listen = Listen { child, log };
        listen.wait_subscribed(studio);
        listen
    }

    fn wait_subscribed(&self, studio: &Studio) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let subscriptions: Vec<String> = studio
                .emulator
                .hub()
                .subscribers()
                .into_iter()
                .map(|s| s.subscription)
                .collect();
            if subscriptions
                .iter()
                .any(|s| s == "topic=ftrack.action.discover")
                && subscriptions
                    .iter()
                    .any(|s| s.contains("ldap2ftrack.apply"))
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "listen did not subscribe: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Listen {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `admin` holds the Administrator role; `user03` does not.
async fn make_admin(studio: &Studio) {
    let session = Session::new(SessionSettings {
        server_url: studio.emulator.url(),
        api_user: API_USER.to_string(),
        api_key: Secret::new(API_KEY),
        ca_file: None,
        timeout: Duration::from_secs(10),
        batch_size: 10,
        page_size: 100,
        retry: RetryPolicy::default(),
    })
    .unwrap();
    let role = "10000000-0000-4000-8000-0000000000ad";
    session
        .call(&[
            json!({"action": "create", "entity_type": "SecurityRole", "entity_key": [role],
                   "entity_data": {"__entity_type__": "SecurityRole", "id": role,
                                   "name": "Administrator", "type": "ADMIN"}}),
            json!({"action": "create", "entity_type": "UserSecurityRole",
                   "entity_key": ["60000000-0000-4000-8000-0000000000ad"],
                   "entity_data": {"__entity_type__": "UserSecurityRole",
                                   "id": "60000000-0000-4000-8000-0000000000ad",
                                   "user_id": "40000000-0000-4000-8000-000000000001",
                                   "security_role_id": role, "is_all_open_projects": true}}),
        ])
        .await
        .unwrap();
}

fn message(reply: &Value) -> &str {
    reply["message"].as_str().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_previews_confirms_and_applies_from_the_actions_menu() {
    let studio = Studio::new().await;
    make_admin(&studio).await;
    let listen = Listen::start(&studio);
    let pending = studio.plan_json()["operations"].as_array().unwrap().len();
    assert!(pending > 0);

    // Discovery: both actions for the administrator, none for anyone else.
    assert_eq!(
        web_ui(&studio, &["discover", "admin"]),
        json!(["ldap2ftrack.apply", "ldap2ftrack.preview"]),
        "{}",
        listen.log()
    );
    assert_eq!(web_ui(&studio, &["discover", "user03"]), json!([]));

    // A launch by someone else is refused and runs nothing.
    let refused = web_ui(
        &studio,
        &[
            "launch",
            "user03",
            "ldap2ftrack.apply",
            r#"{"confirm": true, "binding": "x"}"#,
        ],
    );
    assert_eq!(refused["success"], false, "{refused}");
    assert!(
        message(&refused).contains("Only ftrack administrators"),
        "{refused}"
    );

    // Preview: the summary and the first changes, the whole plan in a Job.
    let preview = web_ui(&studio, &["launch", "admin", "ldap2ftrack.preview"]);
    let shown = preview["items"][0]["value"].as_str().unwrap_or_default();
    assert!(shown.contains("create_user: 19"), "{preview}");
    assert!(shown.contains("+ user"), "{preview}");
    let jobs = studio.state()["Job"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(jobs.len(), 1, "{}", listen.log());
    assert!(jobs[0]["data"].as_str().unwrap().contains("+ user user01"));

    // Apply: first a confirmation form bound to the plan it shows.
    let form = web_ui(&studio, &["launch", "admin", "ldap2ftrack.apply"]);
    let items = form["items"].as_array().unwrap();
    let binding = items
        .iter()
        .find(|i| i["name"] == "binding")
        .and_then(|i| i["value"].as_str())
        .unwrap()
        .to_string();
    assert!(
        items[0]["value"]
            .as_str()
            .unwrap()
            .contains("The guards allow"),
        "{form}"
    );
    // Not ticked: nothing is applied.
    let values = json!({"confirm": false, "binding": binding}).to_string();
    let unticked = web_ui(&studio, &["launch", "admin", "ldap2ftrack.apply", &values]);
    assert_eq!(unticked["success"], false);
    assert_eq!(
        studio.plan_json()["operations"].as_array().unwrap().len(),
        pending
    );

    // The directory changes between the form and the confirm: refused, nothing applied.
    let mut studio = studio;
    studio.people.get_mut(&5).unwrap().locked = true;
    studio.write_directory();
    let values = json!({"confirm": true, "binding": binding}).to_string();
    let stale = web_ui(&studio, &["launch", "admin", "ldap2ftrack.apply", &values]);
    assert_eq!(stale["success"], false, "{stale}");
    assert!(
        message(&stale).contains("changed since the plan was shown"),
        "{stale}"
    );
    assert!(!studio.plan_json()["operations"]
        .as_array()
        .unwrap()
        .is_empty());

    // A fresh form, confirmed: applied, and the next plan is empty.
    let form = web_ui(&studio, &["launch", "admin", "ldap2ftrack.apply"]);
    let binding = form["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["name"] == "binding")
        .and_then(|i| i["value"].as_str())
        .unwrap()
        .to_string();
    let values = json!({"confirm": true, "binding": binding}).to_string();
    let applied = web_ui(&studio, &["launch", "admin", "ldap2ftrack.apply", &values]);
    assert_eq!(applied["success"], true, "{applied}\n{}", listen.log());
    assert!(
        message(&applied).starts_with("LDAP sync applied:"),
        "{applied}"
    );
    assert_eq!(studio.plan_json()["operations"], json!([]));

    // Every launch is logged with who asked.
    let log = listen.log();
    assert!(log.contains("user03") && log.contains("admin"), "{log}");
}

#[tokio::test(flavor = "multi_thread")]
async fn listen_survives_a_hub_restart_and_malformed_events() {
    let studio = Studio::new().await;
    make_admin(&studio).await;
    let listen = Listen::start(&studio);

    // Events that make no sense to it: a discovery without a user, a launch whose form values
    // are not an object. Logged and ignored (or refused), and the service goes on.
    let mut no_user = json!({"id": "e1", "topic": "ftrack.action.discover", "data": {},
                             "source": {}, "target": "", "sent": null, "inReplyToEvent": null});
    studio.emulator.hub().publish(no_user.take()).unwrap();
    let garbage = web_ui(
        &studio,
        &["launch", "admin", "ldap2ftrack.apply", r#""not a form""#],
    );
    assert_eq!(garbage["success"], false, "{garbage}");

    // The hub restarts: the service reconnects, subscribes again and answers.
    assert!(studio.emulator.restart_hub() >= 1);
    listen.wait_subscribed(&studio);
    assert_eq!(
        web_ui(&studio, &["discover", "admin"]),
        json!(["ldap2ftrack.apply", "ldap2ftrack.preview"]),
        "{}",
        listen.log()
    );
    assert!(
        listen.log().contains("without a user"),
        "the malformed discovery was not logged: {}",
        listen.log()
    );
}
