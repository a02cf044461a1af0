//! The `ftrack-emulator` binary: runs the in-memory ftrack server until Ctrl-C.

use clap::Parser;
use ftrack_emulator::{EmulatorConfig, Faults, StateDump};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// An in-memory ftrack API server (POST /api) and event hub (/socket.io/1/) for tests,
/// demos and rule development. Admin endpoints live under /_emulator/ (see
/// ftrack-emulator/README.md).
#[derive(Debug, Parser)]
#[command(name = "ftrack-emulator", version)]
struct Args {
    /// Address to listen on (port 0 picks a free port; the URL is printed).
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: SocketAddr,
    /// Username clients must send in `ftrack-user`.
    #[arg(long, env = "FTRACK_API_USER")]
    api_user: String,
    /// API key clients must send in `ftrack-api-key`.
    #[arg(long, env = "FTRACK_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Load this state file (JSON: {"User": [...], "Group": [...], ...}) at start-up.
    #[arg(long)]
    load: Option<PathBuf>,
    /// Write the state to this file when stopped with Ctrl-C.
    #[arg(long)]
    save: Option<PathBuf>,
    /// Delay every API request by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Answer HTTP 500 to every Nth API request.
    #[arg(long)]
    error_every_nth: Option<u64>,
    /// With --error-every-nth: execute the request before answering 500.
    #[arg(long)]
    error_after_execute: bool,
    /// Answer HTTP 429 to every Nth API request.
    #[arg(long)]
    rate_limit_every_nth: Option<u64>,
    /// Retry-After seconds for injected 429s.
    #[arg(long, default_value_t = 1)]
    retry_after_secs: u64,
    /// Fail every API request after the Nth with HTTP 500.
    #[arg(long)]
    fail_after_requests: Option<u64>,
    /// Seconds between the event hub's heartbeats (`2::`; at most 10 for ftrack's
    /// JavaScript client, which gives up after 15 s without one).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
    hub_heartbeat_secs: u64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let mut config = EmulatorConfig::new(args.api_user, args.api_key)
        .listen(args.listen)
        .faults(Faults {
            latency_ms: args.latency_ms,
            error_every_nth: args.error_every_nth,
            error_after_execute: args.error_after_execute,
            rate_limit_every_nth: args.rate_limit_every_nth,
            retry_after_secs: args.retry_after_secs,
            fail_after_requests: args.fail_after_requests,
        })
        .heartbeat_interval(Duration::from_secs(args.hub_heartbeat_secs));
    if let Some(path) = &args.load {
        match StateDump::from_file(path) {
            Ok(s) => config = config.state(s),
            Err(e) => {
                eprintln!("ftrack-emulator: {e}");
                return ExitCode::from(2);
            }
        }
    }
    let emu = match ftrack_emulator::spawn(config).await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("ftrack-emulator: {e}");
            return ExitCode::from(2);
        }
    };
    println!("ftrack-emulator listening on {}", emu.url());
    if let Err(e) = tokio::signal::ctrl_c().await {
        eprintln!("ftrack-emulator: cannot wait for Ctrl-C: {e}");
    }
    if let Some(path) = &args.save {
        if let Err(e) = std::fs::write(path, emu.dump().to_json_pretty()) {
            eprintln!(
                "ftrack-emulator: cannot save state to {}: {e}",
                path.display()
            );
            emu.shutdown().await;
            return ExitCode::from(1);
        }
    }
    emu.shutdown().await;
    ExitCode::SUCCESS
}
