//! The ringfeedd protocol and its Rust client.
//!
//! - [`protocol`]: requests, answers, [`ErrorKind`]s, the query spec, frames.
//! - [`time`]: the one time grammar every face accepts (integers in s, ms, µs
//!   or ns by magnitude; ISO dates and times, UTC unless a zone is given).
//! - [`Client`]: queries land as Arrow batches that point into the daemon's
//!   shared memory ([`Bars`]); subscriptions are ring readers; [`Replay`]
//!   joins stored history to live batches with no gap and no duplicate.
//!
//! The Python (pyo3) and C++ (cxx) bindings wrap this crate: an operation is
//! written here once. It depends on `ringfeed-arrow` only, never on the store
//! or the daemon.
//!
//! ```no_run
//! use ringfeed_client::{Client, protocol::QuerySpec};
//! let mut c = Client::connect(None)?;
//! let bars = c.bars(&QuerySpec { dataset: "binance-spot".into(), timeframe: "1h".into(),
//!                                symbols: vec!["BTCUSDT".into()], ..Default::default() })?;
//! println!("{} rows, zero-copy: {}", bars.rows, bars.batches.iter().all(|b| b.is_zero_copy()));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
pub mod peer;
pub mod protocol;
pub mod time;

pub use client::{
    default_socket, keep_symbols, socket_path, uid, Bars, Client, ClientError, Replay,
    DEFAULT_TIMEOUT,
};
pub use protocol::{
    AppendReport, DatasetSpec, ErrorKind, InvalidRows, QuerySpec, ReadyReport, ReplaySpec, Request,
    Response,
};
pub use time::{TimeError, TimeSpec};
