//! The entity model the emulator serves: which entity types exist, their attributes,
//! relations, defaults, required/immutable sets and uniqueness constraints.
//!
//! Everything else (store, query evaluation, actions, `query_schemas`) is driven by this
//! table, so adding an attribute here is enough to make it storable, queryable and
//! visible to the official client.

use serde_json::{json, Map, Value};
use std::sync::OnceLock;

/// How an attribute is stored and related.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A string column.
    Str,
    /// A boolean column.
    Bool,
    /// A reference to one entity of `target`, stored in this entity's column `fk`.
    Ref {
        target: &'static str,
        fk: &'static str,
    },
    /// A one-to-many collection: entities of `target` whose column `fk` holds this id.
    Coll {
        target: &'static str,
        fk: &'static str,
    },
    /// A key/value `mapped_array` of `Metadata` rows whose `parent_id` is this id.
    Meta,
}

/// A schema default applied on create and on state load.
#[derive(Debug, Clone, Copy)]
pub enum Default {
    /// A fresh uuid4 (`"{uid}"` in the wire schema).
    Uid,
    Str(&'static str),
    Bool(bool),
}

impl Default {
    pub fn value(&self) -> Value {
        match self {
            Default::Uid => Value::String(uuid::Uuid::new_v4().to_string()),
            Default::Str(s) => Value::String((*s).to_string()),
            Default::Bool(b) => Value::Bool(*b),
        }
    }
}

/// One attribute of an entity type.
#[derive(Debug, Clone)]
pub struct Attr {
    pub name: &'static str,
    pub kind: Kind,
    pub required: bool,
    pub immutable: bool,
    pub default: Option<Default>,
    /// For scalar foreign-key columns: the entity type referred to.
    pub fk_to: Option<&'static str>,
    /// Whether the store keeps a lookup index on this column (all foreign keys are).
    pub indexed: bool,
    /// Another attribute this one is a (deprecated) alias of; it is not stored itself.
    pub alias_of: Option<&'static str>,
    /// Emit the wire schema fragment without a `type` (as the real server does for
    /// `User.user_type_id`), so the official client ignores the attribute.
    pub untyped_in_schema: bool,
}

impl Attr {
    fn new(name: &'static str, kind: Kind) -> Attr {
        Attr {
            name,
            kind,
            required: false,
            immutable: false,
            default: None,
            fk_to: None,
            indexed: false,
            alias_of: None,
            untyped_in_schema: false,
        }
    }
    fn req(mut self) -> Self {
        self.required = true;
        self
    }
    fn imm(mut self) -> Self {
        self.immutable = true;
        self
    }
    fn def(mut self, d: Default) -> Self {
        self.default = Some(d);
        self
    }
    fn fk(mut self, target: &'static str) -> Self {
        self.fk_to = Some(target);
        self.indexed = true;
        self
    }
    fn indexed(mut self) -> Self {
        self.indexed = true;
        self
    }
    /// True for attributes stored as a column in the record.
    pub fn is_stored(&self) -> bool {
        matches!(self.kind, Kind::Str | Kind::Bool) && self.alias_of.is_none()
    }
    pub fn is_scalar(&self) -> bool {
        matches!(self.kind, Kind::Str | Kind::Bool)
    }
}

fn s(name: &'static str) -> Attr {
    Attr::new(name, Kind::Str)
}
fn b(name: &'static str) -> Attr {
    Attr::new(name, Kind::Bool)
}
fn id() -> Attr {
    s("id").req().imm().def(Default::Uid)
}
fn r(name: &'static str, target: &'static str, fk: &'static str) -> Attr {
    Attr::new(name, Kind::Ref { target, fk })
}
fn c(name: &'static str, target: &'static str, fk: &'static str) -> Attr {
    Attr::new(name, Kind::Coll { target, fk })
}
fn meta() -> Attr {
    Attr::new("metadata", Kind::Meta)
}

/// One entity type.
#[derive(Debug)]
pub struct EntityDef {
    pub name: &'static str,
    pub primary_key: &'static [&'static str],
    pub attrs: Vec<Attr>,
    pub default_projections: &'static [&'static str],
    pub system_projections: &'static [&'static str],
    /// Column sets that must be unique across the table (nulls compare equal).
    pub unique: &'static [&'static [&'static str]],
}

impl EntityDef {
    pub fn attr(&self, name: &str) -> Option<&Attr> {
        self.attrs.iter().find(|a| a.name == name)
    }
    /// The stored column an attribute name reads/writes (resolving aliases).
    pub fn column<'a>(&'a self, name: &'a str) -> &'a str {
        match self.attr(name).and_then(|a| a.alias_of) {
            Some(target) => target,
            None => name,
        }
    }
    pub fn stored(&self) -> impl Iterator<Item = &Attr> {
        self.attrs.iter().filter(|a| a.is_stored())
    }
    /// Indexed scalar columns (every foreign key, plus `Metadata.parent_id`).
    pub fn fk_columns(&self) -> impl Iterator<Item = &Attr> {
        self.attrs
            .iter()
            .filter(|a| a.indexed && a.alias_of.is_none())
    }
    pub fn is_metadata(&self) -> bool {
        self.name == METADATA
    }
}

