//! Recognising a batch that landed although its reply was lost.
//!
//! The Session retries a request whose answer never came; if the first attempt had landed,
//! the retry is refused ("already exists", "already has the security role", "does not have
//! the security role" for a revoke). Batches are atomic, so the question is simply whether
//! ftrack now shows the effect of every call in the batch: then the work is done, whoever
//! did it, and apply goes on. Anything unknown, or any read that fails, answers no.

use crate::ftrack::query::in_list;
use crate::ftrack::snapshot::{MetadataRow, RoleProjectRow};
use crate::ftrack::Session;
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// Whether ftrack shows the effect of every call in `wire`.
pub async fn already_landed(session: &Session, wire: &[Value]) -> bool {
    match Observed::read(session, wire).await {
        Some(observed) => wire.iter().all(|call| observed.shows(call)),
        None => false,
    }
}

/// What ftrack holds of the things a batch touched.
#[derive(Default)]
struct Observed {
    /// (entity type, id) of entities that exist.
    existing: FxHashSet<(String, String)>,
    users: FxHashMap<String, Value>,
    /// (parent id, key) → value.
    metadata: FxHashMap<(String, String), Option<String>>,
    /// (user id, role id) → (all open projects, project ids).
    roles: FxHashMap<(String, String), (bool, FxHashSet<String>)>,
}

#[derive(Deserialize)]
struct RoleRow {
    id: String,
    user_id: String,
    security_role_id: String,
    #[serde(default)]
    is_all_open_projects: bool,
}

fn text(call: &Value, key: &str) -> String {
    call[key].as_str().unwrap_or_default().to_string()
}

/// The `(parent_id, key)` of a Metadata call.
fn metadata_key(call: &Value) -> (String, String) {
    let key = &call["entity_key"];
    (
        key[0].as_str().unwrap_or_default().to_string(),
        key[1].as_str().unwrap_or_default().to_string(),
    )
}

impl Observed {
    async fn read(session: &Session, wire: &[Value]) -> Option<Observed> {
        let mut by_type: BTreeMap<String, FxHashSet<String>> = BTreeMap::new();
        let mut users: FxHashSet<String> = FxHashSet::default();
        let mut metadata_parents: FxHashSet<String> = FxHashSet::default();
        let mut role_users: FxHashSet<String> = FxHashSet::default();
        for call in wire {
            let entity_type = text(call, "entity_type");
            match call["action"].as_str()? {
                "create" | "delete" | "update" if entity_type == "Metadata" => {
                    metadata_parents.insert(metadata_key(call).0);
                }
                "update" if entity_type == "User" => {
                    users.insert(call["entity_key"][0].as_str()?.to_string());
                }
                "create" | "delete" => {
                    let id = call["entity_key"][0].as_str()?.to_string();
                    by_type.entry(entity_type).or_default().insert(id);
                }
                action if action.contains("security_role") => {
                    role_users.insert(text(call, "user_id"));
                }
                _ => return None,
            }
        }
        let mut observed = Observed::default();
        for (entity_type, ids) in by_type {
            let expr = format!(
                "select id from {entity_type} where id in ({})",
                in_list(&ids)
            );
            for row in session.query_all(&expr).await.ok()? {
                observed
                    .existing
                    .insert((entity_type.clone(), row["id"].as_str()?.to_string()));
            }
        }
        if !users.is_empty() {
            let expr = format!(
                "select id, username, email, first_name, last_name, is_active from User where id in ({})",
                in_list(&users)
            );
            for row in session.query_all(&expr).await.ok()? {
                observed.users.insert(row["id"].as_str()?.to_string(), row);
            }
        }
        if !metadata_parents.is_empty() {
            let expr = format!(
                "select parent_id, key, value from Metadata where parent_id in ({})",
                in_list(&metadata_parents)
            );
            let rows: Vec<MetadataRow> = session.query_all_as(&expr).await.ok()?;
            for row in rows {
                observed
                    .metadata
                    .insert((row.parent_id, row.key), row.value);
            }
        }
        if !role_users.is_empty() {
            let expr = format!(
                "select id, user_id, security_role_id, is_all_open_projects from UserSecurityRole where user_id in ({})",
                in_list(&role_users)
            );
            let rows: Vec<RoleRow> = session.query_all_as(&expr).await.ok()?;
            let mut by_row: FxHashMap<String, (String, String)> = FxHashMap::default();
            for row in rows {
                let key = (row.user_id, row.security_role_id);
                observed.roles.insert(
                    key.clone(),
                    (row.is_all_open_projects, FxHashSet::default()),
                );
                by_row.insert(row.id, key);
            }
            if !by_row.is_empty() {
                let expr = format!(
                    "select user_security_role_id, project_id from UserSecurityRoleProject where user_security_role_id in ({})",
                    in_list(by_row.keys())
                );
                let scopes: Vec<RoleProjectRow> = session.query_all_as(&expr).await.ok()?;
                for scope in scopes {
                    let key = by_row.get(scope.user_security_role_id.to_string().as_str())?;
                    if let Some((_, projects)) = observed.roles.get_mut(key) {
                        projects.insert(scope.project_id);
                    }
                }
            }
        }
        Some(observed)
    }

