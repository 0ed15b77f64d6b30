//! The store's errors, one type per operation, and what the write operations report.

use crate::catalog::CatalogError;
use crate::changes::ChangesError;
use crate::resample::BucketError;
use crate::schema::InputError;
use crate::timeframe::Timeframe;
use crate::validate::{BadRow, RowReport};
use crate::wal::WalError;
use arrow_array::RecordBatch;
use arrow_schema::ArrowError;
use std::path::PathBuf;

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
    /// A fixed rollup that is not a whole multiple of the base timeframe or spans more
    /// than a day, or a calendar rollup that no stored timeframe nests in.
    #[error("rollup {rollup} is not usable with base {base}: a fixed rollup must be a multiple of the base timeframe and at most 1d; a calendar rollup (1M, 3M, 1Y) needs a stored timeframe whose bars nest in its months (1d, or one that divides a day; with a session, one that divides 30 minutes)")]
    Rollup {
        /// The rollup target.
        rollup: Timeframe,
        /// The base timeframe.
        base: Timeframe,
    },
    /// A calendar timeframe as base or rollup, or a week start a weekly base cannot keep.
    #[error(transparent)]
    Calendar(#[from] crate::catalog::CalendarConfigError),
    /// A rollup retention without a base retention, or shorter than it.
    #[error(transparent)]
    Retention(#[from] crate::catalog::RetentionConfigError),
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
    /// The dataset's change log could not be started; the dataset was not created.
    #[error(transparent)]
    Changes(#[from] ChangesError),
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
    /// Recording the write in the dataset's change log failed; no row was written.
    #[error(transparent)]
    Changes(#[from] ChangesError),
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
    /// Months compacted after the write-down (see [`crate::BarStore::compact`]).
    pub compacted_months: usize,
    /// Day parts merged into them.
    pub compacted_parts: usize,
    /// What retention dropped before and after (see [`crate::BarStore::apply_retention`]).
    pub expired: super::RetentionSummary,
}

pub(crate) fn list(v: impl IntoIterator<Item = impl AsRef<str>>) -> String {
    let v: Vec<String> = v.into_iter().map(|s| s.as_ref().to_string()).collect();
    if v.is_empty() {
        "(none)".into()
    } else if v.len() > 50 {
        format!("{} … ({} in all)", v[..50].join(", "), v.len())
    } else {
        v.join(", ")
    }
}

/// Failure to change or apply a dataset's retention ([`crate::BarStore::set_retention`],
/// [`crate::BarStore::apply_retention`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RetentionError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only; change retention through its writer (the daemon: `ringfeed retention --daemon`)")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// The retention settings do not fit together.
    #[error(transparent)]
    Config(#[from] crate::catalog::RetentionConfigError),
    /// Writing down the days whose rollups outlive their base bars failed, or dropping
    /// partitions did; the old state stands.
    #[error(transparent)]
    WriteDown(#[from] WriteDownError),
    /// The catalog commit failed; the old settings stand.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
}

/// Failure to trim a dataset ([`crate::BarStore::trim`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrimError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The symbol was never written to the dataset.
    #[error("unknown symbol {symbol:?} in dataset {dataset}; symbols: {known}. Leave out --symbol to trim every symbol")]
    UnknownSymbol {
        /// The dataset.
        dataset: String,
        /// The symbol asked for.
        symbol: String,
        /// Symbols that exist (the first 50).
        known: String,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only; trim through its writer (the daemon: `ringfeed trim --daemon`)")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// Writing down the days before the cut, or rewriting a part, failed; nothing of
    /// this step was committed: run the trim again once the cause is fixed.
    #[error(transparent)]
    WriteDown(#[from] WriteDownError),
    /// Removing the rows of the day holding the cut failed (the older days are trimmed):
    /// run the trim again once the cause is fixed.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The catalog commit failed; the old state stands.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// Recording the trim in the dataset's change log failed; nothing was trimmed.
    #[error(transparent)]
    Changes(#[from] ChangesError),
}

/// Failure to drop a dataset ([`crate::BarStore::drop_dataset`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DropDatasetError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}. Nothing was removed")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The store was opened read-only.
    #[error("the store is open read-only; drop through its writer (the daemon: `ringfeed drop-dataset --daemon`)")]
    ReadOnly,
    /// The writer opened the store read-only because a write it had to make first failed.
    #[error("the store at {root} is read-only because {reason}; queries still work. Free space on its disk (or fix the cause), then restart the writer or let it retry (BarStore::retry_writable)")]
    Unwritable {
        /// The data directory.
        root: PathBuf,
        /// Why it is read-only.
        reason: String,
    },
    /// The dataset has rows and the caller did not confirm.
    #[error("dataset {name:?} holds {rows} rows ({bytes} bytes over {days} days); nothing was removed: confirm with --yes (or yes=True) to drop it")]
    NotConfirmed {
        /// The dataset.
        name: String,
        /// Base rows it holds.
        rows: u64,
        /// Bytes on disk.
        bytes: u64,
        /// Days with data.
        days: usize,
    },
    /// Reading the dataset's hot days to count its rows failed.
    #[error(transparent)]
    Read(#[from] ReadError),
    /// The catalog commit failed; the dataset stands.
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    /// The dataset is dropped from the catalog, but a directory of it could not be removed.
    #[error("dataset dropped from the catalog, but {path} could not be removed ({source}); remove it by hand before creating a dataset of that name again (the writer also removes it when it next opens)")]
    Leftover {
        /// The directory.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
