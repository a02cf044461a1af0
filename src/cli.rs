//! The command line: argument parsing, logging set-up, and the exit-code contract.
//!
//! Each subcommand is a thin sink on the one pipeline (config → read → rules → plan → guard →
//! apply); this module only wires arguments to it and turns outcomes into exit codes.
//! Results go to stdout, logs to stderr.
//!
//! The man pages and shell completions are generated from these same definitions by the
//! hidden `generate` subcommand (for packaging/build-deb.sh), so they cannot drift from `--help`.

use crate::config::Config;
use crate::failure::Failure;
use crate::output::{print_json, OutputFormat};
use crate::rules::wasm::RuleLoadError;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const EXIT_CODES_HELP: &str = "\
Exit codes:
  0  success: nothing to change, or the changes were applied
  1  runtime failure: LDAP, ftrack, I/O, or a rule module failing under on_error = \"abort\"
  2  usage or configuration error
  3  refused by a guard (nothing was written); --force overrides
  4  `plan --check` found pending changes";

/// Sync users, groups and security roles from LDAP / Active Directory into ftrack.
#[derive(Debug, Parser)]
#[command(name = "ldap2ftrack", version, after_help = EXIT_CODES_HELP)]
pub struct Cli {
    /// The configuration file.
    #[arg(long, global = true, default_value = "sync.toml", value_name = "FILE")]
    pub config: PathBuf,
    /// How results are printed on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Output::Human)]
    pub output: Output,
    /// How logs are printed on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More log detail (-v debug, -vv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less log detail (-q errors only, -qq nothing).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
    #[command(subcommand)]
    pub command: Command,
}

/// `--output`: how results are printed on stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Human,
    Json,
}

