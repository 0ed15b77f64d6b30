//! [`BarStore`]: the embedded store over a data directory.
//!
//! ```text
//! <root>/_catalog/CURRENT, v<N>.json                      catalog versions
//! <root>/_hot/<dataset>/<tf>/<YYYY-MM-DD>.wal               hot tier (WAL), per UTC day
//! <root>/dataset=<D>/tf=<tf>/date=<YYYY-MM-DD>/part-<N>.parquet   cold tier (Hive layout)
//! ```

use crate::catalog::{Catalog, CatalogError, DatasetConfig, DatasetEntry, PartFile};
use crate::merge::{self, DeleteRange, Op};
use crate::perms::StoreOptions;
use crate::quarantine::CorruptionReport;
use crate::resample::{self, BucketError, Bucketing};
use crate::schema::{self, InputError, Kind};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use crate::validate::{self, BadRow, RowPolicy, RowReport, RowRules};
use crate::wal::{self, FsyncPolicy, ReplayReport, WalError};
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::{ArrowError, SchemaRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

mod open;
mod undo;

use undo::{append_frames, Undo, UndoStep};

pub use crate::cold::parquet::{read_parquet, read_parquet_as, write_parquet, write_parquet_with};
pub use open::WRITER_LOCK;

/// Failure to read stored data (shared by the operations that read).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A cold-tier Parquet file could not be decoded.
    #[error("cannot decode {path}: {source}; the file may be damaged, restore it or delete its day and re-ingest")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: parquet::errors::ParquetError,
    },
    /// A WAL could not be read.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Stored batches did not combine.
    #[error("stored data does not combine: {0}")]
    Arrow(#[from] ArrowError),
}

/// Failure to open a store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory could not be created or listed.
    #[error("cannot use data directory {path}: {source}; check that it exists and is writable, or pass another --data-dir")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The catalog could not be loaded.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// A WAL could not be recovered.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Another process has the store open for writing.
    #[error("store {root} is already open for writing by {holder}; one writer per data directory: send writes through it (`ringfeed append` when it is ringfeedd, which also writes finished days down to Parquet itself), stop it, or use another --data-dir (queries can run beside it)")]
    Locked {
        /// The data directory.
        root: PathBuf,
        /// Who holds it, as far as the lock file tells ("pid 1234 (ringfeedd)").
        holder: String,
    },
    /// Rewriting the rollups of days whose last write was cut short failed.
    #[error("cannot repair the rollups of dataset {dataset:?} after an interrupted write: {source}; the base bars are intact, fix the cause (space, permissions) and open again")]
    Repair {
        /// The dataset.
        dataset: String,
        /// What failed.
        source: Box<WriteError>,
    },
}

/// Failure to create a dataset.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateDatasetError {
    /// The name is not usable as a directory and partition value.
    #[error("invalid dataset name {0:?}: use letters, digits, `-`, `_` and `.`, not starting with `_` or `.`")]
    Name(String),
    /// A dataset of that name exists with another configuration.
    #[error("dataset {0:?} already exists with a different configuration; pick another name or drop the options")]
    Exists(String),
    /// A rollup target is not a whole multiple of the base timeframe, or spans days.
    #[error("rollup {rollup} is not usable with base {base}: a rollup must be a multiple of the base timeframe and at most 1d")]
    Rollup {
        /// The rollup target.
        rollup: Timeframe,
        /// The base timeframe.
        base: Timeframe,
    },
    /// The session crosses a UTC midnight.
    #[error("session {0} crosses a UTC midnight, which rollups on write do not support yet; resample on read instead")]
    Session(String),
    /// The store was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed
    /// (a full disk): queries work, writes wait until space is freed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// The catalog commit failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Failure to write (upsert or delete).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}. Create it first (ingest creates it with --timeframe)")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The batch does not fit the dataset's schema.
    #[error("the batch does not fit dataset {dataset} ({base}): {source}")]
    Schema {
        /// The dataset.
        dataset: String,
        /// Its base timeframe.
        base: Timeframe,
        /// The conversion error.
        source: ArrowError,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed
    /// (a full disk): queries work, writes wait until space is freed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// A WAL append failed; the write is not acknowledged.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// Reading back data for rollups failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The catalog commit failed.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The write failed after it had written some WAL frames, and cutting them back
    /// failed too: some of its rows may be stored. The store turned read-only.
    #[error("{source}; undoing the frames it had written failed too ({undo}), so some of its rows may be stored: the store is read-only now (queries show what is stored). Fix the cause (the disk, its space or permissions), then let the writer retry (BarStore::retry_writable, which finishes the undo) or restart it")]
    NotUndone {
        /// Why the write failed.
        source: Box<WriteError>,
        /// Why its undo failed.
        undo: WalError,
    },
}

/// Failure of a client append ([`BarStore::append`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AppendError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}. Create it first (`ringfeed ingest --timeframe …`, or in the daemon's config)")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only; append through its writer (the daemon, or a store opened with BarStore::open)")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed
    /// (a full disk): queries work, writes wait until space is freed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// The batch cannot be read as the dataset's rows: a column is missing or has an
    /// unusable type. Nothing was written.
    #[error("the batch does not fit dataset {dataset:?} ({base} {what}): {source}")]
    Input {
        /// The dataset.
        dataset: String,
        /// Its base timeframe.
        base: Timeframe,
        /// `bars` or `trades`.
        what: &'static str,
        /// What does not fit.
        source: InputError,
    },
    /// The policy was strict and a row was rejected. Nothing was written.
    #[error("{row} (strict: nothing from this batch was written; fix the row, or append without strict to skip bad rows)")]
    Strict {
        /// The first rejected row (`line` is its 1-based row number in the batch).
        row: BadRow,
    },
    /// Writing the valid rows failed; they are not acknowledged.
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What [`BarStore::append`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct AppendSummary {
    /// The write of the accepted rows: rows after dedup, days, and the rollup bars
    /// rewritten (what a live publisher sends on the rollup timeframes). Empty when no row
    /// was accepted.
    pub write: WriteSummary,
    /// The rows stored, with the dataset's base schema, in batch order (flagged rows
    /// included): what a live publisher sends on the base timeframe.
    pub accepted: RecordBatch,
    /// Validation: rows read, stored, rejected and flagged, and the first few of each with
    /// their row numbers in the batch and reasons.
    pub report: RowReport,
}

/// Failure to name the schema of a dataset's timeframe ([`BarStore::stored_schema`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoredSchemaError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The timeframe is neither the dataset's base nor one of its rollups.
    #[error("dataset {dataset:?} stores no {asked} bars; stored timeframes: {stored} (other timeframes are resampled on read by a query)")]
    NotStored {
        /// The dataset.
        dataset: String,
        /// The timeframe asked for.
        asked: Timeframe,
        /// Its stored timeframes.
        stored: String,
    },
}

/// Failure to answer a query.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueryError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// A symbol was never written to the dataset.
    #[error("unknown symbol {symbol:?} in dataset {dataset}; symbols: {known}")]
    UnknownSymbol {
        /// The dataset.
        dataset: String,
        /// The symbol asked for.
        symbol: String,
        /// Symbols that exist (the first 50).
        known: String,
    },
    /// A requested field is not a column of the result.
    #[error("unknown field {field:?}; fields: {known}")]
    UnknownField {
        /// The field asked for.
        field: String,
        /// The result's columns.
        known: String,
    },
    /// The timeframe cannot be produced from what is stored.
    #[error("cannot produce {asked} bars for dataset {dataset}: stored timeframes are {stored}; ask for a multiple of one of them")]
    Timeframe {
        /// The dataset.
        dataset: String,
        /// The timeframe asked for.
        asked: Timeframe,
        /// Stored timeframes.
        stored: String,
    },
    /// The interval/session combination is not supported.
    #[error(transparent)]
    Bucket(#[from] BucketError),
    /// The range is empty or reversed.
    #[error("the query's start {start} is not before its end {end}; give a start before the end")]
    Range {
        /// The start, ISO-8601.
        start: String,
        /// The end, ISO-8601.
        end: String,
    },
    /// Reading failed.
    #[error(transparent)]
    Read(#[from] ReadError),
}

/// Failure of a write-down.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteDownError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed
    /// (a full disk): queries work, writes wait until space is freed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// Reading the day failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// Writing a Parquet file failed; nothing was committed.
    #[error("cannot write {path}: {detail}; nothing was committed, check free space and retry")]
    Write {
        /// The file.
        path: PathBuf,
        /// What failed.
        detail: String,
    },
    /// The catalog commit failed; the old state stands.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// What an upsert wrote.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct WriteSummary {
    /// Rows written at the base timeframe (after in-batch dedup).
    pub rows: usize,
    /// UTC days touched.
    pub days: usize,
    /// Rollup bars rewritten.
    pub rollup_rows: usize,
    /// The rollup bars rewritten, per rollup timeframe that has any (in the dataset's
    /// rollup order), sorted by key: each bar's new state, `complete` flag included. This
    /// is what a live publisher sends: it holds the bars the batch's rows landed in and the
    /// earlier bars the batch closed (after a gap too), and nothing else.
    pub rollups: Vec<(Timeframe, RecordBatch)>,
}

/// What a write-down moved.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriteDownSummary {
    /// (dataset, timeframe, day) partitions written.
    pub partitions: usize,
    /// Rows written to Parquet.
    pub rows: u64,
    /// Bytes of Parquet written.
    pub bytes: u64,
}

/// Which symbols a query asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Symbols {
    /// Every symbol.
    #[default]
    All,
    /// These symbols.
    List(Vec<String>),
}

