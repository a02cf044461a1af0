//! The on-disk / admin-endpoint state format ([`StateDump`]): entity type → list of plain
//! attribute objects. Hand-writable: missing optional attributes get schema defaults, and
//! a malformed entry is reported with its entity type and index.

use crate::query::render_full;
use crate::schema::{
    entity, schema, Default, EntityDef, Kind, DEFAULT_PROJECT_SCHEMA_NAME, PROJECT_SCHEMA,
};
use crate::store::{Record, Store};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// A full snapshot of the emulator's data, e.g.
/// `{"User": [{"id": "…", "username": "alice"}], "Group": [{"name": "artists"}]}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct StateDump {
    /// Entity type name → entities (plain attribute objects, stored columns only).
    pub entities: BTreeMap<String, Vec<Value>>,
}

/// Why a state could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("state is not valid JSON of the form {{\"User\": [{{...}}], ...}}: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot read state file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl StateDump {
    /// Parse the JSON text of a state file.
    pub fn from_json(text: &str) -> Result<StateDump, StateError> {
        Ok(serde_json::from_str(text)?)
    }

    /// Read a state file.
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Result<StateDump, StateError> {
        let p = path.as_ref();
        let text = std::fs::read_to_string(p).map_err(|source| StateError::Io {
            path: p.display().to_string(),
            source,
        })?;
        StateDump::from_json(&text)
    }

    /// Pretty JSON text (the file format).
    pub fn to_json_pretty(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string())
    }

    /// Entities of one type (empty if none).
    pub fn of(&self, entity_type: &str) -> &[Value] {
        self.entities
            .get(entity_type)
            .map(Vec::as_slice)
            .unwrap_or(&[])
    }
}

/// Snapshot a store.
pub fn dump(store: &Store) -> StateDump {
    let mut entities = BTreeMap::new();
    for def in &schema().entities {
        let table = store.table(def.name);
        if table.is_empty() {
            continue;
        }
        let rows = table
            .iter()
            .map(|(_, rec)| {
                let mut m = Map::new();
                for a in def.stored() {
                    let v = rec.get(a.name).cloned().unwrap_or(Value::Null);
                    if v.is_null() && a.default.is_none() {
                        continue;
                    }
                    m.insert(a.name.to_string(), v);
                }
                Value::Object(m)
            })
            .collect();
        entities.insert(def.name.to_string(), rows);
    }
    StateDump { entities }
}

/// Check one scalar value against its attribute's type.
pub fn check_scalar(def: &EntityDef, name: &str, v: &Value) -> Result<(), String> {
    let Some(attr) = def.attr(name) else {
        return Err(format!("{} has no attribute \"{name}\"", def.name));
    };
    let ok = match (attr.kind, v) {
        (_, Value::Null) => true,
        (Kind::Bool, Value::Bool(_)) => true,
        (Kind::Str, Value::String(_)) => true,
        (Kind::Str, Value::Object(m)) => m.contains_key("__type__"),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        let want = if attr.kind == Kind::Bool {
            "a boolean (true/false)"
        } else {
            "a string"
        };
        Err(format!("{}.{name} must be {want}, got {v}", def.name))
    }
}

/// Fill missing stored columns with defaults (or null).
pub fn fill_defaults(def: &EntityDef, rec: &mut Record) {
    for a in def.stored() {
        if !rec.contains_key(a.name) {
            let v = a.default.map(|d: Default| d.value()).unwrap_or(Value::Null);
            rec.insert(a.name, v);
        }
    }
}

/// Required columns that are null.
pub fn missing_required(def: &EntityDef, rec: &Record) -> Vec<&'static str> {
    def.stored()
        .filter(|a| a.required && rec.get(a.name).is_none_or(Value::is_null))
        .map(|a| a.name)
        .collect()
}

/// Broken references of a record, as messages.
pub fn dangling(store: &Store, def: &EntityDef, rec: &Record) -> Option<String> {
    for a in def.stored() {
        let Some(target) = a.fk_to else { continue };
        match rec.get(a.name) {
            Some(Value::String(id)) => {
                if store.table(target).by_key(id).is_none() {
                    return Some(format!(
                        "{}.{} refers to {target} \"{id}\", which does not exist; create it first or fix the id",
                        def.name, a.name
                    ));
                }
            }
            Some(Value::Null) | None => {}
            Some(other) => {
                return Some(format!(
                    "{}.{} must be the id string of a {target}, got {other}",
                    def.name, a.name
                ))
            }
        }
    }
    if def.is_metadata() {
        let ptype = rec.get("parent_type").and_then(Value::as_str).unwrap_or("");
        let pid = rec.get("parent_id").and_then(Value::as_str).unwrap_or("");
        let owner_ok = entity(ptype)
            .ok()
            .filter(|d| d.attrs.iter().any(|a| a.kind == Kind::Meta))
            .is_some_and(|d| store.table(d.name).by_key(pid).is_some());
        if !owner_ok {
            return Some(format!(
                "Metadata parent {ptype} \"{pid}\" does not exist (parent_type must be User, Group or Project and parent_id the id of an existing one)"
            ));
        }
    }
    None
}

