//! The event hub's timing and limits ([`HubConfig`], part of `EmulatorConfig`).

use std::time::Duration;

/// Timing and limits of the event hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubConfig {
    /// How often the hub sends `2::` (ftrack's JavaScript client gives up after 15 s
    /// without one).
    pub heartbeat_interval: Duration,
    /// A connection that leaves a heartbeat unanswered this long is closed.
    pub heartbeat_timeout: Duration,
    /// A session id from the handshake must be upgraded within this time, once.
    pub sid_ttl: Duration,
    /// Frames queued for one connection before it counts as stuck and is closed.
    pub queue_limit: usize,
}

impl Default for HubConfig {
    fn default() -> Self {
        HubConfig {
            heartbeat_interval: Duration::from_secs(10),
            heartbeat_timeout: Duration::from_secs(60),
            sid_ttl: Duration::from_secs(10),
            queue_limit: 1024,
        }
    }
}
