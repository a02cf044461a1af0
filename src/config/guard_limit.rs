//! A guard threshold: a count (`25`), a share of the managed objects (`"10%"`), or both
//! (`"10% or 3"`: whichever allows more).
//!
//! Both, because each alone fails at one end: a percentage allows nothing in a small studio
//! (10% of 8 is 0, so one person leaving a team is refused every run until someone forces it),
//! and a count alone cannot tell a busy day at 2,000 people from a broken filter at 20.

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;
use std::fmt;
use std::str::FromStr;

/// Millionths in one percent: a share is kept in millionths of the total.
const PPM_PER_PERCENT: u32 = 10_000;
/// The most decimal places a percentage may have (millionths of the total).
const PERCENT_DECIMALS: usize = 4;

/// How to write a limit, for error messages.
const HOW: &str =
    "write a count (25), a percentage (\"10%\"), or both (\"10% or 3\": whichever allows more)";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardLimit {
    /// The share of the managed total, in millionths (10% = 100 000). Integers, so that
    /// "0.57%" of 10 000 allows 57, where floating point would say 56.
    share: Option<u32>,
    /// A number allowed whatever the total.
    count: Option<u64>,
}

/// What a limit allows out of a given total, and why: for refusals, `check` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    pub limit: GuardLimit,
    pub total: u64,
    /// What the percentage alone allows of `total`, when the limit has one.
    pub by_percent: Option<u64>,
    /// The count, when the limit has one.
    pub count: Option<u64>,
    /// The larger of the two: the most changes the guard lets through.
    pub allowed: u64,
}

/// Which part of a limit decides what it allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Basis {
    Percent,
    Count,
}

impl GuardLimit {
    /// At most `n`, whatever the total.
    pub const fn count(n: u64) -> GuardLimit {
        GuardLimit {
            share: None,
            count: Some(n),
        }
    }

    /// At most `percent`% of the total, rounded down (a whole percentage: the defaults).
    pub const fn percent(percent: u32) -> GuardLimit {
        assert!(percent <= 100);
        GuardLimit {
            share: Some(percent * PPM_PER_PERCENT),
            count: None,
        }
    }

    /// `"P% or N"`: whichever allows more.
    pub const fn percent_or(percent: u32, n: u64) -> GuardLimit {
        GuardLimit {
            count: Some(n),
            ..GuardLimit::percent(percent)
        }
    }

    /// The count part, if any.
    pub fn count_part(&self) -> Option<u64> {
        self.count
    }

    /// This limit with `n` as its count: what a percentage alone would be with a floor.
    pub fn with_count(self, n: u64) -> GuardLimit {
        GuardLimit {
            count: Some(n),
            ..self
        }
    }

    /// What this limit allows out of `total` managed objects, with the figures behind it.
    pub fn allowance(&self, total: u64) -> Allowance {
        // Rounded down: "10%" of 9 allows 0, never a rounded-up 1. u128: no overflow.
        let by_percent = self
            .share
            .map(|ppm| (u128::from(total) * u128::from(ppm) / 1_000_000) as u64);
        let allowed = by_percent.unwrap_or(0).max(self.count.unwrap_or(0));
        Allowance {
            limit: *self,
            total,
            by_percent,
            count: self.count,
            allowed,
        }
    }

    /// The largest number allowed out of `total` managed objects.
    pub fn allowed(&self, total: u64) -> u64 {
        self.allowance(total).allowed
    }

    /// True when `count` changes out of `total` stay within the limit.
    pub fn permits(&self, count: u64, total: u64) -> bool {
        count <= self.allowed(total)
    }

    /// The value as it is written in `sync.toml`: `25`, `"10%"`, `"10% or 3"`.
    pub fn toml(&self) -> String {
        match (self.share, self.count) {
            (None, Some(n)) => n.to_string(),
            _ => format!("\"{self}\""),
        }
    }