pub const METADATA: &str = "Metadata";

/// The entity a `Project` must reference (`Project.project_schema`).
pub const PROJECT_SCHEMA: &str = "ProjectSchema";

/// Name of the `ProjectSchema` that always exists (seeded on start, reset and load).
pub const DEFAULT_PROJECT_SCHEMA_NAME: &str = "VFX Scheme";

/// The whole model.
#[derive(Debug)]
pub struct Schema {
    pub entities: Vec<EntityDef>,
}

impl Schema {
    pub fn get(&self, name: &str) -> Option<&EntityDef> {
        self.entities.iter().find(|e| e.name == name)
    }
    pub fn names(&self) -> Vec<&'static str> {
        self.entities.iter().map(|e| e.name).collect()
    }
}

/// The process-wide schema.
pub fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(build)
}

/// Look up an entity type, or a message naming the known ones.
pub fn entity(name: &str) -> Result<&'static EntityDef, String> {
    schema().get(name).ok_or_else(|| {
        format!(
            "Unknown entity type \"{name}\"; the emulator knows: {}.",
            schema().names().join(", ")
        )
    })
}

fn build() -> Schema {
    let mut user_type_id = s("user_type_id").fk("UserType");
    user_type_id.untyped_in_schema = true;
    let mut is_all_projects = b("is_all_projects");
    is_all_projects.alias_of = Some("is_all_open_projects");
    Schema {
        entities: vec![
            EntityDef {
                name: "User",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("username").req(),
                    s("email"),
                    s("first_name"),
                    s("last_name"),
                    b("is_active").req().def(Default::Bool(true)),
                    b("is_otp_enabled").def(Default::Bool(false)),
                    b("is_totp_enabled").def(Default::Bool(false)),
                    b("require_details_update").def(Default::Bool(false)),
                    s("resource_type").req().imm().def(Default::Str("user")),
                    s("thumbnail_id"),
                    user_type_id,
                    r("user_type", "UserType", "user_type_id"),
                    c("memberships", "Membership", "user_id"),
                    c("user_security_roles", "UserSecurityRole", "user_id"),
                    meta(),
                ],
                default_projections: &["id"],
                system_projections: &["resource_type"],
                unique: &[&["username"]],
            },
            EntityDef {
                name: "Group",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("name").req().def(Default::Str("")),
                    b("local").req().def(Default::Bool(false)),
                    s("resource_type").req().imm().def(Default::Str("group")),
                    s("parent_id").fk("Group"),
                    r("parent", "Group", "parent_id"),
                    c("children", "Group", "parent_id"),
                    c("memberships", "Membership", "group_id"),
                    meta(),
                ],
                default_projections: &["id", "name"],
                system_projections: &["resource_type"],
                unique: &[&["name", "parent_id"]],
            },
            EntityDef {
                name: "Membership",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("user_id").req().fk("User"),
                    s("group_id").req().fk("Group"),
                    r("user", "User", "user_id"),
                    r("group", "Group", "group_id"),
                ],
                default_projections: &["id", "user_id", "group_id"],
                system_projections: &[],
                unique: &[&["user_id", "group_id"]],
            },
            EntityDef {
                name: "SecurityRole",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("name").req(),
                    s("type").req().def(Default::Str("PROJECT")),
                    c(
                        "user_security_roles",
                        "UserSecurityRole",
                        "security_role_id",
                    ),
                ],
                default_projections: &["id", "name"],
                system_projections: &[],
                unique: &[&["name"]],
            },
            EntityDef {
                name: "UserSecurityRole",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("user_id").req().fk("User"),
                    s("security_role_id").req().fk("SecurityRole"),
                    b("is_all_open_projects").def(Default::Bool(false)),
                    is_all_projects,
                    r("user", "User", "user_id"),
                    r("security_role", "SecurityRole", "security_role_id"),
                    c(
                        "user_security_role_projects",
                        "UserSecurityRoleProject",
                        "user_security_role_id",
                    ),
                ],
                default_projections: &["id", "user_id", "security_role_id"],
                system_projections: &[],
                unique: &[&["user_id", "security_role_id"]],
            },
            EntityDef {
                name: "UserSecurityRoleProject",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("user_security_role_id").req().fk("UserSecurityRole"),
                    s("project_id").req().fk("Project"),
                    r(
                        "user_security_role",
                        "UserSecurityRole",
                        "user_security_role_id",
                    ),
                    r("project", "Project", "project_id"),
                ],
                default_projections: &["id", "user_security_role_id", "project_id"],
                system_projections: &[],
                unique: &[&["user_security_role_id", "project_id"]],
            },
            EntityDef {
                name: "Project",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("name").req(),
                    s("full_name"),
                    s("status").req().def(Default::Str("active")),
                    b("is_private").def(Default::Bool(false)),
                    b("is_global").req().def(Default::Bool(false)),
                    s("project_schema_id").req().fk(PROJECT_SCHEMA),
                    r("project_schema", PROJECT_SCHEMA, "project_schema_id"),
                    s("context_type").req().imm().def(Default::Str("show")),
                    c(
                        "user_security_role_projects",
                        "UserSecurityRoleProject",
                        "project_id",
                    ),
                    meta(),
                ],
                default_projections: &["context_type", "id", "name"],
                system_projections: &["context_type"],
                unique: &[&["name"]],
            },
            EntityDef {
                // Real schema: id, name and more (workflows, task templates, …); only the
                // name is needed to pick one when creating a project.
                name: PROJECT_SCHEMA,
                primary_key: &["id"],
                attrs: vec![id(), s("name").req()],
                default_projections: &["id"],
                system_projections: &[],
                unique: &[&["name"]],
            },
            EntityDef {
                name: "UserType",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("name").req().imm(),
                    c("users", "User", "user_type_id"),
                ],
                default_projections: &["id", "name"],
                system_projections: &[],
                unique: &[&["name"]],
            },
            EntityDef {
                name: METADATA,
                primary_key: &["parent_id", "key"],
                attrs: vec![
                    s("parent_id").req().imm().indexed(),
                    s("parent_type").req(),
                    s("key").req().imm(),
                    s("value").req(),
                ],
                default_projections: &["parent_id", "key", "value", "parent_type"],
                system_projections: &[],
                unique: &[],
            },
            EntityDef {
                name: "Location",
                primary_key: &["id"],
                attrs: vec![id(), s("name").req(), s("label"), s("description")],
                default_projections: &["id", "name"],
                system_projections: &[],
                unique: &[&["name"]],
            },
            // A job in ftrack's Jobs list; `data` is a JSON string (`{"description": …}`),
            // `type` is `api_job` for jobs made through the API.
            EntityDef {
                name: "Job",
                primary_key: &["id"],
                attrs: vec![
                    id(),
                    s("status").req().def(Default::Str("queued")),
                    s("type").def(Default::Str("api_job")),
                    s("data"),
                    s("user_id").fk("User"),
                    r("user", "User", "user_id"),
                ],
                default_projections: &["id", "status"],
                system_projections: &[],
                unique: &[],
            },
        ],
    }
}

