//! The commands: one file per subcommand, each a sink on the one pipeline of [`crate::run`]
//! (plan, apply, explain) or a tool around it (check, test, and the `rules` subcommands in
//! [`rules`]). [`crate::cli`] parses arguments and calls these; nothing below this layer
//! imports it.

pub mod apply;
pub mod check;
pub mod explain;
pub mod listen;
pub mod output;
pub mod plan;
pub mod rules;
pub mod test;
pub mod watch;

use crate::config::Config;
use crate::failure::Failure;
use crate::plan::Plan;
use output::OutputFormat;

/// Prints the plan on stdout, streamed through one buffer.
pub(crate) fn print_plan(plan: &Plan, output: OutputFormat) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        OutputFormat::Json => plan.write_json(&mut out),
        OutputFormat::Human => plan.write_human(&mut out),
    }
    .and_then(|()| std::io::Write::flush(&mut out))
    .map_err(|e| Failure::Runtime(format!("cannot print the plan: {e}")))
}

/// The pinned SHA-256 of each rule module, in order (what a saved plan is bound to).
pub(crate) fn module_pins(config: &Config) -> Vec<String> {
    config.rules.iter().map(|r| r.sha256.clone()).collect()
}
