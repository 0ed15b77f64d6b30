//! A dataset's lifecycle: retention (whole partitions older than a span dropped), trim
//! (rows before a time removed, of one symbol or all) and drop (the dataset gone).
//!
//! Each is crash-safe the same way write-down is: the catalog commit is the point of
//! truth, and files go after it. A part the catalog no longer lists is garbage (removed at
//! the next open, [`crate::cold::ColdTier::collect_garbage`]); a hot WAL of a day before
//! the dataset's `hot_floor`, or of a dataset the catalog does not list, is never read and
//! is removed by the writer's next open ([`BarStore::remove_dropped_wals`]).

use super::{
    list, BarStore, DropDatasetError, ReadError, RetentionError, TrimError, WriteDownError,
    WriteError,
};
use crate::catalog::{Catalog, PartFile};
use crate::changes::ChangeKind;
use crate::merge::DeleteRange;
use crate::retention::RetentionSpec;
use crate::schema;
use crate::timeframe::NANOS_PER_DAY;
use arrow_array::{BooleanArray, RecordBatch};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

/// What a retention pass dropped.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetentionSummary {
    /// Cold parts dropped (every timeframe).
    pub parts: usize,
    /// Rows in them.
    pub rows: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Hot WAL files (days) dropped without being written down.
    pub wal_files: usize,
    /// Their bytes.
    pub wal_bytes: u64,
}

impl RetentionSummary {
    /// Whether nothing was dropped.
    pub fn is_empty(&self) -> bool {
        self.parts == 0 && self.wal_files == 0
    }
}

/// What a trim removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrimSummary {
    /// Hot days written down first (so that the whole days go in one catalog commit).
    pub written_down: usize,
    /// Cold parts dropped whole (every timeframe).
    pub parts_dropped: usize,
    /// Cold parts rewritten without the trimmed rows.
    pub parts_rewritten: usize,
    /// Cold rows removed (every timeframe).
    pub rows: u64,
    /// Bytes of the parts dropped or replaced, less the bytes of their replacements.
    pub bytes_freed: i64,
    /// Whether the day holding the cut was trimmed too (a cut inside a day: rows of that
    /// day before it deleted and the day's rollups recomputed).
    pub partial_day: bool,
}

/// What a dataset holds on disk (what a drop would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DatasetFootprint {
    /// Rows at the base timeframe, cold and hot.
    pub rows: u64,
    /// Bytes on disk: every timeframe's parts and the WALs.
    pub bytes: u64,
    /// UTC days with base data (a compacted month counts its days).
    pub days: usize,
}

impl std::fmt::Display for DatasetFootprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} rows, {} bytes, {} days",
            self.rows, self.bytes, self.days
        )
    }
}

/// Each dataset's hot floor, as the hot tier wants it.
pub(crate) fn floors_of(c: &Catalog) -> HashMap<String, i64> {
    c.datasets
        .iter()
        .filter_map(|(n, e)| Some((n.clone(), e.hot_floor?)))
        .collect()
}

/// The time retention counts back from in a write-down before `before_day`: that day's
/// midnight, or now when it is later (a write-down of every day never drops more than now
/// does).
pub(super) fn retention_now(before_day: i64) -> i64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(i64::MAX, |d| d.as_nanos() as i64);
    before_day.saturating_mul(NANOS_PER_DAY).min(wall)
}

/// The fsync policy of `dataset` (checked to exist by the caller).
fn entry_fsync(store: &BarStore, dataset: &str) -> crate::wal::FsyncPolicy {
    store
        .dataset(dataset)
        .map_or(crate::wal::FsyncPolicy::Always, |e| e.config.fsync)
}

/// Remove files the catalog no longer lists (best effort: leftovers are garbage the
/// writer's next open removes).
fn remove_files(paths: &[PathBuf]) {
    for (i, p) in paths.iter().enumerate() {
        if i == 1 {
            crate::failpoint("lifecycle:mid_remove");
        }
        let _ = std::fs::remove_file(p);
    }
}

/// The rows of `b` that are not of `symbol` (any, when `None`) before `cut`.
fn without_before(
    b: &RecordBatch,
    symbol: Option<&str>,
    cut: i64,
) -> Result<RecordBatch, ReadError> {
    let v = schema::view(b);
    let keep: BooleanArray = (0..b.num_rows())
        .map(|i| Some(v.ts[i] >= cut || symbol.is_some_and(|s| v.symbol.value(i) != s)))
        .collect();
    Ok(arrow_select::filter::filter_record_batch(b, &keep)?)
}

