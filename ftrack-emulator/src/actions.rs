//! Executes a batch of API operations atomically: each action (query, create, update,
//! delete, the security-role actions, server information and schemas) works on the
//! store inside one transaction that is rolled back if any operation fails.

use crate::counters::Counters;
use crate::error::ApiError;
use crate::query::{execute, parse, render_with, QueryCache};
use crate::schema::{entity, schema, wire_schemas, EntityDef, Kind, METADATA, PROJECT_SCHEMA};
use crate::state::{
    check_scalar, dangling, ensure_default_project_schema, fill_defaults, full, missing_required,
};
use crate::store::{key_str, pk_from_parts, Record, Store};
use serde_json::{json, Map, Value};

/// The server version reported by `query_server_information`.
pub const SERVER_VERSION: &str = "4.13.8";

/// The data plus everything needed to run operations against it.
#[derive(Debug)]
pub struct Engine {
    pub store: Store,
    pub cache: QueryCache,
    pub api_user: String,
}

type Obj = Map<String, Value>;

fn str_field<'a>(op: &'a Obj, key: &str) -> Result<&'a str, ApiError> {
    op.get(key).and_then(Value::as_str).ok_or_else(|| {
        ApiError::validation(format!("missing or non-string \"{key}\" in the operation"))
    })
}

impl Engine {
    pub fn new(api_user: &str) -> Engine {
        let mut e = Engine {
            store: Store::new(),
            cache: QueryCache::default(),
            api_user: api_user.to_string(),
        };
        e.ensure_guarantees();
        e
    }

    /// Replace the data with `store`, then apply the start-up guarantees.
    pub fn replace_store(&mut self, store: Store) {
        self.store = store;
        self.cache = QueryCache::default();
        self.ensure_guarantees();
    }

    /// A UserType "ftrack" and a ProjectSchema named
    /// [`crate::schema::DEFAULT_PROJECT_SCHEMA_NAME`] exist, and the API user exists and is active.
    pub fn ensure_guarantees(&mut self) {
        if let Err(e) = ensure_default_project_schema(&mut self.store) {
            tracing::error!("cannot seed the default ProjectSchema: {e}");
        }
        let ut_def = entity("UserType").ok();
        let user_def = entity("User").ok();
        let (Some(ut_def), Some(user_def)) = (ut_def, user_def) else {
            return;
        };
        let ut = self.store.table("UserType");
        let ut_id = match ut
            .single_unique("name")
            .and_then(|u| ut.by_unique(u, "ftrack"))
        {
            Some(seq) => ut.get(seq).and_then(|r| r.get("id")).cloned(),
            None => {
                let mut rec = Record::new(ut_def);
                rec.insert("name", json!("ftrack"));
                fill_defaults(ut_def, &mut rec);
                let id = rec.get("id").cloned();
                let _ = self.store.insert("UserType", rec);
                id
            }
        };
        let users = self.store.table("User");
        let existing = users
            .single_unique("username")
            .and_then(|u| users.by_unique(u, &self.api_user));
        match existing {
            Some(seq) => {
                if let Some(rec) = users.get(seq) {
                    if rec.get("is_active") != Some(&Value::Bool(true)) {
                        let mut rec = rec.clone();
                        rec.insert("is_active", Value::Bool(true));
                        let _ = self.store.replace("User", seq, rec);
                    }
                }
            }
            None => {
                let mut rec = Record::new(user_def);
                rec.insert("username", json!(self.api_user));
                rec.insert("is_active", json!(true));
                rec.insert("user_type_id", ut_id.unwrap_or(Value::Null));
                fill_defaults(user_def, &mut rec);
                let _ = self.store.insert("User", rec);
            }
        }
    }

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
                if let Ok(q) = parse(expr) {
                    counters.count_query(&q.entity);
                }
                let page = execute(&self.store, &mut self.cache, expr)?;
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

