//! The `plan`, `apply` and `explain` commands: the run pipeline with their sinks (printing,
//! saving, applying).

use crate::config::Config;
use crate::failure::Failure;
use crate::fixtures::{self, CaseOutcome};
use crate::lock::RunLock;
use crate::metrics::RunRecord;
use crate::output::{count, json_text, OutputFormat};
use crate::plan::{Plan, SavedPlan};
use crate::run;
use std::path::{Path, PathBuf};

/// What `plan` was asked for besides printing the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Save the plan, bound to hashes of its inputs, for `apply --plan`.
    pub out: Option<PathBuf>,
    /// Exit 4 when changes are pending.
    pub check: bool,
    /// Also write the inputs that were read into this folder, as a test case.
    pub snapshot: Option<PathBuf>,
}

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

/// Prints the plan on stdout, streamed through one buffer.
fn print_plan(plan: &Plan, output: OutputFormat) -> Result<(), Failure> {
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    match output {
        OutputFormat::Json => plan.write_json(&mut out),
        OutputFormat::Human => plan.write_human(&mut out),
    }
    .and_then(|()| std::io::Write::flush(&mut out))
    .map_err(|e| Failure::Runtime(format!("cannot print the plan: {e}")))
}

/// Hands a run's inputs and results to the process exit instead of freeing them: the
/// command returns straight to `main`, and the OS takes the memory back at once, where
/// freeing a 100,000-user run object by object took 0.2 s.
fn release_at_exit<T>(value: T) {
    std::mem::forget(value);
}

/// Runs `body` holding the run lock, then logs the outcome and writes the metrics textfile.
fn locked_run(
    config: &Config,
    command: &'static str,
    body: impl FnOnce(&mut RunRecord) -> Result<(), Failure>,
) -> Result<(), Failure> {
    let lock =
        RunLock::acquire(&config.run.lock_file).map_err(|e| Failure::Runtime(e.to_string()))?;
    let started = std::time::Instant::now();
    let mut record = RunRecord::new(command);
    let result = body(&mut record);
    record.phase("total", started.elapsed());
    let exit_code = result.as_ref().err().map_or(0, Failure::exit_code);
    let planned: usize = record.planned.iter().map(|(_, n)| n).sum();
    tracing::info!(
        command,
        exit_code,
        planned,
        applied = record.applied,
        seconds = started.elapsed().as_secs_f64(),
        "run finished"
    );
    if let Some(path) = &config.run.metrics_file {
        if let Err(e) = record.write(path, exit_code) {
            tracing::warn!("cannot write the metrics file {}: {e}", path.display());
        }
    }
    drop(lock);
    result
}

