//! The time of a run, in one place: rules and plans see dates supplied by the host, so the
//! same inputs give the same plan. `LDAP2FTRACK_TODAY=YYYY-MM-DD` pins the date (tests,
//! fixtures, replaying a situation).

use std::time::SystemTime;

/// Now, as RFC 3339 in UTC (for journal lines).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(SystemTime::now()).to_string()
}

/// Today's date (`YYYY-MM-DD`, UTC), or `LDAP2FTRACK_TODAY` when set to a valid date.
pub fn today() -> String {
    if let Ok(pinned) = std::env::var("LDAP2FTRACK_TODAY") {
        if is_date(&pinned) {
            return pinned;
        }
        tracing::warn!("LDAP2FTRACK_TODAY={pinned:?} is not YYYY-MM-DD; using the real date");
    }
    now_rfc3339()[..10].to_string()
}

pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    #[test]
    fn dates() {
        assert!(super::is_date("2026-11-27"));
        assert!(!super::is_date("2026-1-27"));
        assert_eq!(super::today().len(), 10);
    }
}
