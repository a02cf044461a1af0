//! What the hub lets tests see: the events it received ([`HubEvent`]), what it refused
//! ([`HubRejection`]) and the subscribers it holds ([`HubSubscriber`]). The recording is
//! capped at [`RECORDING_LIMIT`] entries each, so a long-running emulator does not grow
//! without bound.

use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;

/// Most events (and rejections) kept in the recording; older ones are forgotten.
pub const RECORDING_LIMIT: usize = 10_000;

/// An event the hub received, as delivered (all seven envelope keys).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubEvent {
    /// The connection it came from; `None` when published with
    /// [`Hub::publish`](super::Hub::publish).
    pub connection: Option<u64>,
    pub event: Value,
    /// Connections it was sent to (subscribe / unsubscribe requests: 0).
    pub delivered_to: usize,
}

/// Something the hub refused, and whether it closed the connection for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HubRejection {
    pub connection: u64,
    pub reason: String,
    pub closed: bool,
}

/// A subscriber registered on a connection.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubSubscriber {
    pub connection: u64,
    pub id: String,
    pub subscription: String,
    pub metadata: Value,
}

/// Append, forgetting the oldest entry at the limit.
pub(crate) fn push_capped<T>(list: &mut VecDeque<T>, item: T) {
    if list.len() >= RECORDING_LIMIT {
        list.pop_front();
    }
    list.push_back(item);
}