impl From<Output> for OutputFormat {
    fn from(output: Output) -> OutputFormat {
        match output {
            Output::Human => OutputFormat::Human,
            Output::Json => OutputFormat::Json,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Dry run: read LDAP and ftrack, run the rules and print what would change.
    Plan(PlanArgs),
    /// Apply the changes (freshly planned, or a saved plan).
    Apply(ApplyArgs),
    /// Run rule test cases (directory + ftrack state + expected plan) offline.
    Test(TestArgs),
    /// Validate the configuration and report what LDAP, ftrack and the rule modules look like,
    /// and what each guard allows at the current size.
    Check,
    /// Show each change for one user with the rule and LDAP values behind it.
    Explain(ExplainArgs),
    /// Rule module tools.
    #[command(subcommand)]
    Rules(RulesCommand),
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Save the plan, bound to hashes of its inputs, for `apply --plan`.
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Exit 4 when changes are pending, 0 when not (for monitoring).
    #[arg(long)]
    pub check: bool,
    /// Also write the directory (LDIF) and ftrack state that were read into DIR, as a test case.
    #[arg(long, value_name = "DIR")]
    pub snapshot: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Apply exactly this saved plan; refused if the live state drifted since.
    #[arg(long, value_name = "FILE")]
    pub plan: Option<PathBuf>,
    /// Apply even when a guard refuses (the refusal is logged as a warning).
    #[arg(long)]
    pub force: bool,
    /// Append one JSON line per applied operation to this file (default: [run] journal_file).
    #[arg(long, value_name = "FILE")]
    pub journal: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// A folder of test cases (each a sub-folder), or one case.
    pub dir: PathBuf,
    /// Rewrite each case's expected.json with the actual plan.
    #[arg(long)]
    pub update: bool,
}

#[derive(Debug, Args)]
pub struct ExplainArgs {
    /// The ftrack (or LDAP) username.
    pub username: String,
}

#[derive(Debug, Subcommand)]
pub enum RulesCommand {
    /// Show a module's metadata, hooks, configuration schema and hash.
    Inspect {
        /// The module: a file (.wasm), oci://HOST[:PORT]/NAMESPACE/NAME:TAG (or
        /// @sha256:DIGEST), or an https:// URL.
        module: String,
    },
    /// Push a module to an OCI registry (Wasm OCI artefact layout) and print the [[rules]]
    /// lines that pin it. Credentials: LDAP2FTRACK_REGISTRY_USER and
    /// LDAP2FTRACK_REGISTRY_PASSWORD for the registry LDAP2FTRACK_REGISTRY_HOST names, else
    /// the container credentials file
    /// (~/.docker/config.json or $REGISTRY_AUTH_FILE), else anonymous.
    Publish {
        /// The module file (.wasm), as `rules build` made it.
        module: PathBuf,
        /// Where to: oci://HOST[:PORT]/NAMESPACE/NAME:TAG.
        reference: String,
    },
    /// Create a new rule module (a Rust crate or a Python package on the SDK, with a passing
    /// fixture case).
    New {
        /// The module name (lower-case letters, digits, hyphens).
        name: String,
        /// The module's language.
        #[arg(long, value_enum, default_value_t = crate::scaffold::Lang::Rust)]
        lang: crate::scaffold::Lang,
        /// Where to create it (default: ./NAME); must not exist or be empty.
        #[arg(long, value_name = "PATH")]
        dir: Option<PathBuf>,
        /// The rules SDK folder the module uses (default: this build's checkout).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
    },
    /// Build a rule module (Rust crate: cargo; Python package: componentize-py) and print its
    /// [[rules]] snippet with the sha256.
    Build {
        /// The module's folder (with Cargo.toml, or app.py / pyproject.toml).
        #[arg(default_value = ".")]
        dir: PathBuf,
        /// The rules SDK folder with the WIT and the Python SDK (default: this build's
        /// checkout).
        #[arg(long, value_name = "PATH")]
        sdk: Option<PathBuf>,
        /// Also put the module here (default: only where the build leaves it).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}

/// The hidden `generate` subcommand: build-time artefacts made from [`Cli`]. Not part of
/// [`Cli`] itself, so the completions and man pages it writes do not offer it either.
#[derive(Debug, Subcommand)]
enum Generate {
    /// Write the completion script for SHELL into DIR (created if missing).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        dir: PathBuf,
    },
    /// Write the man pages (ldap2ftrack.1 and one per subcommand) into DIR (created if missing).
    Man { dir: PathBuf },
}

const GENERATE: &str = "generate";

/// What the binary parses: the public [`Cli`] plus the hidden `generate` subcommand.
fn command_with_generate() -> clap::Command {
    Cli::command().subcommand(
        Generate::augment_subcommands(clap::Command::new(GENERATE))
            .about("Write shell completions and man pages generated from these definitions")
            .subcommand_required(true)
            .hide(true),
    )
}

/// Runs `generate`; prints the files written, one per line.
fn generate(matches: &clap::ArgMatches) -> ExitCode {
    let written = Generate::from_arg_matches(matches)
        .map_err(|e| Failure::Usage(e.to_string()))
        .and_then(|what| write_generated(&what));
    match written {
        Ok(files) => {
            for file in files {
                println!("{}", file.display());
            }
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("error: {failure}");
            ExitCode::from(failure.exit_code())
        }
    }
}

fn write_generated(what: &Generate) -> Result<Vec<PathBuf>, Failure> {
    let dir = match what {
        Generate::Completions { dir, .. } | Generate::Man { dir } => dir,
    };
    let cannot_write = |e: std::io::Error| {
        Failure::Runtime(format!(
            "cannot write into {}: {e}; pass a folder you can write to",
            dir.display()
        ))
    };
    std::fs::create_dir_all(dir).map_err(cannot_write)?;
    match what {
        Generate::Completions { shell, dir } => {
            let mut cli = Cli::command();
            let name = cli.get_name().to_string();
            let file =
                clap_complete::generate_to(*shell, &mut cli, name, dir).map_err(cannot_write)?;
            Ok(vec![file])
        }
        Generate::Man { dir } => {
            clap_mangen::generate_to(Cli::command(), dir).map_err(cannot_write)?;
            man_pages_in(dir).map_err(cannot_write)
        }
    }
}

/// The `.1` files in `dir`, sorted: what `clap_mangen::generate_to` wrote.
fn man_pages_in(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut pages = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "1") {
            pages.push(path);
        }
    }
    pages.sort();
    Ok(pages)
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn run() -> ExitCode {
    let mut matches = command_with_generate().get_matches();
    if let Some((GENERATE, generate_matches)) = matches.subcommand() {
        return generate(generate_matches);
    }
    let cli = match Cli::from_arg_matches_mut(&mut matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    init_logging(&cli);
    crate::progress::enable_on_terminal(
        cli.output == Output::Json,
        cli.quiet > 0,
        cli.verbose > 0 || std::env::var_os("LDAP2FTRACK_LOG").is_some(),
    );
    // Every log line of this run carries its id, so a log shipper can group them.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let span = tracing::info_span!("run", run_id = &run_id[..12]);
    let _entered = span.enter();
    match dispatch(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            // Said once: as a log record when logs are JSON (for the log shipper), else as
            // one `error:` line.
            match (&failure, cli.log_format) {
                (Failure::PendingChanges, _) => {}
                (_, LogFormat::Json) => {
                    tracing::error!(exit_code = failure.exit_code(), "{failure}")
                }
                (_, LogFormat::Text) => eprintln!("error: {failure}"),
            }
            ExitCode::from(failure.exit_code())
        }
    }
}

/// Libraries whose debug and trace records carry secrets: oci-client logs the registry token
/// service's answer (a bearer token) and token claims; reqwest, hyper and tower-http log
/// connections and the addresses they are sent to (signed URLs). They are held at info
/// whatever `-v`, `-vv` or `LDAP2FTRACK_LOG` ask for, so no log holds a credential.
const HELD_AT_INFO: &[&str] = &[
    "oci_client",
    "oci_wasm",
    "reqwest",
    "hyper",
    "hyper_util",
    "h2",
    "tower_http",
];

fn init_logging(cli: &Cli) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (q, _) if q >= 2 => "off",
        (1, _) => "error",
        (_, 0) => "warn",
        (_, 1) => "info,ldap2ftrack=debug",
        _ => "trace",
    };
    let filter =
        EnvFilter::try_from_env("LDAP2FTRACK_LOG").unwrap_or_else(|_| EnvFilter::new(level));
    // A second filter of its own, so no directive in LDAP2FTRACK_LOG can lift it.
    let held = HELD_AT_INFO.iter().fold(
        Targets::new().with_default(LevelFilter::TRACE),
        |targets, name| targets.with_target(*name, LevelFilter::INFO),
    );
    // Colour only for a person at a terminal: never in cron mail or `2>file`, nor with NO_COLOR.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr())
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice) is harmless; ignore it.
    let _ = match cli.log_format {
        LogFormat::Text => builder.finish().with(held).try_init(),
        LogFormat::Json => builder.json().finish().with(held).try_init(),
    };
}

