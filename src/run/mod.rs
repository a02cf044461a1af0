//! One sync run, stage by stage: read both sides (concurrently), evaluate the rules, plan,
//! guard, and apply. `plan`, `apply` and `explain` are this same pipeline with different
//! sinks; this module only wires the stages together and maps their failures to exit codes.

pub mod events;
pub mod incremental;
pub mod lock;
mod locked;
pub mod metrics;

pub use locked::{locked, record_timings, release_at_exit, serve_many_runs};

use crate::apply;
use crate::config::Config;
use crate::directory::{self, DirectorySnapshot};
use crate::failure::Failure;
use crate::ftrack::{Connection, FtrackSnapshot, OpenError};
use crate::plan::{diff, guard, Plan, PlanSettings};
use crate::progress;
use crate::rules::budget::RunBudget;
use crate::rules::builtin::BuiltinStage;
use crate::rules::pipeline::{Evaluation, Pipeline};
use crate::rules::wasm::WasmStage;
use crate::rules::Stage;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// Everything read at the start of a run.
pub struct Inputs {
    pub directory: DirectorySnapshot,
    /// The raw entries, kept only when asked for (`plan --snapshot`).
    pub entries: Option<crate::directory::EntrySet>,
    pub ftrack: FtrackSnapshot,
    /// ftrack's large index, when it was built during the reads (a full read).
    pub ftrack_positions: Option<diff::FtrackPositions>,
    pub connection: Connection,
    /// How long each read took (they overlap).
    pub timings: Vec<(&'static str, std::time::Duration)>,
    /// Users in the directory (all of them, also when an incremental run plans for few).
    pub directory_users: usize,
    /// The directory's sync state to keep once an apply of this run's plan succeeded.
    pub next_sync_state: Option<crate::directory::sync_state::SyncState>,
}

/// The result of planning.
pub struct Planned {
    pub plan: Plan,
    pub evaluation: Evaluation,
    pub timings: Vec<(&'static str, std::time::Duration)>,
}

pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Runtime(format!("cannot start the async runtime: {e}")))
}

/// Everything a run can check before it contacts LDAP or ftrack: the rule modules (a
/// referenced one fetched into the module cache unless its pin is cached already; file, pin,
/// ABI, bounds, configuration), then [`preflight`]. Returns the rule pipeline, ready to run.
pub fn prepare(config: &Config) -> Result<Pipeline, Failure> {
    crate::rules::fetch::ensure_all(config).map_err(|e| Failure::rule_load(&config.file, e))?;
    let pipeline = pipeline(config)?;
    preflight(config)?;
    Ok(pipeline)
}

/// The servers' local settings: the directory's (LDIF file, bind password, CA file) and
/// ftrack's (server, API user, API key), each checked without the network.
pub fn preflight(config: &Config) -> Result<(), Failure> {
    let env = |name: &str| std::env::var(name).ok();
    directory::check_local(&config.ldap, &env).map_err(|e| Failure::Runtime(e.to_string()))?;
    let ftrack = &config.ftrack;
    ftrack.require_api_user().map_err(Failure::Usage)?;
    if let crate::config::FtrackServer::Url(_) = ftrack.require_server().map_err(Failure::Usage)? {
        ftrack
            .api_key
            .read("ftrack API key", &env)
            .map_err(|e| Failure::Usage(e.to_string()))?;
    }
    Ok(())
}

/// Reads the directory and ftrack at the same time, always everything (explain, check,
/// test cases, previews). Either failing fails the run: a partial read never reaches the
/// planner. `user_attributes` is what the rules need of each user
/// ([`Pipeline::user_attributes`]; `None`: everything): the rest is never requested.
pub async fn read_inputs(
    config: &Config,
    user_attributes: Option<Vec<String>>,
    keep_entries: bool,
) -> Result<Inputs, Failure> {
    let env = |name: &str| std::env::var(name).ok();
    let entries = async {
        directory::read_entries_with_env(&config.ldap, user_attributes, &env)
            .await
            .map(|e| (e, None))
            .map_err(|e| Failure::Runtime(e.to_string()))
    };
    read_both(config, entries, keep_entries).await
}

