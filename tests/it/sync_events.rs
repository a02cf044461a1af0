//! Sync events on ftrack's event hub (issue 22, item 2), heard by the official
//! `ftrack-python-api` client connected to the emulator's hub: `ldap2ftrack.sync.applied`
//! after an apply, with the counts of the plan and the usernames it created;
//! `ldap2ftrack.sync.failed` after one that stopped; nothing with `[events] publish = false`;
//! and a hub that is down is logged and counted, never fatal.

use crate::support;
use crate::sync_e2e::{Studio, API_KEY, API_USER};
use ftrack_emulator::Faults;
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// A listener on the hub through the official client: prints `ready` once its subscription
/// is live (a probe it published came back), then one JSON line per sync event.
const LISTENER: &str = r#"
import json, sys, ftrack_api
s = ftrack_api.Session(plugin_paths=[], auto_connect_event_hub=False, schema_cache_path=False)
s.event_hub.connect()
def heard(event):
    if event['topic'] == 'ldap2ftrack.test.probe':
        print('ready', flush=True)
    else:
        print(json.dumps({'topic': event['topic'], 'data': event['data']}), flush=True)
s.event_hub.subscribe(
    'topic=ldap2ftrack.sync.applied or topic=ldap2ftrack.sync.failed or topic=ldap2ftrack.test.probe',
    heard)
s.event_hub.publish(ftrack_api.event.base.Event(topic='ldap2ftrack.test.probe', data={}))
s.event_hub.wait(60)
"#;

struct Listener {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Listener {
    fn start(studio: &Studio) -> Listener {
        let mut child = support::official_client(&studio.emulator.url(), API_USER, API_KEY)
            .args(["-u", "-c", LISTENER])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("the official client runs");
        let stdout = child.stdout.take().unwrap();
        let (send, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        let listener = Listener { child, lines };
        assert_eq!(
            listener.next(Duration::from_secs(30)).as_deref(),
            Some("ready"),
            "the official client did not subscribe"
        );
        listener
    }

    fn next(&self, wait: Duration) -> Option<String> {
        self.lines.recv_timeout(wait).ok()
    }

    fn event(&self) -> Value {
        let line = self
            .next(Duration::from_secs(20))
            .expect("the official client heard no sync event");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"))
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn names(list: &Value) -> Vec<String> {
    let mut names: Vec<String> = list["names"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn the_official_client_hears_what_an_apply_did() {
    let studio = Studio::new().await;
    let plan = studio.plan_json();
    let listener = Listener::start(&studio);
    let out = studio.run(&["apply"]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));

    let event = listener.event();
    assert_eq!(event["topic"], "ldap2ftrack.sync.applied", "{event}");
    let data = &event["data"];
    assert_eq!(data["planned"], plan["summary"], "{data}");
    let operations = plan["operations"].as_array().unwrap();
    assert_eq!(data["applied"].as_u64(), Some(operations.len() as u64));
    assert_eq!(data["exit_code"], 0);
    assert!(data["requests"].as_u64().is_some_and(|n| n >= 1), "{data}");
    let mut created: Vec<String> = operations
        .iter()
        .filter(|op| op["kind"] == "create_user")
        .map(|op| op["target"].as_str().unwrap().to_string())
        .collect();
    created.sort();
    assert!(!created.is_empty());
    assert_eq!(names(&data["created"]), created);
    assert_eq!(
        data["created"]["total"].as_u64(),
        Some(created.len() as u64)
    );
    assert!(data.get("error").is_none(), "{data}");

    // A run with nothing to change says so too.
    let out = studio.run(&["apply"]);
    assert!(out.status.success());
    let event = listener.event();
    assert_eq!(event["topic"], "ldap2ftrack.sync.applied");
    assert_eq!(event["data"]["applied"], 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_apply_that_stops_is_published_as_failed_and_one_turned_off_is_not_published() {
    let studio = Studio::new().await;
    studio.set_config(
        "api_user = \"sync-bot\"",
        "api_user = \"sync-bot\"\nbatch_size = 10",
    );
    let listener = Listener::start(&studio);
    // The reads take 8 requests; the server dies after the second batch.
    studio.emulator.set_faults(Faults {
        fail_after_requests: Some(8 + 2),
        ..Faults::none()
    });
    let out = studio.run(&["apply"]);
    assert_eq!(out.status.code(), Some(1), "{}", support::text(&out.stderr));
    studio.emulator.set_faults(Faults::none());
    let event = listener.event();
    assert_eq!(event["topic"], "ldap2ftrack.sync.failed", "{event}");
    let data = &event["data"];
    assert_eq!(data["exit_code"], 1);
    assert!(
        data["error"]
            .as_str()
            .is_some_and(|e| e.contains("run again to converge")),
        "{data}"
    );
    // What landed (two batches of whole operations) is what it reports.
    let applied = data["applied"].as_u64().unwrap();
    assert!(applied > 0, "{data}");

    studio.set_config(
        "[deprovision]",
        "[events]\npublish = false\n\n[deprovision]",
    );
    let out = studio.run(&["apply"]);
    assert!(out.status.success(), "{}", support::text(&out.stderr));
    assert_eq!(
        listener.next(Duration::from_secs(3)),
        None,
        "an event was published with [events] publish = false"
    );
}

/// A hub that is down never fails the sync: the apply succeeds, says why the event was not
/// published, and the metrics say it was not.
#[tokio::test(flavor = "multi_thread")]
async fn a_hub_that_is_down_is_logged_and_counted_never_fatal() {
    let studio = Studio::new().await;
    studio.set_config(
        "[deprovision]",
        "[run]\nmetrics_file = \"sync.prom\"\n\n[deprovision]",
    );
    studio.emulator.hub().set_online(false);
    let out = studio.run(&["apply"]);
    let stderr = support::text(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("the sync event was not published to the ftrack event hub"),
        "{stderr}"
    );
    assert!(!stderr.contains(API_KEY), "{stderr}");
    let metrics = std::fs::read_to_string(studio.dir.path().join("sync.prom")).unwrap();
    assert!(
        metrics.contains("\nldap2ftrack_event_published 0\n"),
        "{metrics}"
    );

    studio.emulator.hub().set_online(true);
    let out = studio.run(&["apply"]);
    assert!(out.status.success());
    let metrics = std::fs::read_to_string(studio.dir.path().join("sync.prom")).unwrap();
    assert!(
        metrics.contains("\nldap2ftrack_event_published 1\n"),
        "{metrics}"
    );
}
