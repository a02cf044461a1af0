//! A raw socket.io 0.9 client over tokio-tungstenite for the hub tests: handshake,
//! upgrade, frames by hand, with timeouts so a silent server fails a test instead of
//! hanging it.
#![allow(dead_code)]

use crate::common::{request, KEY, USER};
use ftrack_emulator::RunningEmulator;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

/// `GET /socket.io/1/` with the API headers; the session id.
pub async fn handshake(emu: &RunningEmulator) -> String {
    let r = request(
        emu,
        "GET",
        "/socket.io/1/",
        &[("ftrack-user", USER), ("ftrack-api-key", KEY)],
        "",
    )
    .await;
    assert_eq!(r.status, 200, "handshake: {}", r.body);
    r.body.split(':').next().unwrap_or_default().to_string()
}

/// Upgrade `path` (e.g. `/socket.io/1/websocket/SID?…`); the HTTP status on refusal.
pub async fn upgrade(
    emu: &RunningEmulator,
    path: &str,
) -> Result<WebSocketStream<MaybeTlsStream<TcpStream>>, u16> {
    let url = format!("ws://{}{path}", emu.addr());
    match tokio_tungstenite::connect_async(url).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("websocket connect failed: {e}"),
    }
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_packet: u64,
    /// Frames read while waiting for something else (heartbeats excluded).
    backlog: VecDeque<String>,
    pub heartbeats_seen: usize,
}

/// How the server ended a connection.
#[derive(Debug, PartialEq, Eq)]
pub enum Ending {
    /// `0::` then a websocket close.
    Disconnect,
    /// A websocket close (or end of stream) without `0::`.
    Bare,
}

impl Client {
    /// Handshake, upgrade and read `1::`.
    pub async fn connect(emu: &RunningEmulator) -> Client {
        let sid = handshake(emu).await;
        let ws = upgrade(emu, &format!("/socket.io/1/websocket/{sid}"))
            .await
            .unwrap_or_else(|s| panic!("upgrade refused with {s}"));
        let mut c = Client::from_ws(ws);
        assert_eq!(c.raw().await.as_deref(), Some("1::"), "first frame");
        c
    }

    pub fn from_ws(ws: WebSocketStream<MaybeTlsStream<TcpStream>>) -> Client {
        Client {
            ws,
            next_packet: 0,
            backlog: VecDeque::new(),
            heartbeats_seen: 0,
        }
    }

    pub async fn send(&mut self, frame: &str) {
        self.ws
            .send(Message::text(frame.to_string()))
            .await
            .expect("send frame");
    }

    /// The next text frame as sent (heartbeats included); `None` once the connection
    /// ends (close frame, end of stream or error).
    pub async fn raw(&mut self) -> Option<String> {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within 5 s");
            match msg {
                Some(Ok(Message::Text(t))) => return Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
            }
        }
    }

    /// The next frame that is not a heartbeat (backlog first).
    pub async fn frame(&mut self) -> Option<String> {
        if let Some(f) = self.backlog.pop_front() {
            return Some(f);
        }
        loop {
            let f = self.raw().await?;
            if f == "2::" {
                self.heartbeats_seen += 1;
                continue;
            }
            return Some(f);
        }
    }

    /// Send one event with an ack request; the ack payload.
    pub async fn publish(&mut self, event: Value) -> Value {
        self.next_packet += 1;
        let n = self.next_packet;
        let payload = json!({"name": "ftrack.event", "args": [event]});
        self.send(&format!("5:{n}+::{payload}")).await;
        self.ack(n).await
    }

    /// Read until the ack of packet `n`, keeping other frames in the backlog.
    pub async fn ack(&mut self, n: u64) -> Value {
        let prefix = format!("6:::{n}+");
        let mut kept = VecDeque::new();
        let result = loop {
            let f = match self.backlog.pop_front() {
                Some(f) => f,
                None => match self.raw().await {
                    Some(f) if f == "2::" => {
                        self.heartbeats_seen += 1;
                        continue;
                    }
                    Some(f) => f,
                    None => panic!("connection ended before the ack of packet {n}"),
                },
            };
            if let Some(rest) = f.strip_prefix(&prefix) {
                let arr: Value = serde_json::from_str(rest).expect("ack data is JSON");
                let arr = arr.as_array().expect("ack data is an array").clone();
                assert_eq!(arr.len(), 1, "an ack carries exactly one object: {f}");
                break arr[0].clone();
            }
            kept.push_back(f);
        };
        kept.extend(self.backlog.drain(..));
        self.backlog = kept;
        result
    }

    /// Subscribe `metadata` (must hold `id`) to `subscription`; the ack payload.
    pub async fn subscribe(&mut self, metadata: Value, subscription: &str) -> Value {
        let id = format!("sub-{}", self.next_packet + 1);
        self.publish(json!({
            "id": id,
            "topic": "ftrack.meta.subscribe",
            "data": {"subscriber": metadata, "subscription": subscription},
        }))
        .await
    }

    /// The next delivered event (`5:::{…}`), checked for the socket.io wrapping.
    pub async fn event(&mut self) -> Value {
        let f = self
            .frame()
            .await
            .expect("an event before the connection ended");
        let data = f
            .strip_prefix("5:::")
            .unwrap_or_else(|| panic!("expected an event frame, got {f}"));
        let v: Value = serde_json::from_str(data).expect("event frame data is JSON");
        assert_eq!(v["name"], "ftrack.event", "{f}");
        let args = v["args"].as_array().expect("args");
        assert_eq!(args.len(), 1, "{f}");
        args[0].clone()
    }

    /// Assert that nothing but heartbeats arrives for `ms` milliseconds.
    pub async fn quiet_for(&mut self, ms: u64) {
        assert!(
            self.backlog.is_empty(),
            "pending frames: {:?}",
            self.backlog
        );
        let end = tokio::time::Instant::now() + Duration::from_millis(ms);
        loop {
            match tokio::time::timeout_at(end, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Text(t)))) if t.as_str() == "2::" => self.heartbeats_seen += 1,
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {}
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }

    /// Read to the end of the connection; how it ended (frames other than heartbeats and
    /// `0::` are returned too).
    pub async fn ending(&mut self) -> (Ending, Vec<String>) {
        let mut frames: Vec<String> = self.backlog.drain(..).collect();
        let mut saw_disconnect = false;
        while let Some(f) = self.raw().await {
            match f.as_str() {
                "2::" => self.heartbeats_seen += 1,
                "0::" => saw_disconnect = true,
                _ => {
                    assert!(!saw_disconnect, "frame {f} after 0::");
                    frames.push(f);
                }
            }
        }
        let how = if saw_disconnect {
            Ending::Disconnect
        } else {
            Ending::Bare
        };
        (how, frames)
    }
}

/// Wait until `cond` holds (polling), or fail naming `what`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + WAIT;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An event with the given topic and data, as a client would publish it.
pub fn event(id: &str, topic: &str, data: Value) -> Value {
    json!({"id": id, "topic": topic, "data": data,
           "source": {"id": "test-source", "user": {"username": USER}},
           "target": "", "sent": null, "inReplyToEvent": null})
}