/// [`read_inputs`] for `plan` and `apply`: incremental when the directory's sync state
/// allows it ([`incremental`]), full otherwise or with `full`.
pub async fn read_inputs_synced(
    config: &Config,
    pipeline: &mut Pipeline,
    keep_entries: bool,
    full: bool,
) -> Result<Inputs, Failure> {
    use incremental::Decision;
    let user_attributes = pipeline.user_attributes(&config.ldap).needed;
    let reads_member_of = pipeline.reads_member_of(&config.ldap);
    let decision = incremental::decide(
        config,
        &user_attributes,
        reads_member_of,
        full || keep_entries,
    );
    let (why, next_fingerprint) = match decision {
        Decision::Full {
            why,
            next_fingerprint,
        } => (why, next_fingerprint),
        Decision::Incremental(state) => {
            let fingerprint = state.fingerprint.clone();
            match read_changes(config, pipeline, &user_attributes, *state).await? {
                Ok(inputs) => return Ok(inputs),
                Err(why) => (
                    format!("{why}; the stored sync state is not used"),
                    Some(fingerprint),
                ),
            }
        }
    };
    read_full(config, user_attributes, keep_entries, why, next_fingerprint).await
}

/// An incremental run's inputs: what changed in the directory since `state`, and ftrack for
/// the users it touches; `Ok(Err(why))`: the state cannot be used, read everything.
async fn read_changes(
    config: &Config,
    pipeline: &mut Pipeline,
    user_attributes: &Option<Vec<String>>,
    mut state: crate::directory::sync_state::SyncState,
) -> Result<Result<Inputs, String>, Failure> {
    use incremental::DirectoryRead;
    // The directory first: when nothing changed, ftrack need not be read at all.
    let phase = progress::start_counting(progress::LDAP_READ, "entries");
    let started = std::time::Instant::now();
    let refreshes = incremental::refresh_from(config, user_attributes, &state).await;
    drop(phase);
    let refreshes = match refreshes {
        Ok(refreshes) => refreshes,
        Err(e) => return Ok(Err(stale_why(e)?)),
    };
    if crate::directory::sync_state::says_nothing(&refreshes) {
        tracing::info!("incremental read: nothing changed in the directory");
        state.advance(&refreshes);
        let connection = open_ftrack(config).await?;
        return Ok(Ok(unchanged_inputs(state, connection, started.elapsed())));
    }
    // Something changed: ftrack's users, groups, roles and projects are read while
    // the stored entries are brought forward; memberships and grants once it is
    // known whose are needed.
    let state_file = config.sync.state_file.clone();
    let forward = tokio::task::spawn_blocking(move || {
        incremental::bring_forward(&state_file, state, refreshes)
    });
    let ftrack_started = std::time::Instant::now();
    let people = async {
        let connection = open_ftrack(config).await?;
        let people = FtrackSnapshot::read_people(&connection.session)
            .await
            .map_err(|e| Failure::Runtime(format!("reading ftrack failed: {e}")))?;
        Ok::<_, Failure>((connection, people))
    };
    let (forward, ftrack) = tokio::join!(forward, people);
    let ldap_time = started.elapsed();
    let forward =
        forward.map_err(|e| Failure::Runtime(format!("reading the sync state failed: {e}")))?;
    match forward {
        Ok(DirectoryRead::Unchanged { next, .. }) => {
            let (connection, _) = ftrack?;
            Ok(Ok(unchanged_inputs(next, connection, ldap_time)))
        }
        Ok(DirectoryRead::Changed {
            directory,
            scope,
            next,
        }) => {
            let (connection, people) = ftrack?;
            tracing::info!(
                touched = scope.touched.len(),
                departed = scope.departed.len(),
                "incremental read: planning for the users the changes touch"
            );
            let directory_users = directory.users.len();
            let narrowed = tokio::task::block_in_place(|| {
                incremental::narrow(&directory, &people, &scope, pipeline)
            })?;
            let (directory, mut ftrack, only_theirs) = match narrowed {
                Some((narrowed, ftrack)) => (narrowed, ftrack, true),
                None => (directory, people, false),
            };
            ftrack
                .read_links(&connection.session, only_theirs)
                .await
                .map_err(|e| Failure::Runtime(format!("reading ftrack failed: {e}")))?;
            Ok(Ok(Inputs {
                directory_users,
                directory,
                entries: None,
                ftrack,
                ftrack_positions: None,
                connection,
                timings: vec![
                    ("ldap_read", ldap_time),
                    ("ftrack_read", ftrack_started.elapsed()),
                ],
                next_sync_state: Some(next),
            }))
        }
        Err(e) => Ok(Err(stale_why(e)?)),
    }
}

/// Why a refused sync state is not used, or the failure that ends the run.
fn stale_why(e: incremental::RefreshError) -> Result<String, Failure> {
    match e {
        incremental::RefreshError::Stale(why) => Ok(why),
        incremental::RefreshError::Failed(e) => Err(Failure::Runtime(e.to_string())),
    }
}

/// Both sides, the directory read whole ([`incremental::read_full`]) for the reason `why`.
async fn read_full(
    config: &Config,
    user_attributes: Option<Vec<String>>,
    keep_entries: bool,
    why: String,
    next_fingerprint: Option<String>,
) -> Result<Inputs, Failure> {
    let entries = incremental::read_full(config, user_attributes, &why, next_fingerprint);
    read_both(config, entries, keep_entries).await
}

