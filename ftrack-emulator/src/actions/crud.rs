//! create, update and delete: how `entity_data` maps to a stored row (relation
//! references to foreign keys, one-to-many lists to the children's foreign keys, a
//! `metadata` list to the rows kept), type and immutability checks on the way in, and
//! the result each action answers with (every scalar plus the relations that were sent).
//! What must hold of the row before it is stored is in `integrity`.

use super::{str_field, Engine, Obj};
use crate::error::ApiError;
use crate::query::render_with;
use crate::schema::{entity, EntityDef, Kind, METADATA};
use crate::state::{check_scalar, fill_defaults};
use crate::store::{key_str, pk_from_parts, Record};
use serde_json::{json, Value};

impl Engine {
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

    pub(super) fn create(&mut self, op: &Obj) -> Result<Value, ApiError> {
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

    pub(super) fn update(&mut self, op: &Obj) -> Result<Value, ApiError> {
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

    pub(super) fn delete(&mut self, op: &Obj) -> Result<Value, ApiError> {
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
