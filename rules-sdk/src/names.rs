//! Usernames and group names: normal forms and comparisons, so rules agree with the host on
//! what "the same name" means.

/// A username as ftrack should have it: trimmed, lower-case, any `DOMAIN\` prefix or
/// `@realm` suffix removed, inner whitespace replaced by `.`.
pub fn normalize_username(name: &str) -> String {
    let mut n = name.trim();
    if let Some((_, rest)) = n.rsplit_once('\\') {
        n = rest;
    }
    if let Some((user, _)) = n.split_once('@') {
        n = user;
    }
    if n.is_ascii() && !n.contains(|c: char| c.is_ascii_whitespace()) {
        return n.to_ascii_lowercase();
    }
    n.split_whitespace()
        .collect::<Vec<_>>()
        .join(".")
        .to_lowercase()
}

/// True when the username is usable: 1–128 characters of letters, digits, `.`, `_`, `-`,
/// not starting with `.` or `-`.
pub fn is_valid_username(name: &str) -> bool {
    !name.is_empty()
        && name.chars().count() <= 128
        && !name.starts_with(['.', '-'])
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A group name with surrounding whitespace removed and inner runs collapsed to one space.
pub fn normalize_group(name: &str) -> String {
    name.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True when two group names are the same group (whitespace-normalised, case-insensitive).
pub fn same_group(a: &str, b: &str) -> bool {
    if a.eq_ignore_ascii_case(b) {
        return true;
    }
    let plain = |s: &str| s.is_ascii() && !s.contains("  ") && s.trim().len() == s.len();
    if plain(a) && plain(b) {
        return false;
    }
    let (a, b) = (normalize_group(a), normalize_group(b));
    a.to_lowercase() == b.to_lowercase()
}

/// `prefix` removed from a group name when present (case-insensitive): `strip_prefix("ftrack-comp",
/// "ftrack-")` → `Some("comp")`.
pub fn strip_prefix<'a>(name: &'a str, prefix: &str) -> Option<&'a str> {
    let head = name.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &name[prefix.len()..])
}

/// Capitalise each word: `comp artists` → `Comp Artists`.
pub fn title_case(name: &str) -> String {
    normalize_group(name)
        .split(' ')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames() {
        assert_eq!(normalize_username(" STUDIO\\JDoe "), "jdoe");
        assert_eq!(normalize_username("jdoe@STUDIO.LOCAL"), "jdoe");
        assert_eq!(normalize_username("John  Doe"), "john.doe");
        assert!(is_valid_username("j.doe-2_x"));
        assert!(!is_valid_username("-x"));
        assert!(!is_valid_username("a b"));
        assert!(!is_valid_username(""));
    }

    #[test]
    fn groups() {
        assert!(same_group(" Comp   Artists", "comp artists"));
        assert_eq!(strip_prefix("FTRACK-comp", "ftrack-"), Some("comp"));
        assert_eq!(strip_prefix("comp", "ftrack-"), None);
        assert_eq!(title_case("comp  artists"), "Comp Artists");
    }
}
