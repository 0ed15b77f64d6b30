//! `ringfeedd`: the sidecar daemon. Same as `ringfeed serve`.

use std::path::PathBuf;
use std::process::ExitCode;

fn usage() -> &'static str {
    "usage: ringfeedd [--config FILE] [--data-dir DIR] [--socket PATH] [--metrics ADDR]\n\
     Serves bar queries and live topics over shared memory. With no options it uses\n\
     ./ringfeed-data and $XDG_RUNTIME_DIR/ringfeed.sock (or /tmp/ringfeed-$UID.sock).\n\
     Stops cleanly on SIGTERM or SIGINT."
}

fn main() -> ExitCode {
    ringfeed_daemon::init_logging();
    let mut args = std::env::args().skip(1);
    let mut cfg_path: Option<PathBuf> = None;
    let (mut data_dir, mut socket, mut metrics) = (None, None, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--config" => cfg_path = args.next().map(PathBuf::from),
            "--data-dir" => data_dir = args.next().map(PathBuf::from),
            "--socket" => socket = args.next().map(PathBuf::from),
            "--metrics" => metrics = args.next(),
            "-h" | "--help" => {
                println!("{}", usage());
                return ExitCode::SUCCESS;
            }
            other => {
                eprintln!("ringfeedd: unknown argument {other:?}\n{}", usage());
                return ExitCode::from(2);
            }
        }
    }
    let run = || -> anyhow::Result<()> {
        let mut cfg = match &cfg_path {
            Some(p) => ringfeed_daemon::Config::load(p)?,
            None => ringfeed_daemon::Config::default(),
        };
        if let Some(d) = data_dir {
            cfg.data_dir = d;
        }
        if let Some(s) = socket {
            cfg.socket = s;
        }
        if let Some(m) = metrics {
            cfg.metrics = Some(
                m.parse()
                    .map_err(|e| anyhow::anyhow!("--metrics {m:?}: {e}"))?,
            );
        }
        let stop = ringfeed_daemon::stop_on_signals()?;
        ringfeed_daemon::serve(cfg, stop)?;
        Ok(())
    };
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringfeedd: {e:#}");
            ExitCode::FAILURE
        }
    }
}
