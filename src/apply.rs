//! Apply: carry out a plan through the Session, in batches, recording each operation that
//! landed in a journal (JSON lines).
//!
//! Each batch is atomic on the server. When a batch fails for good, apply stops: what landed
//! is in the journal, ftrack is consistent, and the next run plans the rest. Ids of created
//! entities are fixed by the plan, so a create whose reply was lost and that is retried is
//! recognised as already done instead of being made twice.

use crate::ftrack::{FtrackError, Session};
use crate::plan::{Change, Operation, OperationKind, Plan};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::path::Path;

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    pub applied: usize,
    pub requests: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("apply stopped after {applied} of {total} operations: {source}; ftrack is consistent, run again to converge")]
    Ftrack {
        applied: usize,
        total: usize,
        #[source]
        source: FtrackError,
    },
    #[error("cannot write the journal {path}: {cause}")]
    Journal { path: String, cause: std::io::Error },
}

/// The wire operations for one plan operation.
pub fn wire_operations(op: &Operation) -> Vec<Value> {
    let user_id = op.user_id.clone().unwrap_or_default();
    let mut out = Vec::new();
    match op.kind {
        OperationKind::CreateGroup => {
            let id = op.group_id.clone().unwrap_or_default();
            out.push(create(
                "Group",
                &id,
                json!({"name": op.target, "local": false}),
            ));
        }
        OperationKind::CreateUser => {
            let mut data = Map::new();
            for (field, change) in &op.changes {
                if let Some(v) = &change.to {
                    data.insert(field.clone(), json!(v));
                }
            }
            data.insert("is_active".into(), json!(true));
            out.push(create("User", &user_id, Value::Object(data)));
        }
        OperationKind::UpdateUser | OperationKind::EnableUser | OperationKind::DisableUser => {
            if !op.changes.is_empty() {
                let data: Map<String, Value> = op
                    .changes
                    .iter()
                    .map(|(field, change)| (field.clone(), field_value(field, change)))
                    .collect();
                out.push(json!({
                    "action": "update",
                    "entity_type": "User",
                    "entity_key": [user_id],
                    "entity_data": with_type("User", Value::Object(data)),
                }));
            }
        }
        OperationKind::AddMembership => {
            let id = op.membership_id.clone().unwrap_or_default();
            out.push(create(
                "Membership",
                &id,
                json!({"user_id": user_id, "group_id": op.group_id}),
            ));
        }
        OperationKind::RemoveMembership => out.push(json!({
            "action": "delete",
            "entity_type": "Membership",
            "entity_key": [op.membership_id],
        })),
        OperationKind::GrantRole | OperationKind::RevokeRole => {
            let grant = op.kind == OperationKind::GrantRole;
            let mut call = json!({"user_id": user_id, "role_id": op.role_id});
            let action = match (&op.scope, &op.project_id) {
                (None, _) => "revoke_user_security_role",
                (Some(_), Some(project)) => {
                    call["project_id"] = json!(project);
                    if grant {
                        "grant_user_security_role_project"
                    } else {
                        "revoke_user_security_role_project"
                    }
                }
                (Some(_), None) => {
                    call["all_open_projects"] = json!(true);
                    if grant {
                        "grant_user_security_role_project"
                    } else {
                        "revoke_user_security_role_project"
                    }
                }
            };
            call["action"] = json!(action);
            out.push(call);
        }
    }
    for (key, change) in &op.metadata {
        let pk = json!([user_id, key]);
        out.push(match (&change.from, &change.to) {
            (None, Some(v)) => json!({
                "action": "create",
                "entity_type": "Metadata",
                "entity_key": pk,
                "entity_data": {"__entity_type__": "Metadata", "parent_id": user_id, "parent_type": "User", "key": key, "value": v},
            }),
            (Some(_), Some(v)) => json!({
                "action": "update",
                "entity_type": "Metadata",
                "entity_key": pk,
                "entity_data": {"__entity_type__": "Metadata", "value": v},
            }),
            (_, None) => json!({"action": "delete", "entity_type": "Metadata", "entity_key": pk}),
        });
    }
    out
}

