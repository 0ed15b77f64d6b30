//! `ringfeed health`: whether the running daemon can answer queries and take
//! appends right now (not only whether it answers, as `ping` does). Exit 0
//! healthy, 1 unhealthy, 2 no daemon: usable as a liveness/readiness probe.

use clap::Args;
use std::path::PathBuf;
use std::process::ExitCode;

/// `ringfeed health`.
#[derive(Args, Debug)]
pub struct HealthArgs {
    /// Daemon socket (default: $RINGFEED_SOCKET, else the daemon's default path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// What `--help` shows after the options.
pub const AFTER_HELP: &str = "Exit status: 0 healthy, 1 unhealthy (a check failed: its line says what to do), 2 no daemon.\n\nExamples:\n  ringfeed health\n  ringfeed health --json";

/// Runs `ringfeed health`.
pub fn run(a: HealthArgs) -> ExitCode {
    let report = ringfeed_client::Client::connect(a.socket.as_deref()).and_then(|mut c| c.health());
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            eprintln!("ringfeed: {e}");
            return ExitCode::from(2);
        }
    };
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).unwrap_or_default()
        );
    } else {
        for c in &report.checks {
            println!(
                "{:<3} {:<10} {}",
                if c.ok { "ok" } else { "BAD" },
                c.name,
                c.detail
            );
        }
        println!(
            "{}",
            if report.healthy {
                "healthy: queries and appends work"
            } else {
                "UNHEALTHY"
            }
        );
    }
    if report.healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
