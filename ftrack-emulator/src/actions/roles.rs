//! The security-role actions (`shared/ftrack-api.md` §2): add a role with no project
//! access, grant and revoke it per project or on all open projects, swap it, remove it.
//! Only roles of type PROJECT are given per project, and every action but the add needs
//! the role to be held already; README lists these strict choices and their sources.

use super::{str_field, Engine, Obj};
use crate::error::ApiError;
use crate::schema::entity;
use crate::state::{fill_defaults, full};
use crate::store::{key_str, Record};
use serde_json::{json, Value};

impl Engine {
    /// The UserSecurityRole of `user_id` with `role_id`, if any.
    fn find_usr(&self, user_id: &str, role_id: &str) -> Option<u64> {
        let t = self.store.table("UserSecurityRole");
        t.by_fk("user_id", user_id)
            .unwrap_or_default()
            .into_iter()
            .find(|s| t.get(*s).and_then(|r| r.get("security_role_id")) == Some(&json!(role_id)))
    }

    /// The UserSecurityRole of `user_id` with `role_id`, or ftrack's `NotFoundError`.
    fn held_usr(&self, user_id: &str, role_id: &str) -> Result<u64, ApiError> {
        self.find_usr(user_id, role_id).ok_or_else(|| {
            ApiError::not_found_error(format!(
                "User '{user_id}' does not have the security role '{role_id}'."
            ))
            .verbatim()
        })
    }