fn dispatch(cli: &Cli) -> Result<(), Failure> {
    let output = OutputFormat::from(cli.output);
    match &cli.command {
        Command::Rules(RulesCommand::New {
            name,
            lang,
            dir,
            sdk,
        }) => crate::scaffold::run_new(name, *lang, dir.as_deref(), sdk.as_deref(), output),
        Command::Rules(RulesCommand::Build { dir, sdk, out }) => {
            crate::rules_build::run(dir, sdk.as_deref(), out.as_deref(), output)
        }
        Command::Rules(RulesCommand::Publish { module, reference }) => {
            crate::commands::publish(module, reference, output)
        }
        Command::Rules(RulesCommand::Inspect { module }) => {
            let unusable = |e: RuleLoadError| match e {
                RuleLoadError::Runtime { message } => Failure::Runtime(message),
                unusable => Failure::Usage(unusable.to_string()),
            };
            let source = crate::config::module_ref::parse(module).map_err(Failure::Usage)?;
            let mut info = if source.is_remote() {
                // Kept in the fetch cache under its own hash ([run] fetch_cache_dir when
                // sync.toml can be read), so pinning it afterwards costs no second download.
                let cache = Config::load(&cli.config)
                    .ok()
                    .and_then(|c| c.run.fetch_cache_dir)
                    .or_else(|| crate::config::default_fetch_cache(&|k| std::env::var(k).ok()));
                let (file, _tmp) =
                    crate::rules::fetch::fetch_for_inspect(&source, cache.as_deref())
                        .map_err(unusable)?;
                let mut info = crate::rules::wasm::inspect(&file).map_err(unusable)?;
                info.path = PathBuf::from(source.to_string());
                info
            } else {
                crate::rules::wasm::inspect(Path::new(module)).map_err(unusable)?
            };
            // The bounds come from sync.toml, when it can be read and pins this module.
            if let Ok(config) = Config::load(&cli.config) {
                info.bounds = config
                    .rules
                    .iter()
                    .enumerate()
                    .filter(|(_, r)| r.sha256.eq_ignore_ascii_case(&info.sha256))
                    .map(|(i, r)| r.bounds.report(i))
                    .collect();
            }
            match output {
                OutputFormat::Human => print!("{info}"),
                OutputFormat::Json => print_json(&info)?,
            }
            Ok(())
        }
        Command::Test(args) => crate::commands::test(&args.dir, args.update, output),
        command => {
            let config = load_config(cli)?;
            match command {
                Command::Check => crate::check::run(&config, output),
                Command::Plan(args) => {
                    let options = crate::commands::PlanOptions {
                        out: args.out.clone(),
                        check: args.check,
                        snapshot: args.snapshot.clone(),
                    };
                    crate::commands::plan(&config, &options, output)
                }
                Command::Apply(args) => {
                    let options = crate::commands::ApplyOptions {
                        plan: args.plan.clone(),
                        force: args.force,
                        journal: args.journal.clone(),
                    };
                    crate::commands::apply(&config, &options, output)
                }
                Command::Explain(args) => crate::commands::explain(&config, &args.username, output),
                Command::Rules(_) | Command::Test(_) => unreachable!("handled above"),
            }
        }
    }
}