    fn percent_text(ppm: u32) -> String {
        let (whole, fraction) = (ppm / PPM_PER_PERCENT, ppm % PPM_PER_PERCENT);
        if fraction == 0 {
            format!("{whole}%")
        } else {
            let digits = format!("{fraction:0width$}", width = PERCENT_DECIMALS);
            format!("{whole}.{}%", digits.trim_end_matches('0'))
        }
    }
}

impl Allowance {
    /// The part that decides; a tie goes to the percentage (it is what scales).
    pub fn basis(&self) -> Basis {
        match (self.by_percent, self.count) {
            (Some(p), Some(n)) if n > p => Basis::Count,
            (Some(_), _) => Basis::Percent,
            (None, _) => Basis::Count,
        }
    }

    /// What it allows and why, ending with the number: "10% of 8 allows 0, so the count of
    /// 3 applies: allows 3"; "10% of 8 allows 0" for a percentage alone, "allows 3" for a count.
    pub fn explain(&self) -> String {
        let (share, total, allowed) = (self.limit.share, self.total, self.allowed);
        let Some(share) = share.map(GuardLimit::percent_text) else {
            return format!("allows {allowed}");
        };
        let p = self.by_percent.unwrap_or(0);
        match self.count {
            None => format!("{share} of {total} allows {p}"),
            Some(n) if n > p => {
                format!(
                    "{share} of {total} allows {p}, so the count of {n} applies: allows {allowed}"
                )
            }
            Some(n) if n == p => {
                format!("{share} of {total} allows {p}, as does the count: allows {allowed}")
            }
            Some(n) => format!(
                "{share} of {total} allows {p}, more than the count of {n}: allows {allowed}"
            ),
        }
    }
}

impl FromStr for GuardLimit {
    type Err = String;

    /// `25`, `"10%"`, `"10% or 3"` (either order; `or` in any case).
    fn from_str(text: &str) -> Result<GuardLimit, String> {
        let trimmed = text.trim();
        if trimmed.is_empty() {
            return Err(format!("is empty; {HOW}"));
        }
        // Split at the word `or`, wherever the spaces are ("10% or 3", "10 %  OR 3").
        let lower = trimmed.to_ascii_lowercase();
        let mut parts: Vec<Vec<&str>> = vec![Vec::new()];
        for word in lower.split_whitespace() {
            if word == "or" {
                parts.push(Vec::new());
            } else if let Some(part) = parts.last_mut() {
                part.push(word);
            }
        }
        let parts: Vec<String> = parts.iter().map(|words| words.join(" ")).collect();
        if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(format!(
                "\"{trimmed}\" is not one count, one percentage or one of each; {HOW}"
            ));
        }
        let mut limit = GuardLimit {
            share: None,
            count: None,
        };
        for part in &parts {
            if let Some(number) = part.strip_suffix('%') {
                if limit.share.is_some() {
                    return Err(format!(
                        "\"{trimmed}\" gives two percentages; give one percentage and one count, e.g. \"10% or 3\""
                    ));
                }
                limit.share = Some(parse_percent(number.trim(), trimmed)?);
            } else {
                if limit.count.is_some() {
                    return Err(format!(
                        "\"{trimmed}\" gives two counts; give one percentage and one count, e.g. \"10% or 3\""
                    ));
                }
                limit.count = Some(parse_count(part, trimmed)?);
            }
        }
        Ok(limit)
    }
}

