//! ftrack's event hub (`shared/ftrack-event-hub.md`), served on the emulator's HTTP port
//! so the official clients can `connect()` to it: the socket.io 0.9 handshake and
//! websocket ([`routes`]), one task per connection ([`connection`]), frames
//! ([`frames`]), the event envelope and subscribe requests ([`envelope`]) and the
//! subscription / target language ([`expression`]).
//!
//! This module holds the hub's state: pending session ids, the open connections with
//! their subscribers, and a recording of every event received, and it routes each
//! published event to every connection with a matching subscriber (the publisher
//! included), once per connection. [`Hub`] is also the handle tests use
//! (`RunningEmulator::hub()`).

pub mod config;
pub mod connection;
pub mod envelope;
pub mod expression;
pub mod frames;
pub mod record;
pub mod routes;

pub use config::HubConfig;
pub use record::{HubEvent, HubRejection, HubSubscriber, RECORDING_LIMIT};

use connection::{Control, Signal};
use envelope::{Envelope, Meta};
use expression::Expr;
use record::push_capped;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::mpsc;

#[derive(Debug)]
struct Subscriber {
    id: String,
    metadata: Value,
    text: String,
    expr: Expr,
}

#[derive(Debug)]
struct Conn {
    tx: mpsc::Sender<Arc<str>>,
    control: Arc<Control>,
    subscribers: Vec<Subscriber>,
}

#[derive(Debug, Default)]
struct State {
    offline: bool,
    generation: u64,
    next_connection: u64,
    /// sid → (issued at, generation).
    pending: HashMap<String, (Instant, u64)>,
    conns: BTreeMap<u64, Conn>,
    events: VecDeque<HubEvent>,
    rejections: VecDeque<HubRejection>,
}

