//! How a command prints its results on stdout: for a person, or as JSON for a program.
//! Logs go to stderr, so `--output json` stays machine-readable.

use crate::failure::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Human,
    Json,
}

/// Prints `value` as pretty JSON on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<(), Failure> {
    println!("{}", json_text(value)?);
    Ok(())
}

/// `value` as pretty JSON.
pub fn json_text(value: &impl serde::Serialize) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map_err(|e| Failure::Runtime(format!("cannot encode JSON: {e}")))
}

/// `n noun`, with the plural only for more than one (`1 request`, `2 requests`).
pub fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn plural_only_for_more_than_one() {
        assert_eq!(super::count(1, "request"), "1 request");
        assert_eq!(super::count(0, "request"), "0 requests");
        assert_eq!(super::count(26, "operation"), "26 operations");
    }
}