/// "12.5" → 125 000 millionths, exactly; 0 to 100 with at most four decimal places.
fn parse_percent(number: &str, whole: &str) -> Result<u32, String> {
    let not_a_percentage = || format!("`{number}%` in \"{whole}\" is not a percentage; {HOW}");
    if number.starts_with('-') {
        return Err(format!(
            "\"{whole}\" has a negative percentage; write 0% to 100%, e.g. \"10%\" or \"10% or 3\""
        ));
    }
    let (int, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty()
        || !digits(int)
        || !digits(fraction)
        || (number.contains('.') && fraction.is_empty())
    {
        return Err(not_a_percentage());
    }
    if fraction.len() > PERCENT_DECIMALS {
        return Err(format!(
            "\"{whole}\" has more than {PERCENT_DECIMALS} decimal places in its percentage; write e.g. \"2.5%\""
        ));
    }
    let over = || {
        format!("\"{whole}\" is over 100%: a percentage is of the managed total, so write 0% to 100%, e.g. \"10%\" or \"10% or 3\"")
    };
    let int: u32 = int.parse().map_err(|_| over())?;
    if int > 100 {
        return Err(over());
    }
    let fraction: u32 = format!("{fraction:0<width$}", width = PERCENT_DECIMALS)
        .parse()
        .map_err(|_| not_a_percentage())?;
    let ppm = int * PPM_PER_PERCENT + fraction;
    if ppm > 100 * PPM_PER_PERCENT {
        return Err(over());
    }
    Ok(ppm)
}

fn parse_count(part: &str, whole: &str) -> Result<u64, String> {
    let negative = part
        .strip_prefix('-')
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if negative {
        return Err(format!("{part} is negative; {HOW}"));
    }
    part.parse::<u64>().map_err(|_| {
        if part == whole.to_ascii_lowercase() {
            format!("\"{whole}\" is neither a count nor a percentage; {HOW}")
        } else {
            format!("`{part}` in \"{whole}\" is neither a count nor a percentage; {HOW}")
        }
    })
}

/// `10% or 3`, `10%` or `3`: the percentage first, as documented.
impl fmt::Display for GuardLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.share, self.count) {
            (Some(ppm), Some(n)) => write!(f, "{} or {n}", GuardLimit::percent_text(ppm)),
            (Some(ppm), None) => f.write_str(&GuardLimit::percent_text(ppm)),
            (None, Some(n)) => write!(f, "{n}"),
            (None, None) => f.write_str("0"),
        }
    }
}