    fn def_of(op: &Obj) -> Result<&'static EntityDef, ApiError> {
        entity(str_field(op, "entity_type")?).map_err(ApiError::validation)
    }

    /// `entity_key` as key parts (a list of strings, or a bare string).
    fn key_parts(op: &Obj) -> Option<Vec<String>> {
        match op.get("entity_key")? {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => Some(a.iter().map(key_str).collect()),
            _ => None,
        }
    }

    /// Primary-key string from `entity_key`, or from the pk attributes in `entity_data`.
    fn target_key(def: &EntityDef, op: &Obj) -> Result<String, ApiError> {
        if let Some(parts) = Self::key_parts(op) {
            if parts.len() != def.primary_key.len() {
                return Err(ApiError::validation(format!(
                    "entity_key for {} must have {} value(s) ({}), got {}",
                    def.name,
                    def.primary_key.len(),
                    def.primary_key.join(", "),
                    parts.len()
                )));
            }
            return Ok(pk_from_parts(&parts));
        }
        let data = op.get("entity_data").and_then(Value::as_object);
        let parts: Option<Vec<String>> = def
            .primary_key
            .iter()
            .map(|k| {
                data.and_then(|d| d.get(*k))
                    .filter(|v| !v.is_null())
                    .map(key_str)
            })
            .collect();
        parts
            .map(|p| pk_from_parts(&p))
            .ok_or_else(|| ApiError::validation(format!("no entity_key given for {}", def.name)))
    }

    /// Split `entity_data` into column writes and collection assignments.
    fn apply_data(
        def: &'static EntityDef,
        data: &Obj,
        rec: &mut Record,
        old: Option<&Record>,
    ) -> Result<Vec<(&'static str, Vec<Value>)>, ApiError> {
        let mut colls = Vec::new();
        for (k, v) in data {
            if k == "__entity_type__" {
                continue;
            }
            let attr = def.attr(k).ok_or_else(|| {
                ApiError::validation(format!(
                    "{} has no attribute \"{k}\"; known attributes: {}",
                    def.name,
                    def.attrs
                        .iter()
                        .map(|a| a.name)
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })?;
            let (col, val) = match attr.kind {
                Kind::Str | Kind::Bool => {
                    check_scalar(def, k, v).map_err(ApiError::validation)?;
                    (attr.alias_of.unwrap_or(attr.name), v.clone())
                }
                Kind::Ref { target, fk } => (fk, ref_id(def, k, target, v)?),
                Kind::Coll { .. } | Kind::Meta => {
                    let list = match v {
                        Value::Array(a) => a.clone(),
                        Value::Null => Vec::new(),
                        other => {
                            return Err(ApiError::validation(format!(
                                "{}.{k} is a collection and must be a list of entity references, got {other}",
                                def.name
                            )))
                        }
                    };
                    colls.push((attr.name, list));
                    continue;
                }
            };
            if let Some(old) = old {
                let immutable =
                    def.attr(col).is_some_and(|a| a.immutable) || def.primary_key.contains(&col);
                let prev = old.get(col).unwrap_or(&Value::Null);
                if immutable && prev != &val {
                    return Err(ApiError::validation(format!(
                        "{}.{col} is immutable and cannot be changed (from {prev} to {val})",
                        def.name
                    )));
                }
            }
            rec.insert(col, val);
        }
        Ok(colls)
    }

    fn validate(&self, def: &EntityDef, rec: &Record) -> Result<(), ApiError> {
        let missing = missing_required(def, rec);
        if !missing.is_empty() {
            // A required foreign key is named by its relation too (`project_schema
            // (project_schema_id)`), as clients usually set the relation.
            let mut hint = String::new();
            let names: Vec<String> = missing
                .iter()
                .map(|col| {
                    let rel = def.attrs.iter().find_map(|a| match a.kind {
                        Kind::Ref { target, fk } if fk == *col => Some((a.name, target)),
                        _ => None,
                    });
                    match rel {
                        Some((rel, target)) => {
                            if target == PROJECT_SCHEMA {
                                hint = format!(
                                    "; every project needs a {PROJECT_SCHEMA}: pick one with `select id, name from {PROJECT_SCHEMA}`"
                                );
                            }
                            format!("{rel} ({col})")
                        }
                        None => (*col).to_string(),
                    }
                })
                .collect();
            return Err(ApiError::validation(format!(
                "{} requires {}; set it in entity_data{hint}",
                def.name,
                names.join(", ")
            )));
        }
        if let Some(msg) = dangling(&self.store, def, rec) {
            return Err(ApiError::validation(msg));
        }
        Ok(())
    }

    fn create(&mut self, op: &Obj) -> Result<Value, ApiError> {
        let def = Self::def_of(op)?;
        let empty = Obj::new();
        let data = match op.get("entity_data") {
            Some(Value::Object(d)) => d,
            None | Some(Value::Null) => &empty,
            Some(other) => {
                return Err(ApiError::validation(format!(
                    "entity_data must be an object, got {other}"
                )))
            }
        };
        let mut rec = Record::new(def);
        let colls = Self::apply_data(def, data, &mut rec, None)?;
        if let Some(parts) = Self::key_parts(op) {
            for (col, part) in def.primary_key.iter().zip(parts) {
                if rec.get(col).is_none_or(Value::is_null) {
                    rec.insert(col, Value::String(part));
                }
            }
        }
        fill_defaults(def, &mut rec);
        if def.name == "User" && rec.get("user_type_id").is_none_or(Value::is_null) {
            // Server-side default, as a real server fills in the default user type.
            let ut = self.store.table("UserType");
            if let Some(id) = ut
                .single_unique("name")
                .and_then(|u| ut.by_unique(u, "ftrack"))
                .and_then(|s| ut.get(s))
                .and_then(|r| r.get("id"))
            {
                rec.insert("user_type_id", id.clone());
            }
        }
        self.validate(def, &rec)?;
        let seq = self
            .store
            .insert(def.name, rec)
            .map_err(ApiError::duplicate)?;
        let relations = relation_names(def, data);
        self.assign_collections(def, seq, colls)?;
        let rec = self
            .store
            .table(def.name)
            .get(seq)
            .ok_or_else(|| ApiError::server("created entity vanished"))?;
        let out = render_with(&self.store, def, rec, &relations);
        Ok(json!({"action": "create", "data": out}))
    }

    fn update(&mut self, op: &Obj) -> Result<Value, ApiError> {
        let def = Self::def_of(op)?;
        let key = Self::target_key(def, op)?;
        let table = self.store.table(def.name);
        let seq = table.seq_by_key(&key).ok_or_else(|| {
            ApiError::not_found(format!(
                "cannot update {} {}: it does not exist",
                def.name,
                key.replace('\u{1f}', ", ")
            ))
        })?;
        let old = table
            .get(seq)
            .cloned()
            .ok_or_else(|| ApiError::server("row vanished"))?;
        let mut rec = old.clone();
        let empty = Obj::new();
        let data = op
            .get("entity_data")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let colls = Self::apply_data(def, data, &mut rec, Some(&old))?;
        self.validate(def, &rec)?;
        self.store
            .replace(def.name, seq, rec)
            .map_err(ApiError::duplicate)?;
        let relations = relation_names(def, data);
        self.assign_collections(def, seq, colls)?;
        let rec = self
            .store
            .table(def.name)
            .get(seq)
            .ok_or_else(|| ApiError::server("updated entity vanished"))?;
        let out = render_with(&self.store, def, rec, &relations);
        Ok(json!({"action": "update", "data": out}))
    }

    /// One-to-many assignment: each listed child gets its foreign key pointed at the
    /// parent. For `metadata`, rows of the parent that are not listed are deleted.
    fn assign_collections(
        &mut self,
        def: &'static EntityDef,
        seq: u64,
        colls: Vec<(&'static str, Vec<Value>)>,
    ) -> Result<(), ApiError> {
        if colls.is_empty() {
            return Ok(());
        }
        let parent_id = self
            .store
            .table(def.name)
            .get(seq)
            .and_then(|r| r.get("id"))
            .cloned()
            .ok_or_else(|| {
                ApiError::validation(format!("{} has no id to relate children to", def.name))
            })?;
        for (name, list) in colls {
            let Some(attr) = def.attr(name) else { continue };
            match attr.kind {
                Kind::Coll { target, fk } => {
                    let tdef = entity(target).map_err(ApiError::server)?;
                    for item in list {
                        let key = ref_key(tdef, &item).ok_or_else(|| {
                            ApiError::validation(format!(
                                "{}.{name} entries must be {target} references like {{\"__entity_type__\": \"{target}\", \"id\": \"...\"}}, got {item}",
                                def.name
                            ))
                        })?;
                        let table = self.store.table(target);
                        let cseq = table.seq_by_key(&key).ok_or_else(|| {
                            ApiError::validation(format!(
                                "{}.{name} lists {target} \"{key}\", which does not exist",
                                def.name
                            ))
                        })?;
                        let mut child = table
                            .get(cseq)
                            .cloned()
                            .ok_or_else(|| ApiError::server("row vanished"))?;
                        if child.get(fk) != Some(&parent_id) {
                            child.insert(fk, parent_id.clone());
                            self.store
                                .replace(target, cseq, child)
                                .map_err(ApiError::duplicate)?;
                        }
                    }
                }
                Kind::Meta => {
                    let mdef = entity(METADATA).map_err(ApiError::server)?;
                    let keep: Vec<String> = list
                        .iter()
                        .filter_map(|i| i.get("key").map(key_str))
                        .collect();
                    let table = self.store.table(METADATA);
                    let doomed: Vec<u64> = table
                        .by_fk("parent_id", &key_str(&parent_id))
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|s| {
                            table.get(*s).is_some_and(|r| {
                                !keep.contains(&r.get("key").map(key_str).unwrap_or_default())
                            })
                        })
                        .collect();
                    for s in doomed {
                        self.store.remove(mdef.name, s);
                    }
                }
                _ => {}
            }
        }
        Ok(())
    }

    fn delete(&mut self, op: &Obj) -> Result<Value, ApiError> {
        let def = Self::def_of(op)?;
        let key = Self::target_key(def, op)?;
        match self.store.table(def.name).seq_by_key(&key) {
            Some(seq) => self.delete_cascade(def, seq)?,
            // A metadata row may already have been removed by an earlier update of its
            // parent's metadata list in the same batch (the official client does this).
            None if def.is_metadata() => {}
            None => {
                return Err(ApiError::not_found(format!(
                    "cannot delete {} {}: it does not exist",
                    def.name,
                    key.replace('\u{1f}', ", ")
                )))
            }
        }
        Ok(json!({"action": "delete", "data": true}))
    }

    /// Delete a row; dependents with a required foreign key are deleted too, optional
    /// foreign keys pointing at it are cleared.
    fn delete_cascade(&mut self, def: &'static EntityDef, seq: u64) -> Result<(), ApiError> {
        let Some(rec) = self.store.table(def.name).get(seq).cloned() else {
            return Ok(());
        };
        if let Some(id) = rec.get("id").filter(|v| !v.is_null()) {
            let id = key_str(id);
            for a in &def.attrs {
                let (target, fk) = match a.kind {
                    Kind::Coll { target, fk } => (target, fk),
                    Kind::Meta => (METADATA, "parent_id"),
                    _ => continue,
                };
                let tdef = entity(target).map_err(ApiError::server)?;
                let required = tdef.attr(fk).is_some_and(|f| f.required);
                let kids = self.store.table(target).by_fk(fk, &id).unwrap_or_default();
                for k in kids {
                    if required {
                        self.delete_cascade(tdef, k)?;
                    } else if let Some(mut child) = self.store.table(target).get(k).cloned() {
                        child.insert(fk, Value::Null);
                        self.store
                            .replace(target, k, child)
                            .map_err(ApiError::duplicate)?;
                    }
                }
            }
        }
        self.refuse_if_referenced(def, &rec)?;
        self.store.remove(def.name, seq);
        Ok(())
    }

    /// Refuse to delete a row that a required foreign key without a cascading
    /// collection still points at (a ProjectSchema used by a Project).
    fn refuse_if_referenced(&self, def: &'static EntityDef, rec: &Record) -> Result<(), ApiError> {
        let Some(id) = rec.get("id").filter(|v| !v.is_null()).map(key_str) else {
            return Ok(());
        };
        for other in &schema().entities {
            for a in other.stored() {
                if a.fk_to != Some(def.name) || !a.required {
                    continue;
                }
                let cascades = def.attrs.iter().any(|c| {
                    matches!(c.kind, Kind::Coll { target, fk } if target == other.name && fk == a.name)
                });
                if cascades {
                    continue;
                }
                let table = self.store.table(other.name);
                let users = table.by_fk(a.name, &id).unwrap_or_default();
                if let Some(first) = users.first().and_then(|s| table.get(*s)) {
                    let which = first.get("id").map(key_str).unwrap_or_default();
                    let more = match users.len() {
                        1 => String::new(),
                        n => format!(" and {} more", n - 1),
                    };
                    return Err(ApiError::validation(format!(
                        "cannot delete {} \"{id}\": {} \"{which}\"{more} still refer(s) to it through {}.{}",
                        def.name, other.name, other.name, a.name
                    )));
                }
            }
        }
        Ok(())
    }

    fn must_exist(&self, etype: &str, id: &str, field: &str) -> Result<u64, ApiError> {
        self.store.table(etype).seq_by_key(id).ok_or_else(|| {
            ApiError::validation(format!("{field} \"{id}\" is not an existing {etype}"))
        })
    }

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
    fn add_role(&mut self, op: &Obj) -> Result<Value, ApiError> {
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
    fn remove_role(&mut self, op: &Obj, action: &str) -> Result<Value, ApiError> {
        let (user_id, role_id) = self.role_args(op)?;
        let seq = self.held_usr(user_id, role_id)?;
        let def = entity("UserSecurityRole").map_err(ApiError::server)?;
        self.delete_cascade(def, seq)?;
        Ok(json!({"action": action, "data": true}))
    }

    fn update_role(&mut self, op: &Obj) -> Result<Value, ApiError> {
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
    fn grant_project(&mut self, op: &Obj, grant: bool) -> Result<Value, ApiError> {
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

/// Relation attributes (references, collections, metadata) named in `entity_data`.
fn relation_names(def: &EntityDef, data: &Obj) -> Vec<&'static str> {
    def.attrs
        .iter()
        .filter(|a| !a.is_scalar() && data.contains_key(a.name))
        .map(|a| a.name)
        .collect()
}

/// The foreign-key value for a reference written as `{"__entity_type__": T, "id": …}`.
fn ref_id(def: &EntityDef, attr: &str, target: &str, v: &Value) -> Result<Value, ApiError> {
    match v {
        Value::Null => Ok(Value::Null),
        Value::String(s) => Ok(Value::String(s.clone())),
        Value::Object(m) => match m.get("id") {
            Some(Value::String(s)) => Ok(Value::String(s.clone())),
            _ => Err(ApiError::validation(format!(
                "{}.{attr} must reference a {target} with an \"id\", got {v}",
                def.name
            ))),
        },
        other => Err(ApiError::validation(format!(
            "{}.{attr} must be a {target} reference, got {other}",
            def.name
        ))),
    }
}

/// The primary-key string of a reference object.
fn ref_key(def: &EntityDef, v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Object(m) => {
            let parts: Option<Vec<String>> = def
                .primary_key
                .iter()
                .map(|k| m.get(*k).filter(|v| !v.is_null()).map(key_str))
                .collect();
            parts.map(|p| pk_from_parts(&p))
        }
        _ => None,
    }
}
