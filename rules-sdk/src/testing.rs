//! Helpers for testing rules natively with `cargo test`: build entries and departed users,
//! configure a rule type from JSON the way the host does, and read what it logged.

use crate::{Attribute, Config, DepartedUser, Entry, GroupRef, Hook, LogLevel, Rules};
use std::cell::RefCell;

/// Configure a rule type from a JSON object, with the schema's defaults and checks applied,
/// exactly as the host does before the first hook call.
pub fn configure<T: Rules>(config_json: &str) -> Result<T, String> {
    crate::__rt::configure::<T>(config_json)
}

/// The hooks a rule type implements (what its metadata will list).
pub fn hooks_of<T: crate::__rt::Implemented>() -> Vec<Hook> {
    crate::__rt::hooks::<T>()
}

/// The configuration a rule type would get from this JSON (defaults applied).
pub fn config_for<T: Rules>(config_json: &str) -> Result<Config, String> {
    Config::parse(config_json, &T::metadata().config_schema)
}

/// The entry as the host would pass it to these rules: only the attributes (and groups)
/// [`Rules::reads`] declares. Test with this to catch an undeclared attribute.
pub fn as_passed<T: Rules>(rules: &T, entry: &Entry) -> Entry {
    rules.reads().filter(entry)
}

/// Start building an entry.
pub fn entry(dn: &str) -> EntryBuilder {
    EntryBuilder(Entry::new(dn))
}

/// Builds an [`Entry`] for a test.
#[derive(Debug, Clone)]
pub struct EntryBuilder(Entry);

impl EntryBuilder {
    /// Add an attribute with its values.
    pub fn attr<I, S>(mut self, name: &str, values: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.attributes.push(Attribute {
            name: name.to_string(),
            values: values.into_iter().map(Into::into).collect(),
        });
        self
    }

    /// Add a group by DN; its name is the DN's first RDN value.
    pub fn group(mut self, dn: &str, direct: bool) -> Self {
        self.0.groups.push(GroupRef {
            dn: dn.to_string(),
            name: crate::dn::rdn_value(dn).unwrap_or_default(),
            direct,
        });
        self
    }

    /// Set the stable id.
    pub fn stable_id(mut self, id: &str) -> Self {
        self.0.stable_id = Some(id.to_string());
        self
    }

    /// Mark the entry disabled in the directory.
    pub fn disabled(mut self) -> Self {
        self.0.disabled = true;
        self
    }

    /// The entry.
    pub fn build(self) -> Entry {
        self.0
    }
}

/// A user missing from LDAP since `missing_since` (or just now, when `None`), seen `today`.
pub fn departed(username: &str, missing_since: Option<&str>, today: &str) -> DepartedUser {
    DepartedUser {
        username: username.to_string(),
        email: None,
        ldap_disabled: false,
        missing_since: missing_since.map(str::to_string),
        today: today.to_string(),
        entry: None,
    }
}

thread_local! {
    static LOGS: RefCell<Vec<(LogLevel, String)>> = const { RefCell::new(Vec::new()) };
}

#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
pub(crate) fn record_log(level: LogLevel, message: &str) {
    LOGS.with(|l| l.borrow_mut().push((level, message.to_string())));
}

/// What the rule logged on this thread since the last call (native tests only).
pub fn take_logs() -> Vec<(LogLevel, String)> {
    LOGS.with(|l| std::mem::take(&mut *l.borrow_mut()))
}