impl<'de> Deserialize<'de> for GuardLimit {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct LimitVisitor;
        impl Visitor<'_> for LimitVisitor {
            type Value = GuardLimit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a count like 25, a percentage like \"10%\", or both like \"10% or 3\"")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<GuardLimit, E> {
                u64::try_from(v)
                    .map(GuardLimit::count)
                    .map_err(|_| E::custom(format!("{v} is negative; {HOW}")))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<GuardLimit, E> {
                Ok(GuardLimit::count(v))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<GuardLimit, E> {
                Err(E::custom(format!(
                    "{v} is not a whole count; a percentage goes in quotes (\"{v}%\"); {HOW}"
                )))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<GuardLimit, E> {
                v.parse().map_err(E::custom)
            }
        }
        deserializer.deserialize_any(LimitVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<GuardLimit, String> {
        text.parse()
    }

    #[test]
    fn parses_counts_percentages_and_both() {
        assert_eq!(parse("25"), Ok(GuardLimit::count(25)));
        assert_eq!(parse("10%"), Ok(GuardLimit::percent(10)));
        assert_eq!(parse("10% or 3"), Ok(GuardLimit::percent_or(10, 3)));
        assert_eq!(parse(" 3  OR 10 % "), Ok(GuardLimit::percent_or(10, 3)));
        assert_eq!(parse("100%"), Ok(GuardLimit::percent(100)));
        assert_eq!(parse("0% or 0"), Ok(GuardLimit::percent_or(0, 0)));
        let fine = parse(" 2.5 % ").unwrap();
        assert_eq!(fine.to_string(), "2.5%");
        assert_eq!(parse("0.0001%").unwrap().to_string(), "0.0001%");
        assert_eq!(parse("12.50% or 7").unwrap().to_string(), "12.5% or 7");
    }

    #[test]
    fn refuses_what_is_not_a_limit_and_says_what_to_write() {
        for (bad, says) in [
            (
                "10% or x",
                "`x` in \"10% or x\" is neither a count nor a percentage",
            ),
            ("150%", "\"150%\" is over 100%"),
            ("100.5%", "is over 100%"),
            ("-3", "-3 is negative"),
            ("-3%", "negative percentage"),
            ("lots", "\"lots\" is neither a count nor a percentage"),
            ("10% or 20%", "two percentages"),
            ("3 or 5", "two counts"),
            ("10% or", "not one count, one percentage or one of each"),
            (
                "10% or 3 or 4",
                "not one count, one percentage or one of each",
            ),
            ("", "is empty"),
            ("2.12345%", "more than 4 decimal places"),
            ("1.%", "is not a percentage"),
            ("x%", "is not a percentage"),
            ("1e3%", "is not a percentage"),
        ] {
            let message = parse(bad).expect_err(bad);
            assert!(message.contains(says), "{bad}: {message}");
            if !message.contains("e.g.") {
                assert!(message.contains(HOW), "{bad} says what to write: {message}");
            }
        }
    }

    #[test]
    fn writes_back_as_it_reads() {
        for text in ["25", "10%", "10% or 3", "2.5% or 0", "0.57%"] {
            let limit = parse(text).unwrap();
            assert_eq!(limit.to_string(), text);
            let toml = limit.toml();
            let value: toml::Value = toml::from_str(&format!("v = {toml}")).unwrap();
            assert_eq!(value["v"].clone().try_into::<GuardLimit>().unwrap(), limit);
        }
        assert_eq!(GuardLimit::count(25).toml(), "25");
        assert_eq!(GuardLimit::percent_or(10, 3).toml(), "\"10% or 3\"");
    }

    #[test]
    fn a_percentage_rounds_down_exactly() {
        let ten = GuardLimit::percent(10);
        assert_eq!(ten.allowed(9), 0);
        assert_eq!(ten.allowed(100), 10);
        assert!(ten.permits(10, 100));
        assert!(!ten.permits(11, 100));
        // Floating point gives 10 000 × 0.57 / 100 = 56.99…; millionths give 57.
        assert_eq!(parse("0.57%").unwrap().allowed(10_000), 57);
        assert_eq!(GuardLimit::percent(100).allowed(u64::MAX), u64::MAX);
        assert!(GuardLimit::count(3).permits(3, 0));
        assert!(!GuardLimit::count(3).permits(4, 1_000_000));
    }

    /// The arithmetic at the sizes the issue names: the count is a floor under the
    /// percentage, and the percentage takes over once it allows more.
    #[test]
    fn percent_or_count_allows_whichever_is_more_at_every_size() {
        let limit = GuardLimit::percent_or(10, 3);
        let at = |total| limit.allowance(total);
        for (total, by_percent, allowed, basis) in [
            (0, 0, 3, Basis::Count),
            (8, 0, 3, Basis::Count),
            (20, 2, 3, Basis::Count),
            (30, 3, 3, Basis::Percent),
            (39, 3, 3, Basis::Percent),
            (40, 4, 4, Basis::Percent),
            (200, 20, 20, Basis::Percent),
            (2000, 200, 200, Basis::Percent),
        ] {
            let a = at(total);
            assert_eq!(a.by_percent, Some(by_percent), "at {total}");
            assert_eq!(a.allowed, allowed, "at {total}");
            assert_eq!(a.basis(), basis, "at {total}");
        }
        assert_eq!(
            at(8).explain(),
            "10% of 8 allows 0, so the count of 3 applies: allows 3"
        );
        assert_eq!(
            at(30).explain(),
            "10% of 30 allows 3, as does the count: allows 3"
        );
        assert_eq!(
            at(2000).explain(),
            "10% of 2000 allows 200, more than the count of 3: allows 200"
        );
        assert_eq!(
            GuardLimit::percent(10).allowance(8).explain(),
            "10% of 8 allows 0"
        );
        let fixed = GuardLimit::count(25).allowance(2000);
        assert_eq!((fixed.allowed, fixed.basis()), (25, Basis::Count));
        assert_eq!(fixed.explain(), "allows 25");
    }
}
