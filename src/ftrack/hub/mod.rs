//! ftrack's event hub, as the official clients speak it (socket.io 0.9 over a websocket):
//! publish events with acknowledgements, subscribe with ftrack's expressions, reply, and keep
//! the connection up — heartbeats answered, and after a lost connection a new handshake with
//! every subscription sent again.
//!
//! Exists so other ftrack tools can see what a sync did and so an administrator can run it
//! from ftrack's Actions menu. The hub is opened from an authenticated [`Session`]: the same
//! server, credentials, HTTP client and CA. The API key goes only into the HTTP handshake,
//! never into a URL or a log line.
//!
//! One background task owns the websocket; [`EventHub`] talks to it through a channel, so a
//! publish never waits on a reader and a slow subscriber never stalls the connection.

mod connection;
pub mod event;
pub mod expression;
mod frame;

pub use event::Event;
pub use expression::Expression;

use super::Session;
use connection::{Endpoint, Socket};
use frame::Frame;
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

/// Why the hub could not be used.
#[derive(Debug, Clone, thiserror::Error)]
pub enum HubError {
    /// The handshake or the websocket failed (the hub is down, unreachable, or has none).
    #[error("{0}")]
    Connection(String),
    /// The server refused the credentials.
    #[error("{0}")]
    Refused(String),
    /// The server has no event hub (its handshake path is not found).
    #[error("{0}")]
    NoHub(String),
    /// The server did not acknowledge a publish in time, or the connection went meanwhile.
    #[error("{0}")]
    NotAcknowledged(String),
    /// An expression that is not ftrack's syntax.
    #[error("{0}")]
    Expression(String),
    /// The hub was closed.
    #[error("the event hub connection is closed")]
    Closed,
}

/// How patient the connection is.
#[derive(Debug, Clone)]
pub struct HubSettings {
    /// A connection with no frame for this long is dead (the server sends heartbeats).
    pub heartbeat_timeout: Duration,
    /// The first wait before reconnecting; doubled after each failure up to `max_retry`.
    pub first_retry: Duration,
    pub max_retry: Duration,
    /// How long a publish waits for the server's acknowledgement.
    pub ack_timeout: Duration,
    /// Handshake, upgrade and `1::`, each.
    pub connect_timeout: Duration,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            heartbeat_timeout: Duration::from_secs(60),
            first_retry: Duration::from_secs(1),
            max_retry: Duration::from_secs(30),
            ack_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// A connected event hub.
pub struct EventHub {
    id: String,
    api_user: String,
    commands: mpsc::UnboundedSender<Command>,
    ack_timeout: Duration,
}

enum Command {
    Publish {
        event: Event,
        acked: oneshot::Sender<Result<(), HubError>>,
        replies: Option<mpsc::UnboundedSender<Event>>,
    },
    Subscribe(Subscription),
    Close(oneshot::Sender<()>),
}

struct Subscription {
    expression: Expression,
    text: String,
    /// The subscriber's metadata, `id` included; an event's `target` is matched against it.
    metadata: Value,
    deliver: mpsc::UnboundedSender<Event>,
}

impl EventHub {
    /// Connects to the hub of `session`'s server. Fails when the first connection fails (so a
    /// caller can say the hub is down); later losses are reconnected in the background.
    pub async fn connect(session: &Session, settings: HubSettings) -> Result<EventHub, HubError> {
        let endpoint = session.hub_endpoint(settings.connect_timeout)?;
        let socket = endpoint.open().await?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (commands, inbox) = mpsc::unbounded_channel();
        let task = Task {
            endpoint,
            settings: settings.clone(),
            source: json!({
                "id": id,
                "applicationId": "ldap2ftrack",
                "user": {"username": session.api_user()},
            }),
            subscriptions: Vec::new(),
            waiting_acks: HashMap::new(),
            waiting_replies: HashMap::new(),
            outbox: Vec::new(),
            next_message: 1,
        };
        tokio::spawn(task.run(socket, inbox));
        Ok(EventHub {
            id,
            api_user: session.api_user().to_string(),
            commands,
            ack_timeout: settings.ack_timeout,
        })
    }

    /// This connection's id (`source.id` of what it publishes; replies target it).
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The API user the hub was opened as.
    pub fn api_user(&self) -> &str {
        &self.api_user
    }

