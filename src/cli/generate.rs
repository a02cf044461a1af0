//! The hidden `generate` subcommand: shell completions and man pages made from the same
//! clap definitions as `--help` (for packaging/build-deb.sh), so they cannot drift from it.

use super::Cli;
use crate::failure::Failure;
use clap::{CommandFactory, FromArgMatches, Subcommand};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The hidden `generate` subcommand: build-time artefacts made from [`Cli`]. Not part of
/// [`Cli`] itself, so the completions and man pages it writes do not offer it either.
#[derive(Debug, Subcommand)]
pub(super) enum Generate {
    /// Write the completion script for SHELL into DIR (created if missing).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
        dir: PathBuf,
    },
    /// Write the man pages (ldap2ftrack.1 and one per subcommand) into DIR (created if missing).
    Man { dir: PathBuf },
}

pub(super) const GENERATE: &str = "generate";

/// What the binary parses: the public [`Cli`] plus the hidden `generate` subcommand.
pub(super) fn command_with_generate() -> clap::Command {
    Cli::command().subcommand(
        Generate::augment_subcommands(clap::Command::new(GENERATE))
            .about("Write shell completions and man pages generated from these definitions")
            .subcommand_required(true)
            .hide(true),
    )
}

/// Runs `generate`; prints the files written, one per line.
pub(super) fn generate(matches: &clap::ArgMatches) -> ExitCode {
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
