//! One plan operation → the ftrack API calls that carry it out (ftrack-api.md §2).
//!
//! Security roles follow ftrack's documented flow: a grant adds the role to the user first
//! (`add_user_security_role`) when the user does not hold it, then widens it to all open
//! projects or one project (`grant_user_security_role_project`); narrowing revokes one scope
//! (`revoke_user_security_role_project`), and a role left with no scope is taken away
//! (`remove_user_security_role`).

use crate::ftrack::row_id::RowId;
use crate::plan::{Change, Operation, OperationKind};
use serde_json::{json, Map, Value};

/// The wire calls for one plan operation, in the order they must run.
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
                    data.insert(field.to_string(), json!(v));
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
                    .map(|(field, change)| (field.to_string(), field_value(field, change)))
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
            let id = op
                .membership_id
                .as_ref()
                .map(RowId::to_string)
                .unwrap_or_default();
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
        OperationKind::GrantRole => {
            if op.add_role {
                out.push(role_call("add_user_security_role", &user_id, op));
            }
            out.push(scoped(
                role_call("grant_user_security_role_project", &user_id, op),
                op,
            ));
        }
        OperationKind::RevokeRole => out.push(match op.scope {
            None => role_call("remove_user_security_role", &user_id, op),
            Some(_) => scoped(
                role_call("revoke_user_security_role_project", &user_id, op),
                op,
            ),
        }),
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

fn role_call(action: &str, user_id: &str, op: &Operation) -> Value {
    json!({"action": action, "user_id": user_id, "role_id": op.role_id})
}

/// Adds the grant's scope: one project, or all open (non-private) projects.
fn scoped(mut call: Value, op: &Operation) -> Value {
    match &op.project_id {
        Some(project) => call["project_id"] = json!(project),
        None => call["all_open_projects"] = json!(true),
    }
    call
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

#[cfg(test)]
mod tests {
    use super::*;

    fn role_op(kind: OperationKind, scope: Option<&str>, project: Option<&str>) -> Operation {
        let mut op = Operation::new(kind, "ada", "because");
        op.user_id = Some("u1".into());
        op.role = Some("Artist".into());
        op.role_id = Some("r1".into());
        op.scope = scope.map(Into::into);
        op.project_id = project.map(Into::into);
        op
    }

    fn actions(calls: &[Value]) -> Vec<&str> {
        calls.iter().filter_map(|c| c["action"].as_str()).collect()
    }

    #[test]
    fn a_grant_of_a_role_the_user_lacks_adds_it_first() {
        let mut op = role_op(OperationKind::GrantRole, Some("all open projects"), None);
        op.add_role = true;
        let calls = wire_operations(&op);
        assert_eq!(
            actions(&calls),
            ["add_user_security_role", "grant_user_security_role_project"]
        );
        assert_eq!(
            calls[0],
            json!({"action": "add_user_security_role", "user_id": "u1", "role_id": "r1"})
        );
        assert_eq!(calls[1]["all_open_projects"], json!(true));
        assert!(calls[1].get("project_id").is_none());
    }

    #[test]
    fn a_grant_of_a_held_role_only_widens_it() {
        let op = role_op(OperationKind::GrantRole, Some("short_film"), Some("p1"));
        let calls = wire_operations(&op);
        assert_eq!(actions(&calls), ["grant_user_security_role_project"]);
        assert_eq!(calls[0]["project_id"], json!("p1"));
        assert!(calls[0].get("all_open_projects").is_none());
    }

    #[test]
    fn revokes_narrow_a_scope_or_remove_the_role() {
        let narrow = wire_operations(&role_op(
            OperationKind::RevokeRole,
            Some("short_film"),
            Some("p1"),
        ));
        assert_eq!(actions(&narrow), ["revoke_user_security_role_project"]);
        assert_eq!(narrow[0]["project_id"], json!("p1"));
        let all_open = wire_operations(&role_op(
            OperationKind::RevokeRole,
            Some("all open projects"),
            None,
        ));
        assert_eq!(all_open[0]["all_open_projects"], json!(true));
        let whole = wire_operations(&role_op(OperationKind::RevokeRole, None, None));
        assert_eq!(
            whole,
            [json!({"action": "remove_user_security_role", "user_id": "u1", "role_id": "r1"})]
        );
    }

    #[test]
    fn metadata_changes_follow_the_operation() {
        let mut op = Operation::new(OperationKind::DisableUser, "ada", "gone");
        op.user_id = Some("u1".into());
        op.set("is_active", Some("true".into()), Some("false".into()));
        op.set_metadata(
            "ldap2ftrack.disabled_by_sync",
            None,
            Some("2026-11-29".into()),
        );
        op.set_metadata("ldap2ftrack.missing_since", Some("2026-11-01".into()), None);
        let calls = wire_operations(&op);
        assert_eq!(actions(&calls), ["update", "create", "delete"]);
        assert_eq!(calls[0]["entity_data"]["is_active"], json!(false));
        assert_eq!(
            calls[1]["entity_key"],
            json!(["u1", "ldap2ftrack.disabled_by_sync"])
        );
    }
}
