//! The event hub's transport, driven by a raw websocket client: handshake
//! authentication, single-use session ids, `1::`, heartbeats, `0::` endings, malformed
//! input (which closes the connection and never the emulator), restarts and cuts.

mod common;
mod hub_client;

use common::{request, start, KEY, USER};
use ftrack_emulator::{EmulatorConfig, HubConfig};
use hub_client::{eventually, handshake, upgrade, Client, Ending};
use serde_json::json;
use std::time::Duration;

async fn start_with(hub: HubConfig) -> ftrack_emulator::RunningEmulator {
    ftrack_emulator::spawn(EmulatorConfig::new(USER, KEY).hub(hub))
        .await
        .expect("emulator starts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handshake_needs_valid_credentials() {
    let emu = start().await;
    let good_query = format!("/socket.io/1/?api_user={USER}&api_key={KEY}");
    let wrong_query = format!("/socket.io/1/?api_user={USER}&api_key=nope");
    let refused: Vec<(&str, Vec<(&str, &str)>)> = vec![
        ("/socket.io/1/", vec![]),
        (
            "/socket.io/1/",
            vec![("ftrack-user", USER), ("ftrack-api-key", "wrong")],
        ),
        (
            "/socket.io/1/",
            vec![("ftrack-user", "nobody"), ("ftrack-api-key", KEY)],
        ),
        ("/socket.io/1/", vec![("ftrack-user", USER)]),
        ("/socket.io/1/", vec![("ftrack-api-key", KEY)]),
        (&wrong_query, vec![]),
        ("/socket.io/1/?api_user=api-admin", vec![]),
        // Every pair given must be valid, not just one of them.
        (
            &wrong_query,
            vec![("ftrack-user", USER), ("ftrack-api-key", KEY)],
        ),
    ];
    for (path, headers) in refused {
        let r = request(&emu, "GET", path, &headers, "").await;
        assert_eq!(r.status, 401, "{path} {headers:?}: {}", r.body);
        assert!(
            !r.body.contains(':'),
            "no session id on refusal: {}",
            r.body
        );
    }
    let by_headers = request(
        &emu,
        "GET",
        "/socket.io/1/",
        &[("ftrack-user", USER), ("ftrack-api-key", KEY)],
        "",
    )
    .await;
    let by_query = request(&emu, "GET", &good_query, &[], "").await;
    for r in [&by_headers, &by_query] {
        assert_eq!(r.status, 200, "{}", r.body);
        let parts: Vec<&str> = r.body.split(':').collect();
        assert_eq!(parts.len(), 4, "{}", r.body);
        assert_eq!(parts[0].len(), 32);
        assert!(parts[0].bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(parts[1], "60", "heartbeat timeout");
        assert_eq!(parts[2], "10", "session id lifetime");
        assert_eq!(parts[3], "websocket");
    }
    assert_ne!(by_headers.body, by_query.body, "fresh session ids");

    emu.hub().set_online(false);
    let offline = request(&emu, "GET", &good_query, &[], "").await;
    assert_eq!(offline.status, 503);
    emu.hub().set_online(true);
    assert_eq!(request(&emu, "GET", &good_query, &[], "").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_ids_are_single_use_and_expire() {
    let emu = start_with(HubConfig {
        sid_ttl: Duration::from_millis(800),
        ..HubConfig::default()
    })
    .await;
    assert_eq!(
        upgrade(&emu, "/socket.io/1/websocket/unknown").await.err(),
        Some(401)
    );

    let sid = handshake(&emu).await;
    let path = format!("/socket.io/1/websocket/{sid}");
    let first = upgrade(&emu, &path).await.expect("first upgrade");
    assert_eq!(upgrade(&emu, &path).await.err(), Some(401), "used twice");
    drop(first);

    let stale = handshake(&emu).await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let path = format!("/socket.io/1/websocket/{stale}");
    assert_eq!(upgrade(&emu, &path).await.err(), Some(401), "expired");

    // The JavaScript client appends its credentials: they must be valid when given.
    let sid = handshake(&emu).await;
    let bad = format!("/socket.io/1/websocket/{sid}?api_user={USER}&api_key=nope");
    assert_eq!(upgrade(&emu, &bad).await.err(), Some(401));
    let sid = handshake(&emu).await;
    let good = format!("/socket.io/1/websocket/{sid}?api_user={USER}&api_key={KEY}");
    let ws = upgrade(&emu, &good).await.expect("JS-style upgrade");
    let mut c = Client::from_ws(ws);
    assert_eq!(c.raw().await.as_deref(), Some("1::"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_frame_then_heartbeats_answered_either_way() {
    let emu = start_with(HubConfig {
        heartbeat_interval: Duration::from_millis(100),
        heartbeat_timeout: Duration::from_secs(2),
        ..HubConfig::default()
    })
    .await;
    let mut c = Client::connect(&emu).await; // asserts `1::` first
    let started = tokio::time::Instant::now();
    for answer in ["2::", "2:::", "2::", "2:::", "2::", "2:::", "2::", "2:::"] {
        assert_eq!(c.raw().await.as_deref(), Some("2::"));
        c.send(answer).await;
    }
    // Eight heartbeats at 100 ms, each answered: the connection stays.
    assert!(started.elapsed() >= Duration::from_millis(700));
    assert_eq!(emu.hub().connections(), 1);
    assert!(
        emu.hub().rejections().is_empty(),
        "{:?}",
        emu.hub().rejections()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unanswered_heartbeat_closes_the_connection() {
    let emu = start_with(HubConfig {
        heartbeat_interval: Duration::from_millis(50),
        heartbeat_timeout: Duration::from_millis(200),
        ..HubConfig::default()
    })
    .await;
    let mut c = Client::connect(&emu).await;
    let (how, frames) = c.ending().await;
    assert_eq!(how, Ending::Disconnect);
    assert!(frames.is_empty(), "{frames:?}");
    assert!(c.heartbeats_seen >= 2, "heartbeats before the close");
    let rej = emu.hub().rejections();
    assert_eq!(rej.len(), 1, "{rej:?}");
    assert!(rej[0].reason.contains("heartbeat") && rej[0].closed);
    eventually("connection forgotten", || emu.hub().connections() == 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_input_closes_the_connection_not_the_emulator() {
    let emu = start().await;
    let cases = [
        "hello",
        "",
        "8::",
        "1::",
        "3:::text",
        "6:::1+[{}]",
        "2::/chat",
        "5:1::{\"name\":\"ftrack.event\",\"args\":[{}]}",
        "5:::not json",
        "5:::{\"name\":\"other\",\"args\":[{}]}",
        "5:::{\"name\":\"ftrack.event\",\"args\":[]}",
        "5:::{\"name\":\"ftrack.event\",\"args\":[{\"topic\":\"t\"}]}",
        "5:::{\"name\":\"ftrack.event\",\"args\":[{\"id\":\"e\",\"topic\":\"t\",\"in_reply_to_event\":null}]}",
    ];
    for (i, frame) in cases.iter().enumerate() {
        let mut c = Client::connect(&emu).await;
        c.send(frame).await;
        let (how, rest) = c.ending().await;
        assert_eq!(how, Ending::Disconnect, "{frame:?}");
        assert!(rest.is_empty(), "{frame:?}: {rest:?}");
        let rej = emu.hub().rejections();
        assert_eq!(rej.len(), i + 1, "{frame:?}: {rej:?}");
        assert!(rej[i].closed);
    }
    // Binary websocket messages are not socket.io 0.9 frames.
    let mut c = Client::connect(&emu).await;
    futures_util::SinkExt::send(
        &mut c.ws,
        tokio_tungstenite::tungstenite::Message::binary(vec![5u8, 0, 1]),
    )
    .await
    .expect("send binary");
    assert_eq!(c.ending().await.0, Ending::Disconnect);

    // An event refused with an ack request gets `success: false` first, then `0::`.
    let mut c = Client::connect(&emu).await;
    c.send(r#"5:9+::{"name":"ftrack.event","args":[{"id":"e","topic":"t","extra":1}]}"#)
        .await;
    let (how, frames) = c.ending().await;
    assert_eq!(how, Ending::Disconnect);
    assert_eq!(frames.len(), 1, "{frames:?}");
    let ack: serde_json::Value =
        serde_json::from_str(frames[0].strip_prefix("6:::9+").expect("ack of 9")).expect("json");
    assert_eq!(ack[0]["success"], false);
    assert!(ack[0]["message"]
        .as_str()
        .unwrap_or_default()
        .contains("\"extra\""));

    // Still serving, and nothing of the garbage was recorded as an event.
    let mut c = Client::connect(&emu).await;
    let ack = c.subscribe(json!({"id": "ok"}), "topic=t").await;
    assert_eq!(ack, json!({"success": true}));
    assert_eq!(emu.hub().events().len(), 1, "only the subscribe request");
    let r = request(&emu, "GET", "/_emulator/health", &[], "").await;
    assert_eq!(r.body, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_is_answered_and_forgotten() {
    let emu = start().await;
    let mut c = Client::connect(&emu).await;
    c.subscribe(json!({"id": "s"}), "topic=x").await;
    assert_eq!(emu.hub().subscribers().len(), 1);
    c.send("0::").await;
    assert_eq!(c.ending().await.0, Ending::Disconnect);
    eventually("subscriber gone", || emu.hub().subscribers().is_empty()).await;
    assert!(emu.hub().rejections().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_closes_every_connection_and_forgets_subscriptions() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    let mut b = Client::connect(&emu).await;
    a.subscribe(json!({"id": "a"}), "topic=x").await;
    b.subscribe(json!({"id": "b"}), "topic=x").await;
    // A session id issued before the restart is void after it.
    let pending = handshake(&emu).await;
    assert_eq!(emu.restart_hub(), 2);
    assert_eq!(a.ending().await.0, Ending::Disconnect);
    assert_eq!(b.ending().await.0, Ending::Disconnect);
    assert_eq!(emu.hub().connections(), 0);
    assert!(emu.hub().subscribers().is_empty());
    let path = format!("/socket.io/1/websocket/{pending}");
    assert_eq!(upgrade(&emu, &path).await.err(), Some(401));
    // A reconnecting client starts from scratch.
    let mut c = Client::connect(&emu).await;
    assert_eq!(
        c.subscribe(json!({"id": "a"}), "topic=x").await["success"],
        true
    );
    assert_eq!(emu.hub().connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connections_end_without_a_word() {
    let emu = start().await;
    let mut a = Client::connect(&emu).await;
    assert_eq!(emu.hub().drop_connections(), 1);
    let (how, frames) = a.ending().await;
    assert_eq!(how, Ending::Bare);
    assert!(frames.is_empty());
    assert_eq!(emu.hub().connections(), 0);
    // The admin endpoint does the same for the standalone binary.
    let _b = Client::connect(&emu).await;
    let r = request(&emu, "POST", "/_emulator/hub/drop", &[], "").await;
    assert_eq!(r.json(), json!({"dropped": 1}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_let_go() {
    let emu = start_with(HubConfig {
        heartbeat_timeout: Duration::from_millis(300),
        queue_limit: 4,
        ..HubConfig::default()
    })
    .await;
    let mut sleeper = Client::connect(&emu).await;
    sleeper.subscribe(json!({"id": "z"}), "topic=flood").await;
    let mut flooder = Client::connect(&emu).await;
    let big = "x".repeat(64 * 1024);
    for i in 0..300 {
        let ack = flooder
            .publish(hub_client::event(
                &format!("f{i}"),
                "flood",
                json!({"big": big}),
            ))
            .await;
        assert_eq!(ack["success"], true);
        if emu.hub().connections() == 1 {
            break;
        }
    }
    eventually("the sleeper is let go", || emu.hub().connections() == 1).await;
    let rej = emu.hub().rejections();
    assert_eq!(rej.len(), 1, "recorded once: {rej:?}");
    assert!(rej[0].closed);
    assert!(
        rej[0].reason.contains("4 frames behind") || rej[0].reason.contains("read nothing"),
        "{rej:?}"
    );
    // The flooder is still served.
    let ack = flooder
        .publish(hub_client::event("after", "other", json!({})))
        .await;
    assert_eq!(ack["success"], true);
}
