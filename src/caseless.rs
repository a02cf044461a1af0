//! Case-insensitive keys. ftrack compares usernames, group, role and project names without
//! regard to case, so the indexes of a run are keyed by lower-cased names — and at 100,000
//! users a lower-casing copy per lookup is most of a lookup's cost. Names are nearly always
//! lower-case already; [`lowercase`] copies only when they are not.

use std::borrow::Cow;

/// `text` lower-cased; borrowed when it has no upper-case letter.
pub fn lowercase(text: &str) -> Cow<'_, str> {
    let already = text
        .bytes()
        .all(|b| !b.is_ascii_uppercase() && b.is_ascii());
    if already {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(text.to_lowercase())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn borrows_only_what_is_lower_case_already() {
        assert!(matches!(lowercase("jdoe"), Cow::Borrowed("jdoe")));
        assert!(matches!(lowercase("dept 5"), Cow::Borrowed(_)));
        assert_eq!(lowercase("JDoe"), "jdoe");
        assert!(matches!(lowercase("JDoe"), Cow::Owned(_)));
        // Non-ASCII goes through the full Unicode mapping.
        assert_eq!(lowercase("ÉLODIE"), "élodie");
        assert_eq!(lowercase("élodie"), "élodie");
    }
}
