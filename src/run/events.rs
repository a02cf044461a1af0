//! What an apply tells ftrack's event hub when it ends: `ldap2ftrack.sync.applied` or
//! `ldap2ftrack.sync.failed`, with the run's counts and the people it created, disabled,
//! enabled and renamed, so other ftrack tools (plugins, Connect, a studio's listener) can
//! react to a sync without reading its journal.
//!
//! A hub is a courtesy, never a dependency: a hub that is down or slow, and a publish the
//! server does not acknowledge, are warnings counted in the metrics; a server without a hub
//! is noted at info level; the sync's exit code never depends on them.

use crate::ftrack::hub::{Event, EventHub, HubError, HubSettings};
use crate::ftrack::Session;
use crate::plan::{OperationKind, Plan};
use serde::Serialize;
use std::collections::BTreeMap;
use std::time::Duration;

/// The topic after an apply that finished (also when there was nothing to change).
pub const APPLIED: &str = "ldap2ftrack.sync.applied";
/// The topic after an apply that stopped with an error (or was refused by a guard).
pub const FAILED: &str = "ldap2ftrack.sync.failed";

/// How many usernames each list carries; `total` says how many there were.
pub const NAMES_CAP: usize = 100;

/// The event's `data`.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SyncSummary {
    /// Operations planned, by kind (`create_user`, `disable_user`, …).
    pub planned: BTreeMap<&'static str, usize>,
    /// Operations ftrack confirmed.
    pub applied: usize,
    /// API requests the apply sent.
    pub requests: usize,
    pub seconds: f64,
    pub exit_code: u8,
    /// Why the apply stopped, for `ldap2ftrack.sync.failed`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created: Names,
    pub disabled: Names,
    pub enabled: Names,
    /// `old → new`.
    pub renamed: Names,
}

/// A capped list of usernames and how many there were in all.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Names {
    pub names: Vec<String>,
    pub total: usize,
}

impl Names {
    fn push(&mut self, name: String) {
        if self.names.len() < NAMES_CAP {
            self.names.push(name);
        }
        self.total += 1;
    }
}

impl SyncSummary {
    /// The summary of an apply of `plan` whose first `landed` operations ftrack confirmed
    /// (operations are applied in plan order); the usernames are those of landed operations.
    pub fn new(
        plan: Option<&Plan>,
        landed: usize,
        requests: usize,
        seconds: f64,
        exit_code: u8,
        error: Option<String>,
    ) -> SyncSummary {
        let mut summary = SyncSummary {
            planned: plan.map(Plan::summary).unwrap_or_default(),
            applied: landed,
            requests,
            seconds,
            exit_code,
            error,
            created: Names::default(),
            disabled: Names::default(),
            enabled: Names::default(),
            renamed: Names::default(),
        };
        let landed_operations = plan
            .map(|p| &p.operations[..landed.min(p.operations.len())])
            .unwrap_or_default();
        for operation in landed_operations {
            let name = operation.target.to_string();
            match operation.kind {
                OperationKind::CreateUser => summary.created.push(name),
                OperationKind::DisableUser => summary.disabled.push(name),
                OperationKind::EnableUser => summary.enabled.push(name),
                OperationKind::UpdateUser => {
                    if let Some(change) = operation.changes.get("username") {
                        let from = change.from.as_deref().unwrap_or("?");
                        let to = change.to.as_deref().unwrap_or(&name);
                        summary.renamed.push(format!("{from} → {to}"));
                    }
                }
                _ => {}
            }
        }
        summary
    }

    /// The topic this summary is published under.
    pub fn topic(&self) -> &'static str {
        if self.error.is_some() || self.exit_code != 0 {
            FAILED
        } else {
            APPLIED
        }
    }
}

/// Publishes `summary` on the hub of `session`'s server, waiting at most a few seconds.
pub async fn publish(session: &Session, summary: &SyncSummary) -> Result<(), HubError> {
    let settings = HubSettings {
        connect_timeout: Duration::from_secs(5),
        ack_timeout: Duration::from_secs(5),
        ..HubSettings::default()
    };
    let data = serde_json::to_value(summary)
        .map_err(|e| HubError::Connection(format!("cannot encode the sync summary: {e}")))?;
    let hub = EventHub::connect(session, settings).await?;
    let published = hub.publish(Event::new(summary.topic(), data)).await;
    hub.close().await;
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_capped_with_a_total() {
        let mut names = Names::default();
        for i in 0..NAMES_CAP + 5 {
            names.push(format!("u{i}"));
        }
        assert_eq!(names.names.len(), NAMES_CAP);
        assert_eq!(names.total, NAMES_CAP + 5);
    }

    #[test]
    fn a_failure_is_published_as_failed() {
        let ok = SyncSummary::new(None, 0, 0, 0.1, 0, None);
        assert_eq!(ok.topic(), APPLIED);
        let failed = SyncSummary::new(None, 0, 0, 0.1, 1, Some("ftrack went away".into()));
        assert_eq!(failed.topic(), FAILED);
        let refused = SyncSummary::new(None, 0, 0, 0.1, 3, None);
        assert_eq!(refused.topic(), FAILED);
    }
}
