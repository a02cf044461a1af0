//! A module's `[rules.config]` table checked against the schema the module declares in its
//! metadata, before the module sees it: unknown keys (with a "did you mean"), wrong types and
//! missing required keys become configuration errors naming `rules[i].config.<key>`. The
//! checked table, with the declared defaults filled in, is handed to `configure` as JSON.

use super::bindings::ldap2ftrack::rules::types::{ConfigKey, ConfigType};
use serde_json::{Map, Value};

/// One problem with one key: (`rules[i].config.<key>`, message).
pub type KeyProblem = (String, String);

pub fn type_name(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "string",
        ConfigType::Integer => "integer",
        ConfigType::Float => "float",
        ConfigType::Boolean => "boolean",
        ConfigType::StringList => "string-list",
        ConfigType::Table => "table",
        ConfigType::TableList => "table-list",
    }
}

fn described(t: ConfigType) -> &'static str {
    match t {
        ConfigType::String => "a string",
        ConfigType::Integer => "an integer",
        ConfigType::Float => "a number",
        ConfigType::Boolean => "true or false",
        ConfigType::StringList => "a list of strings",
        ConfigType::Table => "a table",
        ConfigType::TableList => "a list of tables ([[...]])",
    }
}

fn toml_kind(v: &toml::Value) -> &'static str {
    match v {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "an integer",
        toml::Value::Float(_) => "a float",
        toml::Value::Boolean(_) => "a boolean",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

fn matches(t: ConfigType, v: &toml::Value) -> bool {
    match t {
        ConfigType::String => v.is_str(),
        ConfigType::Integer => v.is_integer(),
        ConfigType::Float => v.is_float() || v.is_integer(),
        ConfigType::Boolean => v.is_bool(),
        ConfigType::StringList => v
            .as_array()
            .is_some_and(|a| a.iter().all(toml::Value::is_str)),
        ConfigType::Table => v.is_table(),
        ConfigType::TableList => v
            .as_array()
            .is_some_and(|a| a.iter().all(toml::Value::is_table)),
    }
}

/// The closest known key, when it is close enough to be a typo.
fn did_you_mean<'a>(unknown: &str, known: &[&'a str]) -> Option<&'a str> {
    known
        .iter()
        .map(|k| (strsim::jaro_winkler(unknown, k), *k))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}

/// TOML → JSON (dates become their RFC 3339 text).
pub fn to_json(v: &toml::Value) -> Value {
    match v {
        toml::Value::String(s) => Value::String(s.clone()),
        toml::Value::Integer(i) => Value::from(*i),
        toml::Value::Float(f) => serde_json::Number::from_f64(*f)
            .map(Value::Number)
            .unwrap_or(Value::Null),
        toml::Value::Boolean(b) => Value::Bool(*b),
        toml::Value::Datetime(d) => Value::String(d.to_string()),
        toml::Value::Array(a) => Value::Array(a.iter().map(to_json).collect()),
        toml::Value::Table(t) => Value::Object(
            t.iter()
                .map(|(k, v)| (k.clone(), to_json(v)))
                .collect::<Map<_, _>>(),
        ),
    }
}

/// Checks the table against the schema; on success the JSON object for `configure`.
pub fn check(
    prefix: &str,
    module: &str,
    table: &toml::Table,
    schema: &[ConfigKey],
) -> Result<String, Vec<KeyProblem>> {
    let mut problems = Vec::new();
    let known: Vec<&str> = schema.iter().map(|k| k.name.as_str()).collect();
    for (name, value) in table {
        let key = format!("{prefix}.{name}");
        match schema.iter().find(|k| &k.name == name) {
            None => {
                let hint = did_you_mean(name, &known)
                    .map(|s| format!("did you mean `{s}`? "))
                    .unwrap_or_default();
                let accepted = if known.is_empty() {
                    "it takes no configuration".to_string()
                } else {
                    format!("it accepts: {}", known.join(", "))
                };
                problems.push((
                    key,
                    format!("unknown key for rule module `{module}`; {hint}{accepted}"),
                ));
            }
            Some(k) if !matches(k.value_type, value) => problems.push((
                key,
                format!(
                    "must be {} for rule module `{module}`, not {}",
                    described(k.value_type),
                    toml_kind(value)
                ),
            )),
            Some(_) => {}
        }
    }
    let mut json = Map::new();
    for k in schema {
        match table.get(&k.name) {
            Some(v) => {
                json.insert(k.name.clone(), to_json(v));
            }
            None if k.required => problems.push((
                format!("{prefix}.{}", k.name),
                format!(
                    "missing: rule module `{module}` requires it ({}{})",
                    described(k.value_type),
                    if k.description.is_empty() {
                        String::new()
                    } else {
                        format!(": {}", k.description)
                    }
                ),
            )),
            None => {
                if let Some(d) = &k.default {
                    match serde_json::from_str::<Value>(d) {
                        Ok(v) => {
                            json.insert(k.name.clone(), v);
                        }
                        Err(e) => problems.push((
                            format!("{prefix}.{}", k.name),
                            format!(
                                "rule module `{module}` declares an unusable default `{d}` ({e}); set the key explicitly"
                            ),
                        )),
                    }
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(Value::Object(json).to_string())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(name: &str, t: ConfigType, default: Option<&str>, required: bool) -> ConfigKey {
        ConfigKey {
            name: name.into(),
            value_type: t,
            default: default.map(str::to_string),
            description: String::new(),
            required,
        }
    }

    #[test]
    fn checks_keys_types_and_defaults() {
        let schema = vec![
            key("grace_days", ConfigType::Integer, Some("30"), false),
            key("domain", ConfigType::String, None, true),
            key("protected", ConfigType::StringList, None, false),
        ];
        let t: toml::Table = toml::from_str("domain = 'x.org'\nprotected = ['a']").unwrap();
        let json = check("rules[0].config", "m", &t, &schema).unwrap();
        let v: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(v["grace_days"], 30);
        assert_eq!(v["protected"][0], "a");

        let t: toml::Table = toml::from_str("grace_dayz = 3\nprotected = [1]").unwrap();
        let problems = check("rules[1].config", "m", &t, &schema).unwrap_err();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "rules[1].config.grace_dayz",
                "rules[1].config.protected",
                "rules[1].config.domain"
            ]
        );
        assert!(
            problems[0].1.contains("did you mean `grace_days`"),
            "{problems:?}"
        );
        assert!(
            problems[1].1.contains("must be a list of strings"),
            "{problems:?}"
        );
    }
}
