//! The command line: argument parsing, logging set-up, and the exit-code contract.
//!
//! Each subcommand is a thin sink on the one pipeline (config → read → rules → plan → guard →
//! apply); this module only wires arguments to it and turns outcomes into exit codes.
//! Results go to stdout, logs to stderr.
//!
//! The man pages and shell completions are generated from these same definitions by the
//! hidden `generate` subcommand ([`generate`]), so they cannot drift from `--help`; logging is
//! set up in [`logging`]. This is the only module that uses clap.

mod generate;
mod logging;

use crate::commands::output::OutputFormat;
use crate::commands::rules::Language;
use crate::commands::{self, apply::ApplyOptions, plan::PlanOptions};
use crate::config::Config;
use crate::failure::Failure;
use clap::{Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use generate::{command_with_generate, generate, GENERATE};
use std::path::PathBuf;
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
    /// Serve "LDAP sync: preview" and "LDAP sync: apply" in ftrack's Actions menu, for
    /// ftrack administrators (a long-running service; stops on SIGTERM).
    Listen,
    /// Apply each directory change within seconds: follow the server's changes (syncrepl,
    /// or AD's USNs) and apply them as `apply` does (a long-running service; stops on
    /// SIGTERM).
    Watch,
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
    /// Read the whole directory even when the sync state allows reading only what changed.
    #[arg(long)]
    pub full: bool,
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
    /// Read the whole directory even when the sync state allows reading only what changed.
    #[arg(long)]
    pub full: bool,
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
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
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

/// `rules new --lang`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Lang {
    /// A Rust crate on the rules SDK (cargo, wasm32-wasip2).
    Rust,
    /// A Python package on the Python rules SDK (componentize-py).
    Python,
}

impl From<Lang> for Language {
    fn from(lang: Lang) -> Language {
        match lang {
            Lang::Rust => Language::Rust,
            Lang::Python => Language::Python,
        }
    }
}

/// Parses arguments, runs the command, and returns the process exit code.
pub fn main() -> ExitCode {
    let mut matches = command_with_generate().get_matches();
    if let Some((GENERATE, generate_matches)) = matches.subcommand() {
        return generate(generate_matches);
    }
    let cli = match Cli::from_arg_matches_mut(&mut matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    logging::init_logging(&cli);
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

fn dispatch(cli: &Cli) -> Result<(), Failure> {
    let output = OutputFormat::from(cli.output);
    match &cli.command {
        Command::Rules(RulesCommand::New {
            name,
            lang,
            dir,
            sdk,
        }) => commands::rules::new::create(
            name,
            Language::from(*lang),
            dir.as_deref(),
            sdk.as_deref(),
            output,
        ),
        Command::Rules(RulesCommand::Build { dir, sdk, out }) => {
            commands::rules::build::build(dir, sdk.as_deref(), out.as_deref(), output)
        }
        Command::Rules(RulesCommand::Publish { module, reference }) => {
            commands::rules::publish::publish(module, reference, output)
        }
        Command::Rules(RulesCommand::Inspect { module }) => {
            commands::rules::inspect::inspect(module, &cli.config, output)
        }
        Command::Test(args) => commands::test::test(&args.dir, args.update, output),
        Command::Check => commands::check::check(&load_config(cli)?, output),
        Command::Plan(args) => {
            let options = PlanOptions {
                out: args.out.clone(),
                check: args.check,
                snapshot: args.snapshot.clone(),
                full: args.full,
            };
            commands::plan::plan(&load_config(cli)?, &options, output)
        }
        Command::Apply(args) => {
            let options = ApplyOptions {
                plan: args.plan.clone(),
                force: args.force,
                journal: args.journal.clone(),
                bound_to: None,
                full: args.full,
            };
            commands::apply::apply(&load_config(cli)?, &options, output)
        }
        Command::Listen => commands::listen::listen(&load_config(cli)?),
        Command::Watch => commands::watch::watch(&load_config(cli)?),
        Command::Explain(args) => {
            commands::explain::explain(&load_config(cli)?, &args.username, output)
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
    use super::generate::Generate;
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