/// The inputs of a run in which the directory did not change: nothing to plan for.
fn unchanged_inputs(
    next: crate::directory::sync_state::SyncState,
    connection: Connection,
    ldap_time: std::time::Duration,
) -> Inputs {
    Inputs {
        directory: DirectorySnapshot::default(),
        entries: None,
        ftrack: FtrackSnapshot::default(),
        ftrack_positions: None,
        connection,
        timings: vec![("ldap_read", ldap_time)],
        directory_users: next.user_count,
        next_sync_state: Some(next),
    }
}

async fn open_ftrack(config: &Config) -> Result<Connection, Failure> {
    let env = |name: &str| std::env::var(name).ok();
    Connection::open(&config.ftrack, &env)
        .await
        .map_err(|e| match e {
            OpenError::Config(m) => Failure::Usage(m),
            other => Failure::Runtime(other.to_string()),
        })
}

async fn read_ftrack(config: &Config) -> Result<(Connection, FtrackSnapshot), Failure> {
    let phase = progress::start_counting(progress::FTRACK_READ, "rows");
    let connection = open_ftrack(config).await?;
    let snapshot = FtrackSnapshot::read(&connection.session)
        .await
        .map_err(|e| Failure::Runtime(format!("reading ftrack failed: {e}")))?;
    drop(phase);
    Ok((connection, snapshot))
}

/// Reads ftrack while `entries` reads the directory, then assembles the directory.
async fn read_both(
    config: &Config,
    entries: impl std::future::Future<
        Output = Result<
            (
                crate::directory::EntrySet,
                Option<crate::directory::sync_state::SyncState>,
            ),
            Failure,
        >,
    >,
    keep_entries: bool,
) -> Result<Inputs, Failure> {
    let ftrack = async {
        let started = std::time::Instant::now();
        let (connection, snapshot) = read_ftrack(config).await?;
        let ftrack_time = started.elapsed();
        // ftrack's read usually ends first: its index is built while the directory is still
        // being read, on a blocking thread so that read keeps being driven meanwhile.
        let (snapshot, positions) = tokio::task::spawn_blocking(move || {
            let positions = diff::FtrackPositions::new(&snapshot);
            (snapshot, positions)
        })
        .await
        .map_err(|e| Failure::Runtime(format!("indexing ftrack's state failed: {e}")))?;
        Ok::<_, Failure>((connection, snapshot, positions, ftrack_time))
    };
    let directory = async {
        let phase = progress::start_counting(progress::LDAP_READ, "entries");
        let started = std::time::Instant::now();
        let read = entries.await;
        let ldap_time = started.elapsed();
        drop(phase);
        let (entries, next) = read?;
        let kept = keep_entries.then(|| entries.clone());
        // Assembled while the ftrack read may still be running; on a blocking thread so the
        // ftrack read's I/O keeps being driven meanwhile.
        let started = std::time::Instant::now();
        let assembled = tokio::task::spawn_blocking(move || {
            let _phase = progress::start(progress::ASSEMBLE, None);
            directory::snapshot::assemble(entries)
        })
        .await
        .map_err(|e| Failure::Runtime(format!("assembling the directory failed: {e}")))?
        .map_err(|e| Failure::Runtime(e.to_string()))?;
        Ok::<_, Failure>((assembled, kept, next, ldap_time, started.elapsed()))
    };
    let (directory, ftrack) = tokio::join!(directory, ftrack);
    let (directory, kept, next, ldap_time, assemble_time) = directory?;
    let (connection, ftrack, positions, ftrack_time) = ftrack?;
    tracing::info!(
        users = directory.users.len(),
        groups = directory.groups.len(),
        memberships = directory.memberships(),
        ftrack_users = ftrack.users.len(),
        "read both sides"
    );
    Ok(Inputs {
        directory_users: directory.users.len(),
        directory,
        entries: kept,
        ftrack,
        ftrack_positions: Some(positions),
        connection,
        timings: vec![
            ("ldap_read", ldap_time),
            ("assemble", assemble_time),
            ("ftrack_read", ftrack_time),
        ],
        next_sync_state: next,
    })
}

/// The rule stages: built-in mappings first, then each configured module in order.
pub fn pipeline(config: &Config) -> Result<Pipeline, Failure> {
    // One time budget per module, whichever thread runs it.
    let budgets: Vec<Arc<RunBudget>> = config
        .rules
        .iter()
        .map(|r| Arc::new(RunBudget::new(Duration::from_secs(r.max_run_seconds))))
        .collect();
    let first = stages(config, &budgets)?;
    // A second worker thread gets its own instance of every stage, loaded the same way.
    let owned = config.clone();
    let factory = move || stages(&owned, &budgets).map_err(|e| e.to_string());
    Ok(Pipeline::new(first).with_workers(Box::new(factory)))
}