    /// Subscribes to the events matching `expression`, as a subscriber described by
    /// `metadata` (an object; an `id` is added when it has none). Events arrive on the
    /// returned channel; the subscription is sent again after every reconnect.
    pub fn subscribe(
        &self,
        expression: &str,
        metadata: Value,
    ) -> Result<mpsc::UnboundedReceiver<Event>, HubError> {
        let parsed = Expression::parse(expression).map_err(HubError::Expression)?;
        let mut metadata = match metadata {
            Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        metadata
            .entry("id")
            .or_insert_with(|| Value::String(uuid::Uuid::new_v4().simple().to_string()));
        let (deliver, receive) = mpsc::unbounded_channel();
        self.commands
            .send(Command::Subscribe(Subscription {
                expression: parsed,
                text: expression.to_string(),
                metadata: Value::Object(metadata),
                deliver,
            }))
            .map_err(|_| HubError::Closed)?;
        Ok(receive)
    }

    /// Publishes `event` (its `source` set to this hub) and waits for the server's
    /// acknowledgement.
    pub async fn publish(&self, event: Event) -> Result<(), HubError> {
        self.send(event, None).await
    }

    /// Publishes `event` and collects the replies that arrive within `wait`.
    pub async fn publish_and_collect(
        &self,
        event: Event,
        wait: Duration,
    ) -> Result<Vec<Event>, HubError> {
        let (replies, mut received) = mpsc::unbounded_channel();
        self.send(event, Some(replies)).await?;
        let mut collected = Vec::new();
        let deadline = Instant::now() + wait;
        while let Ok(Some(reply)) = tokio::time::timeout_at(deadline, received.recv()).await {
            collected.push(reply);
        }
        Ok(collected)
    }

    /// Replies to `to` as the subscriber `metadata` with `data`.
    pub async fn reply(&self, to: &Event, metadata: &Value, data: Value) -> Result<(), HubError> {
        self.publish(to.reply(metadata, data)).await
    }

    /// Closes the connection (`0::`) and stops reconnecting.
    pub async fn close(self) {
        let (done, closed) = oneshot::channel();
        if self.commands.send(Command::Close(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), closed).await;
        }
    }

    async fn send(
        &self,
        event: Event,
        replies: Option<mpsc::UnboundedSender<Event>>,
    ) -> Result<(), HubError> {
        let topic = event.topic.clone();
        let (acked, ack) = oneshot::channel();
        self.commands
            .send(Command::Publish {
                event,
                acked,
                replies,
            })
            .map_err(|_| HubError::Closed)?;
        match tokio::time::timeout(self.ack_timeout, ack).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(HubError::Closed),
            Err(_) => Err(HubError::NotAcknowledged(format!(
                "the event hub did not acknowledge `{topic}` within {} s",
                self.ack_timeout.as_secs()
            ))),
        }
    }
}

/// The background task that owns the websocket.
struct Task {
    endpoint: Endpoint,
    settings: HubSettings,
    /// What every event we publish carries as `source`.
    source: Value,
    subscriptions: Vec<Subscription>,
    waiting_acks: HashMap<u64, oneshot::Sender<Result<(), HubError>>>,
    /// Reply collectors by the id of the event they answer.
    waiting_replies: HashMap<String, mpsc::UnboundedSender<Event>>,
    /// Publishes made while disconnected, sent after the next connect.
    outbox: Vec<(Event, oneshot::Sender<Result<(), HubError>>)>,
    next_message: u64,
}

/// How one connection ended.
enum Ended {
    Closed,
    Lost(String),
}

impl Task {
    async fn run(mut self, socket: Socket, mut inbox: mpsc::UnboundedReceiver<Command>) {
        let mut socket = Some(socket);
        let mut delay = self.settings.first_retry;
        loop {
            let current = match socket.take() {
                Some(socket) => socket,
                None => match self.reconnect(&mut inbox, &mut delay).await {
                    Some(socket) => socket,
                    None => return,
                },
            };
            match self.serve(current, &mut inbox).await {
                Ended::Closed => return,
                Ended::Lost(why) => {
                    tracing::warn!(
                        "the ftrack event hub connection was lost ({why}); reconnecting"
                    );
                    for (_, acked) in self.waiting_acks.drain() {
                        let _ = acked.send(Err(HubError::NotAcknowledged(format!(
                            "the event hub connection was lost before the server acknowledged ({why})"
                        ))));
                    }
                    delay = self.settings.first_retry;
                }
            }
        }
    }