/// The wire-format schema list returned by `query_schemas`.
pub fn wire_schemas() -> Value {
    let list: Vec<Value> = schema().entities.iter().map(wire_schema).collect();
    Value::Array(list)
}

fn wire_schema(def: &EntityDef) -> Value {
    let mut props = Map::new();
    for a in &def.attrs {
        let frag = match a.kind {
            Kind::Str | Kind::Bool if a.untyped_in_schema => json!({"format": "foreign_key"}),
            Kind::Str | Kind::Bool => {
                let mut m = Map::new();
                let ty = if a.kind == Kind::Bool {
                    "boolean"
                } else {
                    "string"
                };
                m.insert("type".into(), json!(ty));
                if let Some(target) = a.fk_to {
                    m.insert("format".into(), json!("foreign_key"));
                    m.insert(
                        "description".into(),
                        json!(format!("Foreign key(s): {target}.id")),
                    );
                }
                if let Some(alias) = a.alias_of {
                    m.insert(
                        "description".into(),
                        json!(format!("Deprecated alias of {alias}.")),
                    );
                }
                match a.default {
                    Some(Default::Uid) => {
                        m.insert("default".into(), json!("{uid}"));
                    }
                    Some(d) => {
                        m.insert("default".into(), d.value());
                    }
                    None => {}
                }
                Value::Object(m)
            }
            Kind::Ref { target, .. } => json!({ "$ref": target }),
            Kind::Coll { target, .. } => json!({"type": "array", "items": {"$ref": target}}),
            Kind::Meta => json!({"type": "mapped_array", "items": {"$ref": METADATA}}),
        };
        props.insert(a.name.to_string(), frag);
    }
    let required: Vec<&str> = def
        .attrs
        .iter()
        .filter(|a| a.required)
        .map(|a| a.name)
        .collect();
    let immutable: Vec<&str> = def
        .attrs
        .iter()
        .filter(|a| a.immutable)
        .map(|a| a.name)
        .collect();
    json!({
        "id": def.name,
        "type": "object",
        "primary_key": def.primary_key,
        "required": required,
        "immutable": immutable,
        "computed": [],
        "default_projections": def.default_projections,
        "system_projections": def.system_projections,
        "properties": props,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_relation_points_at_a_known_type_and_column() {
        let sc = schema();
        for e in &sc.entities {
            for a in &e.attrs {
                match a.kind {
                    Kind::Ref { target, fk } => {
                        assert!(sc.get(target).is_some(), "{}.{}", e.name, a.name);
                        assert!(e.attr(fk).is_some(), "{}.{} fk", e.name, a.name);
                    }
                    Kind::Coll { target, fk } => {
                        let t = sc.get(target).expect("target");
                        assert!(t.attr(fk).is_some(), "{}.{} fk", e.name, a.name);
                    }
                    _ => {}
                }
                if let Some(t) = a.fk_to {
                    assert!(sc.get(t).is_some());
                }
            }
        }
        // The ten entity types a sync needs, Metadata, and Job (`listen`'s preview).
        assert!(wire_schemas().as_array().is_some_and(|a| a.len() == 12));
    }
}
