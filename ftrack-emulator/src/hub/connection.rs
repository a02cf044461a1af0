//! One websocket connection to the hub: sends `1::` on open and `2::` every heartbeat
//! interval, reads the client's frames, hands events to the [`Hub`], acknowledges them
//! when asked, forwards delivered events, and ends with `0::` whenever the emulator
//! closes the connection (a malformed frame or event, an unanswered heartbeat, a hub
//! restart, a stuck connection, shutdown). A cut ([`Hub::drop_connections`]) sends
//! nothing.

use super::frames::{self, ClientFrame};
use super::{Hub, Outcome, Registered};
use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::time::{Instant, MissedTickBehavior};

/// What a connection task is told to do from outside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Signal {
    None = 0,
    /// Send `0::`, close the websocket.
    Close = 1,
    /// Cut the connection: no `0::`, no close frame.
    Drop = 2,
}

/// A connection's mailbox for [`Signal`]s (the hub may signal before the task waits:
/// `Notify` keeps the permit).
#[derive(Debug)]
pub(crate) struct Control {
    pub notify: Notify,
    signal: AtomicU8,
}

impl Control {
    pub(crate) fn new() -> Control {
        Control {
            notify: Notify::new(),
            signal: AtomicU8::new(Signal::None as u8),
        }
    }
    pub(crate) fn send(&self, s: Signal) {
        self.signal.store(s as u8, Ordering::SeqCst);
        self.notify.notify_one();
    }
    pub fn signal(&self) -> Signal {
        match self.signal.load(Ordering::SeqCst) {
            1 => Signal::Close,
            2 => Signal::Drop,
            _ => Signal::None,
        }
    }
}

/// How a session ended.
enum End {
    /// The emulator closes: `0::`, then a close frame.
    Close,
    /// Cut without a word.
    Drop,
    /// The client sent a close frame: let the automatic reply go out.
    ClientClosed,
    /// The client went away (or the socket failed).
    Gone,
}

type Sink = SplitSink<WebSocket, Message>;
type Stream = SplitStream<WebSocket>;

/// Serve one upgraded websocket whose session id was issued in `generation`.
pub(crate) async fn run(hub: Hub, socket: WebSocket, generation: u64) {
    let (mut sink, mut stream) = socket.split();
    let Some(mut reg) = hub.register(generation) else {
        // The hub restarted (or went offline) between handshake and upgrade.
        close(&mut sink).await;
        return;
    };
    tracing::debug!(connection = reg.id, "ftrack emulator hub: connected");
    let end = session(&hub, &mut reg, &mut sink, &mut stream).await;
    hub.unregister(reg.id);
    match end {
        End::Close => close(&mut sink).await,
        End::ClientClosed => {
            let _ = tokio::time::timeout(Duration::from_secs(2), sink.flush()).await;
        }
        End::Drop | End::Gone => {}
    }
    tracing::debug!(connection = reg.id, "ftrack emulator hub: disconnected");
}

async fn send(sink: &mut Sink, frame: &str) -> Result<(), End> {
    sink.send(Message::Text(frame.to_string().into()))
        .await
        .map_err(|_| End::Gone)
}

/// `0::`, then the websocket close frame (bounded: a client that stopped reading must not
/// hold the task).
async fn close(sink: &mut Sink) {
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = send(sink, frames::DISCONNECT).await;
        let _ = sink.close().await;
    })
    .await;
}

async fn session(hub: &Hub, reg: &mut Registered, sink: &mut Sink, stream: &mut Stream) -> End {
    let cfg = hub.config().clone();
    let interval = cfg.heartbeat_interval.max(Duration::from_millis(1));
    let mut beat = tokio::time::interval_at(Instant::now() + interval, interval);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the oldest unanswered heartbeat was sent.
    let mut unanswered: Option<Instant> = None;
    if let Err(end) = send(sink, frames::CONNECT).await {
        return end;
    }
    loop {
        let deadline = unanswered.map(|at| at + cfg.heartbeat_timeout);
        let timed_out = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            msg = stream.next() => {
                let text = match msg {
                    Some(Ok(Message::Close(_))) => return End::ClientClosed,
                    None | Some(Err(_)) => return End::Gone,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    Some(Ok(Message::Binary(_))) => {
                        hub.reject(reg.id, "a binary websocket message is not a socket.io 0.9 frame", true);
                        return End::Close;
                    }
                    Some(Ok(Message::Text(t))) => t,
                };
                match on_frame(hub, reg.id, text.as_str(), sink).await {
                    Ok(Some(Heard::Heartbeat)) => unanswered = None,
                    Ok(None) => {}
                    Err(end) => return end,
                }
            }
            frame = reg.rx.recv() => match frame {
                Some(f) => {
                    if let Err(end) = send(sink, &f).await {
                        return end;
                    }
                }
                // The hub forgot the connection (restart or cut): its signal says how to end.
                None => {
                    return match reg.control.signal() {
                        Signal::Drop => End::Drop,
                        Signal::Close | Signal::None => End::Close,
                    }
                }
            },
            _ = reg.control.notify.notified() => match reg.control.signal() {
                Signal::Drop => return End::Drop,
                Signal::Close | Signal::None => return End::Close,
            },
            _ = beat.tick() => {
                if let Err(end) = send(sink, frames::HEARTBEAT).await {
                    return end;
                }
                unanswered.get_or_insert_with(Instant::now);
            }
            _ = timed_out => {
                hub.reject(
                    reg.id,
                    format!("no answer to a heartbeat within {:?}", cfg.heartbeat_timeout),
                    true,
                );
                return End::Close;
            }
        }
    }
}

enum Heard {
    Heartbeat,
}

/// Handle one text frame. `Err` ends the session.
async fn on_frame(hub: &Hub, id: u64, text: &str, sink: &mut Sink) -> Result<Option<Heard>, End> {
    match frames::parse_client_frame(text) {
        Ok(ClientFrame::Heartbeat) => Ok(Some(Heard::Heartbeat)),
        Ok(ClientFrame::Disconnect) => Err(End::Close),
        Ok(ClientFrame::Event { ack, event }) => match hub.receive(id, event) {
            Outcome::Ack(payload) => {
                if let Some(n) = ack {
                    send(sink, &frames::ack_frame(n, &payload)).await?;
                }
                Ok(None)
            }
            Outcome::Fatal(reason) => Err(refuse(hub, id, ack, reason, sink).await),
        },
        Err(e) => Err(refuse(hub, id, e.ack, e.message, sink).await),
    }
}

/// Record a refusal that closes the connection; acknowledge it first when asked.
async fn refuse(hub: &Hub, id: u64, ack: Option<u64>, reason: String, sink: &mut Sink) -> End {
    if let Some(n) = ack {
        let payload: Value = json!({"success": false, "message": reason});
        if send(sink, &frames::ack_frame(n, &payload)).await.is_err() {
            hub.reject(id, reason, true);
            return End::Gone;
        }
    }
    hub.reject(id, reason, true);
    End::Close
}