/// A query: symbols × timeframe × time range, with projection and limit.
///
/// ```no_run
/// # use ringfeed_store::{BarStore, Query, Symbols};
/// let store = BarStore::open_read_only("ringfeed-data".as_ref()).unwrap();
/// let mut q = Query::new("binance-spot", "1h".parse().unwrap());
/// q.symbols = Symbols::List(vec!["BTCUSDT".into()]);
/// q.limit = Some(24);
/// q.from_end = true;
/// let bars = store.query(&q).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Query {
    /// Dataset name.
    pub dataset: String,
    /// Symbols.
    pub symbols: Symbols,
    /// Timeframe: stored, or resampled on read.
    pub timeframe: Timeframe,
    /// Bucket offset in ns for resampling (buckets start at `offset + k * interval`).
    pub offset: Option<i64>,
    /// First ts included (ns).
    pub start: Option<i64>,
    /// First ts excluded (ns).
    pub end: Option<i64>,
    /// Columns besides `ts` and `symbol`; `None` = all.
    pub fields: Option<Vec<String>>,
    /// At most this many rows per symbol.
    pub limit: Option<usize>,
    /// Take the limit from the end instead of the start.
    pub from_end: bool,
}

impl Query {
    /// A query for every symbol and all time.
    pub fn new(dataset: &str, timeframe: Timeframe) -> Self {
        Query {
            dataset: dataset.into(),
            symbols: Symbols::All,
            timeframe,
            offset: None,
            start: None,
            end: None,
            fields: None,
            limit: None,
            from_end: false,
        }
    }
}

/// Format a UTC day number as `YYYY-MM-DD`.
pub fn day_string(day: i64) -> String {
    let d = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap() + chrono::Duration::days(day);
    d.format("%Y-%m-%d").to_string()
}

/// Parse `YYYY-MM-DD` into a UTC day number.
pub fn parse_day(s: &str) -> Option<i64> {
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days())
}