fn record_timings(record: &mut RunRecord, timings: &[(&'static str, std::time::Duration)]) {
    for (phase, elapsed) in timings {
        record.phase(phase, *elapsed);
    }
}

pub fn plan(config: &Config, args: &PlanOptions, output: OutputFormat) -> Result<(), Failure> {
    locked_run(config, "plan", |record| {
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
    // read, so the file selects the same users the server did.
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let inputs = rt.block_on(run::read_inputs(config, needed, args.snapshot.is_some()))?;
    record_timings(record, &inputs.timings);
    let today = crate::clock::today();
    let planned = run::plan_on(config, &inputs, &mut pipeline, today.clone())?;
    record_timings(record, &planned.timings);
    record.plan(&planned.plan, &config.guards, inputs.directory.users.len());
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
        run::guard(config, &planned.plan, inputs.directory.users.len(), false)
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
    release_at_exit((inputs, planned, pipeline));
    if args.check && pending {
        return Err(Failure::PendingChanges);
    }
    Ok(())
}

pub fn apply(config: &Config, args: &ApplyOptions, output: OutputFormat) -> Result<(), Failure> {
    let saved = match &args.plan {
        Some(path) => Some(SavedPlan::read(path).map_err(Failure::Usage)?),
        None => None,
    };
    locked_run(config, "apply", |record| {
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
    record_timings(record, &inputs.timings);
    let planned = run::plan(config, &inputs, &mut pipeline)?;
    record_timings(record, &planned.timings);
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
    release_at_exit((inputs, pipeline));
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

/// The pinned SHA-256 of each rule module, in order (what a saved plan is bound to).
fn module_pins(config: &Config) -> Vec<String> {
    config.rules.iter().map(|r| r.sha256.clone()).collect()
}

pub fn explain(config: &Config, username: &str, output: OutputFormat) -> Result<(), Failure> {
    let rt = run::runtime()?;
    let mut pipeline = run::prepare(config)?;
    // Reasons are worded from the attributes the rules read: nothing more is needed.
    let needed = pipeline.user_attributes(&config.ldap).needed;
    let inputs = rt.block_on(run::read_inputs(config, needed, false))?;
    let planned = run::plan(config, &inputs, &mut pipeline)?;
    let wanted = username.to_lowercase();
    let desired = planned
        .evaluation
        .users
        .iter()
        .find(|u| u.fields.username.to_lowercase() == wanted);
    let old_name = desired
        .and_then(|d| {
            let anchor = d.entry.anchor();
            inputs
                .ftrack
                .users
                .iter()
                .find(|u| u.metadata.get(crate::plan::diff::ANCHOR_KEY) == Some(&anchor))
        })
        .map(|u| u.username.to_lowercase());
    let operations: Vec<_> = planned
        .plan
        .operations
        .iter()
        .filter(|op| {
            let target = op.target.to_lowercase();
            target == wanted || Some(&target) == old_name.as_ref()
        })
        .collect();
    let skipped: Vec<_> = planned
        .plan
        .skipped
        .iter()
        .filter(|s| s.dn.to_lowercase().contains(&wanted))
        .collect();
    let reasons = desired.map(|d| pipeline.reasons(&inputs.directory, d).all());
    if desired.is_none() && operations.is_empty() && skipped.is_empty() {
        return Err(Failure::Runtime(format!(
            "`{}` is neither an LDAP user the rules map to ftrack nor the target of any planned change",
            username
        )));
    }
    match output {
        OutputFormat::Json => {
            let value = serde_json::json!({
                "username": username,
                "ldap_dn": desired.map(|d| d.entry.dn.clone()),
                "reasons": reasons,
                "operations": operations,
                "skipped": skipped,
            });
            println!("{}", json_text(&value)?);
        }
        OutputFormat::Human => {
            if let Some(d) = desired {
                println!("{} comes from {}", d.fields.username, d.entry.dn);
                for (what, why) in reasons.iter().flatten() {
                    println!("  {what}: {why}");
                }
            }
            if operations.is_empty() {
                println!("No changes planned for {}.", username);
            }
            for op in operations {
                println!("{}", op.summary());
                println!("    because {}", op.reason);
            }
            for s in skipped {
                println!("! skipped {}: {}", s.dn, s.reason);
            }
        }
    }
    Ok(())
}

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

/// `rules publish MODULE.wasm oci://HOST/NAMESPACE/NAME:TAG`: checks that the file is a rule
/// module this ldap2ftrack can load, pushes it in the Wasm OCI artefact layout and prints
/// the `[[rules]]` lines that pin it (by tag and by manifest digest).
pub fn publish(module: &Path, reference: &str, output: OutputFormat) -> Result<(), Failure> {
    use crate::config::ModuleSource;
    let target = match crate::config::module_ref::parse(reference) {
        Ok(ModuleSource::Oci(r)) if r.tag.is_some() && r.digest.is_none() => r,
        Ok(ModuleSource::Oci(_)) => {
            return Err(Failure::Usage(format!(
                "`{reference}`: publish to a tag (oci://HOST/NAMESPACE/NAME:TAG); the digest is \
                 the registry's to give and is printed afterwards"
            )))
        }
        Ok(_) => {
            return Err(Failure::Usage(format!(
                "`{reference}` is not an OCI reference; publish to \
                 oci://HOST[:PORT]/NAMESPACE/NAME:TAG"
            )))
        }
        Err(m) => return Err(Failure::Usage(m)),
    };
    // Only a module that loads here is published: metadata, ABI and imports checked.
    let info = crate::rules::wasm::inspect(module).map_err(|e| match e {
        crate::rules::wasm::RuleLoadError::Runtime { message } => Failure::Runtime(message),
        unusable => Failure::Usage(format!(
            "{} cannot be published: {unusable}",
            module.display()
        )),
    })?;
    let bytes = std::fs::read(module)
        .map_err(|e| Failure::Runtime(format!("cannot read {}: {e}", module.display())))?;
    if crate::rules::wasm::sha256_hex(&bytes) != info.sha256 {
        return Err(Failure::Runtime(format!(
            "{} changed while it was being published; try again",
            module.display()
        )));
    }
    let annotations = [
        ("org.opencontainers.image.title", info.name.clone()),
        ("org.opencontainers.image.version", info.version.clone()),
        (
            "org.opencontainers.image.description",
            info.description.clone(),
        ),
        ("dev.ldap2ftrack.rules.abi", info.abi_version.clone()),
    ]
    .into_iter()
    .filter(|(_, v)| !v.is_empty())
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let env = |k: &str| std::env::var(k).ok();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))?;
    let published = runtime
        .block_on(crate::rules::registry::publish(
            bytes,
            &target,
            annotations,
            &env,
        ))
        .map_err(Failure::Runtime)?;
    match output {
        OutputFormat::Json => println!("{}", json_text(&published)?),
        OutputFormat::Human => {
            println!(
                "published {} {} ({} bytes) to {}",
                info.name, info.version, published.size_bytes, published.reference
            );
            println!("           {}", published.by_digest);
            println!();
            println!("# sync.toml of a studio using it (the digest form cannot be moved):");
            println!("[[rules]]");
            println!("module = \"{}\"", published.by_digest);
            println!("sha256 = \"{}\"", published.sha256);
        }
    }
    Ok(())
}
