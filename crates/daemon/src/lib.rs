//! `ringfeedd`, the sidecar daemon: it joins the bar store (`ringfeed-store`)
//! to shared-memory rings (`ringfeed-arrow`).
//!
//! - **Queries** arrive on a Unix socket ([`protocol`]); the daemon runs them
//!   against the store, materialises the result into an arena sized for it,
//!   and answers with the arena's name. Identical queries share one arena
//!   (a refcounted cache with LRU eviction under a memory budget that never
//!   evicts memory a reader still maps).
//! - **Live topics**: one ring per (dataset, timeframe). Every append is made
//!   durable by the store, then published to the base topic and to every
//!   rollup topic it touched.
//! - **Observability**: `tracing` logs, Prometheus text at `--metrics`.
//!
//! ```no_run
//! use ringfeed_daemon::{Client, protocol::QuerySpec};
//! let mut c = Client::connect(None)?;
//! let bars = c.bars(&QuerySpec { dataset: "binance-spot".into(), timeframe: "1h".into(),
//!                                symbols: vec!["BTCUSDT".into()], ..Default::default() })?;
//! println!("{} rows, zero-copy: {}", bars.rows, bars.batches.iter().all(|b| b.is_zero_copy()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
mod client;
pub mod config;
pub mod metrics;
pub mod protocol;
mod server;

pub use args::ServeArgs;
pub use client::{socket_path, Bars, Client, ClientError, Replay, DEFAULT_TIMEOUT};
pub use config::Config;
pub use server::{bind, serve, Daemon, ServeError};

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// Installs SIGTERM/SIGINT handlers that set the returned flag.
pub fn stop_on_signals() -> std::io::Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(sig, stop.clone())?;
    }
    Ok(stop)
}

/// Logs to stderr; `RUST_LOG` filters (default `info`).
pub fn init_logging() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