    /// Whether ftrack shows the effect of `call`.
    fn shows(&self, call: &Value) -> bool {
        let entity_type = text(call, "entity_type");
        let role = (text(call, "user_id"), text(call, "role_id"));
        let held = self.roles.get(&role);
        let in_scope =
            |(all, projects): &(bool, FxHashSet<String>)| match call["project_id"].as_str() {
                Some(project) => projects.contains(project),
                None => *all,
            };
        match call["action"].as_str().unwrap_or_default() {
            "create" | "update" if entity_type == "Metadata" => {
                let value = call["entity_data"]["value"].as_str().map(str::to_string);
                self.metadata.get(&metadata_key(call)) == Some(&value)
            }
            "delete" if entity_type == "Metadata" => {
                !self.metadata.contains_key(&metadata_key(call))
            }
            "update" if entity_type == "User" => {
                let Some(user) = call["entity_key"][0]
                    .as_str()
                    .and_then(|id| self.users.get(id))
                else {
                    return false;
                };
                call["entity_data"].as_object().is_some_and(|data| {
                    data.iter()
                        .filter(|(field, _)| *field != "__entity_type__")
                        .all(|(field, value)| &user[field] == value)
                })
            }
            "create" | "delete" => {
                let id = call["entity_key"][0]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let exists = self.existing.contains(&(entity_type, id));
                exists == (call["action"] == "create")
            }
            "add_user_security_role" => held.is_some(),
            "grant_user_security_role_project" => held.is_some_and(in_scope),
            "revoke_user_security_role_project" => !held.is_some_and(in_scope),
            "remove_user_security_role" | "revoke_user_security_role" => held.is_none(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn observed() -> Observed {
        let mut o = Observed::default();
        o.existing.insert(("Membership".into(), "m1".into()));
        o.users.insert(
            "u1".into(),
            json!({"id": "u1", "username": "ada", "email": "ada@x.example", "is_active": true}),
        );
        o.metadata.insert(
            ("u1".into(), "ldap2ftrack.anchor".into()),
            Some("a1".into()),
        );
        let projects: FxHashSet<String> = ["p1".to_string()].into_iter().collect();
        o.roles.insert(("u1".into(), "r1".into()), (true, projects));
        o
    }

    #[test]
    fn role_calls_are_read_back_from_the_user_security_roles() {
        let o = observed();
        let call = |v: Value| o.shows(&v);
        assert!(call(
            json!({"action": "add_user_security_role", "user_id": "u1", "role_id": "r1"})
        ));
        assert!(!call(
            json!({"action": "add_user_security_role", "user_id": "u1", "role_id": "r2"})
        ));
        assert!(call(
            json!({"action": "grant_user_security_role_project", "user_id": "u1", "role_id": "r1", "all_open_projects": true})
        ));
        assert!(call(
            json!({"action": "grant_user_security_role_project", "user_id": "u1", "role_id": "r1", "project_id": "p1"})
        ));
        assert!(!call(
            json!({"action": "grant_user_security_role_project", "user_id": "u1", "role_id": "r1", "project_id": "p2"})
        ));
        assert!(call(
            json!({"action": "revoke_user_security_role_project", "user_id": "u1", "role_id": "r1", "project_id": "p2"})
        ));
        assert!(!call(
            json!({"action": "revoke_user_security_role_project", "user_id": "u1", "role_id": "r1", "all_open_projects": true})
        ));
        assert!(!call(
            json!({"action": "remove_user_security_role", "user_id": "u1", "role_id": "r1"})
        ));
        assert!(call(
            json!({"action": "remove_user_security_role", "user_id": "u1", "role_id": "r9"})
        ));
    }

    #[test]
    fn entity_calls_are_read_back_as_written() {
        let o = observed();
        assert!(o.shows(
            &json!({"action": "create", "entity_type": "Membership", "entity_key": ["m1"]})
        ));
        assert!(!o.shows(
            &json!({"action": "delete", "entity_type": "Membership", "entity_key": ["m1"]})
        ));
        assert!(o.shows(
            &json!({"action": "delete", "entity_type": "Membership", "entity_key": ["m2"]})
        ));
        assert!(o.shows(&json!({"action": "update", "entity_type": "User", "entity_key": ["u1"],
            "entity_data": {"__entity_type__": "User", "email": "ada@x.example", "is_active": true}})));
        assert!(!o.shows(
            &json!({"action": "update", "entity_type": "User", "entity_key": ["u1"],
            "entity_data": {"__entity_type__": "User", "is_active": false}})
        ));
        assert!(o.shows(&json!({"action": "create", "entity_type": "Metadata", "entity_key": ["u1", "ldap2ftrack.anchor"],
            "entity_data": {"value": "a1"}})));
        assert!(!o.shows(&json!({"action": "delete", "entity_type": "Metadata", "entity_key": ["u1", "ldap2ftrack.anchor"]})));
        assert!(!o.shows(&json!({"action": "send_user_invite", "user_id": "u1"})));
    }
}