struct Inner {
    config: HubConfig,
    api_user: String,
    api_key: String,
    state: Mutex<State>,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.config)
            .field("api_user", &self.api_user)
            .field("api_key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// The event hub of a running emulator (cheap to clone).
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

/// A connection as registered: its id, its outgoing frames and its control.
pub(crate) struct Registered {
    pub id: u64,
    pub rx: mpsc::Receiver<Arc<str>>,
    pub control: Arc<Control>,
}

/// What to answer a received event.
pub(crate) enum Outcome {
    /// Acknowledge with this payload (`{"success": …}`); the connection stays.
    Ack(Value),
    /// The event is malformed: refuse it and close the connection.
    Fatal(String),
}

fn refusal(message: &str) -> Value {
    json!({"success": false, "message": message})
}

impl Hub {
    pub(crate) fn new(config: HubConfig, api_user: &str, api_key: &str) -> Hub {
        Hub {
            inner: Arc::new(Inner {
                config,
                api_user: api_user.to_string(),
                api_key: api_key.to_string(),
                state: Mutex::new(State::default()),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn config(&self) -> &HubConfig {
        &self.inner.config
    }

    pub(crate) fn credentials_match(&self, user: &str, key: &str) -> bool {
        user == self.inner.api_user && key == self.inner.api_key
    }

    /// A new session id, or `None` while the hub is offline.
    pub(crate) fn issue_sid(&self) -> Option<String> {
        let ttl = self.inner.config.sid_ttl;
        let mut st = self.lock();
        if st.offline {
            return None;
        }
        st.pending.retain(|_, (at, _)| at.elapsed() <= ttl);
        let sid = uuid::Uuid::new_v4().simple().to_string();
        let generation = st.generation;
        st.pending.insert(sid.clone(), (Instant::now(), generation));
        Some(sid)
    }

    /// Use up a session id; its generation if it was issued, unused and fresh.
    pub(crate) fn take_sid(&self, sid: &str) -> Option<u64> {
        let (at, generation) = self.lock().pending.remove(sid)?;
        (at.elapsed() <= self.inner.config.sid_ttl).then_some(generation)
    }

    /// Register a new connection, unless the hub restarted since its sid was issued.
    pub(crate) fn register(&self, generation: u64) -> Option<Registered> {
        let mut st = self.lock();
        if st.generation != generation || st.offline {
            return None;
        }
        st.next_connection += 1;
        let id = st.next_connection;
        let (tx, rx) = mpsc::channel(self.inner.config.queue_limit.max(1));
        let control = Arc::new(Control::new());
        st.conns.insert(
            id,
            Conn {
                tx,
                control: control.clone(),
                subscribers: Vec::new(),
            },
        );
        Some(Registered { id, rx, control })
    }

    /// Forget a connection and its subscribers; whether the hub still knew it (a restart,
    /// a cut or a full queue forgets it first).
    pub(crate) fn unregister(&self, id: u64) -> bool {
        self.lock().conns.remove(&id).is_some()
    }

    /// Record a refusal on connection `id`.
    pub(crate) fn reject(&self, id: u64, reason: impl Into<String>, closed: bool) {
        let reason = reason.into();
        tracing::warn!(connection = id, closed, "ftrack emulator hub: {reason}");
        push_capped(
            &mut self.lock().rejections,
            HubRejection {
                connection: id,
                reason,
                closed,
            },
        );
    }

    /// Handle an event published on connection `id`.
    pub(crate) fn receive(&self, id: u64, event: Value) -> Outcome {
        let env = match envelope::check(event) {
            Ok(env) => env,
            Err(reason) => return Outcome::Fatal(format!("malformed event: {reason}")),
        };
        let Some(request) = envelope::meta(&env) else {
            self.deliver(Some(id), env);
            return Outcome::Ack(json!({"success": true}));
        };
        let mut st = self.lock();
        push_capped(
            &mut st.events,
            HubEvent {
                connection: Some(id),
                event: env.event.clone(),
                delivered_to: 0,
            },
        );
        let result = match (request, st.conns.get_mut(&id)) {
            (Err(reason), _) => Err(reason),
            (Ok(_), None) => Err("the connection is closing".to_string()),
            (
                Ok(Meta::Subscribe {
                    metadata,
                    id: sub,
                    text,
                    expr,
                }),
                Some(conn),
            ) => {
                if conn.subscribers.iter().any(|s| s.id == sub) {
                    Err(format!("Subscriber with identifier {sub} already exists."))
                } else {
                    conn.subscribers.push(Subscriber {
                        id: sub,
                        metadata,
                        text,
                        expr,
                    });
                    Ok(())
                }
            }
            (Ok(Meta::Unsubscribe { id: sub }), Some(conn)) => {
                let before = conn.subscribers.len();
                conn.subscribers.retain(|s| s.id != sub);
                if conn.subscribers.len() == before {
                    Err(format!(
                        "No subscriber with identifier {sub} on this connection."
                    ))
                } else {
                    Ok(())
                }
            }
        };
        drop(st);
        match result {
            Ok(()) => Outcome::Ack(json!({"success": true})),
            Err(reason) => {
                self.reject(id, format!("{}: {reason}", env.topic()), false);
                Outcome::Ack(refusal(&reason))
            }
        }
    }

    /// Send `env` to every connection with a matching subscriber; record it.
    fn deliver(&self, from: Option<u64>, env: Envelope) -> usize {
        let frame: Arc<str> = frames::event_frame(&env.event).into();
        let mut st = self.lock();
        let mut delivered = 0;
        let mut stuck = Vec::new();
        for (cid, conn) in &st.conns {
            let wanted = conn.subscribers.iter().any(|s| {
                env.target.as_ref().is_none_or(|t| t.matches(&s.metadata))
                    && s.expr.matches(&env.event)
            });
            if !wanted {
                continue;
            }
            match conn.tx.try_send(frame.clone()) {
                Ok(()) => delivered += 1,
                Err(mpsc::error::TrySendError::Full(_)) => stuck.push(*cid),
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
        for cid in stuck {
            if let Some(conn) = st.conns.remove(&cid) {
                conn.control.send(Signal::Close);
                let reason = format!(
                    "the connection fell {} frames behind; closed",
                    self.inner.config.queue_limit
                );
                tracing::warn!(connection = cid, "ftrack emulator hub: {reason}");
                push_capped(
                    &mut st.rejections,
                    HubRejection {
                        connection: cid,
                        reason,
                        closed: true,
                    },
                );
            }
        }
        push_capped(
            &mut st.events,
            HubEvent {
                connection: from,
                event: env.event,
                delivered_to: delivered,
            },
        );
        delivered
    }

    /// Publish `event` as the server would (e.g. an `ftrack.action.discover` from the web
    /// UI): checked like a client's event, delivered, recorded with `connection: None`.
    /// Returns the number of connections it was sent to. Subscribe requests are refused.
    pub fn publish(&self, event: Value) -> Result<usize, String> {
        let env = envelope::check(event)?;
        if envelope::meta(&env).is_some() {
            return Err(format!(
                "{} is a request to the hub from a connection; it cannot be published here",
                env.topic()
            ));
        }
        Ok(self.deliver(None, env))
    }

    /// Every event received (newest last, at most [`RECORDING_LIMIT`]).
    pub fn events(&self) -> Vec<HubEvent> {
        self.lock().events.iter().cloned().collect()
    }

    /// Forget the recorded events and rejections.
    pub fn clear_events(&self) {
        let mut st = self.lock();
        st.events.clear();
        st.rejections.clear();
    }

    /// Everything refused so far (newest last).
    pub fn rejections(&self) -> Vec<HubRejection> {
        self.lock().rejections.iter().cloned().collect()
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.lock().conns.len()
    }

    /// Every registered subscriber, by connection.
    pub fn subscribers(&self) -> Vec<HubSubscriber> {
        let st = self.lock();
        st.conns
            .iter()
            .flat_map(|(cid, c)| {
                c.subscribers.iter().map(|s| HubSubscriber {
                    connection: *cid,
                    id: s.id.clone(),
                    subscription: s.text.clone(),
                    metadata: s.metadata.clone(),
                })
            })
            .collect()
    }

    fn end_all(&self, signal: Signal) -> usize {
        let mut st = self.lock();
        st.generation += 1;
        st.pending.clear();
        let conns = std::mem::take(&mut st.conns);
        for conn in conns.values() {
            conn.control.send(signal);
        }
        conns.len()
    }

    /// The hub restarts: every connection gets `0::` and is closed, pending session ids
    /// and all subscriptions are forgotten. Clients reconnect with a new handshake.
    /// Returns the number of connections closed.
    pub fn restart(&self) -> usize {
        self.end_all(Signal::Close)
    }

    /// The hub dies: every connection is cut without `0::` or a close frame.
    pub fn drop_connections(&self) -> usize {
        self.end_all(Signal::Drop)
    }

    /// While offline, handshakes are refused with 503 (open connections stay; combine
    /// with [`Hub::restart`] or [`Hub::drop_connections`] for an outage).
    pub fn set_online(&self, online: bool) {
        let mut st = self.lock();
        st.offline = !online;
        if !online {
            st.pending.clear();
        }
    }
}
