//! `ldap2ftrack apply`: plan, guard, and converge ftrack under the run lock, journaling
//! every batch that landed; with `--plan`, exactly a saved plan or nothing.

use super::output::{count, json_text, OutputFormat};
use super::{module_pins, print_plan};
use crate::config::Config;
use crate::config::FtrackServer;
use crate::failure::Failure;
use crate::ftrack::hub::HubError;
use crate::ftrack::{Connection, Session};
use crate::plan::{Plan, SavedPlan};
use crate::run::events::{self, SyncSummary};
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
    /// Apply only when a fresh plan has this binding (`plan::saved::binding`): what an
    /// administrator confirmed from ftrack's Actions menu.
    pub bound_to: Option<String>,
    /// Read the whole directory, whatever the sync state allows.
    pub full: bool,
}

/// What an apply got through: operations ftrack confirmed and requests sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Applied {
    pub operations: usize,
    pub requests: usize,
}

/// Applies under the run lock and prints what was applied.
pub fn apply(config: &Config, args: &ApplyOptions, output: OutputFormat) -> Result<(), Failure> {
    apply_counted(config, args, output).map(|_| ())
}

/// [`apply`], returning what it got through.
pub fn apply_counted(
    config: &Config,
    args: &ApplyOptions,
    output: OutputFormat,
) -> Result<Applied, Failure> {
    let saved = match &args.plan {
        Some(path) => Some(SavedPlan::read(path).map_err(Failure::Usage)?),
        None => None,
    };
    let mut applied = Applied::default();
    run::locked(config, "apply", |record| {
        apply_locked(config, args, output, saved, record, &mut applied)
    })?;
    Ok(applied)
}

/// What an apply got to, for the event it publishes however it ends.
#[derive(Default)]
struct Reached {
    inputs: Option<run::Inputs>,
    plan: Option<Plan>,
    landed: usize,
    requests: usize,
}

fn apply_locked(
    config: &Config,
    args: &ApplyOptions,
    output: OutputFormat,
    saved: Option<SavedPlan>,
    record: &mut RunRecord,
    applied: &mut Applied,
) -> Result<(), Failure> {
    let rt = run::runtime()?;
    let started = std::time::Instant::now();
    let mut reached = Reached::default();
    let result = apply_steps(config, args, output, saved, record, &rt, &mut reached);
    if config.events.publish {
        let exit_code = result.as_ref().err().map_or(0, Failure::exit_code);
        let summary = SyncSummary::new(
            reached.plan.as_ref(),
            reached.landed,
            reached.requests,
            started.elapsed().as_secs_f64(),
            exit_code,
            result.as_ref().err().map(ToString::to_string),
        );
        let session = reached.inputs.as_ref().map(|i| &i.connection.session);
        record.event_published = rt.block_on(announce(config, session, &summary));
    }
    *applied = Applied {
        operations: reached.landed,
        requests: reached.requests,
    };
    run::release_at_exit(reached);
    result
}

/// Publishes the run's summary on the hub of `session` (or, when the run never reached
/// ftrack, of a session opened for it); whether it arrived, `None` when there was no hub to
/// tell (a server without one). Never fails the run.
async fn announce(
    config: &Config,
    session: Option<&Session>,
    summary: &SyncSummary,
) -> Option<bool> {
    let opened;
    let session = match session {
        Some(session) => session,
        // A bundled emulator that was never started has no hub to hear it.
        None if matches!(config.ftrack.server_url, Some(FtrackServer::Url(_))) => {
            match Connection::open(&config.ftrack, &|k| std::env::var(k).ok()).await {
                Ok(connection) => {
                    opened = connection;
                    &opened.session
                }
                Err(e) => {
                    tracing::warn!("the sync event was not published: {e}");
                    return Some(false);
                }
            }
        }
        None => return None,
    };
    match events::publish(session, summary).await {
        Ok(()) => {
            tracing::info!(
                topic = summary.topic(),
                "sync event published to the ftrack event hub"
            );
            Some(true)
        }
        // `[events] publish` defaults to true for servers that have a hub; one without is
        // not an alarm on every run.
        Err(HubError::NoHub(why)) => {
            tracing::info!("no sync event: {why}");
            None
        }
        Err(e) => {
            tracing::warn!("the sync event was not published to the ftrack event hub: {e}");
            Some(false)
        }
    }
}

fn apply_steps(
    config: &Config,
    args: &ApplyOptions,
    output: OutputFormat,
    saved: Option<SavedPlan>,
    record: &mut RunRecord,
    rt: &tokio::runtime::Runtime,
    reached: &mut Reached,
) -> Result<(), Failure> {
    let mut pipeline = run::prepare(config)?;
    let inputs = reached.inputs.insert(rt.block_on(run::read_inputs_synced(
        config,
        &mut pipeline,
        false,
        // A saved or confirmed plan is bound to all of ftrack as read.
        args.full || saved.is_some() || args.bound_to.is_some(),
    ))?);
    run::record_timings(record, &inputs.timings);
    let planned = run::plan(config, inputs, &mut pipeline)?;
    run::record_timings(record, &planned.timings);
    if let Some(why) = saved
        .as_ref()
        .and_then(|s| s.drift(&inputs.ftrack, &module_pins(config), &planned.plan))
    {
        return Err(Failure::Runtime(format!(
            "refusing to apply the saved plan: {why}; run `ldap2ftrack plan --out` again and review it"
        )));
    }
    if let Some(expected) = &args.bound_to {
        let now = crate::plan::saved::binding(&inputs.ftrack, &module_pins(config), &planned.plan);
        if &now != expected {
            return Err(Failure::Runtime(
                "refusing to apply: the directory, ftrack or the rule modules changed since the \
                 plan was shown for confirmation; preview it again"
                    .to_string(),
            ));
        }
    }
    let plan = reached
        .plan
        .insert(saved.map(|s| s.plan).unwrap_or(planned.plan));
    record.plan(plan, &config.guards, inputs.directory_users);
    run::guard(config, plan, inputs.directory_users, args.force)?;
    if plan.is_empty() {
        match output {
            OutputFormat::Json => println!(
                "{}",
                json_text(&serde_json::json!({"summary": plan.summary(), "applied": 0}))?
            ),
            OutputFormat::Human => println!("No changes: ftrack matches the directory."),
        }
        run::keep_sync_state(config, inputs);
        return Ok(());
    }
    let journal = Some(args.journal.as_deref().unwrap_or(&config.run.journal_file));
    let started = std::time::Instant::now();
    let applied = rt.block_on(run::apply(config, inputs, plan, journal));
    record.phase("apply", started.elapsed());
    let report = match applied {
        Ok(report) => report,
        Err((failure, landed)) => {
            reached.landed = landed;
            return Err(failure);
        }
    };
    reached.landed = report.applied;
    reached.requests = report.requests;
    record.applied = report.applied;
    run::keep_sync_state(config, inputs);
    run::release_at_exit(pipeline);
    match output {
        OutputFormat::Json => println!(
            "{}",
            json_text(
                &serde_json::json!({"summary": plan.summary(), "applied": report.applied, "requests": report.requests})
            )?
        ),
        OutputFormat::Human => {
            print_plan(plan, output)?;
            println!(
                "Applied {} in {}.",
                count(report.applied, "operation"),
                count(report.requests, "request")
            );
        }
    }
    Ok(())
}
