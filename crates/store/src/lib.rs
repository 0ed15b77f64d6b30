//! `ringfeed-store`: the bar store behind ringfeed.
//!
//! An embedded store over one data directory. Writes land in the **hot tier**, an
//! append-only WAL of Arrow IPC frames per (dataset, UTC day), every timeframe in it, with a length and
//! CRC per frame; **write-down** moves closed days into the **cold tier**, zstd Parquet in a
//! Hive layout (`dataset=…/tf=…/month=…/part-N.parquet`) that DuckDB and polars read in
//! place; a versioned **catalog** lists datasets, symbols and cold files. **Rollups** to
//! coarser timeframes are maintained on write; any other timeframe is **resampled on
//! read**. Every row is checked by one set of **rules** ([`validate`]) whichever way it
//! comes in: the `ringfeed-ingest` crate while it parses files, [`BarStore::append`] for
//! clients' Arrow batches.
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
pub mod changes;
pub mod cold;
pub mod extent;
pub mod fsck;
mod hot;
pub mod merge;
pub mod perms;
pub mod quarantine;
pub mod resample;
pub mod retention;
pub mod schema;
pub mod session;
pub mod store;
pub mod time;
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

/// The entries of a directory, sorted; empty when it cannot be read.
pub(crate) fn read_dirs(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<std::path::PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The CPUs this process may use, asked once: `available_parallelism` reads the cgroup
/// files on every call (~40 µs, a tenth of a one-row append when every read asked).
pub(crate) fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `f` over `items` on up to the available CPUs (at most 4), results in item order.
/// Small inputs (under 16 items) stay on the calling thread.
pub(crate) fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = cpus().min(4).min(items.len() / 8).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    let per = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|sc| {
        let handles: Vec<_> = items
            .chunks(per)
            .skip(1)
            .map(|c| sc.spawn(move || c.iter().map(f).collect::<Vec<R>>()))
            .collect();
        let mut out: Vec<R> = items[..per].iter().map(f).collect();
        for h in handles {
            out.extend(h.join().expect("worker thread"));
        }
        out
    })
}

/// `f` over every item on up to the available CPUs, results in item order: for a few
/// heavy items (files to decode), where [`par_map`] would stay on one thread.
pub(crate) fn par_map_all<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = cpus().min(items.len()).max(1);
    if threads == 1 {
        return items.iter().map(f).collect();
    }
    // Items are taken one at a time from a shared counter, so uneven files balance.
    let next = std::sync::atomic::AtomicUsize::new(0);
    let (f, next) = (&f, &next);
    let mut slots: Vec<Option<R>> = (0..items.len()).map(|_| None).collect();
    let results: Vec<Vec<(usize, R)>> = std::thread::scope(|sc| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                sc.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        // Relaxed: the counter only hands out indices; results are joined.
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        out.push((i, f(item)));
                    }
                    out
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    for (i, r) in results.into_iter().flatten() {
        slots[i] = Some(r);
    }
    slots
        .into_iter()
        .map(|r| r.expect("every item ran"))
        .collect()
}
