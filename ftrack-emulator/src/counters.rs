//! Request/operation/query counters, so tests can assert round trips
//! ("N requests", "N queries on User").

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Counts since start-up or the last counter reset.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    /// `POST /api` requests received (including rejected and fault-injected ones).
    pub requests: u64,
    /// Requests answered with an error object (auth, batch error, injected fault).
    pub errors: u64,
    /// Operations by action name, as sent (e.g. `"query"`, `"create"`).
    pub operations: BTreeMap<String, u64>,
    /// `query` operations by the entity type they query (e.g. `"User"`).
    pub queries: BTreeMap<String, u64>,
    /// Rows the queries returned, by entity type: what a client read.
    #[serde(default)]
    pub rows: BTreeMap<String, u64>,
}

impl Counters {
    /// Number of operations with this action.
    pub fn operations_of(&self, action: &str) -> u64 {
        self.operations.get(action).copied().unwrap_or(0)
    }
    /// Number of queries on this entity type.
    pub fn queries_on(&self, entity_type: &str) -> u64 {
        self.queries.get(entity_type).copied().unwrap_or(0)
    }
    pub(crate) fn count_operation(&mut self, action: &str) {
        *self.operations.entry(action.to_string()).or_default() += 1;
    }
    /// Rows returned by queries on this entity type.
    pub fn rows_of(&self, entity_type: &str) -> u64 {
        self.rows.get(entity_type).copied().unwrap_or(0)
    }
    pub(crate) fn count_rows(&mut self, entity_type: &str, rows: u64) {
        *self.rows.entry(entity_type.to_string()).or_default() += rows;
    }
    pub(crate) fn count_query(&mut self, entity_type: &str) {
        *self.queries.entry(entity_type.to_string()).or_default() += 1;
    }
}