fn list(v: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = v.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else if v.len() > 50 {
        format!("{} … ({} in all)", v[..50].join(", "), v.len())
    } else {
        v.join(", ")
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 128
        && !n.starts_with(['_', '.'])
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// The embedded bar store over one data directory. One writer at a time (enforced with a
/// lock file, [`WRITER_LOCK`]); any number of read-only openers beside it.
pub struct BarStore {
    root: PathBuf,
    catalog: Catalog,
    writable: bool,
    /// How files are created (modes), and the test hook that fails writes.
    opts: StoreOptions,
    /// Why a writer opened read-only (see [`BarStore::read_only_reason`]).
    read_only_reason: Option<String>,
    /// Damaged WAL regions and torn tails set aside (see [`BarStore::damage`]).
    damage: Vec<CorruptionReport>,
    /// Writer only: the locked `_writer.lock` (see [`WRITER_LOCK`]); unlocked when dropped
    /// or when the process dies.
    _writer_lock: Option<File>,
    /// WAL files whose torn tails were cut, or damaged regions moved to quarantine, when
    /// the store was opened for writing.
    pub recovered: Vec<(PathBuf, ReplayReport)>,
    /// Days whose rollups were rewritten when the store was opened for writing, per
    /// dataset: a write was cut between its base frames and its rollup frames.
    pub rollups_repaired: Vec<(String, Vec<i64>)>,
    /// Hot directories of an old timeframe spelling that could not be renamed to the
    /// normalized one (from, to): their WALs are not read until merged by hand.
    pub unrenamed: Vec<(PathBuf, PathBuf)>,
    /// Writer only: every hot WAL file and the length up to which it is known valid
    /// (recovered at open, or written since). Appends to a file whose length still matches
    /// skip the recovery pass; a path absent here does not exist (one writer per directory).
    wal_lens: HashMap<PathBuf, u64>,
    /// Writer only: the days of `wal_lens`, per timeframe directory (`_hot/<dataset>/<tf>`),
    /// so "the days with a WAL before / after day D" needs no directory listing.
    hot_index: HashMap<PathBuf, BTreeSet<i64>>,
    /// WAL files appended since the last [`BarStore::sync_pending`] that the policy wants
    /// synced, and the directories that gained a file (synced under `always`).
    pending_sync: BTreeSet<PathBuf>,
    pending_dirs: BTreeSet<PathBuf>,
    /// Writer only: recently read days, merged.
    day_cache: Mutex<DayCache>,
    /// Writer only: what the write in progress changed, to put back if it fails.
    undo: Option<Undo>,
    /// Writer only: the steps of an undo that failed (the store went read-only), run
    /// again by [`BarStore::retry_writable`] before anything else.
    undo_left: Vec<UndoStep>,
}

/// The writer's cache of merged days (cold parts overlaid with the hot WAL), keyed by WAL
/// path and split by symbol. An entry is used only while the day's cold parts are the ones
/// it was built from and its WAL has not shrunk; when the WAL grew (by this writer's
/// appends: it is the only writer), the frames after the entry's length are decoded and
/// merged onto the symbols they touch. Entries are dropped when their WAL is deleted
/// (write-down) or an append to it fails. Bounded by [`DAY_CACHE_BYTES`], least recently
/// used out first.
struct DayCache {
    entries: Vec<CachedDay>,
    clock: u64,
    /// Memory the entries may hold (estimated from rows and column widths).
    limit: usize,
}

impl Default for DayCache {
    fn default() -> Self {
        DayCache {
            entries: Vec::new(),
            clock: 0,
            limit: DAY_CACHE_BYTES,
        }
    }
}

struct CachedDay {
    wal: PathBuf,
    wal_len: u64,
    cold: Vec<String>,
    /// The merged day, per symbol.
    day: BTreeMap<String, merge::Chunks>,
    bytes: usize,
    used: u64,
}

/// Default memory the writer's day cache may hold: a day of 1m bars of 1,000 symbols
/// is ~155 MB merged, and a live feed keeps its base day and the rollup days in it.
pub const DAY_CACHE_BYTES: usize = 1 << 30;

impl CachedDay {
    fn new(wal: PathBuf, cold: Vec<String>, wal_len: u64, merged: Option<&RecordBatch>) -> Self {
        let mut e = CachedDay {
            wal,
            wal_len,
            cold,
            day: merged.map(merge::split_by_symbol).unwrap_or_default(),
            bytes: 0,
            used: 0,
        };
        e.bytes = e.estimate();
        e
    }

    fn estimate(&self) -> usize {
        let mut chunks = self.day.values().flatten().peekable();
        let width: usize = chunks.peek().map_or(0, |b| {
            b.schema()
                .fields()
                .iter()
                .map(|f| f.data_type().primitive_width().unwrap_or(16) + 1)
                .sum()
        });
        chunks.map(|b| b.num_rows() * width + 1024).sum()
    }

    /// The rows of `symbols` (all when `None`), sorted by key; no copy for one symbol.
    fn select(
        &self,
        kind: Kind,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Option<RecordBatch>, ArrowError> {
        let parts: Vec<&RecordBatch> = match symbols {
            None => self.day.values().flatten().collect(),
            Some(s) if s.len() < self.day.len() => {
                s.iter().filter_map(|x| self.day.get(x)).flatten().collect()
            }
            Some(s) => self
                .day
                .iter()
                .filter(|(k, _)| s.contains(*k))
                .flat_map(|(_, b)| b)
                .collect(),
        };
        Ok(match parts[..] {
            [] => None,
            [one] => Some(one.clone()),
            _ => Some(arrow_select::concat::concat_batches(&kind.schema(), parts)?),
        })
    }
}

impl DayCache {
    fn find(&mut self, wal: &Path, cold: &[String]) -> Option<&mut CachedDay> {
        self.clock += 1;
        let now = self.clock;
        let e = self
            .entries
            .iter_mut()
            .find(|e| e.wal == wal && e.cold == cold)?;
        e.used = now;
        Some(e)
    }

    fn put(&mut self, mut e: CachedDay) {
        self.forget(&e.wal);
        if e.bytes > self.limit {
            return;
        }
        self.make_room(e.bytes);
        self.clock += 1;
        e.used = self.clock;
        self.entries.push(e);
    }

    fn make_room(&mut self, bytes: usize) {
        while !self.entries.is_empty()
            && self.entries.iter().map(|e| e.bytes).sum::<usize>() + bytes > self.limit
        {
            let oldest = (0..self.entries.len())
                .min_by_key(|&i| self.entries[i].used)
                .expect("not empty");
            self.entries.swap_remove(oldest);
        }
    }

    fn forget(&mut self, wal: &Path) {
        self.entries.retain(|e| e.wal != wal);
    }
}

impl BarStore {
    /// Set how much memory the writer may use to keep recently written days merged (default
    /// [`DAY_CACHE_BYTES`]; estimated from rows and column widths). With the day of a
    /// live feed cached, an append reads back its day in time linear in the rows of the
    /// symbols it touches, instead of decoding every frame of the day's WAL. `0` turns the
    /// cache off. Read-only stores have no cache.
    pub fn set_day_cache_bytes(&mut self, bytes: usize) {
        let c = self.day_cache.get_mut().unwrap_or_else(|p| p.into_inner());
        c.limit = bytes;
        c.make_room(0);
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The current catalog version.
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    /// A dataset's catalog entry.
    pub fn dataset(&self, name: &str) -> Option<&DatasetEntry> {
        self.catalog.datasets.get(name)
    }

    fn known(&self) -> String {
        list(self.catalog.datasets.keys())
    }

    /// Create a dataset; creating one that exists with the same config is a no-op. A
    /// rollup given twice (in any spelling: `60m`, `1h`) is kept once.
    pub fn create_dataset(
        &mut self,
        name: &str,
        mut config: DatasetConfig,
    ) -> Result<(), CreateDatasetError> {
        // `60m` and `1h` are one rollup: keep the first spelling of each.
        let mut seen = BTreeSet::new();
        config.rollups.retain(|r| seen.insert(*r));
        if let Some((root, reason)) = self.unwritable() {
            return Err(CreateDatasetError::Unwritable { root, reason });
        }
        if !self.writable {
            return Err(CreateDatasetError::ReadOnly);
        }
        if !valid_name(name) {
            return Err(CreateDatasetError::Name(name.into()));
        }
        if let Some(e) = self.catalog.datasets.get(name) {
            return if e.config == config {
                Ok(())
            } else {
                Err(CreateDatasetError::Exists(name.into()))
            };
        }
        for r in &config.rollups {
            let ok = match (config.base.nanos(), r.nanos()) {
                (_, None) => false,
                (None, Some(n)) => n <= NANOS_PER_DAY,
                (Some(b), Some(n)) => n > b && n % b == 0 && n <= NANOS_PER_DAY,
            };
            if !ok {
                return Err(CreateDatasetError::Rollup {
                    rollup: *r,
                    base: config.base,
                });
            }
        }
        if let Some(s) = &config.session {
            let cal = s
                .calendar()
                .map_err(|_| CreateDatasetError::Session(s.to_string()))?;
            let d = chrono::NaiveDate::from_ymd_opt(2024, 1, 2).unwrap();
            let (o, c) = cal.session_of_date(d);
            if o.div_euclid(NANOS_PER_DAY) != (c - 1).div_euclid(NANOS_PER_DAY) {
                return Err(CreateDatasetError::Session(s.to_string()));
            }
        }
        self.change_catalog(|c| {
            c.datasets.insert(
                name.into(),
                DatasetEntry {
                    config,
                    symbols: BTreeSet::new(),
                    cold: BTreeMap::new(),
                },
            );
        })?;
        Ok(())
    }

    /// A catalog change as a transaction: apply `edit` to a copy of the catalog, commit the
    /// copy durably, and only then serve it. On failure the served catalog is unchanged.
    fn change_catalog(&mut self, edit: impl FnOnce(&mut Catalog)) -> Result<(), CatalogError> {
        let mut next = self.catalog.clone();
        edit(&mut next);
        next.commit_with(&self.root, &self.opts)?;
        self.catalog = next;
        Ok(())
    }

    /// The root and the reason when this writer opened read-only (see
    /// [`BarStore::read_only_reason`]).
    fn unwritable(&self) -> Option<(PathBuf, String)> {
        self.read_only_reason
            .as_ref()
            .map(|r| (self.root.clone(), r.clone()))
    }

    fn kind_of(cfg: &DatasetConfig, tf: Timeframe) -> Kind {
        if tf == cfg.base {
            if tf.is_tick() {
                Kind::Ticks
            } else {
                Kind::Bars
            }
        } else {
            Kind::Rollup
        }
    }

    /// Hot WAL path of a (dataset, timeframe, day).
    pub fn wal_path(&self, dataset: &str, tf: Timeframe, day: i64) -> PathBuf {
        self.root
            .join("_hot")
            .join(dataset)
            .join(tf.to_string())
            .join(format!("{}.wal", day_string(day)))
    }

    fn all_wal_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let hot = self.root.join("_hot");
        for d in read_dirs(&hot) {
            for t in read_dirs(&d) {
                for f in read_dirs(&t) {
                    if f.extension().is_some_and(|e| e == "wal") {
                        out.push(f);
                    }
                }
            }
        }
        out
    }

    /// UTC days with a hot WAL for (dataset, tf).
    pub fn hot_days(&self, dataset: &str, tf: Timeframe) -> Vec<i64> {
        let dir = self.root.join("_hot").join(dataset).join(tf.to_string());
        let mut days: Vec<i64> = read_dirs(&dir)
            .iter()
            .filter_map(|p| parse_day(p.file_stem()?.to_str()?))
            .collect();
        days.sort();
        days
    }

    fn collect_garbage(&self) {
        let mut referenced = BTreeSet::new();
        for e in self.catalog.datasets.values() {
            for parts in e.cold.values() {
                for p in parts {
                    referenced.insert(self.root.join(&p.path));
                }
            }
        }
        for d in read_dirs(&self.root) {
            if !d
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dataset="))
            {
                continue;
            }
            for t in read_dirs(&d) {
                for day in read_dirs(&t) {
                    for f in read_dirs(&day) {
                        let name = f.to_string_lossy();
                        let orphan = name.ends_with(".tmp")
                            || (name.ends_with(".parquet") && !referenced.contains(&f));
                        if orphan {
                            let _ = std::fs::remove_file(&f);
                        }
                    }
                    let _ = std::fs::remove_dir(&day); // only succeeds when empty
                }
            }
        }
    }

    fn entry(&self, dataset: &str) -> Result<&DatasetEntry, WriteError> {
        self.catalog
            .datasets
            .get(dataset)
            .ok_or_else(|| WriteError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            })
    }

    /// Append a client's rows: the road every append from outside the store takes.
    ///
    /// Looks the dataset up, reads the batch as its base rows (bars or trades; see
    /// [`schema::conform_input`]: `ts` must be an Arrow timestamp, a zone-less one is read
    /// as UTC, integers are refused), checks every row against the dataset's rules
    /// ([`crate::validate`]: the same as `ringfeed ingest`, including the base timeframe's
    /// grid) under `policy`, and upserts the rows that pass. Rejected rows are listed in
    /// the report with their 1-based row numbers in the batch (file `append`); when every
    /// row is rejected nothing is written. Under a strict policy the first rejected row
    /// fails the call and nothing is written. The rows that pass are one write, all or
    /// nothing (see [`BarStore::upsert`]): an error means none of them is stored.
    ///
    /// ```
    /// # use ringfeed_store::{BarStore, DatasetConfig, schema::BarColumns, validate::RowPolicy};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = BarStore::open(dir.path()).unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
    /// let mut bars = BarColumns::default();
    /// for (ts, high) in [(0, 2.0), (60_000_000_000, 0.5)] { // the second: high < low
    ///     bars.ts.push(ts);
    ///     bars.symbol.push("BTCUSDT".into());
    ///     bars.open.push(1.0); bars.high.push(high); bars.low.push(1.0); bars.close.push(1.0);
    ///     bars.volume.push(1.0);
    /// }
    /// let s = store.append("demo", &bars.into_batch().unwrap(), &RowPolicy::default()).unwrap();
    /// assert_eq!((s.write.rows, s.report.rejected), (1, 1));
    /// assert_eq!(s.report.rejects[0].to_string(), "append:2: high 0.5 < low 1");
    /// ```
    pub fn append(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
        policy: &RowPolicy,
    ) -> Result<AppendSummary, AppendError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(AppendError::Unwritable { root, reason });
        }
        if !self.writable {
            return Err(AppendError::ReadOnly);
        }
        let cfg = match self.catalog.datasets.get(dataset) {
            Some(e) => e.config.clone(),
            None => {
                return Err(AppendError::UnknownDataset {
                    name: dataset.into(),
                    known: self.known(),
                })
            }
        };
        let kind = Self::kind_of(&cfg, cfg.base);
        let input = schema::conform_input(batch, kind).map_err(|source| AppendError::Input {
            dataset: dataset.into(),
            base: cfg.base,
            what: if kind == Kind::Ticks {
                "trades"
            } else {
                "bars"
            },
            source,
        })?;
        let rules = RowRules::for_dataset(&cfg);
        let (accepted, report) = validate::check_batch(&input, kind, &rules, policy, "append")
            .map_err(|e| match e {
                validate::CheckError::Strict(row) => AppendError::Strict { row },
                validate::CheckError::Arrow(source) => AppendError::Write(WriteError::Schema {
                    dataset: dataset.into(),
                    base: cfg.base,
                    source,
                }),
            })?;
        let write = self.upsert(dataset, &accepted)?;
        Ok(AppendSummary {
            write,
            accepted,
            report,
        })
    }

    /// The schema of a dataset's stored timeframe: the bar or tick schema at its base
    /// timeframe, the rollup schema (bars plus `complete`) at a rollup timeframe.
    ///
    /// ```
    /// # use ringfeed_store::{BarStore, DatasetConfig, schema};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = BarStore::open(dir.path()).unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
    /// assert_eq!(store.stored_schema("demo", "1m".parse().unwrap()).unwrap(), schema::bar_schema());
    /// assert_eq!(store.stored_schema("demo", "60m".parse().unwrap()).unwrap(), schema::rollup_schema());
    /// assert!(store.stored_schema("demo", "2h".parse().unwrap()).is_err());
    /// ```
    pub fn stored_schema(
        &self,
        dataset: &str,
        tf: Timeframe,
    ) -> Result<SchemaRef, StoredSchemaError> {
        let e = self.catalog.datasets.get(dataset).ok_or_else(|| {
            StoredSchemaError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            }
        })?;
        let cfg = &e.config;
        if tf != cfg.base && !cfg.rollups.contains(&tf) {
            return Err(StoredSchemaError::NotStored {
                dataset: dataset.into(),
                asked: tf,
                stored: list(
                    self.stored_timeframes(dataset)
                        .iter()
                        .map(|t| t.to_string()),
                ),
            });
        }
        Ok(Self::kind_of(cfg, tf).schema())
    }

    /// Insert or replace rows at the dataset's base timeframe (bars keyed by
    /// `(symbol, ts)`, ticks by `(symbol, ts, trade_id)`), then rewrite the rollups of the
    /// days touched. Returns once the WAL frames are written (and synced, per policy).
    ///
    /// All or nothing: when any step fails (a base or rollup frame write on a full disk,
    /// an fsync, the catalog commit of new symbols), every WAL the write extended is cut
    /// back to its length before it, so an error means nothing of the batch is stored, now
    /// or after a restart. Only when that cut fails too is the error
    /// [`WriteError::NotUndone`], and the store turns read-only until the cut is finished
    /// ([`BarStore::retry_writable`]).
    ///
    /// Rows are stored as given: this is the road for rows the caller has validated
    /// (`ringfeed ingest` does while parsing). Rows from clients go through
    /// [`BarStore::append`], which validates them.
    pub fn upsert(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<WriteSummary, WriteError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteError::Unwritable { root, reason });
        }
        if !self.writable {
            return Err(WriteError::ReadOnly);
        }
        self.begin_write();
        let res = self.upsert_frames(dataset, batch);
        self.end_write(res)
    }

    /// [`BarStore::upsert`] as one undoable write (see [`BarStore::begin_write`]).
    fn upsert_frames(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<WriteSummary, WriteError> {
        let cfg = self.entry(dataset)?.config.clone();
        let kind = Self::kind_of(&cfg, cfg.base);
        let schema_err = |source| WriteError::Schema {
            dataset: dataset.into(),
            base: cfg.base,
            source,
        };
        if batch.num_rows() == 0 {
            return Ok(WriteSummary::default());
        }
        let batch = schema::conform(batch, &kind.schema()).map_err(schema_err)?;
        let batch = merge::sort_dedup(kind, batch).map_err(schema_err)?;
        let pieces = split_days(&batch).map_err(schema_err)?;
        let mut summary = WriteSummary {
            rows: batch.num_rows(),
            days: pieces.len(),
            ..WriteSummary::default()
        };
        // Record new symbols first, so a crash never leaves data under an unlisted symbol.
        let syms = merge::symbols_of(&batch);
        let known = &self.entry(dataset)?.symbols;
        // Symbols written before: only they can have earlier bars that this batch closes.
        let (seen, new): (Vec<String>, Vec<String>) =
            syms.into_iter().partition(|s| known.contains(s));
        let seen: BTreeSet<String> = seen.into_iter().collect();
        if !new.is_empty() {
            // Committed before it is served: a failed commit (a full disk) leaves the
            // symbols unknown in memory too, and nothing of the batch is written.
            self.change_catalog(|c| {
                c.datasets
                    .get_mut(dataset)
                    .expect("checked above")
                    .symbols
                    .extend(new.iter().cloned())
            })?;
            self.undo_symbols(dataset, new);
        }
        let mut fresh = BTreeMap::new();
        let mut jobs = Vec::with_capacity(pieces.len());
        for (day, piece) in &pieces {
            let path = self.wal_path(dataset, cfg.base, *day);
            let is_fresh = !self.wal_exists(&path) && !self.has_cold(dataset, cfg.base, *day);
            jobs.push((path, vec![Op::Upsert(piece.clone())]));
            fresh.insert(*day, is_fresh);
        }
        self.write_wal_jobs(cfg.fsync, jobs)?;
        // The base frames are durable before any rollup derived from them is written.
        self.sync_pending()?;
        crate::failpoint("upsert:before_rollups");
        if !cfg.rollups.is_empty() {
            let bars = self.refresh_after_upsert(dataset, &cfg, &batch, &pieces, &fresh, &seen)?;
            self.sync_pending()?;
            let days: Vec<i64> = pieces.iter().map(|(d, _)| *d).collect();
            self.mark_rollups_done(dataset, &cfg, &days)?;
            summary.rollup_rows = bars.iter().map(|(_, _, b)| b.num_rows()).sum();
            for tf in &cfg.rollups {
                let of_tf: Vec<RecordBatch> = bars
                    .iter()
                    .filter(|(t, _, _)| t == tf)
                    .map(|(_, _, b)| b.clone())
                    .collect();
                if of_tf.is_empty() {
                    continue;
                }
                let kind = Self::kind_of(&cfg, *tf);
                let one = arrow_select::concat::concat_batches(&of_tf[0].schema(), &of_tf)
                    .and_then(|b| merge::sort_dedup(kind, b))
                    .map_err(|e| WriteError::Read(ReadError::from(e)))?;
                summary.rollups.push((*tf, one));
            }
        }
        Ok(summary)
    }

    /// Bring the rollups up to date after an upsert, rewriting only the rollup bars it can
    /// change. A rollup bar is `complete` when its window ends at or before the end of the
    /// symbol's latest base bar (in any day), so for each (day, symbol) of the batch:
    /// - intraday rollups that divide the day: the buckets from the one holding the
    ///   symbol's bar before the batch's first row of the day (whose window may close now;
    ///   with no gap that is the previous bucket) to the one holding the batch's last row,
    ///   and the bucket of the day's last row (it closes when later data exists);
    /// - other rollups (`1d`, session days, intervals that do not divide the day): the day.
    ///
    /// When the batch holds a symbol's first row of a day, the last bars of the latest
    /// earlier day with rows of that symbol close too: they are rewritten (that day's last
    /// buckets only). An upsert never empties a bucket, so the rewritten bars replace every
    /// old bar in their range by key: no delete frames are needed.
    fn refresh_after_upsert(
        &mut self,
        dataset: &str,
        cfg: &DatasetConfig,
        batch: &RecordBatch,
        pieces: &[(i64, RecordBatch)],
        fresh: &BTreeMap<i64, bool>,
        seen: &BTreeSet<String>,
    ) -> Result<RollupBars, WriteError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        // Per symbol: the end of its last bar in the batch, or i64::MAX when it has rows in
        // a later day already (then every bar up to the batch's last day is complete).
        let mut wm = HashMap::new();
        raise_watermarks(batch, len, &mut wm);
        let mut by_last_day: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for (s, w) in &wm {
            by_last_day
                .entry((w - len).div_euclid(NANOS_PER_DAY))
                .or_default()
                .insert(s.clone());
        }
        for (day, syms) in &by_last_day {
            for s in self.symbols_after(dataset, cfg, syms, *day)? {
                wm.insert(s, i64::MAX);
            }
        }
        // The batch's days, on every CPU (a fresh day's rows are the piece: nothing to read).
        let this = &*self;
        let wm = &wm;
        let per_day = par_map(pieces, |(day, piece)| {
            this.upsert_day_ops(dataset, cfg, kind, *day, piece, fresh[day], wm)
        });
        let mut bars: RollupBars = Vec::new();
        // (after, before) → symbols whose latest day with rows in that open interval
        // gets its last bars rewritten.
        let mut searches: BTreeMap<(i64, i64), BTreeSet<String>> = BTreeMap::new();
        let mut prev_day: HashMap<String, i64> = HashMap::new();
        for ((day, _), r) in pieces.iter().zip(per_day) {
            let (mut b, firsts) = r?;
            bars.append(&mut b);
            for (s, first) in firsts {
                // The batch's own earlier day of this symbol is rewritten whole above.
                let after = prev_day.insert(s.clone(), *day).unwrap_or(i64::MIN);
                if first && seen.contains(&s) {
                    searches.entry((after, *day)).or_default().insert(s);
                }
            }
        }
        for ((after, before), syms) in searches {
            for (day, src) in self.latest_rows_before(dataset, cfg, &syms, after, before)? {
                let spans = last_bar_spans(&src);
                let marks: HashMap<String, i64> =
                    spans.keys().map(|s| (s.clone(), i64::MAX)).collect();
                bars.append(&mut self.range_ops(cfg, kind, day, &src, &spans, &marks)?);
            }
        }
        self.write_wal_jobs(cfg.fsync, merge_jobs(self.rollup_jobs(dataset, &bars)))?;
        Ok(bars)
    }

    /// One WAL upsert per rollup bars of `bars`.
    fn rollup_jobs(&self, dataset: &str, bars: &RollupBars) -> Vec<WalJob> {
        bars.iter()
            .map(|(tf, day, b)| {
                (
                    self.wal_path(dataset, *tf, *day),
                    vec![Op::Upsert(b.clone())],
                )
            })
            .collect()
    }

    /// The rollup appends for one day of an upsert (see
    /// [`BarStore::refresh_after_upsert`]), the bars to write, and for each symbol of the
    /// piece whether the batch holds its first row of the day.
    #[allow(clippy::too_many_arguments)]
    fn upsert_day_ops(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        piece: &RecordBatch,
        fresh: bool,
        wm: &HashMap<String, i64>,
    ) -> Result<DayOps, ReadError> {
        let len = cfg.base.nanos().unwrap_or(0);
        let syms: BTreeSet<String> = merge::symbols_of(piece).into_iter().collect();
        let src = if fresh {
            piece.clone()
        } else {
            self.read_base_day(dataset, cfg.base, kind, day, Some(&syms))?
                .unwrap_or_else(|| piece.clone())
        };
        let mut marks;
        let marks = if fresh {
            wm // the day holds only the batch's rows, which `wm` covers
        } else {
            marks = wm.clone();
            raise_watermarks(&src, len, &mut marks);
            &marks
        };
        // Per symbol: [the batch's first row, or the row before it; the batch's last row]
        // and the day's last row.
        let (pv, sv) = (schema::view(piece), schema::view(&src));
        let runs = symbol_runs(&src);
        let mut spans: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        let mut firsts = Vec::new();
        let mut i = 0;
        while i < piece.num_rows() {
            let sym = pv.symbol.value(i);
            let j = schema::run_end(pv.symbol, i);
            let (lo, hi) = (pv.ts[i], pv.ts[j - 1]);
            let (a, b) = runs.get(sym).copied().unwrap_or((0, 0));
            let ts = &sv.ts[a..b];
            let before = ts.partition_point(|t| *t < lo);
            let from = if before > 0 { ts[before - 1] } else { lo };
            let last = ts.last().copied().unwrap_or(hi);
            spans.insert(sym.to_string(), vec![(from, hi), (last, last)]);
            firsts.push((sym.to_string(), before == 0));
            i = j;
        }
        Ok((self.range_ops(cfg, kind, day, &src, &spans, marks)?, firsts))
    }

    /// The new rollup bars of `day` whose buckets hold the rows of `spans` (per
    /// symbol, `(from, to)` instants: every bucket from `from`'s to `to`'s), resampled from
    /// `src` (the day's merged base rows of those symbols) with watermarks `marks`. Rollups
    /// whose buckets do not divide the day (and daily ones) take all of the day's rows.
    fn range_ops(
        &self,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        src: &RecordBatch,
        spans: &HashMap<String, Vec<(i64, i64)>>,
        marks: &HashMap<String, i64>,
    ) -> Result<RollupBars, ReadError> {
        let mut bars = Vec::new();
        let v = schema::view(src);
        for tf in &cfg.rollups {
            let input = match divides_day(cfg, *tf) {
                None => src.clone(),
                Some(width) => {
                    // Row ranges of `src` inside the buckets to rewrite, run by run.
                    let mut take: Vec<(usize, usize)> = Vec::new();
                    let mut i = 0;
                    while i < src.num_rows() {
                        let j = schema::run_end(v.symbol, i);
                        let ts = &v.ts[i..j];
                        let floor = |t: i64| t.div_euclid(width) * width;
                        let mut buckets: Vec<(i64, i64)> = spans
                            .get(v.symbol.value(i))
                            .map(|s| s.iter().map(|(a, b)| (floor(*a), floor(*b) + width)))
                            .into_iter()
                            .flatten()
                            .collect();
                        buckets.sort_unstable();
                        let mut merged: Vec<(i64, i64)> = Vec::new();
                        for (a, b) in buckets {
                            match merged.last_mut() {
                                Some(m) if a <= m.1 => m.1 = m.1.max(b),
                                _ => merged.push((a, b)),
                            }
                        }
                        for (a, b) in merged {
                            let (x, y) = (
                                ts.partition_point(|t| *t < a),
                                ts.partition_point(|t| *t < b),
                            );
                            if x < y {
                                take.push((i + x, i + y));
                            }
                        }
                        i = j;
                    }
                    if take.iter().map(|(a, b)| b - a).sum::<usize>() == src.num_rows() {
                        src.clone() // every row (a fresh day, say): no copy
                    } else {
                        let idx: UInt32Array = take
                            .iter()
                            .flat_map(|&(a, b)| (a as u32)..(b as u32))
                            .collect();
                        arrow_select::take::take_record_batch(src, &idx)?
                    }
                }
            };
            if input.num_rows() == 0 {
                continue;
            }
            let out = resample::resample(
                &input,
                kind,
                cfg.base,
                &mut Self::rollup_bucketing(cfg, *tf),
                Some(marks),
            )?;
            if out.num_rows() > 0 {
                bars.push((*tf, day, out));
            }
        }
        Ok(bars)
    }

    fn rollup_bucketing(cfg: &DatasetConfig, tf: Timeframe) -> Bucketing {
        let cal = match &cfg.session {
            Some(s) if tf.nanos() >= Some(NANOS_PER_DAY) => Some(
                s.calendar()
                    .expect("sessions are validated at dataset creation"),
            ),
            _ => None,
        };
        Bucketing::new(tf, tf.default_offset(), cal)
            .expect("rollups are validated at dataset creation")
    }

    /// Delete rows of a symbol (or all symbols) in `[start, end)` at the base timeframe,
    /// then rewrite the rollups of the days touched. Returns the number of days touched.
    pub fn delete(&mut self, dataset: &str, range: DeleteRange) -> Result<usize, WriteError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteError::Unwritable { root, reason });
        }
        if !self.writable {
            return Err(WriteError::ReadOnly);
        }
        self.begin_write();
        let res = self.delete_frames(dataset, range);
        self.end_write(res)
    }

    /// [`BarStore::delete`] as one undoable write (see [`BarStore::begin_write`]).
    fn delete_frames(&mut self, dataset: &str, range: DeleteRange) -> Result<usize, WriteError> {
        let entry = self.entry(dataset)?;
        let cfg = entry.config.clone();
        let all_syms: BTreeSet<String> = match &range.symbol {
            Some(s) => [s.clone()].into(),
            None => entry.symbols.clone(),
        };
        if range.end <= range.start {
            return Ok(0);
        }
        let first = range.start.div_euclid(NANOS_PER_DAY);
        let last = (range.end - 1).div_euclid(NANOS_PER_DAY);
        let days: Vec<i64> = self
            .data_days(dataset, cfg.base, first..=last)
            .into_keys()
            .collect();
        for day in &days {
            let path = self.wal_path(dataset, cfg.base, *day);
            self.append_wal(&path, cfg.fsync, &[Op::Delete(range.clone())])?;
        }
        self.sync_pending()?;
        if !cfg.rollups.is_empty() && !days.is_empty() {
            self.refresh_after_delete(dataset, &cfg, &days, &all_syms)?;
            self.sync_pending()?;
            self.mark_rollups_done(dataset, &cfg, &days)?;
        }
        Ok(days.len())
    }

    /// Rewrite the rollups of `syms` after a delete: every bar of the `days` touched
    /// (delete each symbol's day, then upsert), then the last bars of each symbol's latest
    /// earlier day, which stay complete only while the symbol has later rows.
    fn refresh_after_delete(
        &mut self,
        dataset: &str,
        cfg: &DatasetConfig,
        days: &[i64],
        syms: &BTreeSet<String>,
    ) -> Result<usize, WriteError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        let (first, last) = (days[0], days[days.len() - 1]);
        // Symbols with rows after the day being rewritten: its bars are all complete.
        let mut later = self.symbols_after(dataset, cfg, syms, last)?;
        let mut rows = 0;
        let mut jobs: Vec<WalJob> = Vec::new();
        for &day in days.iter().rev() {
            let src = self.read_base_day(dataset, cfg.base, kind, day, Some(syms))?;
            let mut marks: HashMap<String, i64> =
                later.iter().map(|s| (s.clone(), i64::MAX)).collect();
            if let Some(src) = &src {
                raise_watermarks(src, len, &mut marks);
                later.extend(merge::symbols_of(src));
            }
            let (n, mut j) = self.day_ops(dataset, cfg, kind, day, syms, src.as_ref(), &marks)?;
            rows += n;
            jobs.append(&mut j);
        }
        for (day, src) in self.latest_rows_before(dataset, cfg, syms, i64::MIN, first)? {
            let mut marks: HashMap<String, i64> = HashMap::new();
            raise_watermarks(&src, len, &mut marks);
            for (s, w) in marks.iter_mut() {
                if later.contains(s) {
                    *w = i64::MAX;
                }
            }
            let bars = self.range_ops(cfg, kind, day, &src, &last_bar_spans(&src), &marks)?;
            rows += bars.iter().map(|(_, _, b)| b.num_rows()).sum::<usize>();
            jobs.append(&mut self.rollup_jobs(dataset, &bars));
        }
        self.write_wal_jobs(cfg.fsync, merge_jobs(jobs))?;
        Ok(rows)
    }

    /// The WAL appends that replace one day's rollup bars of `syms` (deletes of the old
    /// ones, then the new bars), for every rollup timeframe, and the number of new bars.
    #[allow(clippy::too_many_arguments)]
    fn day_ops(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        syms: &BTreeSet<String>,
        src: Option<&RecordBatch>,
        marks: &HashMap<String, i64>,
    ) -> Result<(usize, Vec<WalJob>), ReadError> {
        let mut rows = 0;
        let mut jobs = Vec::new();
        for tf in &cfg.rollups {
            let path = self.wal_path(dataset, *tf, day);
            // A (timeframe, day) with no WAL and no cold part has nothing to delete.
            let has_old = self.wal_exists(&path) || self.has_cold(dataset, *tf, day);
            let mut ops: Vec<Op> = if has_old {
                syms.iter()
                    .map(|s| {
                        Op::Delete(DeleteRange {
                            symbol: Some(s.clone()),
                            start: day * NANOS_PER_DAY,
                            end: (day + 1) * NANOS_PER_DAY,
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(src) = src {
                let mut b = Self::rollup_bucketing(cfg, *tf);
                let out = resample::resample(src, kind, cfg.base, &mut b, Some(marks))?;
                rows += out.num_rows();
                if out.num_rows() > 0 {
                    ops.push(Op::Upsert(out));
                }
            }
            if !ops.is_empty() {
                jobs.push((path, ops)); // else nothing to delete, nothing to write
            }
        }
        Ok((rows, jobs))
    }

    /// Run WAL appends (each to a different file) on every CPU, then record them in
    /// `wal_lens` and the sync list in order. The first failure, in job order, is returned.
    fn write_wal_jobs(&mut self, policy: FsyncPolicy, jobs: Vec<WalJob>) -> Result<(), WalError> {
        let work: Vec<(PathBuf, Option<u64>, Vec<Op>)> = jobs
            .into_iter()
            .map(|(p, ops)| {
                let known = self.wal_lens.get(&p).copied();
                (p, known, ops)
            })
            .collect();
        let (root, opts) = (&self.root, &self.opts);
        let results = par_map(&work, |(path, known, ops)| {
            append_frames(path, *known, root, opts, |w| w.append(ops))
        });
        let mut first_err = None;
        for ((path, _, _), r) in work.into_iter().zip(results) {
            if let Err(e) = self.record_append(&path, policy, r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Append `ops` to a hot WAL, keeping `wal_lens` current. The sync the policy asks for
    /// is deferred to [`BarStore::sync_pending`], which the write operations call before
    /// they return (so an acknowledged write is as durable as before) and which syncs
    /// the files of a many-day write concurrently and each directory once.
    fn append_wal(&mut self, path: &Path, policy: FsyncPolicy, ops: &[Op]) -> Result<(), WalError> {
        let known = self.wal_lens.get(path).copied();
        let res = append_frames(path, known, &self.root, &self.opts, |w| w.append(ops));
        self.record_append(path, policy, res)
    }

    /// Drop the sync list of a write that failed before its sync point.
    fn forget_pending(&mut self) {
        self.pending_sync.clear();
        self.pending_dirs.clear();
    }

    /// `fdatasync` every WAL appended since the last call (on up to 4 threads: the device
    /// works on several at once), then `fsync` each directory that gained a file.
    fn sync_pending(&mut self) -> Result<(), WalError> {
        let files: Vec<PathBuf> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        let dirs = std::mem::take(&mut self.pending_dirs);
        let sync = |paths: &[PathBuf], data_only: bool| -> Result<(), WalError> {
            for p in paths {
                let io = |source| WalError::Io {
                    path: p.clone(),
                    source,
                };
                let f = File::open(p).map_err(io)?;
                if data_only {
                    f.sync_data().map_err(io)?;
                } else {
                    f.sync_all().map_err(io)?;
                }
            }
            Ok(())
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(files.len().div_ceil(8).max(1));
        if threads <= 1 {
            sync(&files, true)?;
        } else {
            let per = files.len().div_ceil(threads);
            std::thread::scope(|sc| {
                let sync = &sync;
                let handles: Vec<_> = files
                    .chunks(per)
                    .map(|c| sc.spawn(move || sync(c, true)))
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("sync thread"))
            })?;
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        sync(&dirs, false)
    }

    /// Record a hot WAL (writer only) and the length up to which it is valid.
    fn note_wal(&mut self, path: &Path, len: u64) {
        self.wal_lens.insert(path.to_path_buf(), len);
        if len == u64::MAX {
            // A failed append: whatever the file holds now is read afresh.
            self.day_cache().forget(path);
        }
        let day = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_day);
        if let (Some(dir), Some(day)) = (path.parent(), day) {
            self.hot_index
                .entry(dir.to_path_buf())
                .or_default()
                .insert(day);
        }
    }

    /// Forget a hot WAL that was deleted.
    fn forget_wal(&mut self, path: &Path) {
        self.wal_lens.remove(path);
        self.day_cache().forget(path);
        let day = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_day);
        if let (Some(dir), Some(day)) = (path.parent(), day) {
            if let Some(days) = self.hot_index.get_mut(dir) {
                days.remove(&day);
            }
        }
    }

    /// Days with base data of (dataset, tf) in `range`, per the writer's view: hot WALs
    /// and cold parts. `true` marks a day with a hot WAL (its content needs a read; a
    /// cold-only day's symbols are in the catalog).
    fn data_days(
        &self,
        dataset: &str,
        tf: Timeframe,
        range: impl std::ops::RangeBounds<i64> + Clone,
    ) -> BTreeMap<i64, bool> {
        let dir = self.root.join("_hot").join(dataset).join(tf.to_string());
        let mut days: BTreeMap<i64, bool> = BTreeMap::new();
        if let Some(hot) = self.hot_index.get(&dir) {
            days.extend(hot.range(range.clone()).map(|d| (*d, true)));
        }
        if let Some(parts) = self.cold_parts_of(dataset, tf) {
            for p in parts.iter().filter(|p| range.contains(&p.day)) {
                days.entry(p.day).or_insert(false);
            }
        }
        days
    }

    fn cold_parts_of(&self, dataset: &str, tf: Timeframe) -> Option<&Vec<PartFile>> {
        self.catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
    }

    /// Which of `syms` have base rows on `day` (a day listed by [`BarStore::data_days`]),
    /// and those rows when the day had to be read.
    fn symbols_on(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        day: i64,
        hot: bool,
        syms: &BTreeSet<String>,
    ) -> Result<(BTreeSet<String>, Option<RecordBatch>), ReadError> {
        if !hot {
            // Cold only: the catalog lists the symbols of each part exactly.
            let listed: BTreeSet<String> = self
                .cold_parts(dataset, cfg.base, day)
                .into_iter()
                .flat_map(|p| p.symbols)
                .filter(|s| syms.contains(s))
                .collect();
            return Ok((listed, None));
        }
        let kind = Self::kind_of(cfg, cfg.base);
        let rows = self.read_base_day(dataset, cfg.base, kind, day, Some(syms))?;
        let found = rows
            .as_ref()
            .map(|b| merge::symbols_of(b).into_iter().collect())
            .unwrap_or_default();
        Ok((found, rows))
    }

    /// The symbols of `syms` with base rows on a day after `day`.
    fn symbols_after(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        syms: &BTreeSet<String>,
        day: i64,
    ) -> Result<BTreeSet<String>, ReadError> {
        let mut pending = syms.clone();
        let mut found = BTreeSet::new();
        for (d, hot) in self.data_days(dataset, cfg.base, day + 1..) {
            if pending.is_empty() {
                break;
            }
            let (here, _) = self.symbols_on(dataset, cfg, d, hot, &pending)?;
            for s in here {
                pending.remove(&s);
                found.insert(s);
            }
        }
        Ok(found)
    }

    /// For each of `syms`, the latest day in `(after, before)` with base rows of it: one
    /// entry per such day, with the day's merged rows of the symbols whose latest day it is.
    fn latest_rows_before(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        syms: &BTreeSet<String>,
        after: i64,
        before: i64,
    ) -> Result<Vec<(i64, RecordBatch)>, ReadError> {
        let mut pending = syms.clone();
        let mut out = Vec::new();
        if after.saturating_add(1) >= before {
            return Ok(out);
        }
        let kind = Self::kind_of(cfg, cfg.base);
        for (d, hot) in self
            .data_days(dataset, cfg.base, after + 1..before)
            .into_iter()
            .rev()
        {
            if pending.is_empty() {
                break;
            }
            let (here, rows) = self.symbols_on(dataset, cfg, d, hot, &pending)?;
            if here.is_empty() {
                continue;
            }
            let rows = match rows {
                Some(r) => Some(r),
                None => self.read_base_day(dataset, cfg.base, kind, d, Some(&here))?,
            };
            for s in &here {
                pending.remove(s);
            }
            if let Some(r) = rows {
                out.push((d, r));
            }
        }
        Ok(out)
    }

    /// Whether a hot WAL exists (writer only: from `wal_lens`, no `stat`).
    fn wal_exists(&self, path: &Path) -> bool {
        self.wal_lens.contains_key(path)
    }

    /// Whether the cold tier has a part for (dataset, timeframe, day).
    fn has_cold(&self, dataset: &str, tf: Timeframe, day: i64) -> bool {
        self.catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
            .is_some_and(|v| v.iter().any(|p| p.day == day))
    }

    fn cold_parts(&self, dataset: &str, tf: Timeframe, day: i64) -> Vec<PartFile> {
        self.catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
            .map(|v| v.iter().filter(|p| p.day == day).cloned().collect())
            .unwrap_or_default()
    }

    /// The merged content of one (dataset, timeframe, day): cold parts overlaid with the
    /// hot WAL, restricted to `symbols` when given, sorted by key.
    ///
    /// The writer keeps recently read days merged in memory (its day cache) and, when a
    /// WAL has grown since, decodes only the frames appended since: a live feed's append
    /// then reads its day in time linear in the day's rows, not in its frames.
    pub fn read_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Option<RecordBatch>, ReadError> {
        if self.writable {
            // Queries keep only the newest day of a timeframe (the live one) in the cache.
            let dir = self.root.join("_hot").join(dataset).join(tf.to_string());
            let newest = self.hot_index.get(&dir).and_then(|d| d.last()) == Some(&day);
            return self.cached_day(dataset, tf, kind, day, symbols, newest);
        }
        let mut base = Vec::new();
        for p in self.cold_parts(dataset, tf, day) {
            if let Some(s) = symbols {
                if !p.symbols.iter().any(|x| s.contains(x)) {
                    continue;
                }
            }
            base.extend(read_parquet_as(
                &self.root.join(&p.path),
                Some(&kind.schema()),
            )?);
        }
        let (ops, _) = wal::replay(&self.wal_path(dataset, tf, day))?;
        match (merge::apply(kind, base, ops)?, symbols) {
            (Some(b), Some(s)) => Ok(select_symbols(&b, s)?),
            (m, _) => Ok(m),
        }
    }

    /// [`BarStore::read_day`] for the write path (writer only): the day read is kept in
    /// the cache, for the next write to the same day.
    fn read_base_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Option<RecordBatch>, ReadError> {
        debug_assert!(self.writable);
        self.cached_day(dataset, tf, kind, day, symbols, true)
    }

    /// Writer only: [`BarStore::read_day`] through the [`DayCache`]. A day not cached is
    /// read from disk, and cached only when `keep`.
    fn cached_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
        symbols: Option<&BTreeSet<String>>,
        keep: bool,
    ) -> Result<Option<RecordBatch>, ReadError> {
        let path = self.wal_path(dataset, tf, day);
        let cold: Vec<String> = self
            .cold_parts(dataset, tf, day)
            .into_iter()
            .map(|p| p.path)
            .collect();
        // The WAL's valid length as the writer knows it (0: no WAL). Unknown after a failed
        // append: then the file is read as it is, and not cached.
        let len = match self.wal_lens.get(&path) {
            None => Some(0),
            Some(&u64::MAX) => None,
            Some(&n) => Some(n),
        };
        if let Some(len) = len {
            let have = match self.day_cache().find(&path, &cold) {
                Some(e) if e.wal_len == len => return Ok(e.select(kind, symbols)?),
                Some(e) if e.wal_len < len => Some(e.wal_len),
                _ => None,
            };
            // Decode the frames appended since, outside the lock, then merge them in.
            let tail = have.map(|h| wal::replay_range(&path, h, len)).transpose()?;
            if let (Some(have), Some(Some(ops))) = (have, tail) {
                let mut cache = self.day_cache();
                if let Some(e) = cache.find(&path, &cold).filter(|e| e.wal_len == have) {
                    if let Err(err) = merge::apply_by_symbol(kind, &mut e.day, ops) {
                        cache.forget(&path);
                        return Err(err.into());
                    }
                    e.wal_len = len;
                    e.bytes = e.estimate();
                }
                // (Another reader may have brought it up to date meanwhile.)
                if let Some(e) = cache.find(&path, &cold).filter(|e| e.wal_len == len) {
                    let out = e.select(kind, symbols)?;
                    cache.make_room(0);
                    return Ok(out);
                }
            }
        }
        let (merged, replayed) = self.read_merged(kind, &path, &cold)?;
        if keep && len.is_some() && replayed == len {
            self.day_cache().put(CachedDay::new(
                path,
                cold,
                replayed.unwrap_or(0),
                merged.as_ref(),
            ));
        }
        match (merged, symbols) {
            (Some(b), Some(s)) => Ok(select_symbols(&b, s)?),
            (m, _) => Ok(m),
        }
    }

    /// The day cache; a panic while it was locked leaves it empty, not half-updated.
    fn day_cache(&self) -> std::sync::MutexGuard<'_, DayCache> {
        self.day_cache.lock().unwrap_or_else(|poisoned| {
            let mut c = poisoned.into_inner();
            c.entries.clear();
            self.day_cache.clear_poison();
            c
        })
    }

    /// Read and merge a day's cold parts and WAL; also returns the WAL length replayed.
    fn read_merged(
        &self,
        kind: Kind,
        wal_path: &Path,
        cold: &[String],
    ) -> Result<(Option<RecordBatch>, Option<u64>), ReadError> {
        let mut base = Vec::new();
        for p in cold {
            base.extend(read_parquet_as(&self.root.join(p), Some(&kind.schema()))?);
        }
        let (ops, rep) = wal::replay(wal_path)?;
        let replayed = rep.is_clean().then_some(rep.valid_len);
        Ok((merge::apply(kind, base, ops)?, replayed))
    }

    /// Timeframes stored for a dataset, finest first.
    pub fn stored_timeframes(&self, dataset: &str) -> Vec<Timeframe> {
        self.catalog
            .datasets
            .get(dataset)
            .map(|e| {
                let mut v = vec![e.config.base];
                v.extend(e.config.rollups.iter().copied());
                v
            })
            .unwrap_or_default()
    }

    /// Answer a query: stored timeframes are read as stored (hot merged over cold); other
    /// timeframes are resampled on read from the coarsest stored one that divides them.
    /// Rows are sorted by (symbol, ts); `limit` applies per symbol.
    pub fn query(&self, q: &Query) -> Result<RecordBatch, QueryError> {
        let entry =
            self.catalog
                .datasets
                .get(&q.dataset)
                .ok_or_else(|| QueryError::UnknownDataset {
                    name: q.dataset.clone(),
                    known: self.known(),
                })?;
        let cfg = &entry.config;
        let symbols: Option<BTreeSet<String>> = match &q.symbols {
            Symbols::All => None,
            Symbols::List(v) => {
                for s in v {
                    if !entry.symbols.contains(s) {
                        return Err(QueryError::UnknownSymbol {
                            dataset: q.dataset.clone(),
                            symbol: s.clone(),
                            known: list(&entry.symbols),
                        });
                    }
                }
                Some(v.iter().cloned().collect())
            }
        };
        let stored = self.stored_timeframes(&q.dataset);
        let offset = q.offset.unwrap_or_else(|| q.timeframe.default_offset());
        let (start, end) = (q.start.unwrap_or(i64::MIN), q.end.unwrap_or(i64::MAX));
        if start >= end {
            return Err(QueryError::Range {
                start: validate::iso(start),
                end: validate::iso(end),
            });
        }
        let direct = stored.contains(&q.timeframe) && offset == q.timeframe.default_offset();
        let session_cal = match &cfg.session {
            Some(s) if q.timeframe.nanos() >= Some(NANOS_PER_DAY) => {
                Some(s.calendar().expect("validated at creation"))
            }
            _ => None,
        };
        let mut out = if direct {
            let kind = Self::kind_of(cfg, q.timeframe);
            self.read_range(&q.dataset, q.timeframe, kind, start, end, symbols.as_ref())?
        } else {
            let asked = q.timeframe.nanos().ok_or_else(|| QueryError::Timeframe {
                dataset: q.dataset.clone(),
                asked: q.timeframe,
                stored: list(stored.iter().map(|t| t.to_string())),
            })?;
            // Coarsest stored timeframe whose bars nest inside the asked buckets.
            let src = stored
                .iter()
                .copied()
                .filter(|t| match t.nanos() {
                    None => true,
                    Some(n) => {
                        asked % n == 0
                            && offset.rem_euclid(n) == t.default_offset().rem_euclid(n)
                            // With a session, the source bars must nest in its
                            // half-hour-aligned opening and closing times.
                            && (session_cal.is_none() || (30 * 60 * 1_000_000_000) % n == 0)
                    }
                })
                .max_by_key(|t| t.nanos().unwrap_or(0))
                .ok_or_else(|| QueryError::Timeframe {
                    dataset: q.dataset.clone(),
                    asked: q.timeframe,
                    stored: list(stored.iter().map(|t| t.to_string())),
                })?;
            let mut b = Bucketing::new(q.timeframe, offset, session_cal)?;
            let (ws, we) = b.widen(start, end);
            let kind = Self::kind_of(cfg, src);
            let raw = self.read_range(&q.dataset, src, kind, ws, we, symbols.as_ref())?;
            // `complete` as rollups on write set it: a bucket is closed when it ends at or
            // before the end of the symbol's latest base bar. The last source row says so
            // only when the source is the base and the read ran to the end of the data: a
            // source rollup's last bar may still be forming (the 05:00 1h bar of a last
            // base bar at 05:31 ends at 06:00, yet 05:00–06:00 is not closed), and a read
            // that stops at `end` misses later bars.
            let marks = if src == cfg.base && we == i64::MAX {
                None
            } else {
                let syms: BTreeSet<String> = merge::symbols_of(&raw).into_iter().collect();
                Some(self.base_watermarks(&q.dataset, cfg, syms)?)
            };
            let res = resample::resample(&raw, kind, src, &mut b, marks.as_ref())
                .map_err(ReadError::from)?;
            filter_ts(&res, start, end).map_err(ReadError::from)?
        };
        if let Some(n) = q.limit {
            out = limit_per_symbol(&out, n, q.from_end).map_err(ReadError::from)?;
        }
        if let Some(fields) = &q.fields {
            let schema = out.schema();
            let mut idx = vec![0, 1];
            for f in fields {
                if f == schema::TS || f == schema::SYMBOL {
                    continue;
                }
                match schema.index_of(f) {
                    Ok(i) => idx.push(i),
                    Err(_) => {
                        return Err(QueryError::UnknownField {
                            field: f.clone(),
                            known: list(schema.fields().iter().map(|f| f.name())),
                        })
                    }
                }
            }
            out = out.project(&idx).map_err(ReadError::from)?;
        }
        Ok(out)
    }

    /// Per symbol of `syms`, the end of its latest base bar (`ts` + the base length; for
    /// ticks the latest trade's `ts`), found from the newest day with base data back: the
    /// watermark of `complete`.
    fn base_watermarks(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        mut pending: BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ReadError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        let mut days: BTreeSet<i64> = self.hot_days(dataset, cfg.base).into_iter().collect();
        if let Some(parts) = self.cold_parts_of(dataset, cfg.base) {
            days.extend(parts.iter().map(|p| p.day));
        }
        let mut wm = HashMap::new();
        for day in days.into_iter().rev() {
            if pending.is_empty() {
                break;
            }
            if let Some(b) = self.read_day(dataset, cfg.base, kind, day, Some(&pending))? {
                raise_watermarks(&b, len, &mut wm);
                for s in merge::symbols_of(&b) {
                    pending.remove(&s);
                }
            }
        }
        Ok(wm)
    }

    fn read_range(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        start: i64,
        end: i64,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<RecordBatch, ReadError> {
        let first = start.div_euclid(NANOS_PER_DAY);
        let last = if end == i64::MAX {
            i64::MAX
        } else {
            (end - 1).div_euclid(NANOS_PER_DAY)
        };
        let mut days: BTreeSet<i64> = self
            .hot_days(dataset, tf)
            .into_iter()
            .filter(|d| (first..=last).contains(d))
            .collect();
        if let Some(parts) = self
            .catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
        {
            for p in parts {
                let sym_ok = symbols.is_none_or(|s| p.symbols.iter().any(|x| s.contains(x)));
                if (first..=last).contains(&p.day) && sym_ok && p.max_ts >= start && p.min_ts < end
                {
                    days.insert(p.day);
                }
            }
        }
        let schema = kind.schema();
        let days: Vec<i64> = days.into_iter().collect();
        let read = |days: &[i64]| -> Result<Vec<RecordBatch>, ReadError> {
            let mut out = Vec::with_capacity(days.len());
            for &day in days {
                if let Some(b) = self.read_day(dataset, tf, kind, day, symbols)? {
                    out.push(schema::conform(&b, &schema)?);
                }
            }
            Ok(out)
        };
        // Days are independent (a file or two each): read them on every CPU, in order.
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(days.len() / 4)
            .max(1);
        let pieces: Vec<RecordBatch> = if threads == 1 {
            read(&days)?
        } else {
            let per = days.len().div_ceil(threads);
            let results: Vec<Result<Vec<RecordBatch>, ReadError>> = std::thread::scope(|sc| {
                let read = &read;
                let handles: Vec<_> = days
                    .chunks(per)
                    .skip(1)
                    .map(|c| sc.spawn(move || read(c)))
                    .collect();
                let mut r = vec![read(&days[..per.min(days.len())])];
                r.extend(
                    handles
                        .into_iter()
                        .map(|h| h.join().expect("reader thread")),
                );
                r
            });
            let mut pieces = Vec::new();
            for r in results {
                pieces.extend(r?);
            }
            pieces
        };
        let all = arrow_select::concat::concat_batches(&schema, &pieces)?;
        let all = filter_ts(&all, start, end)?;
        Ok(merge::sort_dedup(kind, all)?)
    }

    /// `dataset`, or every dataset when `None`.
    fn write_down_names(&self, dataset: Option<&str>) -> Result<Vec<String>, WriteDownError> {
        match dataset {
            Some(d) if self.catalog.datasets.contains_key(d) => Ok(vec![d.into()]),
            Some(d) => Err(WriteDownError::UnknownDataset {
                name: d.into(),
                known: self.known(),
            }),
            None => Ok(self.catalog.datasets.keys().cloned().collect()),
        }
    }

    /// The days, ascending, that [`BarStore::write_down`] with the same arguments would
    /// write down (a hot WAL in any timeframe of `dataset`, or of every dataset).
    pub fn write_down_days(
        &self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<Vec<i64>, WriteDownError> {
        let mut days = BTreeSet::new();
        for name in self.write_down_names(dataset)? {
            for tf in self.stored_timeframes(&name) {
                days.extend(
                    self.hot_days(&name, tf)
                        .into_iter()
                        .filter(|d| *d < before_day),
                );
            }
        }
        Ok(days.into_iter().collect())
    }

    /// Move closed days of the hot tier into Parquet: for every (dataset, timeframe, day)
    /// with `day < before_day` that has a WAL, write the merged day as a new part, commit
    /// the catalog once, then delete the replaced parts and the WALs.
    pub fn write_down(
        &mut self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<WriteDownSummary, WriteDownError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteDownError::Unwritable { root, reason });
        }
        if !self.writable {
            return Err(WriteDownError::ReadOnly);
        }
        let names = self.write_down_names(dataset)?;
        let mut summary = WriteDownSummary::default();
        let mut next = self.catalog.clone();
        let mut garbage: Vec<PathBuf> = Vec::new();
        for name in &names {
            for tf in self.stored_timeframes(name) {
                let cfg = &self.catalog.datasets[name].config;
                let kind = Self::kind_of(cfg, tf);
                for day in self
                    .hot_days(name, tf)
                    .into_iter()
                    .filter(|d| *d < before_day)
                {
                    let old = self.cold_parts(name, tf, day);
                    let merged = self.read_day(name, tf, kind, day, None)?;
                    let key = tf.to_string();
                    let parts = next
                        .datasets
                        .get_mut(name)
                        .expect("dataset exists")
                        .cold
                        .entry(key.clone())
                        .or_default();
                    parts.retain(|p| p.day != day);
                    if let Some(b) = merged {
                        let part = old.iter().map(|p| p.part + 1).max().unwrap_or(0);
                        let rel = format!(
                            "dataset={name}/tf={key}/date={}/part-{part}.parquet",
                            day_string(day)
                        );
                        let bytes = write_parquet_with(&self.root.join(&rel), &b, &self.opts)?;
                        let v = schema::view(&b);
                        summary.rows += b.num_rows() as u64;
                        summary.bytes += bytes;
                        parts.push(PartFile {
                            path: rel,
                            day,
                            part,
                            rows: b.num_rows() as u64,
                            bytes,
                            min_ts: v.ts.iter().copied().min().unwrap_or(0),
                            max_ts: v.ts.iter().copied().max().unwrap_or(0),
                            symbols: merge::symbols_of(&b),
                        });
                        parts.sort_by_key(|p| p.day);
                    }
                    summary.partitions += 1;
                    garbage.extend(old.iter().map(|p| self.root.join(&p.path)));
                    garbage.push(self.wal_path(name, tf, day));
                }
            }
        }
        if summary.partitions == 0 {
            return Ok(summary);
        }
        crate::failpoint("writedown:before_commit");
        next.commit_with(&self.root, &self.opts)?;
        self.catalog = next;
        crate::failpoint("writedown:after_commit");
        for g in garbage {
            let _ = std::fs::remove_file(&g);
            self.forget_wal(&g);
        }
        self.collect_garbage();
        Ok(summary)
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Split a sorted batch into one piece per UTC day (a slice when the day's rows are
/// contiguous, else a `take` of them in row order). Rows are grouped by runs of equal
/// days, so the map is touched once per run, not once per row.
fn split_days(batch: &RecordBatch) -> Result<Vec<(i64, RecordBatch)>, ArrowError> {
    let ts = schema::f_ts(batch);
    let mut groups: BTreeMap<i64, Vec<(usize, usize)>> = BTreeMap::new();
    let mut i = 0;
    while i < ts.len() {
        let day = ts[i].div_euclid(NANOS_PER_DAY);
        let mut j = i + 1;
        while j < ts.len() && ts[j].div_euclid(NANOS_PER_DAY) == day {
            j += 1;
        }
        groups.entry(day).or_default().push((i, j));
        i = j;
    }
    groups
        .into_iter()
        .map(|(day, runs)| {
            let piece = if let [(a, b)] = runs[..] {
                batch.slice(a, b - a)
            } else {
                let idx: UInt32Array = runs
                    .iter()
                    .flat_map(|&(a, b)| (a as u32)..(b as u32))
                    .collect();
                arrow_select::take::take_record_batch(batch, &idx)?
            };
            Ok((day, piece))
        })
        .collect()
}

/// One WAL append: the file and its frames.
type WalJob = (PathBuf, Vec<Op>);

/// One day's rollup bars after an upsert, and for each
/// symbol of the batch whether the batch holds its first row of the day.
type DayOps = (RollupBars, Vec<(String, bool)>);

/// Rollup bars to upsert: (timeframe, UTC day, bars).
type RollupBars = Vec<(Timeframe, i64, RecordBatch)>;

/// Jobs with the same file joined into one, in first-seen order (the appends of one write
/// run concurrently, so each file must appear once).
fn merge_jobs(jobs: Vec<WalJob>) -> Vec<WalJob> {
    let mut at: HashMap<PathBuf, usize> = HashMap::new();
    let mut out: Vec<WalJob> = Vec::with_capacity(jobs.len());
    for (path, mut ops) in jobs {
        match at.get(&path) {
            Some(&k) => out[k].1.append(&mut ops),
            None => {
                at.insert(path.clone(), out.len());
                out.push((path, ops));
            }
        }
    }
    out
}

/// The bucket width of a rollup that splits the UTC day into whole buckets (bucketed
/// from the epoch, no session), which can be rewritten bucket by bucket; `None` for the
/// rest (`1d`, session days, widths that do not divide the day), rewritten by whole days.
fn divides_day(cfg: &DatasetConfig, tf: Timeframe) -> Option<i64> {
    let n = tf.nanos()?;
    let session = cfg.session.is_some() && n >= NANOS_PER_DAY;
    (n < NANOS_PER_DAY && NANOS_PER_DAY % n == 0 && tf.default_offset() == 0 && !session)
        .then_some(n)
}

/// Row range `[start, end)` of each symbol of a batch sorted by (symbol, ts).
fn symbol_runs(batch: &RecordBatch) -> HashMap<&str, (usize, usize)> {
    let v = schema::view(batch);
    let mut out = HashMap::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let j = schema::run_end(v.symbol, i);
        out.insert(v.symbol.value(i), (i, j));
        i = j;
    }
    out
}

/// Per symbol of a sorted batch, the span of its last row: the bucket of a day's last
/// bar, which closes when later rows arrive (or reopens when they are deleted).
fn last_bar_spans(batch: &RecordBatch) -> HashMap<String, Vec<(i64, i64)>> {
    let v = schema::view(batch);
    symbol_runs(batch)
        .into_iter()
        .map(|(s, (_, j))| (s.to_string(), vec![(v.ts[j - 1], v.ts[j - 1])]))
        .collect()
}

/// `f` over `items` on up to the available CPUs (at most 4), results in item order.
/// Small inputs (under 16 items) stay on the calling thread.
fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(items.len() / 8)
        .max(1);
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

/// Raise `wm[symbol]` to the end (`ts + len`) of each row's bar: one map lookup (and at
/// most one allocation) per run of equal symbols, not per row.
fn raise_watermarks(batch: &RecordBatch, len: i64, wm: &mut HashMap<String, i64>) {
    let v = schema::view(batch);
    let n = batch.num_rows();
    let mut i = 0;
    while i < n {
        let sym = v.symbol.value(i);
        let j = schema::run_end(v.symbol, i);
        let hi = v.ts[i..j].iter().copied().max().unwrap_or(i64::MIN);
        let end = hi + len;
        match wm.get_mut(sym) {
            Some(e) => *e = (*e).max(end),
            None => {
                wm.insert(sym.to_string(), end);
            }
        }
        i = j;
    }
}

/// The rows of `symbols` in a batch sorted by (symbol, ts), found by binary search: a
/// slice (no copy) for one symbol. `None` when there are none.
fn select_symbols(
    b: &RecordBatch,
    symbols: &BTreeSet<String>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let v = schema::view(b);
    let n = b.num_rows();
    let first_at_or_after = |s: &str, strictly_after: bool| {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let c = v.symbol.value(mid).cmp(s);
            if c.is_lt() || (strictly_after && c.is_eq()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let runs: Vec<(usize, usize)> = symbols
        .iter()
        .map(|s| (first_at_or_after(s, false), first_at_or_after(s, true)))
        .filter(|(a, z)| a < z)
        .collect();
    Ok(match runs[..] {
        [] => None,
        [(a, z)] => Some(b.slice(a, z - a)),
        _ => {
            let idx: UInt32Array = runs
                .iter()
                .flat_map(|&(a, z)| (a as u32)..(z as u32))
                .collect();
            Some(arrow_select::take::take_record_batch(b, &idx)?)
        }
    })
}

fn filter_ts(b: &RecordBatch, start: i64, end: i64) -> Result<RecordBatch, ArrowError> {
    let ts = schema::f_ts(b);
    if ts.iter().all(|t| *t >= start && *t < end) {
        return Ok(b.clone());
    }
    let keep: BooleanArray = ts.iter().map(|t| Some(*t >= start && *t < end)).collect();
    arrow_select::filter::filter_record_batch(b, &keep)
}

fn limit_per_symbol(b: &RecordBatch, n: usize, from_end: bool) -> Result<RecordBatch, ArrowError> {
    let v = schema::view(b);
    let mut idx = Vec::new();
    let mut i = 0;
    while i < b.num_rows() {
        let mut j = i;
        while j < b.num_rows() && v.symbol.value(j) == v.symbol.value(i) {
            j += 1;
        }
        let (lo, hi) = if from_end {
            (j.saturating_sub(n).max(i), j)
        } else {
            (i, (i + n).min(j))
        };
        idx.extend((lo..hi).map(|k| k as u32));
        i = j;
    }
    arrow_select::take::take_record_batch(b, &UInt32Array::from(idx))
}
