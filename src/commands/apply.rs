//! `ldap2ftrack apply`: plan, guard, and converge ftrack under the run lock, journaling
//! every batch that landed; with `--plan`, exactly a saved plan or nothing.

use super::output::{count, json_text, OutputFormat};
use super::{module_pins, print_plan};
use crate::config::Config;
use crate::failure::Failure;
use crate::plan::SavedPlan;
use crate::run::{self, metrics::RunRecord};
use std::path::PathBuf;

/// How `apply` runs.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Apply exactly this saved plan.
    pub plan: Option<PathBuf>,
    /// Apply even when a guard refuses.
    pub force: bool,
    /// The journal file, instead of `[run] journal_file`.
    pub journal: Option<PathBuf>,
}

/// Applies under the run lock and prints what was applied.
pub fn apply(config: &Config, args: &ApplyOptions, output: OutputFormat) -> Result<(), Failure> {
    let saved = match &args.plan {
        Some(path) => Some(SavedPlan::read(path).map_err(Failure::Usage)?),
        None => None,
    };
    run::locked(config, "apply", |record| {
        apply_locked(config, args, output, saved, record)
    })
}

fn apply_locked(
    config: &Config,
    args: &ApplyOptions,
    output: OutputFormat,
    saved: Option<SavedPlan>,
    record: &mut RunRecord,
) -> Result<(), Failure> {
    let rt = run::runtime()?;
    let mut pipeline = run::prepare(config)?;
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let inputs = rt.block_on(run::read_inputs(config, needed, false))?;
    run::record_timings(record, &inputs.timings);
    let planned = run::plan(config, &inputs, &mut pipeline)?;
    run::record_timings(record, &planned.timings);
    if let Some(why) = saved
        .as_ref()
        .and_then(|s| s.drift(&inputs.ftrack, &module_pins(config), &planned.plan))
    {
        return Err(Failure::Runtime(format!(
            "refusing to apply the saved plan: {why}; run `ldap2ftrack plan --out` again and review it"
        )));
    }
    let plan = saved.map(|s| s.plan).unwrap_or(planned.plan);
    record.plan(&plan, &config.guards, inputs.directory.users.len());
    run::guard(config, &plan, inputs.directory.users.len(), args.force)?;
    if plan.is_empty() {
        match output {
            OutputFormat::Json => println!(
                "{}",
                json_text(&serde_json::json!({"summary": plan.summary(), "applied": 0}))?
            ),
            OutputFormat::Human => println!("No changes: ftrack matches the directory."),
        }
        return Ok(());
    }
    let journal = Some(args.journal.as_deref().unwrap_or(&config.run.journal_file));
    let started = std::time::Instant::now();
    let report = rt.block_on(run::apply(config, &inputs, &plan, journal));
    record.phase("apply", started.elapsed());
    let report = report?;
    record.applied = report.applied;
    run::release_at_exit((inputs, pipeline));
    match output {
        OutputFormat::Json => println!(
            "{}",
            json_text(
                &serde_json::json!({"summary": plan.summary(), "applied": report.applied, "requests": report.requests})
            )?
        ),
        OutputFormat::Human => {
            print_plan(&plan, output)?;
            println!(
                "Applied {} in {}.",
                count(report.applied, "operation"),
                count(report.requests, "request")
            );
        }
    }
    Ok(())
}
