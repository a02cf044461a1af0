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
        tracing::warn!(
            "LDAP2FTRACK_TODAY={pinned:?} is not a date written YYYY-MM-DD; using the real date"
        );
    }
    now_rfc3339()[..10].to_string()
}

/// True for a calendar date written `YYYY-MM-DD`: a month 1–12 and a day that month has
/// (29 February in leap years only), from 1970 on, as a run's date is. humantime, which
/// writes [`now_rfc3339`], does the calendar.
pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    shape && humantime::parse_rfc3339(&format!("{text}T00:00:00Z")).is_ok()
}

#[cfg(test)]
mod tests {
    use super::is_date;

    #[test]
    fn dates_are_real_calendar_days() {
        for date in [
            "2026-11-27",
            "2026-01-31",
            "2026-04-30",
            "2026-12-31",
            "2024-02-29",
            "2000-02-29",
            "1970-01-01",
            "9999-12-31",
        ] {
            assert!(is_date(date), "{date}");
        }
        for not in [
            "2026-99-99",
            "2026-13-01",
            "2026-00-10",
            "2026-01-00",
            "2026-01-32",
            "2026-04-31",
            "2026-02-29",
            "2100-02-29",
            "1969-12-31",
            "2026-1-27",
            "2026-01-27 ",
            "2026/01/27",
            "+026-01-27",
            "2026-01-27T00:00:00Z",
            "",
        ] {
            assert!(!is_date(not), "{not}");
        }
    }

    #[test]
    fn today_is_a_date() {
        assert!(is_date(&super::today()));
    }
}
