//! `ldap2ftrack plan`: the changes a run would make, printed (and optionally saved for
//! `apply --plan`, checked with `--check`, or captured as a test case with `--snapshot`).

use super::output::OutputFormat;
use super::{module_pins, print_plan};
use crate::config::Config;
use crate::failure::Failure;
use crate::plan::SavedPlan;
use crate::run::{self, metrics::RunRecord};
use std::path::PathBuf;

/// What `plan` was asked for besides printing the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Save the plan, bound to hashes of its inputs, for `apply --plan`.
    pub out: Option<PathBuf>,
    /// Exit 4 when changes are pending.
    pub check: bool,
    /// Also write the inputs that were read into this folder, as a test case.
    pub snapshot: Option<PathBuf>,
    /// Read the whole directory, whatever the sync state allows.
    pub full: bool,
}

/// Plans under the run lock and prints the plan.
pub fn plan(config: &Config, args: &PlanOptions, output: OutputFormat) -> Result<(), Failure> {
    run::locked(config, "plan", |record| {
        plan_locked(config, args, output, record)
    })
}

fn plan_locked(
    config: &Config,
    args: &PlanOptions,
    output: OutputFormat,
    record: &mut RunRecord,
) -> Result<(), Failure> {
    let rt = run::runtime()?;
    let mut pipeline = run::prepare(config)?;
    // A snapshot keeps what the run read, no more: the captured case replays with the same
    // rules, which need nothing else, and the user filter's attributes are among what is
    // read, so the file selects the same users the server did. It, and a saved plan (bound
    // to all of ftrack as read), come from a full read.
    let full = args.full || args.out.is_some();
    let inputs = rt.block_on(run::read_inputs_synced(
        config,
        &mut pipeline,
        args.snapshot.is_some(),
        full,
    ))?;
    run::record_timings(record, &inputs.timings);
    let today = crate::clock::today();
    let planned = run::plan_on(config, &inputs, &mut pipeline, today.clone())?;
    run::record_timings(record, &planned.timings);
    record.plan(&planned.plan, &config.guards, inputs.directory_users);
    if let (Some(dir), Some(entries)) = (&args.snapshot, &inputs.entries) {
        crate::fixtures::capture(dir, config, entries, &inputs.ftrack, &planned.plan, &today)?;
        eprintln!(
            "test case written to {}; run it with `ldap2ftrack test {}`",
            dir.display(),
            dir.display()
        );
    }
    print_plan(&planned.plan, output)?;
    if let Err(Failure::Guard(refusal)) =
        run::guard(config, &planned.plan, inputs.directory_users, false)
    {
        eprintln!("warning: `apply` would be {refusal}");
    }
    if let Some(out) = &args.out {
        SavedPlan::write(out, &inputs.ftrack, &module_pins(config), &planned.plan)
            .map_err(Failure::Runtime)?;
        eprintln!(
            "plan saved to {}; apply it with `ldap2ftrack apply --plan {}`",
            out.display(),
            out.display()
        );
    }
    let pending = !planned.plan.is_empty();
    run::release_at_exit((inputs, planned, pipeline));
    if args.check && pending {
        return Err(Failure::PendingChanges);
    }
    Ok(())
}