/// `Project.project_schema_id`, required by the real schema.
const SCHEMA_FK: &str = "project_schema_id";

/// The id of the `ProjectSchema` named [`DEFAULT_PROJECT_SCHEMA_NAME`], created first if
/// missing (every real server has at least one project schema).
pub fn ensure_default_project_schema(store: &mut Store) -> Result<Value, String> {
    let table = store.table(PROJECT_SCHEMA);
    let existing = table
        .single_unique("name")
        .and_then(|u| table.by_unique(u, DEFAULT_PROJECT_SCHEMA_NAME))
        .and_then(|seq| table.get(seq))
        .and_then(|r| r.get("id"))
        .cloned();
    if let Some(id) = existing {
        return Ok(id);
    }
    let def = entity(PROJECT_SCHEMA)?;
    let mut rec = Record::new(def);
    rec.insert(
        "name",
        Value::String(DEFAULT_PROJECT_SCHEMA_NAME.to_string()),
    );
    fill_defaults(def, &mut rec);
    let id = rec
        .get("id")
        .cloned()
        .ok_or_else(|| format!("{PROJECT_SCHEMA} without an id"))?;
    store.insert(def.name, rec)?;
    Ok(id)
}

/// Build a store from a dump, validating everything. Errors name the type and index.
pub fn load(dump: &StateDump) -> Result<Store, StateError> {
    let mut store = Store::new();
    let mut placed: Vec<(&'static EntityDef, usize, u64)> = Vec::new();
    let mut schemaless: Vec<u64> = Vec::new();
    for (tname, list) in &dump.entities {
        let def = entity(tname).map_err(|e| StateError::Invalid(format!("state: {e}")))?;
        store.reserve(def.name, list.len());
        for (i, item) in list.iter().enumerate() {
            let at = format!("state: {tname}[{i}]");
            let obj = item.as_object().ok_or_else(|| {
                StateError::Invalid(format!(
                    "{at}: expected an object of attributes, got {item}"
                ))
            })?;
            let mut rec = Record::new(def);
            for (k, v) in obj {
                if k == "__entity_type__" {
                    continue;
                }
                let attr = def.attr(k).ok_or_else(|| {
                    StateError::Invalid(format!(
                        "{at}: unknown attribute \"{k}\"; {tname} has: {}",
                        def.stored().map(|a| a.name).collect::<Vec<_>>().join(", ")
                    ))
                })?;
                if let Kind::Ref { fk, .. } = attr.kind {
                    return Err(StateError::Invalid(format!(
                        "{at}: relation \"{k}\" cannot be stored; set the column \"{fk}\" to the id instead"
                    )));
                }
                if !attr.is_scalar() {
                    return Err(StateError::Invalid(format!(
                        "{at}: \"{k}\" is a collection; list the related entities under their own type instead"
                    )));
                }
                check_scalar(def, k, v).map_err(|e| StateError::Invalid(format!("{at}: {e}")))?;
                rec.insert(attr.alias_of.unwrap_or(attr.name), v.clone());
            }
            fill_defaults(def, &mut rec);
            let mut missing = missing_required(def, &rec);
            // State files written before projects needed a schema stay loadable: such a
            // project gets the default ProjectSchema (below, once every row is in).
            let gets_default_schema = def.name == "Project" && missing.contains(&SCHEMA_FK);
            missing.retain(|m| *m != SCHEMA_FK || !gets_default_schema);
            if !missing.is_empty() {
                return Err(StateError::Invalid(format!(
                    "{at}: missing required attribute(s): {}",
                    missing.join(", ")
                )));
            }
            let seq = store
                .insert(def.name, rec)
                .map_err(|e| StateError::Invalid(format!("{at}: {e}")))?;
            placed.push((def, i, seq));
            if gets_default_schema {
                schemaless.push(seq);
            }
        }
    }
    let schema_id = ensure_default_project_schema(&mut store)
        .map_err(|e| StateError::Invalid(format!("state: {e}")))?;
    for seq in schemaless {
        if let Some(mut rec) = store.table("Project").get(seq).cloned() {
            rec.insert(SCHEMA_FK, schema_id.clone());
            store
                .replace("Project", seq, rec)
                .map_err(|e| StateError::Invalid(format!("state: Project: {e}")))?;
        }
    }
    for (def, i, seq) in placed {
        if let Some(rec) = store.table(def.name).get(seq) {
            if let Some(msg) = dangling(&store, def, rec) {
                return Err(StateError::Invalid(format!(
                    "state: {}[{i}]: {msg}",
                    def.name
                )));
            }
        }
    }
    Ok(store)
}

/// Render a stored record for API responses.
pub fn full(def: &'static EntityDef, rec: &Record) -> Value {
    render_full(def, rec)
}
