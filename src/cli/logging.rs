//! Logging set-up: text or JSON records on stderr, the level from `-q`/`-v` or
//! `LDAP2FTRACK_LOG`, and the libraries that would log secrets held at info whatever is asked.

use super::{Cli, LogFormat};

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

/// Logs to stderr, as text or JSON, at the level `-q`/`-v` or `LDAP2FTRACK_LOG` ask for.
pub(super) fn init_logging(cli: &Cli) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::EnvFilter;
    let level = match (cli.quiet, cli.verbose) {
        (q, _) if q >= 2 => "off",
        (1, _) => "error",
        // ldap3 warns on every unbind ("null result send error": nobody waits for an
        // unbind's answer); its real failures reach us as errors anyway.
        (_, 0) => "warn,ldap3=error",
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
