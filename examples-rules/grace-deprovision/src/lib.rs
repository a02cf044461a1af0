//! `grace-deprovision`: disable a user only after they have been missing from LDAP for N
//! days (a contractor between contracts, an account moved by mistake), and never touch
//! protected users. Dates come from the host (`missing_since`, `today`), so the rule is
//! deterministic and needs no clock.
//!
//! ```toml
//! [[rules]]
//! module = "examples-rules/target/wasm32-wasip2/release/grace_deprovision.wasm"
//! sha256 = "..."
//! [rules.config]
//! grace_days = 14
//! protected_users = ["render-farm", "pipeline-bot"]
//! disabled_in_ldap = "immediately"   # or "grace": a disabled LDAP account waits too
//! ```

use ldap2ftrack_rules::prelude::*;

pub struct GraceDeprovision {
    grace_days: i64,
    protected: Vec<String>,
    disabled_waits: bool,
}

/// Days since 1970-01-01 for a `YYYY-MM-DD` date (proleptic Gregorian calendar).
pub fn days(date: &str) -> Result<i64, String> {
    let bad = || format!("`{date}` is not a YYYY-MM-DD date");
    let mut parts = date.trim().splitn(3, '-');
    let mut num = |len: usize| -> Result<i64, String> {
        let p = parts.next().ok_or_else(bad)?;
        if p.len() != len || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        p.parse::<i64>().map_err(|_| bad())
    };
    let (y, m, d) = (num(4)?, num(2)?, num(2)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1..=12).contains(&m) || d < 1 || d > month_days[(m - 1) as usize] {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Ok(era * 146_097 + doe - 719_468)
}

ldap2ftrack_rules::export_rules! {
    impl Rules for GraceDeprovision {
        fn metadata() -> Metadata {
            Metadata::new(
                "grace-deprovision",
                "1.0.0",
                "Disable users only after N days missing from LDAP; never protected users",
            )
            .key(ConfigKey::integer("grace_days").default_value("30")
                .describe("Days a user may be missing from LDAP before being disabled"))
            .key(ConfigKey::string_list("protected_users").default_value("[]")
                .describe("ftrack usernames never disabled by this rule (case-insensitive)"))
            .key(ConfigKey::string("disabled_in_ldap").default_value("\"immediately\"")
                .describe("A user disabled in LDAP: \"immediately\" disabled, or waits the \"grace\" period"))
        }

        fn configure(config: &Config) -> Result<Self, String> {
            let grace_days = config.integer("grace_days")?.unwrap_or(30);
            if !(0..=3650).contains(&grace_days) {
                return Err(format!("`grace_days` is {grace_days}; use 0 to 3650"));
            }
            let disabled_waits = match config.string("disabled_in_ldap")?.as_deref() {
                Some("immediately") | None => false,
                Some("grace") => true,
                Some(other) => {
                    return Err(format!(
                        "`disabled_in_ldap` is `{other}`; use \"immediately\" or \"grace\""
                    ))
                }
            };
            Ok(GraceDeprovision {
                grace_days,
                protected: config
                    .string_list("protected_users")?
                    .iter()
                    .map(|u| u.trim().to_lowercase())
                    .collect(),
                disabled_waits,
            })
        }

        fn reads(&self) -> EntryFields {
            // Only the departed user's fields: nothing of the LDAP entry.
            EntryFields::only(Vec::<String>::new())
        }

        fn deprovision(&self, user: &DepartedUser, proposal: Verdict) -> Result<Verdict, String> {
            if self.protected.contains(&user.username.trim().to_lowercase()) {
                return Ok(Verdict::Keep(format!("{} is protected by grace-deprovision", user.username)));
            }
            // Only ever delay a disable: a keep from an earlier stage stays a keep.
            if let Verdict::Keep(_) = proposal {
                return Ok(proposal);
            }
            if user.ldap_disabled && !self.disabled_waits {
                return Ok(proposal);
            }
            let today = days(&user.today).map_err(|e| format!("today: {e}"))?;
            let since = match &user.missing_since {
                Some(s) => days(s).map_err(|e| format!("missing_since: {e}"))?,
                None => today,
            };
            let missing = (today - since).max(0);
            if missing < self.grace_days {
                Ok(Verdict::Keep(format!(
                    "missing from LDAP for {missing} of {} grace days",
                    self.grace_days
                )))
            } else {
                Ok(Verdict::Disable(format!(
                    "missing from LDAP since {} ({missing} days, grace {} days)",
                    user.missing_since.as_deref().unwrap_or(&user.today),
                    self.grace_days
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(json: &str) -> GraceDeprovision {
        testing::configure(json).unwrap()
    }

    const DISABLE: fn() -> Verdict = || Verdict::Disable("left".into());

    #[test]
    fn dates() {
        assert_eq!(days("1970-01-01").unwrap(), 0);
        assert_eq!(days("2000-03-01").unwrap() - days("2000-02-28").unwrap(), 2);
        assert_eq!(days("2026-03-01").unwrap() - days("2026-02-28").unwrap(), 1);
        for bad in [
            "2026-02-30",
            "2026-13-01",
            "26-01-01",
            "2026-1-01",
            "yesterday",
            "",
        ] {
            assert!(days(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn waits_the_grace_period_then_disables() {
        let r = rules(r#"{"grace_days": 14}"#);
        let u = testing::departed("ada", Some("2026-02-20"), "2026-03-01");
        assert_eq!(
            r.deprovision(&u, DISABLE()).unwrap(),
            Verdict::Keep("missing from LDAP for 9 of 14 grace days".into())
        );
        let u = testing::departed("ada", Some("2026-02-15"), "2026-03-01");
        assert!(matches!(
            r.deprovision(&u, DISABLE()).unwrap(),
            Verdict::Disable(_)
        ));
        let u = testing::departed("ada", None, "2026-03-01");
        assert!(matches!(
            r.deprovision(&u, DISABLE()).unwrap(),
            Verdict::Keep(_)
        ));
        assert_eq!(
            testing::hooks_of::<GraceDeprovision>(),
            vec![Hook::Deprovision]
        );
    }

    #[test]
    fn protected_users_and_earlier_keeps_are_never_disabled() {
        let r = rules(r#"{"grace_days": 0, "protected_users": ["Render-Farm"]}"#);
        let u = testing::departed("render-farm", Some("2001-01-01"), "2026-03-01");
        assert!(matches!(
            r.deprovision(&u, DISABLE()).unwrap(),
            Verdict::Keep(_)
        ));
        let u = testing::departed("ada", Some("2001-01-01"), "2026-03-01");
        let keep = Verdict::Keep("action = keep".into());
        assert_eq!(r.deprovision(&u, keep.clone()).unwrap(), keep);
    }

    #[test]
    fn disabled_in_ldap() {
        let mut u = testing::departed("ada", None, "2026-03-01");
        u.ldap_disabled = true;
        assert_eq!(rules("{}").deprovision(&u, DISABLE()).unwrap(), DISABLE());
        let r = rules(r#"{"disabled_in_ldap": "grace"}"#);
        assert!(matches!(
            r.deprovision(&u, DISABLE()).unwrap(),
            Verdict::Keep(_)
        ));
    }

    #[test]
    fn bad_dates_and_config_are_errors() {
        let r = rules("{}");
        let u = testing::departed("bob", Some("yesterday"), "2026-03-01");
        let e = r.deprovision(&u, DISABLE()).unwrap_err();
        assert!(e.contains("missing_since: `yesterday`"), "{e}");
        assert!(testing::configure::<GraceDeprovision>(r#"{"grace_days": -1}"#).is_err());
        assert!(
            testing::configure::<GraceDeprovision>(r#"{"disabled_in_ldap": "never"}"#).is_err()
        );
    }
}
