//! `ringfeedd`, the sidecar daemon: it joins the bar store (`ringfeed-store`)
//! to shared-memory rings (`ringfeed-arrow`).
//!
//! - [`service`]: the core. One [`Service`] with one method per operation
//!   (query, replay, subscribe, append, delete, write-down, ready, stat,
//!   datasets), typed inputs, outputs and errors; it knows nothing of
//!   sockets or JSON. Query results are materialised into arenas shared by
//!   identical queries (a refcounted cache with LRU eviction under a memory
//!   budget that never evicts memory a reader still maps). Every append is
//!   made durable by the store, then published to the base topic and to
//!   every rollup topic it touched.
//! - [`transport`]: the faces. The Unix socket ([`transport::unix`]) and
//!   Arrow Flight ([`transport::flight`], off unless configured) are thin
//!   adapters; the request boundary (panics, connection caps) is
//!   [`transport::Boundary`].
//! - [`follow`]: a follower of another daemon's datasets over Flight, into this
//!   daemon's own store (`[follow]`, `--follow`).
//! - The protocol and the client live in `ringfeed-client`.
//! - **Observability**: `tracing` logs, Prometheus text at `--metrics`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod args;
pub mod auth;
pub mod config;
pub mod follow;
pub mod metrics;
mod serve;
pub mod service;
pub mod transport;

pub use args::{ArgsError, ServeArgs};
pub use config::Config;
pub use serve::{serve, ServeError};
pub use service::{Service, ServiceError};

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

/// Logs to stderr; `RUST_LOG` filters (default `info`). Colours only when
/// stderr is a terminal.
pub fn init_logging() {
    use std::io::IsTerminal;
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}
