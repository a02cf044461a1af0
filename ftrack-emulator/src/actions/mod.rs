//! The emulator's engine: the data, the query cache and the API user, and what holds on
//! start, after a reset and after every load (the API user, UserType `ftrack`, the
//! default ProjectSchema).
//!
//! The actions that work on it live one job per file, so each can be read alone:
//! `batch` (a request as one transaction, and routing each operation to its action),
//! `crud` (create, update, delete and how `entity_data` maps to stored rows),
//! `integrity` (required attributes, foreign keys, cascades and refused deletes) and
//! `roles` (the security-role actions).

mod batch;
pub use batch::Reply;
mod crud;
mod integrity;
mod roles;

use crate::error::ApiError;
use crate::query::QueryCache;
use crate::schema::entity;
use crate::state::{ensure_default_project_schema, fill_defaults};
use crate::store::{Record, Store};
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

/// One operation of a request, as sent.
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

    /// The row of `etype` with id `id`; an operation naming one that does not exist is
    /// invalid (a `ValidationError` naming the field).
    fn must_exist(&self, etype: &str, id: &str, field: &str) -> Result<u64, ApiError> {
        self.store.table(etype).seq_by_key(id).ok_or_else(|| {
            ApiError::validation(format!("{field} \"{id}\" is not an existing {etype}"))
        })
    }
}
