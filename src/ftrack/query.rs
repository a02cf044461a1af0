//! Building ftrack query expressions from data without letting the data change their meaning.
//!
//! ftrack's query documentation names no escape, but ftrack's own JavaScript client puts a
//! backslash before each quote of a value it interpolates (`expression` in its
//! `source/session.ts`), and the emulator reads `\"`, `\'` and `\\` inside either quote
//! style (ftrack-emulator README, query language). [`quote`] writes a value without any
//! escape when one quote character suffices — the form every ftrack example uses — and
//! escapes only values that need it: those holding both quote characters or a backslash.

/// A value as an ftrack query string literal that reads back as exactly `value`.
pub fn quote(value: &str) -> String {
    if !value.contains('\\') {
        if !value.contains('"') {
            return format!("\"{value}\"");
        }
        if !value.contains('\'') {
            return format!("'{value}'");
        }
    }
    let mut out = String::with_capacity(value.len() + 8);
    out.push('"');
    for c in value.chars() {
        // Inside "...", only the closing quote and the escape character itself need one.
        if matches!(c, '"' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// `attribute is "value"` with the value safely quoted.
pub fn equals(attribute: &str, value: &str) -> String {
    format!("{attribute} is {}", quote(value))
}

/// Values as the list of an `in (…)` condition, each [`quote`]d.
pub fn in_list<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> String {
    let quoted: Vec<String> = values.into_iter().map(|v| quote(v.as_ref())).collect();
    quoted.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_in_list_quotes_each_value_as_any_query_value() {
        assert_eq!(in_list(["a-1", "b-2"]), "\"a-1\", \"b-2\"");
        assert_eq!(
            in_list(["ok", "a\" or id is \"b"]),
            "\"ok\", 'a\" or id is \"b'"
        );
    }

    #[test]
    fn values_stay_values() {
        assert_eq!(quote("ada"), "\"ada\"");
        assert_eq!(quote("o\"neil"), "'o\"neil'");
        assert_eq!(quote("o'neil"), "\"o'neil\"");
        assert_eq!(
            equals("username", "x\" or username like \"%"),
            "username is 'x\" or username like \"%'"
        );
    }

    #[test]
    fn escapes_only_when_one_quote_character_is_not_enough() {
        assert_eq!(quote(r"a\b"), r#""a\\b""#);
        assert_eq!(quote(r"ends\"), r#""ends\\""#);
        assert_eq!(quote(r#"both ' and ""#), r#""both ' and \"""#);
        assert_eq!(quote(r#"o"brien's\x"#), r#""o\"brien's\\x""#);
        assert_eq!(quote(r#"\""#), r#""\\\"""#);
    }
}
