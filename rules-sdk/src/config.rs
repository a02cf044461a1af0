//! A module's `[rules.config]` table, as the rule sees it: typed getters over the JSON object
//! the host hands to `configure`, with the schema's defaults applied. The host has already
//! checked keys and types against the schema; the checks here keep native tests honest and
//! protect modules run by other hosts.

use crate::{ConfigKey, ConfigType};
use serde_json::{Map, Value};

/// The module's configuration. Getters return `Err` with a message naming the key when the
/// value has the wrong type, and `Ok(None)` when the key is absent and has no default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    values: Map<String, Value>,
}

impl Config {
    /// Parse the JSON object, check it against the schema and apply the defaults.
    pub fn parse(json: &str, schema: &[ConfigKey]) -> Result<Config, String> {
        let value: Value = serde_json::from_str(json)
            .map_err(|e| format!("the configuration is not valid JSON: {e}"))?;
        let Value::Object(mut values) = value else {
            return Err("the configuration must be a table (a JSON object)".to_string());
        };
        for name in values.keys() {
            if !schema.iter().any(|k| &k.name == name) {
                let known: Vec<&str> = schema.iter().map(|k| k.name.as_str()).collect();
                return Err(format!(
                    "unknown key `{name}` (known keys: {})",
                    if known.is_empty() {
                        "none".to_string()
                    } else {
                        known.join(", ")
                    }
                ));
            }
        }
        for key in schema {
            match values.get(&key.name) {
                Some(v) => check_type(&key.name, key.value_type, v)?,
                None => {
                    if let Some(default) = &key.default {
                        let v: Value = serde_json::from_str(default).map_err(|e| {
                            format!("the module's default for `{}` is not valid: {e}", key.name)
                        })?;
                        values.insert(key.name.clone(), v);
                    } else if key.required {
                        return Err(format!("missing required key `{}`", key.name));
                    }
                }
            }
        }
        Ok(Config { values })
    }

    /// The raw JSON value of a key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.values.get(key)
    }

    /// All keys and values.
    pub fn values(&self) -> &Map<String, Value> {
        &self.values
    }

    /// A string value.
    pub fn string(&self, key: &str) -> Result<Option<String>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(wrong(key, "a string", other)),
        }
    }

    /// An integer value.
    pub fn integer(&self, key: &str) -> Result<Option<i64>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64()),
            Some(other) => Err(wrong(key, "an integer", other)),
        }
    }

    /// A number value (integers accepted).
    pub fn float(&self, key: &str) -> Result<Option<f64>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => Ok(n.as_f64()),
            Some(other) => Err(wrong(key, "a number", other)),
        }
    }

    /// A boolean value.
    pub fn boolean(&self, key: &str) -> Result<Option<bool>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(other) => Err(wrong(key, "true or false", other)),
        }
    }

    /// A list of strings; an absent key is an empty list.
    pub fn string_list(&self, key: &str) -> Result<Vec<String>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(wrong(key, "a list of strings", other)),
                })
                .collect(),
            Some(other) => Err(wrong(key, "a list of strings", other)),
        }
    }

    /// A list of tables, each as a [`Config`] (unchecked: read its keys with the getters).
    pub fn table_list(&self, key: &str) -> Result<Vec<Config>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Value::Object(m) => Ok(Config { values: m.clone() }),
                    other => Err(wrong(&format!("{key}[{i}]"), "a table", other)),
                })
                .collect(),
            Some(other) => Err(wrong(key, "a list of tables", other)),
        }
    }

    /// A table, as a [`Config`].
    pub fn table(&self, key: &str) -> Result<Option<Config>, String> {
        match self.values.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Object(m)) => Ok(Some(Config { values: m.clone() })),
            Some(other) => Err(wrong(key, "a table", other)),
        }
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

fn wrong(key: &str, wanted: &str, got: &Value) -> String {
    format!("`{key}` must be {wanted}, not {}", kind(got))
}

fn check_type(key: &str, t: ConfigType, v: &Value) -> Result<(), String> {
    let ok = match t {
        ConfigType::String => v.is_string(),
        ConfigType::Integer => v.is_i64() || v.is_u64(),
        ConfigType::Float => v.is_number(),
        ConfigType::Boolean => v.is_boolean(),
        ConfigType::StringList => v.as_array().is_some_and(|a| a.iter().all(Value::is_string)),
        ConfigType::Table => v.is_object(),
        ConfigType::TableList => v.as_array().is_some_and(|a| a.iter().all(Value::is_object)),
    };
    if ok {
        Ok(())
    } else {
        Err(wrong(key, type_name(t), v))
    }
}

/// How a config type is called in messages.
pub fn type_name(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "a string",
        ConfigType::Integer => "an integer",
        ConfigType::Float => "a number",
        ConfigType::Boolean => "true or false",
        ConfigType::StringList => "a list of strings",
        ConfigType::Table => "a table",
        ConfigType::TableList => "a list of tables",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Vec<ConfigKey> {
        vec![
            ConfigKey::integer("days").default_value("30"),
            ConfigKey::string("domain").required(),
            ConfigKey::string_list("protected"),
        ]
    }

    #[test]
    fn defaults_apply_and_types_are_checked() {
        let c = Config::parse(r#"{"domain":"x.org"}"#, &schema()).unwrap();
        assert_eq!(c.integer("days").unwrap(), Some(30));
        assert_eq!(c.string("domain").unwrap().as_deref(), Some("x.org"));
        assert!(c.string_list("protected").unwrap().is_empty());

        let e = Config::parse(r#"{"domain":1}"#, &schema()).unwrap_err();
        assert!(e.contains("`domain` must be a string"), "{e}");
        let e = Config::parse(r#"{}"#, &schema()).unwrap_err();
        assert!(e.contains("missing required key `domain`"), "{e}");
        let e = Config::parse(r#"{"domain":"x","dayz":3}"#, &schema()).unwrap_err();
        assert!(e.contains("unknown key `dayz`"), "{e}");
    }
}