    /// Waits and reconnects until it works, taking commands meanwhile; `None` when closed.
    async fn reconnect(
        &mut self,
        inbox: &mut mpsc::UnboundedReceiver<Command>,
        delay: &mut Duration,
    ) -> Option<Socket> {
        loop {
            let wake = Instant::now() + *delay;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(wake) => break,
                    command = inbox.recv() => match command {
                        None => return None,
                        Some(Command::Close(done)) => {
                            let _ = done.send(());
                            return None;
                        }
                        Some(Command::Subscribe(subscription)) => self.subscriptions.push(subscription),
                        Some(Command::Publish { event, acked, replies }) => {
                            if let Some(replies) = replies {
                                self.waiting_replies.insert(event.id.clone(), replies);
                            }
                            self.outbox.push((event, acked));
                        }
                    },
                }
            }
            match self.endpoint.open().await {
                Ok(socket) => {
                    tracing::info!("reconnected to the ftrack event hub");
                    return Some(socket);
                }
                Err(e) => {
                    tracing::warn!("the ftrack event hub is still unreachable: {e}");
                    *delay = (*delay * 2).min(self.settings.max_retry);
                }
            }
        }
    }

    /// Serves one open connection until it ends.
    async fn serve(
        &mut self,
        mut socket: Socket,
        inbox: &mut mpsc::UnboundedReceiver<Command>,
    ) -> Ended {
        // Replies to our publishes, then every subscription (again, after a reconnect), then
        // what was published while disconnected.
        let own = json!({"id": self.source["id"]});
        let mut setup = vec![self.subscribe_event("topic=ftrack.meta.reply", &own)];
        for subscription in &self.subscriptions {
            setup.push(self.subscribe_event(&subscription.text, &subscription.metadata));
        }
        for event in setup {
            if let Err(why) = self.write(&mut socket, event, None).await {
                return Ended::Lost(why);
            }
        }
        for (event, acked) in std::mem::take(&mut self.outbox) {
            if let Err(why) = self.write(&mut socket, event, Some(acked)).await {
                return Ended::Lost(why);
            }
        }
        let mut alive_until = Instant::now() + self.settings.heartbeat_timeout;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(alive_until) => {
                    return Ended::Lost(format!(
                        "no heartbeat for {} s",
                        self.settings.heartbeat_timeout.as_secs()
                    ));
                }
                message = socket.next() => {
                    alive_until = Instant::now() + self.settings.heartbeat_timeout;
                    match message {
                        None => return Ended::Lost("the websocket closed".to_string()),
                        Some(Err(e)) => return Ended::Lost(e.to_string()),
                        Some(Ok(Message::Text(text))) => {
                            if let Some(ended) = self.received(&mut socket, text.as_str()).await {
                                return ended;
                            }
                        }
                        Some(Ok(Message::Close(_))) => {
                            return Ended::Lost("the server closed the websocket".to_string())
                        }
                        Some(Ok(_)) => {}
                    }
                }
                command = inbox.recv() => match command {
                    None => {
                        let _ = socket.send(Message::text(frame::DISCONNECT)).await;
                        return Ended::Closed;
                    }
                    Some(Command::Close(done)) => {
                        let _ = socket.send(Message::text(frame::DISCONNECT)).await;
                        let _ = socket.close(None).await;
                        let _ = done.send(());
                        return Ended::Closed;
                    }
                    Some(Command::Subscribe(subscription)) => {
                        let event = self.subscribe_event(&subscription.text, &subscription.metadata);
                        self.subscriptions.push(subscription);
                        if let Err(why) = self.write(&mut socket, event, None).await {
                            return Ended::Lost(why);
                        }
                    }
                    Some(Command::Publish { event, acked, replies }) => {
                        if let Some(replies) = replies {
                            self.waiting_replies.insert(event.id.clone(), replies);
                        }
                        if let Err(why) = self.write(&mut socket, event, Some(acked)).await {
                            return Ended::Lost(why);
                        }
                    }
                },
            }
        }
    }

    /// Handles one frame; `Some` when the connection ends.
    async fn received(&mut self, socket: &mut Socket, text: &str) -> Option<Ended> {
        match frame::parse(text) {
            Ok(Frame::Heartbeat) => {
                if let Err(e) = socket.send(Message::text(frame::HEARTBEAT)).await {
                    return Some(Ended::Lost(e.to_string()));
                }
            }
            Ok(Frame::Disconnect) => return Some(Ended::Lost("the server said `0::`".to_string())),
            Ok(Frame::Event(payload)) => self.deliver(&payload),
            Ok(Frame::Ack { id, data }) => {
                if let Some(acked) = self.waiting_acks.remove(&id) {
                    let refused = serde_json::from_str::<Value>(&data)
                        .ok()
                        .and_then(|v| v.pointer("/0/success").and_then(Value::as_bool))
                        == Some(false);
                    let _ = acked.send(if refused {
                        Err(HubError::NotAcknowledged(
                            "the event hub answered the publish with success: false".to_string(),
                        ))
                    } else {
                        Ok(())
                    });
                }
            }
            Ok(Frame::Error(why)) => tracing::warn!("the ftrack event hub reports an error: {why}"),
            Ok(Frame::Connect) => {}
            Ok(Frame::Other(shown)) => {
                tracing::warn!(
                    "ignoring a frame the event hub sent that is not understood: {shown}"
                )
            }
            Err(why) => tracing::warn!("ignoring a malformed frame from the event hub: {why}"),
        }
        None
    }

    /// Hands an event to every subscription it is for, and a reply to its collector.
    fn deliver(&mut self, payload: &str) {
        let event = serde_json::from_str::<Value>(payload)
            .ok()
            .filter(|p| p["name"] == "ftrack.event")
            .and_then(|mut p| p["args"].get_mut(0).map(Value::take))
            .and_then(|e| serde_json::from_value::<Event>(e).ok());
        let Some(event) = event else {
            // Its content is not logged: events may carry anything.
            tracing::warn!("ignoring an event from the hub that is not an ftrack event envelope");
            return;
        };
        if event.topic == "ftrack.meta.reply" {
            if let Some(collector) = event
                .in_reply_to_event
                .as_ref()
                .and_then(|id| self.waiting_replies.get(id))
            {
                let _ = collector.send(event);
            }
            return;
        }
        let value = event.to_value();
        let target = if event.target.is_empty() {
            None
        } else {
            match Expression::parse(&event.target) {
                Ok(target) => Some(target),
                Err(why) => {
                    tracing::warn!("ignoring an event whose target is not an expression: {why}");
                    return;
                }
            }
        };
        self.subscriptions.retain(|s| !s.deliver.is_closed());
        for subscription in &self.subscriptions {
            let for_it = target
                .as_ref()
                .is_none_or(|t| t.matches(&subscription.metadata));
            if for_it && subscription.expression.matches(&value) {
                let _ = subscription.deliver.send(event.clone());
            }
        }
    }

    fn subscribe_event(&self, expression: &str, metadata: &Value) -> Event {
        Event::new(
            "ftrack.meta.subscribe",
            json!({"subscriber": metadata, "subscription": expression}),
        )
    }

    /// Sends `event` with our source, registering `acked` under its message id.
    async fn write(
        &mut self,
        socket: &mut Socket,
        mut event: Event,
        acked: Option<oneshot::Sender<Result<(), HubError>>>,
    ) -> Result<(), String> {
        if event.topic != "ftrack.meta.reply" {
            event.source = self.source.clone();
        }
        let id = self.next_message;
        self.next_message += 1;
        let payload = json!({"name": "ftrack.event", "args": [event]}).to_string();
        if let Some(acked) = acked {
            self.waiting_acks.insert(id, acked);
        }
        socket
            .send(Message::text(frame::event(id, &payload)))
            .await
            .map_err(|e| e.to_string())
    }
}

impl Session {
    /// Where this session's hub is, and how to reach it.
    fn hub_endpoint(&self, timeout: Duration) -> Result<Endpoint, HubError> {
        let url = url::Url::parse(self.server_url())
            .map_err(|e| HubError::Connection(format!("{}: {e}", self.server_url())))?;
        let mut origin = url.clone();
        origin.set_path("/");
        origin.set_query(None);
        origin.set_fragment(None);
        let tls = if url.scheme() == "https" {
            Some(
                crate::net::rustls_config(self.ca_file(), "ftrack.ca_file")
                    .map_err(HubError::Connection)?,
            )
        } else {
            None
        };
        Ok(Endpoint {
            http: self.http().clone(),
            origin,
            api_user: self.api_user().to_string(),
            api_key: self.api_key().clone(),
            tls,
            timeout,
        })
    }
}
