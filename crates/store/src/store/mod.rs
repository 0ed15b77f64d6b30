//! [`BarStore`]: the embedded store over a data directory, a façade over its tiers.
//!
//! ```text
//! <root>/_catalog/CURRENT, v<N>.json                      catalog versions
//! <root>/_hot/<dataset>/<YYYY-MM-DD>.wal                    hot tier (WAL), per dataset-day
//! <root>/dataset=<D>/tf=<tf>/date=<YYYY-MM-DD>/part-<N>.parquet   cold tier (Hive layout)
//! <root>/_changes/<dataset>.log                             change log, per dataset
//! ```
//!
//! The façade owns the catalog (datasets, symbols, cold parts) and the writer lock, checks
//! what is asked, and runs each operation over the tiers: [`crate::hot::HotTier`] (WALs,
//! the day cache, the undo of a failed write) and [`crate::cold::ColdTier`] (Parquet
//! parts). Rollups ([`rollup`]), queries ([`query`]) and write-down ([`write_down`]) are
//! its modules; errors are in [`error`]. Every write that changes rows a follower's resume
//! point would not see records it first in the dataset's change log ([`crate::changes`]).

use crate::catalog::{Catalog, CatalogError, DatasetConfig, DatasetEntry};
use crate::changes::{ChangeKind, ChangeLogs};
use crate::cold::ColdTier;
use crate::hot::HotTier;
use crate::merge::{self, DeleteRange, Op};
use crate::schema::{self, Kind};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use crate::validate::{self, RowPolicy, RowRules};
use crate::wal::ReplayReport;
use arrow_array::{RecordBatch, UInt32Array};
use arrow_schema::{ArrowError, SchemaRef};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::path::{Path, PathBuf};

mod calendar;
mod change_log;
mod error;
mod lifecycle;
mod lock;
mod open;
mod query;
mod read_only;
mod rollup;
mod write_down;

pub use crate::cold::parquet::{read_parquet, read_parquet_as, write_parquet, write_parquet_with};
pub use crate::hot::DAY_CACHE_BYTES;
pub use crate::time::{day_string, parse_day};
pub(crate) use error::list;
pub use error::{
    AppendError, AppendSummary, CreateDatasetError, DropDatasetError, OpenError, QueryError,
    ReadError, RetentionError, StoredSchemaError, TrimError, WriteDownError, WriteDownSummary,
    WriteError, WriteSummary,
};
pub use lifecycle::{DatasetFootprint, RetentionSummary, TrimSummary};
pub use lock::WRITER_LOCK;
pub(crate) use query::select_symbols;
pub use query::{Query, Symbols};
pub use read_only::ReadOnlyStore;
pub use write_down::CompactSummary;

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
    /// The hot tier: WALs, what the writer knows of them, the day cache, the undo.
    hot: HotTier,
    /// Why a writer opened read-only (see [`BarStore::read_only_reason`]).
    read_only_reason: Option<String>,
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
    /// Writer only: symbols the write in progress added to a dataset (removed again if the
    /// write fails).
    new_symbols: Option<(String, Vec<String>)>,
    /// The datasets' change logs, and the newest ts per symbol the writer checks upserts
    /// against.
    changes: ChangeLogs,
}

impl BarStore {
    /// Set how much memory the writer may use to keep recently written days merged (default
    /// [`DAY_CACHE_BYTES`]; estimated from rows and column widths). With the day of a
    /// live feed cached, an append reads back its day in time linear in the rows of the
    /// symbols it touches, instead of decoding every frame of the day's WAL. `0` turns the
    /// cache off. Read-only stores have no cache.
    pub fn set_day_cache_bytes(&mut self, bytes: usize) {
        self.hot.set_day_cache_bytes(bytes);
    }