    fn role_args<'a>(&self, op: &'a Obj) -> Result<(&'a str, &'a str), ApiError> {
        let user_id = str_field(op, "user_id")?;
        let role_id = str_field(op, "role_id")?;
        self.must_exist("User", user_id, "user_id")?;
        self.must_exist("SecurityRole", role_id, "role_id")?;
        Ok((user_id, role_id))
    }

    /// Only roles of type PROJECT are given to users per project; API roles belong to
    /// global API keys and ASSIGNED roles to assigned tasks.
    fn project_role(&self, role_id: &str) -> Result<(), ApiError> {
        let rec = self.store.table("SecurityRole").by_key(role_id);
        let ty = rec.and_then(|r| r.get("type")).and_then(Value::as_str);
        if ty == Some("PROJECT") {
            return Ok(());
        }
        let name = rec
            .and_then(|r| r.get("name"))
            .and_then(Value::as_str)
            .unwrap_or("");
        let ty = ty.map_or_else(|| "none".to_string(), |t| format!("\"{t}\""));
        Err(ApiError::validation(format!(
            "security role \"{name}\" ({role_id}) is of type {ty}; only roles of type \"PROJECT\" can be given to users per project (API roles belong to global API keys and are not settable through the API)"
        )))
    }

    fn usr_result(&self, action: &str, seq: u64) -> Result<Value, ApiError> {
        let def = entity("UserSecurityRole").map_err(ApiError::server)?;
        let rec = self
            .store
            .table(def.name)
            .get(seq)
            .ok_or_else(|| ApiError::server("row vanished"))?;
        Ok(json!({"action": action, "data": full(def, rec)}))
    }

    /// `add_user_security_role`: the role with no project access yet.
    pub(super) fn add_role(&mut self, op: &Obj) -> Result<Value, ApiError> {
        let (user_id, role_id) = self.role_args(op)?;
        self.project_role(role_id)?;
        if self.find_usr(user_id, role_id).is_some() {
            return Err(ApiError::duplicate(format!(
                "user \"{user_id}\" already has security role \"{role_id}\"; use grant_user_security_role_project to widen it"
            )));
        }
        let def = entity("UserSecurityRole").map_err(ApiError::server)?;
        let mut rec = Record::new(def);
        rec.insert("user_id", json!(user_id));
        rec.insert("security_role_id", json!(role_id));
        rec.insert("is_all_open_projects", Value::Bool(false));
        fill_defaults(def, &mut rec);
        let seq = self
            .store
            .insert(def.name, rec)
            .map_err(ApiError::duplicate)?;
        self.usr_result("add_user_security_role", seq)
    }

    /// `remove_user_security_role` (old name `revoke_user_security_role`): the role and
    /// all its project scopes go.
    pub(super) fn remove_role(&mut self, op: &Obj, action: &str) -> Result<Value, ApiError> {
        let (user_id, role_id) = self.role_args(op)?;
        let seq = self.held_usr(user_id, role_id)?;
        let def = entity("UserSecurityRole").map_err(ApiError::server)?;
        self.delete_cascade(def, seq)?;
        Ok(json!({"action": action, "data": true}))
    }

    pub(super) fn update_role(&mut self, op: &Obj) -> Result<Value, ApiError> {
        let (user_id, role_id) = self.role_args(op)?;
        let new_role = str_field(op, "new_role_id")?;
        self.must_exist("SecurityRole", new_role, "new_role_id")?;
        let seq = self.held_usr(user_id, role_id)?;
        let mut rec = self
            .store
            .table("UserSecurityRole")
            .get(seq)
            .cloned()
            .ok_or_else(|| ApiError::server("row vanished"))?;
        rec.insert("security_role_id", json!(new_role));
        self.store
            .replace("UserSecurityRole", seq, rec)
            .map_err(ApiError::duplicate)?;
        self.usr_result("update_user_security_role", seq)
    }

    /// The scope of a grant/revoke: exactly one of `project_id` or
    /// `all_open_projects: true`. Returns the project id, or None for all open projects.
    fn scope_arg<'a>(&self, op: &'a Obj, action: &str) -> Result<Option<&'a str>, ApiError> {
        let all = match op.get("all_open_projects") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "{action}: \"all_open_projects\" must be true or false, got {other}"
                )))
            }
        };
        let project = match op.get("project_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(p)) => Some(p.as_str()),
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "{action}: \"project_id\" must be a Project id string, got {other}"
                )))
            }
        };
        match (all, project) {
            (true, None) => Ok(None),
            (false, Some(p)) => {
                self.must_exist("Project", p, "project_id")?;
                Ok(Some(p))
            }
            _ => Err(ApiError::validation(format!(
                "{action} needs exactly one of \"project_id\" or \"all_open_projects\": true"
            ))),
        }
    }

    /// grant (`grant = true`) or revoke a role the user holds on one project or on all
    /// open projects. The role row stays when its last scope is revoked.
    pub(super) fn grant_project(&mut self, op: &Obj, grant: bool) -> Result<Value, ApiError> {
        let action = if grant {
            "grant_user_security_role_project"
        } else {
            "revoke_user_security_role_project"
        };
        let (user_id, role_id) = self.role_args(op)?;
        let project = self.scope_arg(op, action)?;
        let seq = self.held_usr(user_id, role_id)?;
        if grant {
            self.project_role(role_id)?;
        }
        let mut usr = self
            .store
            .table("UserSecurityRole")
            .get(seq)
            .cloned()
            .ok_or_else(|| ApiError::server("row vanished"))?;
        let Some(p) = project else {
            let granted = usr.get("is_all_open_projects") == Some(&Value::Bool(true));
            if grant && granted {
                return Err(ApiError::duplicate(format!(
                    "User '{user_id}' already has the security role '{role_id}' on all open projects."
                )));
            }
            if !grant && !granted {
                return Err(ApiError::not_found_error(format!(
                    "User '{user_id}' has the security role '{role_id}' but not on all open projects."
                )));
            }
            usr.insert("is_all_open_projects", Value::Bool(grant));
            self.store
                .replace("UserSecurityRole", seq, usr)
                .map_err(ApiError::duplicate)?;
            return self.usr_result(action, seq);
        };
        let usr_id = usr
            .get("id")
            .map(key_str)
            .ok_or_else(|| ApiError::server("UserSecurityRole without id"))?;
        let t = self.store.table("UserSecurityRoleProject");
        let existing = t
            .by_fk("user_security_role_id", &usr_id)
            .unwrap_or_default()
            .into_iter()
            .find(|s| t.get(*s).and_then(|r| r.get("project_id")) == Some(&json!(p)));
        match (existing, grant) {
            (None, true) => {
                let def = entity("UserSecurityRoleProject").map_err(ApiError::server)?;
                let mut rec = Record::new(def);
                rec.insert("user_security_role_id", json!(usr_id));
                rec.insert("project_id", json!(p));
                fill_defaults(def, &mut rec);
                self.store
                    .insert(def.name, rec)
                    .map_err(ApiError::duplicate)?;
            }
            (Some(s), false) => {
                self.store.remove("UserSecurityRoleProject", s);
            }
            (Some(_), true) => {
                return Err(ApiError::duplicate(format!(
                    "User '{user_id}' already has the security role '{role_id}' on project '{p}'."
                )))
            }
            (None, false) => {
                return Err(ApiError::not_found_error(format!(
                    "User '{user_id}' has the security role '{role_id}' but not on project '{p}'."
                )))
            }
        }
        self.usr_result(action, seq)
    }
}
