//! What must hold of the data whatever action changes it: required attributes are set
//! and foreign keys point at existing rows (checked before a row is stored); a delete
//! takes dependents with a required foreign key along, clears optional ones, and is
//! refused while a required reference without a cascade still points at the row (a
//! ProjectSchema used by a Project). Uniqueness is the store's own check.

use super::Engine;
use crate::error::ApiError;
use crate::schema::{entity, schema, EntityDef, Kind, METADATA, PROJECT_SCHEMA};
use crate::state::{dangling, missing_required};
use crate::store::{key_str, Record};
use serde_json::Value;

impl Engine {
    /// A row about to be stored has its required attributes and existing foreign-key
    /// targets.
    pub(super) fn validate(&self, def: &EntityDef, rec: &Record) -> Result<(), ApiError> {
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

    /// Delete a row; dependents with a required foreign key are deleted too, optional
    /// foreign keys pointing at it are cleared.
    pub(super) fn delete_cascade(
        &mut self,
        def: &'static EntityDef,
        seq: u64,
    ) -> Result<(), ApiError> {
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
}
