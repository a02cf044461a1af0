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
    /// A frame could not be written within the limit: the client stopped reading.
    Stalled,
}

/// The sending half, with a time limit on every write (a client that stops reading must
/// not hold the task forever).
struct Link {
    sink: SplitSink<WebSocket, Message>,
    limit: Duration,
}

impl Link {
    async fn send(&mut self, frame: &str) -> Result<(), End> {
        let msg = Message::Text(frame.to_string().into());
        match tokio::time::timeout(self.limit, self.sink.send(msg)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(End::Gone),
            Err(_) => Err(End::Stalled),
        }
    }

    /// `0::`, then the websocket close frame (bounded).
    async fn close(&mut self) {
        let _ = tokio::time::timeout(Duration::from_secs(2), async {
            let _ = self.send(frames::DISCONNECT).await;
            let _ = self.sink.close().await;
        })
        .await;
    }
}

/// Serve one upgraded websocket whose session id was issued in `generation`.
pub(crate) async fn run(hub: Hub, socket: WebSocket, generation: u64) {
    let (sink, mut stream) = socket.split();
    let mut link = Link {
        sink,
        limit: hub
            .config()
            .heartbeat_timeout
            .max(Duration::from_millis(100)),
    };
    let Some(mut reg) = hub.register(generation) else {
        // The hub restarted (or went offline) between handshake and upgrade.
        link.close().await;
        return;
    };
    tracing::debug!(connection = reg.id, "ftrack emulator hub: connected");
    let end = session(&hub, &mut reg, &mut link, &mut stream).await;
    let still_known = hub.unregister(reg.id);
    match end {
        End::Close => link.close().await,
        End::ClientClosed => {
            let _ = tokio::time::timeout(Duration::from_secs(2), link.sink.flush()).await;
        }
        // Already recorded when the hub gave up on the connection first.
        End::Stalled if still_known => hub.reject(
            reg.id,
            format!("the client read nothing for {:?}; cut", link.limit),
            true,
        ),
        End::Stalled => {}
        End::Drop | End::Gone => {}
    }
    tracing::debug!(connection = reg.id, "ftrack emulator hub: disconnected");
}

async fn session(
    hub: &Hub,
    reg: &mut Registered,
    link: &mut Link,
    stream: &mut SplitStream<WebSocket>,
) -> End {
    let cfg = hub.config().clone();
    let interval = cfg.heartbeat_interval.max(Duration::from_millis(1));
    let mut beat = tokio::time::interval_at(Instant::now() + interval, interval);
    beat.set_missed_tick_behavior(MissedTickBehavior::Delay);
    // When the oldest unanswered heartbeat was sent.
    let mut unanswered: Option<Instant> = None;
    if let Err(end) = link.send(frames::CONNECT).await {
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
                match on_frame(hub, reg.id, text.as_str(), link).await {
                    Ok(Some(Heard::Heartbeat)) => unanswered = None,
                    Ok(None) => {}
                    Err(end) => return end,
                }
            }
            frame = reg.rx.recv() => match frame {
                Some(f) => {
                    if let Err(end) = link.send(&f).await {
                        return end;
                    }
                }
                // The hub forgot the connection (restart or cut): its signal says how to end.
                None => return ending(&reg.control),
            },
            _ = reg.control.notify.notified() => return ending(&reg.control),
            _ = beat.tick() => {
                if let Err(end) = link.send(frames::HEARTBEAT).await {
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

fn ending(control: &Control) -> End {
    match control.signal() {
        Signal::Drop => End::Drop,
        Signal::Close | Signal::None => End::Close,
    }
}

enum Heard {
    Heartbeat,
}

/// Handle one text frame. `Err` ends the session.
async fn on_frame(hub: &Hub, id: u64, text: &str, link: &mut Link) -> Result<Option<Heard>, End> {
    match frames::parse_client_frame(text) {
        Ok(ClientFrame::Heartbeat) => Ok(Some(Heard::Heartbeat)),
        Ok(ClientFrame::Disconnect) => Err(End::Close),
        Ok(ClientFrame::Event { ack, event }) => match hub.receive(id, event) {
            Outcome::Ack(payload) => {
                if let Some(n) = ack {
                    link.send(&frames::ack_frame(n, &payload)).await?;
                }
                Ok(None)
            }
            Outcome::Fatal(reason) => Err(refuse(hub, id, ack, reason, link).await),
        },
        Err(e) => Err(refuse(hub, id, e.ack, e.message, link).await),
    }
}

/// Record a refusal that closes the connection; acknowledge it first when asked.
async fn refuse(hub: &Hub, id: u64, ack: Option<u64>, reason: String, link: &mut Link) -> End {
    hub.reject(id, reason.clone(), true);
    if let Some(n) = ack {
        let payload: Value = json!({"success": false, "message": reason});
        if let Err(end) = link.send(&frames::ack_frame(n, &payload)).await {
            return end;
        }
    }
    End::Close
}
