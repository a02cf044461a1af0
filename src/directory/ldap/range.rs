//! Active Directory range retrieval: completing the attributes the server sent in slices.
//!
//! It exists because AD returns a large multi-valued attribute (a group's `member`, a user's
//! `memberOf`) only in part, as `member;range=0-1499`; the rest must be asked for with
//! base-scope searches (`member;range=1500-*`, …) until a slice ends in `*`. Taking the first
//! slice as the whole would silently drop members, so each slice must start where the last
//! one ended and hold exactly the values its bounds promise, or the read fails. The slices
//! are merged into the plain attribute.

use super::connect::Conn;
use super::decode::merge_attribute;
use crate::directory::{DirectoryError, Entry, ReadStats};
use ldap3::Scope;

impl Conn {
    /// Completes every `attr;range=lo-hi` attribute of `entry` (AD range retrieval) and
    /// replaces it with the plain attribute holding all values.
    pub(super) async fn complete_ranges(
        &mut self,
        entry: &mut Entry,
        stats: &mut ReadStats,
    ) -> Result<(), DirectoryError> {
        if !entry
            .attributes
            .iter()
            .any(|a| a.name.contains(';') && parse_range_option(&a.name).is_some())
        {
            return Ok(());
        }
        let mut kept = Vec::with_capacity(entry.attributes.len());
        let mut ranged = Vec::new();
        for attribute in std::mem::take(&mut entry.attributes) {
            match parse_range_option(&attribute.name) {
                Some(Ok((base, range))) => ranged.push((base, range, attribute.values)),
                Some(Err(())) => {
                    return Err(DirectoryError::Incomplete {
                        base_dn: entry.dn.clone(),
                        reason: format!(
                            "the server sent the attribute `{}` with a range option that cannot be read",
                            attribute.name
                        ),
                    })
                }
                None => kept.push(attribute),
            }
        }
        entry.attributes = kept;
        for (base, first, mut values) in ranged {
            if first.low != 0 {
                return Err(incomplete_range(
                    &entry.dn,
                    &base,
                    format!("the first slice starts at {} instead of 0", first.low),
                ));
            }
            let mut current = first;
            check_slice(&entry.dn, &base, &current, values.len() as u64)?;
            while let Some(high) = current.high {
                let next = high + 1;
                let request = format!("{base};range={next}-*");
                let mut found = Vec::new();
                self.search(
                    &entry.dn,
                    Scope::Base,
                    "(objectClass=*)",
                    std::slice::from_ref(&request),
                    Vec::new(),
                    &mut found,
                )
                .await
                .map_err(|e| match e {
                    DirectoryError::Timeout { .. } => e,
                    other => incomplete_range(
                        &entry.dn,
                        &base,
                        format!("fetching {request} failed: {other}"),
                    ),
                })?;
                stats.range_requests += 1;
                let slice = found
                    .into_iter()
                    .next()
                    .and_then(|e| {
                        e.attributes.into_iter().find_map(|a| {
                            match parse_range_option(&a.name) {
                                Some(Ok((b, r))) if b.eq_ignore_ascii_case(&base) => {
                                    Some((r, a.values))
                                }
                                _ => None,
                            }
                        })
                    })
                    .ok_or_else(|| {
                        incomplete_range(
                            &entry.dn,
                            &base,
                            format!(
                                "the server returned no {base};range= values when asked for {request} after {} values",
                                values.len()
                            ),
                        )
                    })?;
                let (range, more) = slice;
                if range.low != next {
                    return Err(incomplete_range(
                        &entry.dn,
                        &base,
                        format!(
                            "asked for values from {next} but the server sent a slice starting at {}",
                            range.low
                        ),
                    ));
                }
                check_slice(&entry.dn, &base, &range, more.len() as u64)?;
                values.extend(more);
                current = range;
            }
            merge_attribute(&mut entry.attributes, &base, values);
        }
        Ok(())
    }
}

/// A `range=low-high` attribute option; `high` is `None` for `*` (the last slice).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    low: u64,
    high: Option<u64>,
}

/// `member;range=0-1499` → `Some(Ok(("member", 0..=1499)))`; `None` without a range option.
fn parse_range_option(name: &str) -> Option<Result<(String, Range), ()>> {
    let mut parts = name.split(';');
    let base = parts.next().unwrap_or(name);
    let mut other = Vec::new();
    let mut range = None;
    for option in parts {
        match option.get(..6) {
            Some(prefix) if prefix.eq_ignore_ascii_case("range=") => range = Some(&option[6..]),
            _ => other.push(option),
        }
    }
    let spec = range?;
    let parsed = (|| {
        let (low, high) = spec.split_once('-').ok_or(())?;
        let low = low.parse::<u64>().map_err(|_| ())?;
        let high = if high == "*" {
            None
        } else {
            let high = high.parse::<u64>().map_err(|_| ())?;
            if high < low {
                return Err(());
            }
            Some(high)
        };
        Ok(Range { low, high })
    })();
    let mut full = base.to_string();
    for option in other {
        full.push(';');
        full.push_str(option);
    }
    Some(parsed.map(|r| (full, r)))
}

/// A bounded slice must hold exactly `high - low + 1` values; fewer means values were lost.
fn check_slice(dn: &str, base: &str, range: &Range, count: u64) -> Result<(), DirectoryError> {
    if let Some(high) = range.high {
        let expected = high - range.low + 1;
        if count != expected {
            return Err(incomplete_range(
                dn,
                base,
                format!(
                    "the slice {}-{high} holds {count} values instead of {expected}",
                    range.low
                ),
            ));
        }
    }
    Ok(())
}

fn incomplete_range(dn: &str, base: &str, why: String) -> DirectoryError {
    DirectoryError::Incomplete {
        base_dn: dn.to_string(),
        reason: format!("range retrieval of `{base}` is incomplete: {why}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_options_parse() {
        assert_eq!(
            parse_range_option("member;range=0-1499"),
            Some(Ok((
                "member".to_string(),
                Range {
                    low: 0,
                    high: Some(1499)
                }
            )))
        );
        assert_eq!(
            parse_range_option("Member;Range=1500-*"),
            Some(Ok((
                "Member".to_string(),
                Range {
                    low: 1500,
                    high: None
                }
            )))
        );
        assert_eq!(parse_range_option("member"), None);
        assert_eq!(parse_range_option("member;range=9-3"), Some(Err(())));
        assert_eq!(parse_range_option("member;range=x-*"), Some(Err(())));
    }

    #[test]
    fn short_bounded_slice_is_incomplete() {
        let range = Range {
            low: 0,
            high: Some(1499),
        };
        assert!(check_slice("cn=g", "member", &range, 1500).is_ok());
        let err = check_slice("cn=g", "member", &range, 1000).unwrap_err();
        assert!(matches!(err, DirectoryError::Incomplete { .. }), "{err}");
    }
}
