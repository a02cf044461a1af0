//! `ldap2ftrack test DIR`: runs rule test cases (captured or written by hand) and shows a
//! diff for each that fails.

use super::output::{json_text, OutputFormat};
use crate::failure::Failure;
use crate::fixtures::{self, CaseOutcome};
use std::path::Path;

/// `ldap2ftrack test DIR`: every case, pass/fail with a diff, non-zero exit on any failure.
pub fn test(dir: &Path, update: bool, output: OutputFormat) -> Result<(), Failure> {
    let cases = fixtures::find_cases(dir)?;
    let mut failed = 0;
    let mut results = Vec::new();
    for case in &cases {
        let name = case.display().to_string();
        let (outcome, unpinned) = match fixtures::run_case(case, update) {
            Ok(run) => (Ok(run.outcome), run.unpinned),
            Err(e) => (Err(e), Vec::new()),
        };
        let (status, detail) = match outcome {
            Ok(CaseOutcome::Passed) => ("pass", String::new()),
            Ok(CaseOutcome::Updated) => ("updated", String::new()),
            Ok(CaseOutcome::Failed(diff)) => {
                failed += 1;
                ("FAIL", format!("    expected (-) vs actual (+):\n{diff}"))
            }
            Err(e) => {
                failed += 1;
                let message = match e {
                    Failure::Config(c) => c.to_string(),
                    Failure::Runtime(m) | Failure::Usage(m) | Failure::Guard(m) => m,
                    Failure::PendingChanges => String::new(),
                };
                let indented: String = message.lines().map(|l| format!("    {l}\n")).collect();
                ("ERROR", indented)
            }
        };
        if output == OutputFormat::Human {
            println!("{status:7} {name}");
            // Which build was tested, when the case trusts whatever the path holds.
            for m in &unpinned {
                println!(
                    "        unpinned module {} (sha256 {})",
                    m.module.display(),
                    m.sha256
                );
            }
            print!("{detail}");
        }
        results.push(serde_json::json!({
            "case": name, "status": status, "detail": detail, "unpinned_modules": unpinned,
        }));
    }
    match output {
        OutputFormat::Json => println!("{}", json_text(&results)?),
        OutputFormat::Human => println!("\n{} passed, {failed} failed", cases.len() - failed),
    }
    if failed > 0 {
        return Err(Failure::Runtime(format!(
            "{failed} of {} test cases failed",
            cases.len()
        )));
    }
    Ok(())
}