fn load_config(cli: &Cli) -> Result<Config, Failure> {
    let config = Config::load(&cli.config).map_err(Failure::Config)?;
    for warning in &config.warnings {
        tracing::warn!("{}: {warning}", config.file.display());
    }
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn generate_is_parsed_but_hidden_from_help() {
        let mut cmd = command_with_generate();
        cmd.clone().debug_assert();
        let help = cmd.render_help().to_string();
        assert!(help.contains("plan"), "{help}");
        assert!(!help.contains(GENERATE), "{help}");
        let matches = cmd
            .try_get_matches_from(["ldap2ftrack", "generate", "completions", "bash", "out"])
            .unwrap();
        let Some((GENERATE, sub)) = matches.subcommand() else {
            panic!("generate not parsed: {matches:?}");
        };
        assert!(matches!(
            Generate::from_arg_matches(sub).unwrap(),
            Generate::Completions {
                shell: clap_complete::Shell::Bash,
                ..
            }
        ));
        // The public definition, which completions and man pages are made from, lacks it.
        assert!(Cli::command().find_subcommand(GENERATE).is_none());
    }

    #[test]
    fn exit_codes_are_distinct_and_documented() {
        let failures = [
            Failure::Runtime(String::new()),
            Failure::Usage(String::new()),
            Failure::Guard(String::new()),
            Failure::PendingChanges,
        ];
        let codes: Vec<u8> = failures.iter().map(Failure::exit_code).collect();
        assert_eq!(codes, vec![1, 2, 3, 4]);
        for code in 0..=4 {
            assert!(EXIT_CODES_HELP.contains(&format!("  {code}  ")));
        }
    }

    #[test]
    fn global_flags_parse_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "ldap2ftrack",
            "plan",
            "--config",
            "x.toml",
            "--output",
            "json",
            "--check",
            "-vv",
        ])
        .unwrap();
        assert_eq!(cli.config, PathBuf::from("x.toml"));
        assert_eq!(cli.output, Output::Json);
        assert_eq!(cli.verbose, 2);
        assert!(matches!(
            cli.command,
            Command::Plan(PlanArgs { check: true, .. })
        ));
    }
}
