//! An in-memory ftrack API server, faithful enough that the official
//! `ftrack-python-api` client works against it unchanged (wire protocol:
//! `shared/ftrack-api.md`). Tests, the demo, benchmarks and rule authors without an
//! ftrack server run against it, in-process ([`spawn`]) or as the `ftrack-emulator`
//! binary. It serves ftrack's event hub on the same port ([`hub`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), ftrack_emulator::EmulatorError> {
//! let emu = ftrack_emulator::spawn(ftrack_emulator::EmulatorConfig::new("admin", "secret")).await?;
//! println!("ftrack at {}", emu.url());
//! assert_eq!(emu.counters().requests, 0);
//! emu.shutdown().await;
//! # Ok(()) }
//! ```

pub mod actions;
pub mod counters;
pub mod error;
pub mod faults;
pub mod http;
pub mod hub;
pub mod query;
pub mod schema;
pub mod state;
pub mod store;

pub use counters::Counters;
pub use error::ApiError;
pub use faults::Faults;
pub use hub::{Hub, HubConfig, HubEvent, HubRejection, HubSubscriber};
pub use state::{StateDump, StateError};

use actions::Engine;
use http::{Inner, Shared};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How to start an emulator.
#[derive(Clone)]
pub struct EmulatorConfig {
    /// Username accepted in the `ftrack-user` header; it always exists as an active User.
    pub api_user: String,
    /// Key accepted in the `ftrack-api-key` header.
    pub api_key: String,
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Faults to inject from the first request on.
    pub faults: Faults,
    /// Initial data (otherwise empty apart from the API user, UserType "ftrack" and
    /// ProjectSchema "VFX Scheme").
    pub state: Option<StateDump>,
    /// Event hub timing (heartbeat interval and timeout, session id lifetime).
    pub hub: HubConfig,
}

impl std::fmt::Debug for EmulatorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmulatorConfig")
            .field("api_user", &self.api_user)
            .field("api_key", &"<redacted>")
            .field("listen", &self.listen)
            .field("faults", &self.faults)
            .field("state", &self.state.as_ref().map(|_| "<state>"))
            .field("hub", &self.hub)
            .finish()
    }
}

impl EmulatorConfig {
    /// Listen on `127.0.0.1` on an ephemeral port, no faults, empty state.
    pub fn new(api_user: impl Into<String>, api_key: impl Into<String>) -> EmulatorConfig {
        EmulatorConfig {
            api_user: api_user.into(),
            api_key: api_key.into(),
            listen: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 0),
            faults: Faults::default(),
            state: None,
            hub: HubConfig::default(),
        }
    }
    /// Set the listen address.
    pub fn listen(mut self, addr: SocketAddr) -> Self {
        self.listen = addr;
        self
    }
    /// Set the start-up faults.
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = faults;
        self
    }
    /// Set the initial state.
    pub fn state(mut self, state: StateDump) -> Self {
        self.state = Some(state);
        self
    }
    /// Set the event hub's timing.
    pub fn hub(mut self, hub: HubConfig) -> Self {
        self.hub = hub;
        self
    }
    /// Set how often the event hub sends a heartbeat (default 10 s).
    pub fn heartbeat_interval(mut self, every: Duration) -> Self {
        self.hub.heartbeat_interval = every;
        self
    }
}

/// Why the emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    #[error("cannot listen on {addr}: {source} (is the port in use? use port 0 for a free one)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot load the initial state: {0}")]
    State(#[from] StateError),
}

/// A running emulator. Dropping it stops the server as well.
pub struct RunningEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    hub: Hub,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

