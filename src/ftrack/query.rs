//! Building ftrack query expressions from data without letting the data change their meaning.
//!
//! ftrack's query language has no escape mechanism (ftrack-api.md §4): a value is safe only
//! inside a quote character it does not contain. [`quote`] picks that quote, and refuses the
//! rare value that contains both kinds rather than produce a query that means something else.

/// A value quoted for an ftrack query, or an error when it cannot be expressed safely.
pub fn quote(value: &str) -> Result<String, String> {
    if !value.contains('"') {
        Ok(format!("\"{value}\""))
    } else if !value.contains('\'') {
        Ok(format!("'{value}'"))
    } else {
        Err(format!(
            "the value {value:?} contains both quote characters and cannot be used in an ftrack query"
        ))
    }
}

/// `attribute is "value"` with the value safely quoted.
pub fn equals(attribute: &str, value: &str) -> Result<String, String> {
    Ok(format!("{attribute} is {}", quote(value)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_values() {
        assert_eq!(quote("ada").unwrap(), "\"ada\"");
        assert_eq!(quote("o\"neil").unwrap(), "'o\"neil'");
        assert_eq!(quote("o'neil").unwrap(), "\"o'neil\"");
        assert_eq!(quote("a\\b").unwrap(), "\"a\\b\"");
        assert_eq!(
            equals("username", "x\" or username like \"%").unwrap(),
            "username is 'x\" or username like \"%'"
        );
        assert!(quote("both ' and \"").is_err());
    }
}
