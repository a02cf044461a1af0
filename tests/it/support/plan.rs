//! The operations of a `plan --output json` document, in the shape the tests compare them.

use serde_json::Value;

/// One planned operation: its kind and target (a username or a group name), and the group,
/// security role and project scope it is about, when it names them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOp {
    pub kind: String,
    pub target: String,
    pub group: Option<String>,
    pub role: Option<String>,
    pub scope: Option<String>,
    /// A grant that first adds the role to the user (`add_role`); false when absent.
    pub add_role: bool,
}

impl PlannedOp {
    /// Reads one element of a plan's `operations`; panics, showing it, when it has no
    /// `kind` or `target` string.
    pub fn from_json(op: &Value) -> PlannedOp {
        let required = |key: &str| {
            op[key]
                .as_str()
                .unwrap_or_else(|| panic!("operation without a `{key}` string: {op}"))
                .to_string()
        };
        let optional = |key: &str| op[key].as_str().map(str::to_string);
        PlannedOp {
            kind: required("kind"),
            target: required("target"),
            group: optional("group"),
            role: optional("role"),
            scope: optional("scope"),
            add_role: op["add_role"].as_bool().unwrap_or(false),
        }
    }

    /// (kind, target).
    pub fn pair(&self) -> (String, String) {
        (self.kind.clone(), self.target.clone())
    }

    /// (kind, target, detail), where detail is the group, role and scope that are present,
    /// joined with `/` (empty for a user operation).
    pub fn triple(&self) -> (String, String, String) {
        let detail = [&self.group, &self.role, &self.scope]
            .into_iter()
            .flatten()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("/");
        (self.kind.clone(), self.target.clone(), detail)
    }
}

/// The operations of a `plan --output json` document, in plan order; panics, showing the
/// document, when it has no `operations` array.
pub fn plan_ops(plan: &Value) -> Vec<PlannedOp> {
    plan["operations"]
        .as_array()
        .unwrap_or_else(|| panic!("plan without an `operations` array: {plan}"))
        .iter()
        .map(PlannedOp::from_json)
        .collect()
}

/// Owned (kind, target) pairs, to compare with [`PlannedOp::pair`]s.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(kind, target)| (kind.to_string(), target.to_string()))
        .collect()
}

/// Owned (kind, target, detail) triples, to compare with [`PlannedOp::triple`]s.
pub fn triples(list: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    list.iter()
        .map(|(kind, target, detail)| (kind.to_string(), target.to_string(), detail.to_string()))
        .collect()
}
