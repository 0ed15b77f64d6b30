//! `ringfeed-store`: the bar store behind ringfeed.
//!
//! An embedded store over one data directory. Writes land in the **hot tier**, an
//! append-only WAL of Arrow IPC frames per (dataset, timeframe, UTC day) with a length and
//! CRC per frame; **write-down** moves closed days into the **cold tier**, zstd Parquet in a
//! Hive layout (`dataset=…/tf=…/date=…/part-N.parquet`) that DuckDB and polars read in
//! place; a versioned **catalog** lists datasets, symbols and cold files. **Rollups** to
//! coarser timeframes are maintained on write; any other timeframe is **resampled on
//! read**. Every row is checked by one set of **rules** ([`validate`]) whichever way it
//! comes in: `ingest` while it parses files, [`BarStore::append`] for clients' Arrow batches.
//! This crate knows nothing of shared memory: the daemon joins it to the rings.
//!
//! ```
//! use ringfeed_store::{BarStore, DatasetConfig, Query, schema::BarColumns};
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = BarStore::open(dir.path()).unwrap();
//! store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
//! let mut bars = BarColumns::default();
//! for i in 0..10 {
//!     bars.ts.push(i * 60_000_000_000);
//!     bars.symbol.push("BTCUSDT".into());
//!     for c in [&mut bars.open, &mut bars.high, &mut bars.low, &mut bars.close] {
//!         c.push(100.0 + i as f64);
//!     }
//!     bars.volume.push(1.0);
//! }
//! store.upsert("demo", &bars.into_batch().unwrap()).unwrap();
//! let five = store.query(&Query::new("demo", "5m".parse().unwrap())).unwrap();
//! assert_eq!(five.num_rows(), 2);
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod catalog;
pub mod cold;
pub mod extent;
pub mod fsck;
pub mod ingest;
pub mod merge;
pub mod perms;
pub mod quarantine;
pub mod resample;
pub mod schema;
pub mod session;
pub mod store;
pub mod timeframe;
pub mod validate;
pub mod wal;

pub use catalog::{Catalog, DatasetConfig};
pub use merge::DeleteRange;
pub use perms::StoreOptions;
pub use quarantine::{CorruptionReport, DamageKind};
pub use session::Session;
pub use store::{AppendSummary, BarStore, Query, Symbols, WRITER_LOCK};
pub use timeframe::Timeframe;
pub use validate::{RowPolicy, RowReport};
pub use wal::FsyncPolicy;

/// Test hook: abort the process at the named point when the environment variable
/// `RINGFEED_STORE_FAILPOINT` equals the name. Crash tests use it to stop a child process
/// at every step of a write; it costs one cached lookup otherwise.
pub(crate) fn failpoint(name: &str) {
    if failpoint_active(name) {
        std::process::abort();
    }
}

pub(crate) fn failpoint_active(name: &str) -> bool {
    static FP: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    FP.get_or_init(|| std::env::var("RINGFEED_STORE_FAILPOINT").ok())
        .as_deref()
        == Some(name)
}
