//! Our event hub client (issue 22, item 1) against the emulator's hub: publish with
//! acknowledgement, subscriptions with ftrack's expressions, replies collected by the
//! publisher, refused credentials, and a hub restart survived by reconnecting and
//! subscribing again.

use ftrack_emulator::{EmulatorConfig, RunningEmulator};
use ldap2ftrack::config::Secret;
use ldap2ftrack::ftrack::hub::{Event, EventHub, HubError, HubSettings};
use ldap2ftrack::ftrack::{RetryPolicy, Session, SessionSettings};
use serde_json::json;
use std::time::{Duration, Instant};

const USER: &str = "hub-bot";
const KEY: &str = "hub-key-5d1e";

fn session(emulator: &RunningEmulator, key: &str) -> Session {
    session_at(&emulator.url(), key)
}

fn session_at(url: &str, key: &str) -> Session {
    Session::new(SessionSettings {
        server_url: url.to_string(),
        api_user: USER.to_string(),
        api_key: Secret::new(key),
        ca_file: None,
        timeout: Duration::from_secs(10),
        batch_size: 100,
        page_size: 100,
        retry: RetryPolicy::default(),
    })
    .unwrap()
}

fn settings() -> HubSettings {
    HubSettings {
        heartbeat_timeout: Duration::from_secs(5),
        first_retry: Duration::from_millis(200),
        max_retry: Duration::from_secs(1),
        ..HubSettings::default()
    }
}

/// Waits up to 10 s for `condition`.
async fn eventually(what: &str, condition: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn publishes_subscribes_replies_and_survives_a_hub_restart() {
    let emulator = ftrack_emulator::spawn(
        EmulatorConfig::new(USER, KEY).heartbeat_interval(Duration::from_millis(300)),
    )
    .await
    .unwrap();
    let session = session(&emulator, KEY);
    let hub = EventHub::connect(&session, settings()).await.unwrap();
    let mut pings = hub.subscribe("topic=test.ping", json!({})).unwrap();

    // A second connection answers `test.ask` as a subscriber with its own metadata.
    let responder = EventHub::connect(&session, settings()).await.unwrap();
    let metadata = json!({"id": "responder-1", "applicationId": "test"});
    let mut asks = responder
        .subscribe("topic=test.ask and data.n>=5", metadata.clone())
        .unwrap();
    tokio::spawn(async move {
        while let Some(ask) = asks.recv().await {
            let pong = json!({"pong": ask.data["n"]});
            responder.reply(&ask, &metadata, pong).await.unwrap();
        }
    });
    eventually("both subscriptions", || {
        let subscriptions: Vec<String> = emulator
            .hub()
            .subscribers()
            .into_iter()
            .map(|s| s.subscription)
            .collect();
        subscriptions.iter().any(|s| s == "topic=test.ping")
            && subscriptions
                .iter()
                .any(|s| s.starts_with("topic=test.ask"))
    })
    .await;

    // Published, acknowledged, and delivered to the publisher's own subscription.
    hub.publish(Event::new("test.ping", json!({"n": 1})))
        .await
        .unwrap();
    let ping = tokio::time::timeout(Duration::from_secs(5), pings.recv())
        .await
        .expect("the ping came back")
        .unwrap();
    assert_eq!(ping.data, json!({"n": 1}));
    assert_eq!(ping.username(), Some(USER));
    assert_eq!(ping.source["id"], hub.id());

    // A reply reaches the publisher, and only for the event it answers.
    // Values compare as strings (the emulator matches no number, the stricter reading).
    let ask = Event::new("test.ask", json!({"n": "7"}));
    let ask_id = ask.id.clone();
    let replies = hub
        .publish_and_collect(ask, Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(replies.len(), 1, "{replies:?}");
    assert_eq!(replies[0].data, json!({"pong": "7"}));
    assert_eq!(
        replies[0].in_reply_to_event.as_deref(),
        Some(ask_id.as_str())
    );
    assert_eq!(replies[0].source["id"], "responder-1");
    // `data.n>=5` is not met: nobody answers.
    let none = hub
        .publish_and_collect(
            Event::new("test.ask", json!({"n": "1"})),
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert!(none.is_empty(), "{none:?}");

    // The hub restarts (every connection closed, every subscription forgotten): the client
    // reconnects and subscribes again, and a server-published ping arrives.
    assert!(emulator.restart_hub() >= 2);
    eventually("the subscriptions sent again", || {
        emulator
            .hub()
            .subscribers()
            .iter()
            .filter(|s| s.subscription == "topic=test.ping")
            .count()
            == 1
    })
    .await;
    let mut again = Event::new("test.ping", json!({"n": 2}));
    again.source = json!({"id": "web", "user": {"username": "jane"}});
    emulator
        .hub()
        .publish(serde_json::to_value(&again).unwrap())
        .unwrap();
    let ping = tokio::time::timeout(Duration::from_secs(5), pings.recv())
        .await
        .expect("a ping after the restart")
        .unwrap();
    assert_eq!(ping.data, json!({"n": 2}));
    assert_eq!(ping.username(), Some("jane"));
    hub.close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_credentials_and_a_hub_that_is_down_are_errors_not_hangs() {
    let emulator = ftrack_emulator::spawn(EmulatorConfig::new(USER, KEY))
        .await
        .unwrap();
    let started = Instant::now();
    let refused = EventHub::connect(&session(&emulator, "wrong-key"), settings()).await;
    let Err(HubError::Refused(message)) = refused else {
        panic!("wrong credentials were not refused");
    };
    assert!(!message.contains("wrong-key"), "{message}");
    emulator.hub().set_online(false);
    let down = EventHub::connect(&session(&emulator, KEY), settings()).await;
    assert!(
        matches!(down, Err(HubError::Connection(_))),
        "{:?}",
        down.err()
    );
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// A server without a hub (its handshake path is not found) is told apart from a hub that is
/// down: a sync then publishes nothing and says so at info, not as a warning on every run.
#[tokio::test(flavor = "multi_thread")]
async fn a_server_without_a_hub_is_told_apart() {
    let server =
        crate::support::http::listen("127.0.0.1").serve(|_| crate::support::http::Reply::new(404));
    let session = session_at(&server.url(), KEY);
    let result = EventHub::connect(&session, settings()).await;
    assert!(
        matches!(result, Err(HubError::NoHub(_))),
        "{:?}",
        result.err()
    );
}
