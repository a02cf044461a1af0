//! E-mail addresses: a deliberately simple validity check (what ftrack and mail servers
//! accept in practice, not the full RFC 5322 grammar) and a normal form.

/// True for `local@domain.tld` with a plausible local part and domain: no spaces, one `@`,
/// a dot in the domain, no empty labels, printable ASCII only.
pub fn is_valid(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > 64 || domain.len() > 253 || domain.contains('@') {
        return false;
    }
    let local_ok = local
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c))
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..");
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'-')
    };
    let domain_ok = match domain.rsplit_once('.') {
        Some((rest, tld)) => {
            tld.len() >= 2
                && tld.bytes().all(|c| c.is_ascii_alphabetic())
                && rest.split('.').all(label_ok)
        }
        None => false,
    };
    local_ok && domain_ok
}

/// Trimmed, domain lower-cased (the local part is kept as written: it may be case-sensitive).
pub fn normalize(address: &str) -> String {
    let a = address.trim();
    match a.rsplit_once('@') {
        Some((local, domain)) => {
            let mut out = String::with_capacity(a.len());
            out.push_str(local);
            out.push('@');
            out.extend(domain.chars().map(|c| c.to_ascii_lowercase()));
            out
        }
        None => a.to_string(),
    }
}

/// The domain part, lower-cased.
pub fn domain(address: &str) -> Option<String> {
    address
        .trim()
        .rsplit_once('@')
        .map(|(_, d)| d.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity() {
        for ok in ["a@b.co", "john.doe+vfx@studio.example.com", "x_y@a-b.org"] {
            assert!(is_valid(ok), "{ok}");
        }
        for bad in [
            "",
            "a",
            "a@b",
            "a@@b.com",
            "a b@c.com",
            "a@b..com",
            ".a@b.com",
            "a@-b.com",
            "a@b.c0m",
            "a@b.c",
        ] {
            assert!(!is_valid(bad), "{bad}");
        }
        assert_eq!(normalize("  John@Studio.COM "), "John@studio.com");
        assert_eq!(domain("a@B.org").as_deref(), Some("b.org"));
    }
}
