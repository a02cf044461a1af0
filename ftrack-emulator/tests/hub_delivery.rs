//! Event routing through the hub, driven by raw websocket clients: subscribe, publish,
//! delivery once per connection (publisher included), targets, unsubscribe, acks,
//! refused requests, server-side publishing and the recording / admin endpoints.

mod common;
mod hub_client;

use common::{request, start};
use hub_client::{event, Client};
use serde_json::{json, Value};

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_events_reach_matching_connections_once_including_the_publisher() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    let mut b = Client::connect(&emu).await;
    let mut c = Client::connect(&emu).await;
    // Two matching subscribers on one connection: still one copy.
    assert_eq!(
        a.subscribe(json!({"id": "a1"}), "topic=test.*").await,
        json!({"success": true})
    );
    assert_eq!(
        a.subscribe(json!({"id": "a2"}), "topic=test.hello").await["success"],
        true
    );
    b.subscribe(json!({"id": "b1"}), "topic=other").await;
    c.subscribe(json!({"id": "c1"}), "topic=test.hello and data.n=1")
        .await;

    let sent = json!({"id": "e1", "topic": "test.hello", "data": {"n": "1", "deep": {"x": [1, 2]}},
                      "source": {"id": "hub-a", "user": {"username": "alice"}}});
    assert_eq!(a.publish(sent.clone()).await, json!({"success": true}));
    let expected = json!({"id": "e1", "topic": "test.hello",
        "data": {"n": "1", "deep": {"x": [1, 2]}},
        "source": {"id": "hub-a", "user": {"username": "alice"}},
        "target": "", "sent": null, "inReplyToEvent": null});
    let got_a = a.event().await;
    let got_c = c.event().await;
    assert_eq!(got_a, expected);
    assert_eq!(got_c, expected);
    assert_eq!(
        keys(&got_a),
        [
            "data",
            "id",
            "inReplyToEvent",
            "sent",
            "source",
            "target",
            "topic"
        ]
    );
    a.quiet_for(200).await;
    b.quiet_for(0).await;
    c.quiet_for(0).await;

    // data.n is a number here: values compare as strings, so C does not match.
    b.publish(event("e2", "test.hello", json!({"n": 1}))).await;
    assert_eq!(a.event().await["id"], "e2");
    c.quiet_for(200).await;
    b.quiet_for(0).await;

    let recorded = emu.hub().events();
    let published: Vec<(&str, usize, Option<u64>)> = recorded
        .iter()
        .filter(|e| e.event["topic"] != "ftrack.meta.subscribe")
        .map(|e| {
            (
                e.event["id"].as_str().unwrap_or(""),
                e.delivered_to,
                e.connection,
            )
        })
        .collect();
    assert_eq!(published.len(), 2);
    assert_eq!((published[0].0, published[0].1), ("e1", 2));
    assert_eq!((published[1].0, published[1].1), ("e2", 1));
    assert_ne!(published[0].2, published[1].2, "recorded by connection");
    assert_eq!(recorded.len(), 6, "4 subscribe requests + 2 events");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn targets_pick_subscribers_by_their_metadata() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    let mut b = Client::connect(&emu).await;
    let mut pubr = Client::connect(&emu).await;
    a.subscribe(
        json!({"id": "hub-a", "applicationId": "ftrack.client.web"}),
        "topic=ftrack.meta.reply",
    )
    .await;
    b.subscribe(json!({"id": "hub-b"}), "topic=ftrack.meta.reply")
        .await;

    let mut reply = event("r1", "ftrack.meta.reply", json!({"pong": true}));
    reply["target"] = json!("id=hub-a");
    reply["inReplyToEvent"] = json!("e0");
    pubr.publish(reply.clone()).await;
    let got = a.event().await;
    assert_eq!(got["id"], "r1");
    assert_eq!(got["inReplyToEvent"], "e0");
    b.quiet_for(200).await;

    reply["id"] = json!("r2");
    reply["target"] = json!("applicationId=ftrack.client.web and not id=hub-b");
    pubr.publish(reply.clone()).await;
    assert_eq!(a.event().await["id"], "r2");
    b.quiet_for(100).await;

    reply["id"] = json!("r3");
    reply["target"] = json!("id=nobody");
    assert_eq!(pubr.publish(reply.clone()).await["success"], true);
    reply["id"] = json!("r4");
    reply["target"] = json!("");
    pubr.publish(reply.clone()).await;
    assert_eq!(a.event().await["id"], "r4");
    assert_eq!(b.event().await["id"], "r4");
    pubr.quiet_for(100).await;

    let delivered: Vec<usize> = emu
        .hub()
        .events()
        .iter()
        .filter(|e| e.event["topic"] == "ftrack.meta.reply")
        .map(|e| e.delivered_to)
        .collect();
    assert_eq!(delivered, [1, 1, 0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_and_refused_requests_are_acknowledged() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    a.subscribe(json!({"id": "s1"}), "topic=t").await;

    let dup = a.subscribe(json!({"id": "s1"}), "topic=u").await;
    assert_eq!(dup["success"], false);
    assert_eq!(
        dup["message"],
        "Subscriber with identifier s1 already exists."
    );

    let bad = a.subscribe(json!({"id": "s2"}), "data..x=1").await;
    assert_eq!(bad["success"], false);
    let msg = bad["message"].as_str().unwrap_or_default();
    assert!(
        msg.contains("empty part") && msg.contains("position"),
        "{msg}"
    );

    let no_id = a
        .publish(json!({"id": "m", "topic": "ftrack.meta.subscribe",
                        "data": {"subscriber": {}, "subscription": "topic=t"}}))
        .await;
    assert_eq!(no_id["success"], false);

    a.publish(event("e1", "t", json!({}))).await;
    assert_eq!(a.event().await["id"], "e1");

    let unsub = a
        .publish(json!({"id": "u1", "topic": "ftrack.meta.unsubscribe",
                        "data": {"subscriber": {"id": "s1"}}}))
        .await;
    assert_eq!(unsub, json!({"success": true}));
    assert!(emu.hub().subscribers().is_empty());
    a.publish(event("e2", "t", json!({}))).await;
    a.quiet_for(200).await;

    let again = a
        .publish(json!({"id": "u2", "topic": "ftrack.meta.unsubscribe",
                        "data": {"subscriber": {"id": "s1"}}}))
        .await;
    assert_eq!(again["success"], false);

    // Refusals of requests keep the connection; each is recorded.
    let rej = emu.hub().rejections();
    assert_eq!(rej.len(), 4, "{rej:?}");
    assert!(rej.iter().all(|r| !r.closed));
    assert_eq!(emu.hub().connections(), 1);
    // Subscribe requests are not broadcast, even to a matching subscriber.
    a.subscribe(json!({"id": "all"}), "topic=ftrack.meta.*")
        .await;
    a.subscribe(json!({"id": "more"}), "topic=x").await;
    a.quiet_for(200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_are_sent_only_when_asked() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    a.subscribe(json!({"id": "s"}), "topic=t").await;
    // The JavaScript client's form: no packet id, no ack.
    let payload = json!({"name": "ftrack.event", "args": [event("js", "t", json!({}))]});
    a.send(&format!("5:::{payload}")).await;
    assert_eq!(
        a.frame().await.as_deref().map(|f| f.starts_with("5:::")),
        Some(true)
    );
    a.quiet_for(200).await;
    // The Python client's form: `N+` asks for an ack with data.
    let payload = json!({"name": "ftrack.event", "args": [event("py", "t", json!({}))]});
    a.send(&format!("5:42+::{payload}")).await;
    let mut frames = vec![
        a.frame().await.unwrap_or_default(),
        a.frame().await.unwrap_or_default(),
    ];
    frames.sort();
    assert_eq!(frames[1], r#"6:::42+[{"success":true}]"#);
    assert!(frames[0].starts_with("5:::"), "{frames:?}");
    a.quiet_for(100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_can_publish_like_the_web_ui() {
    let emu = start().await;
    let mut provider = Client::connect(&emu).await;
    provider
        .subscribe(json!({"id": "p"}), "topic=ftrack.action.discover")
        .await;
    let discover = json!({"id": "d1", "topic": "ftrack.action.discover",
        "data": {"selection": [{"entityId": "u1", "entityType": "User"}]},
        "source": {"applicationId": "ftrack.client.web", "id": "web-1",
                   "user": {"username": "alice", "id": "u1"}}});
    assert_eq!(emu.hub().publish(discover), Ok(1));
    let got = provider.event().await;
    assert_eq!(got["source"]["applicationId"], "ftrack.client.web");
    let last = emu.hub().events().pop().expect("recorded");
    assert_eq!((last.connection, last.delivered_to), (None, 1));

    let err = emu
        .hub()
        .publish(json!({"id": "x", "topic": "ftrack.meta.subscribe"}))
        .expect_err("not a server event");
    assert!(err.contains("request to the hub"), "{err}");
    assert!(emu.hub().publish(json!({"topic": "t"})).is_err());

    // The same over HTTP, for the standalone binary.
    let body = json!({"id": "d2", "topic": "ftrack.action.discover"}).to_string();
    let r = request(&emu, "POST", "/_emulator/hub/publish", &[], &body).await;
    assert_eq!(r.json(), json!({"delivered_to": 1}));
    assert_eq!(provider.event().await["id"], "d2");
    let r = request(
        &emu,
        "POST",
        "/_emulator/hub/publish",
        &[],
        "{\"topic\": 1}",
    )
    .await;
    assert_eq!(r.status, 400);

    let r = request(&emu, "GET", "/_emulator/hub/events", &[], "").await;
    let events = r.json();
    assert_eq!(events.as_array().map(Vec::len), Some(3));
    assert_eq!(events[2]["event"]["id"], "d2");
    let r = request(&emu, "GET", "/_emulator/hub/subscribers", &[], "").await;
    assert_eq!(r.json()[0]["subscription"], "topic=ftrack.action.discover");
    let r = request(&emu, "DELETE", "/_emulator/hub/events", &[], "").await;
    assert_eq!(r.status, 200);
    assert!(emu.hub().events().is_empty());
    let r = request(&emu, "POST", "/_emulator/hub/restart", &[], "").await;
    assert_eq!(r.json(), json!({"closed": 1}));
}
