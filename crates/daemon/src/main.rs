//! `ringfeedd`: the sidecar daemon. Same as `ringfeed serve`.

use clap::Parser;
use std::process::ExitCode;

/// Serves bar queries and live topics over shared memory.
#[derive(Parser)]
#[command(
    name = "ringfeedd",
    version,
    about = "ringfeed's sidecar daemon: bar queries and live topics over shared memory (same as `ringfeed serve`)",
    long_about = "ringfeed's sidecar daemon: bar queries and live topics over shared memory.\n\n\
With no options it uses ./ringfeed-data and $XDG_RUNTIME_DIR/ringfeed.sock \
(or /tmp/ringfeed-$UID/ringfeed.sock). Stops cleanly on SIGTERM or SIGINT: every arena \
it created is closed and the socket removed."
)]
struct Cli {
    #[command(flatten)]
    serve: ringfeed_daemon::ServeArgs,
}

fn main() -> ExitCode {
    ringfeed_shm::malloc::retain_freed_memory(); // before any thread starts
    match Cli::parse().serve.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfeedd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