    /// The cold tier as the current catalog lists it.
    fn cold(&self) -> ColdTier<'_> {
        ColdTier {
            root: &self.root,
            opts: self.hot.opts(),
            catalog: &self.catalog,
        }
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
        if !self.hot.writable() {
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
        config.check_calendar()?;
        config.check_retention()?;
        for r in &config.rollups {
            let ok = match (config.base.nanos(), r.nanos()) {
                (_, None) if r.is_calendar() => {
                    query::source_of(&config.stored(), *r, 0, config.session.is_some()).is_some()
                }
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
        // A name dropped before: leftovers of its files go first.
        self.remove_dropped_dirs(name);
        // A new log (new id) before the commit: a crash between them leaves a log the next
        // open removes, or the next create replaces.
        self.changes.newest.remove(name);
        self.changes.create(name)?;
        self.change_catalog(|c| {
            c.dropped.remove(name);
            c.datasets.insert(
                name.into(),
                DatasetEntry {
                    config,
                    symbols: BTreeSet::new(),
                    cold: BTreeMap::new(),
                    hot_floor: None,
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
        next.commit_with(&self.root, self.hot.opts())?;
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

    pub(crate) fn kind_of(cfg: &DatasetConfig, tf: Timeframe) -> Kind {
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
        if !self.hot.writable() {
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
        if !self.hot.writable() {
            return Err(WriteError::ReadOnly);
        }
        self.begin_write();
        let res = self.upsert_frames(dataset, batch);
        let (summary, maxes) = self.end_write(res)?;
        self.raise_newest(dataset, maxes);
        Ok(summary)
    }

    /// [`BarStore::upsert`] as one undoable write (see [`BarStore::begin_write`]).
    /// Also returns the newest ts of each symbol written, for [`BarStore::raise_newest`].
    fn upsert_frames(
        &mut self,
        dataset: &str,
        batch: &RecordBatch,
    ) -> Result<(WriteSummary, Vec<(String, i64)>), WriteError> {
        let cfg = self.entry(dataset)?.config.clone();
        let kind = Self::kind_of(&cfg, cfg.base);
        let schema_err = |source| WriteError::Schema {
            dataset: dataset.into(),
            base: cfg.base,
            source,
        };
        if batch.num_rows() == 0 {
            return Ok((WriteSummary::default(), Vec::new()));
        }
        let batch = schema::conform(batch, &kind.schema()).map_err(schema_err)?;
        let batch = merge::sort_dedup(kind, batch).map_err(schema_err)?;
        let pieces = split_days(&batch).map_err(schema_err)?;
        // A day before the retention floor: lower the floor first, so the row survives.
        self.lower_hot_floor(dataset, pieces.first().map(|(d, _)| *d))?;
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
            self.new_symbols = Some((dataset.to_string(), new));
        }
        let mut fresh = BTreeMap::new();
        let mut jobs = Vec::with_capacity(pieces.len());
        let cold = self.cold();
        for (day, piece) in &pieces {
            let is_fresh =
                !self.hot.exists(dataset, cfg.base, *day) && !cold.has(dataset, cfg.base, *day);
            jobs.push((cfg.base, *day, vec![Op::Upsert(piece.clone())]));
            fresh.insert(*day, is_fresh);
        }
        // Rows below a symbol's newest bar are logged (and synced) before they are written.
        let (changes, maxes) = self.upsert_changes(dataset, &batch)?;
        self.record_changes(dataset, cfg.fsync, changes)?;
        self.hot.write(dataset, cfg.fsync, jobs)?;
        // The base frames are durable before any rollup derived from them is written.
        self.hot.sync_pending()?;
        crate::failpoint("upsert:before_rollups");
        if !cfg.rollups.is_empty() {
            let bars = self.refresh_after_upsert(dataset, &cfg, &batch, &pieces, &fresh, &seen)?;
            self.hot.sync_pending()?;
            crate::failpoint("upsert:before_marker");
            self.hot.mark_rollups_done(dataset)?;
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
        Ok((summary, maxes))
    }

    /// Start a write that [`BarStore::end_write`] keeps or undoes (all or nothing: see
    /// [`crate::hot`]'s undo).
    fn begin_write(&mut self) {
        self.hot.begin_write();
        self.new_symbols = None;
    }

    /// Finish the write begun by [`BarStore::begin_write`]: keep it when `res` is `Ok`,
    /// else undo every WAL extension it made (and the symbols it listed) and return its
    /// error. An undo that fails turns the store read-only and says so in the error
    /// ([`WriteError::NotUndone`]).
    fn end_write<T>(&mut self, res: Result<T, WriteError>) -> Result<T, WriteError> {
        let symbols = self.new_symbols.take();
        let err = match res {
            Ok(v) => {
                self.hot
                    .end_write(true)
                    .expect("keeping a write cuts nothing");
                return Ok(v);
            }
            Err(e) => e,
        };
        if let Err(undo) = self.hot.end_write(false) {
            self.degrade(format!(
                "a write failed ({err}) and cutting back the WAL frames it had written failed too ({undo})"
            ));
            return Err(WriteError::NotUndone {
                source: Box::new(err),
                undo,
            });
        }
        if let Some((dataset, syms)) = symbols {
            // Best effort: a symbol left listed holds no rows, which queries show as such.
            let removed = self.change_catalog(|c| {
                if let Some(e) = c.datasets.get_mut(&dataset) {
                    for s in &syms {
                        e.symbols.remove(s);
                    }
                }
            });
            if let Err(e) = removed {
                tracing::warn!(dataset, symbols = ?syms, "a failed write's new symbols stay listed, with no rows: {e}");
            }
        }
        Err(err)
    }

    /// Delete rows of a symbol (or all symbols) in `[start, end)` at the base timeframe,
    /// then rewrite the rollups of the days touched. Returns the number of days touched.
    pub fn delete(&mut self, dataset: &str, range: DeleteRange) -> Result<usize, WriteError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteError::Unwritable { root, reason });
        }
        self.delete_write(dataset, range, true)
    }

    /// [`BarStore::delete_frames`] as one write of a writable store; `log: false` for a
    /// trim, which recorded one change-log entry for all of its steps.
    fn delete_write(
        &mut self,
        dataset: &str,
        range: DeleteRange,
        log: bool,
    ) -> Result<usize, WriteError> {
        if !self.hot.writable() {
            return Err(WriteError::ReadOnly);
        }
        self.begin_write();
        let res = self.delete_frames(dataset, range, log);
        self.end_write(res)
    }

    /// [`BarStore::delete`] as one undoable write (see [`BarStore::begin_write`]); `log`:
    /// record it in the change log first (a trim records itself once, and deletes without).
    fn delete_frames(
        &mut self,
        dataset: &str,
        range: DeleteRange,
        log: bool,
    ) -> Result<usize, WriteError> {
        let entry = self.entry(dataset)?;
        let cfg = entry.config.clone();
        let all_syms: BTreeSet<String> = match &range.symbol {
            Some(s) => [s.clone()].into(),
            None => entry.symbols.clone(),
        };
        if range.end <= range.start {
            return Ok(0);
        }
        if log {
            let entry = (
                ChangeKind::Remove,
                range.symbol.clone(),
                range.start,
                range.end,
            );
            self.record_changes(dataset, cfg.fsync, vec![entry])?;
        }
        let first = range.start.div_euclid(NANOS_PER_DAY);
        let last = (range.end - 1).div_euclid(NANOS_PER_DAY);
        let days: Vec<i64> = self
            .data_days(dataset, cfg.base, first..=last)
            .into_keys()
            .collect();
        let jobs = days
            .iter()
            .map(|d| (cfg.base, *d, vec![Op::Delete(range.clone())]))
            .collect();
        self.hot.write(dataset, cfg.fsync, jobs)?;
        self.hot.sync_pending()?;
        if !cfg.rollups.is_empty() && !days.is_empty() {
            self.refresh_after_delete(dataset, &cfg, &days, &all_syms)?;
            self.hot.sync_pending()?;
            self.hot.mark_rollups_done(dataset)?;
        }
        Ok(days.len())
    }

    /// Hot WAL path of a (dataset, timeframe, day).
    pub fn wal_path(&self, dataset: &str, tf: Timeframe, day: i64) -> PathBuf {
        let _ = tf;
        self.hot.day_path(dataset, day)
    }

    /// UTC days with a hot WAL for (dataset, tf), ascending.
    pub fn hot_days(&self, dataset: &str, tf: Timeframe) -> Vec<i64> {
        self.hot.days(dataset, tf)
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
        let cold = self.cold().on(dataset, tf, day);
        self.hot
            .read_day(dataset, tf, kind, day, &cold, symbols, false)
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
        debug_assert!(self.hot.writable());
        let cold = self.cold().on(dataset, tf, day);
        self.hot
            .read_day(dataset, tf, kind, day, &cold, symbols, true)
    }

    /// Timeframes stored for a dataset, finest first.
    pub fn stored_timeframes(&self, dataset: &str) -> Vec<Timeframe> {
        self.catalog
            .datasets
            .get(dataset)
            .map(|e| e.config.stored())
            .unwrap_or_default()
    }
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
