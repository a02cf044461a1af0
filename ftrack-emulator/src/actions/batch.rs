//! A request is one transaction: its operations run in order against the store, each
//! routed to its action here, and the first failure rolls every change of the request
//! back. The wire format has no per-operation error slot, so the one error names the
//! operation that failed (`shared/ftrack-api.md` §2, batch failure).

use super::{str_field, Engine, SERVER_VERSION};
use crate::counters::Counters;
use crate::error::ApiError;
use crate::query::{execute, parse};
use crate::schema::wire_schemas;
use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::value::RawValue;
use serde_json::{json, Value};

/// The result of one operation. A query's rows arrive already written as JSON (rendered
/// under the store's lock, see `query::eval`), so they are not parsed back into a tree.
#[derive(Debug)]
pub enum Reply {
    Json(Value),
    Query {
        data: Box<RawValue>,
        next_offset: Option<u64>,
    },
}

impl Serialize for Reply {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Reply::Json(v) => v.serialize(s),
            Reply::Query { data, next_offset } => {
                let mut map = s.serialize_map(Some(3))?;
                map.serialize_entry("action", "query")?;
                map.serialize_entry("data", data)?;
                map.serialize_entry("metadata", &json!({"next": {"offset": next_offset}}))?;
                map.end()
            }
        }
    }
}

impl Reply {
    /// The reply as a JSON value (for callers that inspect it, e.g. tests).
    pub fn into_value(self) -> Value {
        match self {
            Reply::Json(v) => v,
            query => serde_json::to_value(&query).unwrap_or(Value::Null),
        }
    }
}

impl Engine {
    /// Run a batch atomically; on error nothing is changed.
    pub fn execute_batch(
        &mut self,
        ops: &[Value],
        counters: &mut Counters,
    ) -> Result<Vec<Reply>, ApiError> {
        self.store.begin();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.operation(op, counters) {
                Ok(r) => results.push(r),
                Err(e) => {
                    self.store.rollback();
                    let action = op.get("action").and_then(Value::as_str).unwrap_or("?");
                    let what = match op.get("entity_type").and_then(Value::as_str) {
                        Some(t) => format!("{action} {t}"),
                        None => action.to_string(),
                    };
                    let hint = if ops.len() > 1 {
                        "; the whole batch was rolled back"
                    } else {
                        ""
                    };
                    let mut e = e.context(format!("operation {i} ({what})"));
                    if !e.verbatim {
                        e.content.push_str(hint);
                    }
                    return Err(e);
                }
            }
        }
        self.store.commit();
        Ok(results)
    }

    fn operation(&mut self, op: &Value, counters: &mut Counters) -> Result<Reply, ApiError> {
        let query = op
            .as_object()
            .filter(|o| o.get("action").and_then(Value::as_str) == Some("query"));
        if let Some(op) = query {
            counters.count_operation("query");
            let expr = str_field(op, "expression")?;
            let entity = parse(expr).ok().map(|q| q.entity);
            if let Some(entity) = &entity {
                counters.count_query(entity);
            }
            let page = execute(&self.store, &mut self.cache, expr)?;
            if let Some(entity) = &entity {
                counters.count_rows(entity, page.rows as u64);
            }
            return Ok(Reply::Query {
                data: page.data,
                next_offset: page.next_offset,
            });
        }
        self.json_operation(op, counters).map(Reply::Json)
    }

    fn json_operation(&mut self, op: &Value, counters: &mut Counters) -> Result<Value, ApiError> {
        let op = op.as_object().ok_or_else(|| {
            ApiError::validation(format!(
                "each operation must be an object with an \"action\", got {op}"
            ))
        })?;
        let action = str_field(op, "action")?;
        counters.count_operation(action);
        match action {
            "query_server_information" => Ok(json!({
                "version": SERVER_VERSION,
                "storage_scenario": {"scenario": "ftrack.automatic", "data": {}},
                "is_timezone_support_enabled": true,
            })),
            "query_schemas" => Ok(wire_schemas()),
            "create" => self.create(op),
            "update" => self.update(op),
            "delete" => self.delete(op),
            "add_user_security_role" => self.add_role(op),
            "remove_user_security_role" | "revoke_user_security_role" => {
                self.remove_role(op, action)
            }
            "update_user_security_role" => self.update_role(op),
            "grant_user_security_role_project" => self.grant_project(op, true),
            "revoke_user_security_role_project" => self.grant_project(op, false),
            "send_user_invite" => {
                // No mail is sent; the user must exist, as on a real server.
                let user_id = str_field(op, "user_id")?;
                self.must_exist("User", user_id, "user_id")?;
                Ok(json!({"action": "send_user_invite", "data": {"user_id": user_id}}))
            }
            other => Err(ApiError::new(
                "ValueError",
                400,
                format!("Invalid action u'{other}'"),
            )),
        }
    }
}
