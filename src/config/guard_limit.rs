//! A guard threshold: an absolute count (`25`) or a share of the managed objects (`"10%"`).

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum GuardLimit {
    /// At most this many.
    Count(u64),
    /// At most this percentage (0–100) of the managed total.
    Percent(f64),
}

impl GuardLimit {
    /// The largest number allowed out of `managed_total` objects.
    pub fn allowed(&self, managed_total: u64) -> u64 {
        match *self {
            GuardLimit::Count(n) => n,
            // Floor: "10%" of 9 users allows 0 disables, never a rounded-up 1.
            GuardLimit::Percent(p) => ((managed_total as f64) * p / 100.0).floor() as u64,
        }
    }

    /// True when `count` changes out of `managed_total` stay within the limit.
    pub fn permits(&self, count: u64, managed_total: u64) -> bool {
        count <= self.allowed(managed_total)
    }

    fn parse(text: &str) -> Result<GuardLimit, String> {
        let trimmed = text.trim();
        if let Some(number) = trimmed.strip_suffix('%') {
            let p: f64 = number.trim().parse().map_err(|_| {
                format!("`{text}` is not a percentage; write e.g. \"10%\" or a count like 25")
            })?;
            if !(0.0..=100.0).contains(&p) || p.is_nan() {
                return Err(format!("`{text}` is outside 0% to 100%"));
            }
            return Ok(GuardLimit::Percent(p));
        }
        trimmed.parse::<u64>().map(GuardLimit::Count).map_err(|_| {
            format!("`{text}` is neither a count (like 25) nor a percentage (like \"10%\")")
        })
    }
}

impl fmt::Display for GuardLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardLimit::Count(n) => write!(f, "{n}"),
            GuardLimit::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl<'de> Deserialize<'de> for GuardLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = GuardLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count like 25 or a percentage like \"10%\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GuardLimit, E> {
                u64::try_from(v)
                    .map(GuardLimit::Count)
                    .map_err(|_| E::custom(format!("{v} is negative; use 0 or more")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GuardLimit, E> {
                Ok(GuardLimit::Count(v))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GuardLimit, E> {
                GuardLimit::parse(v).map_err(E::custom)
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_counts_and_percentages() {
        assert_eq!(GuardLimit::parse("25"), Ok(GuardLimit::Count(25)));
        assert_eq!(GuardLimit::parse("10%"), Ok(GuardLimit::Percent(10.0)));
        assert_eq!(GuardLimit::parse(" 2.5 % "), Ok(GuardLimit::Percent(2.5)));
        assert!(GuardLimit::parse("150%").is_err());
        assert!(GuardLimit::parse("ten").is_err());
        assert!(GuardLimit::parse("-3").is_err());
    }

    #[test]
    fn percent_rounds_down() {
        let ten = GuardLimit::Percent(10.0);
        assert_eq!(ten.allowed(9), 0);
        assert_eq!(ten.allowed(100), 10);
        assert!(ten.permits(10, 100));
        assert!(!ten.permits(11, 100));
        assert!(GuardLimit::Count(3).permits(3, 0));
    }
}