fn field_value(field: &str, change: &Change) -> Value {
    match (field, change.to.as_deref()) {
        ("is_active", Some(v)) => json!(v == "true"),
        (_, Some(v)) => json!(v),
        (_, None) => Value::Null,
    }
}

fn with_type(entity_type: &str, mut data: Value) -> Value {
    if let Value::Object(map) = &mut data {
        map.insert("__entity_type__".into(), json!(entity_type));
    }
    data
}

fn create(entity_type: &str, id: &str, data: Value) -> Value {
    let mut data = with_type(entity_type, data);
    data["id"] = json!(id);
    json!({"action": "create", "entity_type": entity_type, "entity_key": [id], "entity_data": data})
}

/// Applies `plan` in batches of whole operations (an operation's wire calls never straddle
/// two requests), appending one journal line per applied operation.
pub async fn apply(
    plan: &Plan,
    session: &Session,
    batch_size: usize,
    journal: Option<&Path>,
) -> Result<ApplyReport, ApplyError> {
    let mut journal_file = match journal {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|cause| ApplyError::Journal {
                    path: path.display().to_string(),
                    cause,
                })?,
        ),
        None => None,
    };
    let total = plan.operations.len();
    let mut report = ApplyReport::default();
    let _phase = crate::progress::start(crate::progress::APPLY, Some(total as u64));
    let mut start = 0;
    while start < total {
        // Fill a batch with whole operations up to batch_size wire calls (at least one op).
        let mut end = start;
        let mut wire = Vec::new();
        while end < total {
            let calls = wire_operations(&plan.operations[end]);
            if !wire.is_empty() && wire.len() + calls.len() > batch_size {
                break;
            }
            wire.extend(calls);
            end += 1;
        }
        let result = session.call_one_request(&wire).await;
        report.requests += 1;
        if let Err(error) = result {
            if !already_landed(session, &wire, &error).await {
                return Err(ApplyError::Ftrack {
                    applied: report.applied,
                    total,
                    source: error,
                });
            }
            tracing::info!("a retried batch had already landed; continuing");
        }
        for op in &plan.operations[start..end] {
            report.applied += 1;
            if let Some(file) = journal_file.as_mut() {
                let line = json!({
                    "time": crate::clock::now_rfc3339(),
                    "kind": op.kind,
                    "target": op.target,
                    "group": op.group,
                    "role": op.role,
                    "scope": op.scope,
                    "status": "applied",
                });
                writeln!(file, "{line}").map_err(|cause| ApplyError::Journal {
                    path: journal.map(|p| p.display().to_string()).unwrap_or_default(),
                    cause,
                })?;
            }
        }
        crate::progress::advance(crate::progress::APPLY, (end - start) as u64);
        start = end;
    }
    Ok(report)
}

/// After a failed batch that creates entities: if the server says they exist and every one
/// of them does, the batch landed on an earlier attempt whose answer was lost.
async fn already_landed(session: &Session, wire: &[Value], error: &FtrackError) -> bool {
    let duplicate = error
        .exception()
        .is_some_and(|e| e.contains("Duplicate") || e.contains("Integrity"))
        || error.to_string().contains("already exists");
    if !duplicate {
        return false;
    }
    let mut creates: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for op in wire {
        if op["action"] == "create" && op["entity_type"] != "Metadata" {
            if let (Some(t), Some(id)) =
                (op["entity_type"].as_str(), op["entity_data"]["id"].as_str())
            {
                creates
                    .entry(t.to_string())
                    .or_default()
                    .push(id.to_string());
            }
        }
    }
    if creates.is_empty() {
        return false;
    }
    for (entity_type, ids) in creates {
        let expr = format!(
            "select id from {entity_type} where id in ({})",
            ids.join(", ")
        );
        match session.query_all(&expr).await {
            Ok(rows) if rows.len() == ids.len() => {}
            _ => return false,
        }
    }
    true
}
