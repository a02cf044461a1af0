//! A request is one transaction: its operations run in order against the store, each
//! routed to its action here, and the first failure rolls every change of the request
//! back. The wire format has no per-operation error slot, so the one error names the
//! operation that failed (`shared/ftrack-api.md` §2, batch failure).

use super::{str_field, Engine, SERVER_VERSION};
use crate::counters::Counters;
use crate::error::ApiError;
use crate::query::{execute, parse};
use crate::schema::wire_schemas;
use serde_json::{json, Value};

impl Engine {
    /// Run a batch atomically; on error nothing is changed.
    pub fn execute_batch(
        &mut self,
        ops: &[Value],
        counters: &mut Counters,
    ) -> Result<Vec<Value>, ApiError> {
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

    fn operation(&mut self, op: &Value, counters: &mut Counters) -> Result<Value, ApiError> {
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
            "query" => {
                let expr = str_field(op, "expression")?;
                let entity = parse(expr).ok().map(|q| q.entity);
                if let Some(entity) = &entity {
                    counters.count_query(entity);
                }
                let page = execute(&self.store, &mut self.cache, expr)?;
                if let Some(entity) = &entity {
                    counters.count_rows(entity, page.data.len() as u64);
                }
                Ok(json!({
                    "action": "query",
                    "data": page.data,
                    "metadata": {"next": {"offset": page.next_offset}},
                }))
            }
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