impl BarStore {
    /// Change a dataset's retention (`None`: keep everything) and the longer retention of
    /// its rollups (`None`: as long as the base bars). Takes effect at the next write-down
    /// or [`BarStore::apply_retention`]; nothing is dropped here.
    ///
    /// ```
    /// # use ringfeed_store::{BarStore, DatasetConfig};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = BarStore::open(dir.path()).unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
    /// store.set_retention("demo", Some("400d".parse().unwrap()), Some("10y".parse().unwrap())).unwrap();
    /// assert_eq!(store.dataset("demo").unwrap().config.retention.unwrap().to_string(), "400d");
    /// // Rollups kept for less than the base bars are refused.
    /// assert!(store.set_retention("demo", Some("2y".parse().unwrap()), Some("30d".parse().unwrap())).is_err());
    /// ```
    pub fn set_retention(
        &mut self,
        dataset: &str,
        retention: Option<RetentionSpec>,
        rollup_retention: Option<RetentionSpec>,
    ) -> Result<(), RetentionError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(RetentionError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(RetentionError::ReadOnly);
        }
        let mut cfg = self
            .dataset(dataset)
            .ok_or_else(|| RetentionError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            })?
            .config
            .clone();
        cfg.retention = retention;
        cfg.rollup_retention = rollup_retention;
        cfg.check_retention()?;
        self.change_catalog(|c| {
            if let Some(e) = c.datasets.get_mut(dataset) {
                e.config = cfg;
            }
        })?;
        Ok(())
    }

    /// Drop the partitions of `dataset` (or of every dataset with a retention) that are
    /// wholly older than its retention at `now` (ns since the epoch): cold parts whose last
    /// day is before the cutoff day ([`RetentionSpec::cutoff_day`]; a compacted month goes
    /// only when its last day does), and hot WAL days before it, dropped without being
    /// written down. Never rewrites a part. Rollups with a longer `rollup_retention` stay
    /// until their own cutoff: hot days between the two cutoffs are written down first (the
    /// rollups need Parquet; no row changes), then their base parts dropped.
    ///
    /// The drop is one catalog commit; files go after it (a crash leaves the old or the
    /// new state, and the next open removes the leftovers). The pass a write-down runs
    /// drops in two commits when rollups are kept longer (before it, what is expired in
    /// every timeframe; after it, the base days it wrote down between the cutoffs).
    pub fn apply_retention(
        &mut self,
        dataset: Option<&str>,
        now: i64,
    ) -> Result<RetentionSummary, RetentionError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(RetentionError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(RetentionError::ReadOnly);
        }
        let names = match dataset {
            Some(d) if self.catalog.datasets.contains_key(d) => vec![d.to_string()],
            Some(d) => {
                return Err(RetentionError::UnknownDataset {
                    name: d.into(),
                    known: self.known(),
                })
            }
            None => self.catalog.datasets.keys().cloned().collect(),
        };
        // Days whose rollups outlive their base bars go to Parquet first (no row changes),
        // so that the drop is one commit: a crash leaves the old or the new state.
        for name in &names {
            let cfg = &self.catalog.datasets[name].config;
            let (Some(r), Some(rr)) = (cfg.retention, cfg.rollup_retention) else {
                continue;
            };
            let (base_cut, roll_cut) = (r.cutoff_day(now), rr.cutoff_day(now));
            if !self
                .hot
                .indexed_days(name, cfg.base, roll_cut..base_cut)
                .is_empty()
            {
                self.write_down_at(
                    Some(name),
                    (roll_cut, base_cut),
                    super::write_down::Passes {
                        retention: false,
                        compact: true,
                    },
                )?;
            }
        }
        let total = self.drop_expired(&names, now)?;
        Ok(total)
    }

    /// The retention pass of `names` at `now`, one catalog commit (see
    /// [`BarStore::apply_retention`]; hot days between a longer rollup cutoff and the base
    /// cutoff are left to write-down).
    pub(super) fn drop_expired(
        &mut self,
        names: &[String],
        now: i64,
    ) -> Result<RetentionSummary, WriteDownError> {
        let mut summary = RetentionSummary::default();
        let mut next = self.catalog.clone();
        let mut gone: Vec<PathBuf> = Vec::new();
        let mut floors: Vec<(String, i64)> = Vec::new();
        for name in names {
            let Some(e) = next.datasets.get_mut(name) else {
                continue;
            };
            let Some(r) = e.config.retention else {
                continue;
            };
            let base_cut = r.cutoff_day(now);
            let roll_cut = e
                .config
                .rollup_retention
                .map_or(base_cut, |rr| rr.cutoff_day(now).min(base_cut));
            let base_key = e.config.base.to_string();
            for (key, parts) in e.cold.iter_mut() {
                let cut = if *key == base_key { base_cut } else { roll_cut };
                parts.retain(|p| {
                    if p.last() >= cut {
                        return true;
                    }
                    summary.parts += 1;
                    summary.rows += p.rows;
                    summary.bytes += p.bytes;
                    gone.push(self.root.join(&p.path));
                    false
                });
            }
            // Hot days before the rollup cutoff hold nothing kept: dropped directly.
            if !self.hot.wal_files_before(name, roll_cut).is_empty() {
                e.hot_floor = Some(e.hot_floor.map_or(roll_cut, |f| f.max(roll_cut)));
                floors.push((name.clone(), roll_cut));
            }
        }
        if gone.is_empty() && floors.is_empty() {
            return Ok(summary);
        }
        crate::failpoint("lifecycle:before_commit");
        next.commit_with(&self.root, self.hot.opts())?;
        self.catalog = next;
        self.hot.set_floors(floors_of(&self.catalog));
        crate::failpoint("lifecycle:after_commit");
        for (name, floor) in floors {
            let p = self.hot.drop_days_before(&name, floor);
            summary.wal_files += p.files;
            summary.wal_bytes += p.bytes;
        }
        remove_files(&gone);
        self.cold().collect_garbage();
        if !summary.is_empty() {
            tracing::info!(
                parts = summary.parts,
                rows = summary.rows,
                wal_days = summary.wal_files,
                "retention dropped partitions older than the cutoff"
            );
        }
        Ok(summary)
    }

    /// Remove the rows of `symbol` (every symbol when `None`) with `ts < before`, in every
    /// stored timeframe of `dataset`, hot and cold.
    ///
    /// 1. Hot days before the day holding `before` are written down first, so that
    /// 2. every whole day before it is trimmed by one catalog commit: parts wholly before
    ///    it (of that symbol only, or of every symbol) are dropped, parts holding such
    ///    rows and others (a compacted month across the cut, other symbols) are rewritten
    ///    without them (new part, then the commit);
    /// 3. when `before` falls inside a day, that day's rows before it are deleted
    ///    ([`BarStore::delete`]), which recomputes the day's rollup bars from the base
    ///    rows left: a rollup bar whose bucket straddles `before` keeps its bucket start
    ///    and is rebuilt from the rows at or after `before`.
    ///
    /// A crash leaves the old state, or the state after step 2; running the trim again
    /// finishes it (a trim is idempotent).
    pub fn trim(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        before: i64,
    ) -> Result<TrimSummary, TrimError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(TrimError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(TrimError::ReadOnly);
        }
        let entry = self
            .dataset(dataset)
            .ok_or_else(|| TrimError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            })?;
        if let Some(s) = symbol {
            if !entry.symbols.contains(s) {
                return Err(TrimError::UnknownSymbol {
                    dataset: dataset.into(),
                    symbol: s.into(),
                    known: list(entry.symbols.iter()),
                });
            }
        }
        // One entry for the whole trim, before any of it; its steps record nothing more.
        let entry = (
            ChangeKind::Remove,
            symbol.map(str::to_string),
            i64::MIN,
            before,
        );
        let fsync = entry_fsync(self, dataset);
        self.record_changes(dataset, fsync, vec![entry])?;
        let day = before.div_euclid(NANOS_PER_DAY);
        let mut summary = TrimSummary::default();
        let hot_before = self.write_down_days(Some(dataset), day)?;
        if !hot_before.is_empty() {
            summary.written_down = hot_before.len();
            self.write_down(Some(dataset), day)?;
        }
        self.trim_cold(dataset, symbol, day, &mut summary)?;
        let mut partial = false;
        if before > day.saturating_mul(NANOS_PER_DAY) {
            let range = DeleteRange {
                symbol: symbol.map(str::to_string),
                start: day.saturating_mul(NANOS_PER_DAY),
                end: before,
            };
            partial = self.delete_write(dataset, range, false)? > 0;
            summary.partial_day = partial;
        }
        if !partial {
            // A calendar bar labelled before the cut whose span runs past it was dropped
            // with the rows before the cut: rebuilt from the rows left (the delete above
            // does so when it touched a day).
            let syms: BTreeSet<String> = match symbol {
                Some(s) => [s.to_string()].into(),
                None => self.catalog.datasets[dataset].symbols.clone(),
            };
            self.rebuild_calendar(dataset, day, &syms)?;
        }
        Ok(summary)
    }

    /// Step 2 of [`BarStore::trim`]: the cold rows of `symbol` (or all) before `day`.
    fn trim_cold(
        &mut self,
        dataset: &str,
        symbol: Option<&str>,
        day: i64,
        summary: &mut TrimSummary,
    ) -> Result<(), WriteDownError> {
        let cut = day.saturating_mul(NANOS_PER_DAY);
        let mut next = self.catalog.clone();
        let mut gone: Vec<PathBuf> = Vec::new();
        let cold = self.cold();
        let cfg = &self.catalog.datasets[dataset].config;
        for tf in self.stored_timeframes(dataset) {
            let kind = Self::kind_of(cfg, tf);
            let parts = next
                .datasets
                .get_mut(dataset)
                .expect("checked by the caller")
                .cold
                .entry(tf.to_string())
                .or_default();
            let old: Vec<PartFile> = parts.clone();
            for p in old.iter().filter(|p| p.day < day) {
                let has = symbol.is_none_or(|s| p.symbols.iter().any(|x| x == s));
                if !has {
                    continue;
                }
                let whole = p.last() < day && symbol.is_none_or(|_| p.symbols.len() == 1);
                let replacement = if whole {
                    None
                } else {
                    let pieces = crate::cold::read_rows(
                        &self.root,
                        std::slice::from_ref(p),
                        kind,
                        None,
                        (i64::MIN, i64::MAX),
                        &BTreeSet::new(),
                    )?;
                    let all = arrow_select::concat::concat_batches(&kind.schema(), &pieces)
                        .map_err(ReadError::from)?;
                    let kept = without_before(&all, symbol, cut)?;
                    if kept.num_rows() == all.num_rows() {
                        continue;
                    }
                    Some(kept).filter(|k| k.num_rows() > 0)
                };
                parts.retain(|x| x.path != p.path);
                gone.push(self.root.join(&p.path));
                summary.bytes_freed += p.bytes as i64;
                match replacement {
                    Some(rows) => {
                        let new = cold.rewrite(dataset, tf, p, &rows)?;
                        summary.parts_rewritten += 1;
                        summary.rows += p.rows - new.rows;
                        summary.bytes_freed -= new.bytes as i64;
                        parts.push(new);
                    }
                    None => {
                        summary.parts_dropped += 1;
                        summary.rows += p.rows;
                    }
                }
            }
            parts.sort_by_key(|p| p.day);
        }
        if gone.is_empty() {
            return Ok(());
        }
        crate::failpoint("lifecycle:before_commit");
        next.commit_with(&self.root, self.hot.opts())?;
        self.catalog = next;
        crate::failpoint("lifecycle:after_commit");
        remove_files(&gone);
        self.cold().collect_garbage();
        Ok(())
    }

    /// What `dataset` holds on disk: base rows (hot days are read to count theirs), bytes
    /// of every part and WAL, and days with base data.
    pub fn footprint(&self, dataset: &str) -> Result<DatasetFootprint, DropDatasetError> {
        let e = self
            .dataset(dataset)
            .ok_or_else(|| DropDatasetError::UnknownDataset {
                name: dataset.into(),
                known: self.known(),
            })?;
        let base = e.config.base;
        let kind = Self::kind_of(&e.config, base);
        let mut fp = DatasetFootprint::default();
        let mut days: BTreeSet<i64> = BTreeSet::new();
        for (key, parts) in &e.cold {
            for p in parts {
                fp.bytes += p.bytes;
                if *key == base.to_string() {
                    fp.rows += p.rows;
                    days.extend(p.day..=p.last());
                }
            }
        }
        for d in self.hot.days(dataset, base) {
            // A hot day overlays its cold rows: count the merged day instead of them.
            let cold = self.cold().on(dataset, base, d);
            let merged = self
                .hot
                .read_day(dataset, base, kind, d, &cold, None, false)?;
            let under: usize = crate::cold::read_day(&self.root, &cold, kind, d)?
                .iter()
                .map(|b| b.num_rows())
                .sum();
            fp.rows =
                (fp.rows + merged.map_or(0, |b| b.num_rows() as u64)).saturating_sub(under as u64);
            days.insert(d);
        }
        for (_, f) in self.hot.wal_files_before(dataset, i64::MAX) {
            fp.bytes += std::fs::metadata(&f).map_or(0, |m| m.len());
        }
        fp.days = days.len();
        Ok(fp)
    }

    /// Remove `dataset` from the catalog (committed first), then its hot WALs
    /// (`_hot/<dataset>`) and its Parquet directory (`dataset=<dataset>`). A crash after
    /// the commit leaves files the writer's next open removes; queries of the name fail
    /// from the commit on. Afterwards the name is free: `create_dataset` with any settings
    /// works. Returns what was removed.
    ///
    /// ```
    /// # use ringfeed_store::{BarStore, DatasetConfig};
    /// let dir = tempfile::tempdir().unwrap();
    /// let mut store = BarStore::open(dir.path()).unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
    /// store.drop_dataset("demo").unwrap();
    /// store.create_dataset("demo", DatasetConfig::new("1h".parse().unwrap())).unwrap();
    /// let e = store.drop_dataset("nope").unwrap_err().to_string();
    /// assert!(e.contains("datasets: demo"), "{e}");
    /// ```
    pub fn drop_dataset(&mut self, dataset: &str) -> Result<DatasetFootprint, DropDatasetError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(DropDatasetError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(DropDatasetError::ReadOnly);
        }
        let fp = self.footprint(dataset)?;
        crate::failpoint("lifecycle:before_commit");
        self.change_catalog(|c| {
            c.datasets.remove(dataset);
            c.dropped.insert(dataset.to_string());
        })?;
        self.hot.set_floors(floors_of(&self.catalog));
        crate::failpoint("lifecycle:after_commit");
        self.hot
            .remove_dataset(dataset)
            .map_err(|source| DropDatasetError::Leftover {
                path: self.root.join("_hot").join(dataset),
                source,
            })?;
        crate::failpoint("lifecycle:mid_remove");
        self.changes
            .remove(dataset)
            .map_err(|source| DropDatasetError::Leftover {
                path: self.changes.path(dataset),
                source,
            })?;
        let cold_dir = self.root.join(format!("dataset={dataset}"));
        match std::fs::remove_dir_all(&cold_dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(DropDatasetError::Leftover {
                    path: cold_dir,
                    source: e,
                })
            }
            _ => {}
        }
        tracing::info!(dataset, rows = fp.rows, bytes = fp.bytes, "dropped dataset");
        Ok(fp)
    }

    /// At the writer's open, before recovery: remove the WALs of days before a dataset's
    /// hot floor and the directories of datasets the catalog records as dropped (both
    /// left by a retention pass or a drop cut short after its commit).
    pub(super) fn remove_dropped_wals(&mut self) {
        let dropped: Vec<String> = self.catalog.dropped.iter().cloned().collect();
        for name in dropped {
            if !self.catalog.datasets.contains_key(&name) {
                self.remove_dropped_dirs(&name);
            }
        }
        let floors: Vec<(String, i64)> = floors_of(&self.catalog).into_iter().collect();
        for (name, floor) in floors {
            self.hot.drop_days_before(&name, floor);
        }
    }

    /// Remove what is left of a dropped dataset's directories (nothing when the name was
    /// never dropped). Failures are logged: the next open tries again.
    pub(super) fn remove_dropped_dirs(&mut self, name: &str) {
        if !self.catalog.dropped.contains(name) {
            return;
        }
        if let Err(e) = self.hot.remove_dataset(name) {
            tracing::warn!(dataset = name, "WALs of a dropped dataset stay: {e}");
        }
        let cold = self.root.join(format!("dataset={name}"));
        if let Err(e) = std::fs::remove_dir_all(&cold) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(dataset = name, "Parquet of a dropped dataset stays: {e}");
            }
        }
    }

    /// Before a write lands on `first_day`: when that is before the dataset's hot floor,
    /// remove any WAL left below the floor, then lower it (committed), so that the write
    /// is read and kept.
    pub(super) fn lower_hot_floor(
        &mut self,
        dataset: &str,
        first_day: Option<i64>,
    ) -> Result<(), WriteError> {
        let (Some(day), Some(floor)) = (first_day, self.dataset(dataset).and_then(|e| e.hot_floor))
        else {
            return Ok(());
        };
        if day >= floor {
            return Ok(());
        }
        self.hot.drop_days_before(dataset, floor);
        self.change_catalog(|c| {
            if let Some(e) = c.datasets.get_mut(dataset) {
                e.hot_floor = Some(day);
            }
        })?;
        self.hot.set_floors(floors_of(&self.catalog));
        Ok(())
    }
}