fn stages(config: &Config, budgets: &[Arc<RunBudget>]) -> Result<Vec<Box<dyn Stage>>, Failure> {
    let mut stages: Vec<Box<dyn Stage>> = vec![Box::new(BuiltinStage::new(
        &config.mappings,
        &config.group_mappings,
    ))];
    for (index, settings) in config.rules.iter().enumerate() {
        let stage =
            WasmStage::load(settings, index).map_err(|e| Failure::rule_load(&config.file, e))?;
        let stage = match budgets.get(index) {
            Some(budget) => stage.with_budget(budget.clone()),
            None => stage,
        };
        stages.push(Box::new(stage));
    }
    Ok(stages)
}

/// Evaluates the rules and diffs against ftrack, as of today.
pub fn plan(config: &Config, inputs: &Inputs, pipeline: &mut Pipeline) -> Result<Planned, Failure> {
    plan_on(config, inputs, pipeline, crate::clock::today())
}

/// [`plan`] as of a given date (`YYYY-MM-DD`).
pub fn plan_on(
    config: &Config,
    inputs: &Inputs,
    pipeline: &mut Pipeline,
    today: String,
) -> Result<Planned, Failure> {
    let started = std::time::Instant::now();
    // An incremental run's inputs are already narrowed to the users it plans for.
    let evaluation = pipeline
        .evaluate(&inputs.directory)
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    for s in &evaluation.skipped {
        tracing::warn!(dn = %s.dn, "skipped: {}", s.reason);
    }
    let api_user = inputs.connection.session.api_user().to_string();
    let rules_time = started.elapsed();
    let started = std::time::Instant::now();
    let settings = PlanSettings::from_config(config, &api_user, today);
    let phase = progress::start(progress::DIFF, None);
    let matching = diff::Matching::new(
        &evaluation,
        &inputs.ftrack,
        inputs.ftrack_positions.as_ref(),
        &settings,
    );
    // The deprovision hook is part of the rules; the diff gets its verdicts as data.
    let verdicts = pipeline
        .verdicts(
            &matching.departed_users(&settings.today),
            settings.deprovision_action,
        )
        .map_err(|e| Failure::Runtime(e.to_string()))?;
    let plan = diff::diff(&matching, &inputs.directory, &settings, &verdicts, pipeline);
    drop(matching);
    drop(phase);
    Ok(Planned {
        plan,
        evaluation,
        timings: vec![("rules", rules_time), ("diff", started.elapsed())],
    })
}

/// Refuses (exit 3) a plan over the guard limits, unless forced (then it is a warning).
pub fn guard(
    config: &Config,
    plan: &Plan,
    directory_users: usize,
    force: bool,
) -> Result<(), Failure> {
    match guard::check(plan, &config.guards, directory_users) {
        Ok(()) => Ok(()),
        Err(refusal) if force => {
            tracing::warn!("--force: applying although {refusal}");
            Ok(())
        }
        Err(refusal) => Err(Failure::Guard(refusal.to_string())),
    }
}

/// Keeps the directory's sync state this run read up to, once its plan is in ftrack: the
/// next run reads only what changed after it. Not fatal when it cannot be written — the
/// next run then reads from the older state and finds these changes applied already.
pub fn keep_sync_state(config: &Config, inputs: &Inputs) {
    if let Some(state) = &inputs.next_sync_state {
        match state.save(&config.sync.state_file) {
            Ok(()) => tracing::debug!(file = %config.sync.state_file.display(), "sync state kept"),
            Err(e) => tracing::warn!("{e}; the next run reads from the previous sync state"),
        }
    }
}

/// Applies `plan`; when it stops, the failure and how many operations had landed before it
/// (operations land in plan order).
pub async fn apply(
    config: &Config,
    inputs: &Inputs,
    plan: &Plan,
    journal: Option<&Path>,
) -> Result<apply::ApplyReport, (Failure, usize)> {
    let report = apply::apply(
        plan,
        &inputs.connection.session,
        config.ftrack.batch_size,
        journal,
    )
    .await;
    let landed = match &report {
        Ok(report) => report.applied,
        Err(e) => e.landed(),
    };
    // Whatever landed is saved, even when the apply stopped midway.
    inputs
        .connection
        .save()
        .map_err(|e| (Failure::Runtime(e.to_string()), landed))?;
    report.map_err(|e| (Failure::Runtime(e.to_string()), landed))
}