/// Start an emulator on the current tokio runtime.
pub async fn spawn(config: EmulatorConfig) -> Result<RunningEmulator, EmulatorError> {
    let mut engine = Engine::new(&config.api_user);
    if let Some(dump) = &config.state {
        engine.replace_store(state::load(dump)?);
    }
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener
        .local_addr()
        .map_err(|source| EmulatorError::Bind {
            addr: config.listen,
            source,
        })?;
    let shared = Arc::new(Shared {
        inner: Mutex::new(Inner {
            engine,
            counters: Counters::default(),
            faults: faults::FaultState::new(config.faults.clone()),
        }),
        api_user: config.api_user.clone(),
        api_key: config.api_key.clone(),
    });
    let (tx, rx) = oneshot::channel::<()>();
    let hub = Hub::new(config.hub.clone(), &config.api_user, &config.api_key);
    let app = http::router(shared.clone()).merge(hub::routes::router(hub.clone()));
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
        if let Err(e) = served {
            tracing::error!("ftrack emulator server stopped: {e}");
        }
    });
    tracing::info!("ftrack emulator listening on http://{addr}");
    Ok(RunningEmulator {
        addr,
        shared,
        hub,
        stop: Some(tx),
        task: Some(task),
    })
}

impl std::fmt::Debug for RunningEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningEmulator")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl RunningEmulator {
    /// Base URL, e.g. `http://127.0.0.1:41234` (pass as the ftrack server URL).
    pub fn url(&self) -> String {
        let ip = if self.addr.ip().is_unspecified() {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            self.addr.ip()
        };
        format!("http://{}", SocketAddr::new(ip, self.addr.port()))
    }

    /// The bound socket address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Snapshot all data.
    pub fn dump(&self) -> StateDump {
        state::dump(&self.shared.lock().engine.store)
    }

    /// Replace all data with `state` (plus the API-user / UserType / ProjectSchema
    /// guarantees; projects without a schema get "VFX Scheme").
    pub fn load(&self, state: StateDump) -> Result<(), StateError> {
        let store = state::load(&state)?;
        self.shared.lock().engine.replace_store(store);
        Ok(())
    }

    /// Drop all data (back to just the API user, UserType "ftrack" and ProjectSchema
    /// "VFX Scheme").
    pub fn reset(&self) {
        self.shared.lock().engine.replace_store(store::Store::new());
    }

    /// Current counters.
    pub fn counters(&self) -> Counters {
        self.shared.lock().counters.clone()
    }

    /// Zero the counters.
    pub fn reset_counters(&self) {
        self.shared.lock().counters = Counters::default();
    }

    /// Replace the injected faults (request numbering restarts at 1).
    pub fn set_faults(&self, faults: Faults) {
        self.shared.lock().faults.set(faults);
    }

    /// The injected faults in force.
    pub fn faults(&self) -> Faults {
        self.shared.lock().faults.faults.clone()
    }

    /// Run a batch directly (no HTTP, no auth, no faults; counters still count it).
    pub fn call(&self, ops: &[serde_json::Value]) -> Result<Vec<serde_json::Value>, ApiError> {
        let mut guard = self.shared.lock();
        let inner = &mut *guard;
        let replies = inner.engine.execute_batch(ops, &mut inner.counters)?;
        Ok(replies.into_iter().map(|r| r.into_value()).collect())
    }

    /// The event hub: recorded events, subscribers, restarts, server-side publishing.
    pub fn hub(&self) -> &Hub {
        &self.hub
    }

    /// The event hub restarts: every websocket gets `0::` and is closed (see
    /// [`Hub::restart`]). Returns the number of connections closed.
    pub fn restart_hub(&self) -> usize {
        self.hub.restart()
    }

    /// Stop serving (hub connections get `0::` and are closed) and wait (up to 5 s) for
    /// open connections to finish.
    pub async fn shutdown(mut self) {
        self.hub.restart();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(mut task) = self.task.take() {
            if tokio::time::timeout(Duration::from_secs(5), &mut task)
                .await
                .is_err()
            {
                task.abort();
            }
        }
    }
}

impl Drop for RunningEmulator {
    fn drop(&mut self) {
        self.hub.restart();
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
