//! The cold tier: closed days as Parquet in a Hive layout, listed by the catalog.
//!
//! ```text
//! <root>/dataset=<D>/tf=<tf>/date=<YYYY-MM-DD>/part-<N>.parquet
//! ```
//!
//! [`ColdTier`] is a view of the parts the current catalog lists, with the Parquet I/O
//! ([`parquet`]) under it. Write-down ([`crate::BarStore::write_down`]) writes parts
//! through it and commits the catalog that lists them.

pub(crate) mod parquet;

use crate::catalog::{Catalog, PartFile};
use crate::merge;
use crate::perms::StoreOptions;
use crate::read_dirs;
use crate::schema::{self, Kind};
use crate::store::{ReadError, WriteDownError};
use crate::time::day_string;
use crate::timeframe::Timeframe;
use arrow_array::RecordBatch;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The cold tier as the current catalog lists it.
#[derive(Clone, Copy)]
pub(crate) struct ColdTier<'a> {
    pub(crate) root: &'a Path,
    pub(crate) opts: &'a StoreOptions,
    pub(crate) catalog: &'a Catalog,
}

impl<'a> ColdTier<'a> {
    /// Every part of (dataset, tf), ordered by day.
    pub(crate) fn parts(&self, dataset: &str, tf: Timeframe) -> &'a [PartFile] {
        self.catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
            .map_or(&[], |v| v.as_slice())
    }

    /// The parts of one day.
    pub(crate) fn on(&self, dataset: &str, tf: Timeframe, day: i64) -> Vec<PartFile> {
        self.parts(dataset, tf)
            .iter()
            .filter(|p| p.day == day)
            .cloned()
            .collect()
    }

    /// Whether (dataset, tf, day) has a part.
    pub(crate) fn has(&self, dataset: &str, tf: Timeframe, day: i64) -> bool {
        self.parts(dataset, tf).iter().any(|p| p.day == day)
    }

    /// The days of `days` whose parts may hold rows of `symbols` (all when `None`) in
    /// `[start, end)`, by the catalog's per-part symbols and time bounds.
    pub(crate) fn days_with(
        &self,
        dataset: &str,
        tf: Timeframe,
        days: std::ops::RangeInclusive<i64>,
        symbols: Option<&BTreeSet<String>>,
        start: i64,
        end: i64,
    ) -> BTreeSet<i64> {
        self.parts(dataset, tf)
            .iter()
            .filter(|p| {
                days.contains(&p.day)
                    && symbols.is_none_or(|s| p.symbols.iter().any(|x| s.contains(x)))
                    && p.max_ts >= start
                    && p.min_ts < end
            })
            .map(|p| p.day)
            .collect()
    }

    /// The parts of each of `days`, in day order (an empty list for a day with none).
    pub(crate) fn by_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        days: &BTreeSet<i64>,
    ) -> Vec<(i64, Vec<PartFile>)> {
        let mut out: BTreeMap<i64, Vec<PartFile>> = days.iter().map(|d| (*d, Vec::new())).collect();
        for p in self.parts(dataset, tf) {
            if let Some(v) = out.get_mut(&p.day) {
                v.push(p.clone());
            }
        }
        out.into_iter().collect()
    }

    /// Write one day's merged rows as the next part of (dataset, tf, day), after `old`
    /// (the parts it replaces): atomically, not yet in any catalog.
    pub(crate) fn write_part(
        &self,
        dataset: &str,
        tf: Timeframe,
        day: i64,
        old: &[PartFile],
        rows: &RecordBatch,
    ) -> Result<PartFile, WriteDownError> {
        let part = old.iter().map(|p| p.part + 1).max().unwrap_or(0);
        let rel = format!(
            "dataset={dataset}/tf={tf}/date={}/part-{part}.parquet",
            day_string(day)
        );
        let bytes = parquet::write_parquet_with(&self.root.join(&rel), rows, self.opts)?;
        let v = schema::view(rows);
        Ok(PartFile {
            path: rel,
            day,
            part,
            rows: rows.num_rows() as u64,
            bytes,
            min_ts: v.ts.iter().copied().min().unwrap_or(0),
            max_ts: v.ts.iter().copied().max().unwrap_or(0),
            symbols: merge::symbols_of(rows),
        })
    }

    /// Remove part files the catalog does not list (leftovers of a write-down cut short)
    /// and temp files, then empty day directories.
    pub(crate) fn collect_garbage(&self) {
        let mut referenced = BTreeSet::new();
        for e in self.catalog.datasets.values() {
            for parts in e.cold.values() {
                for p in parts {
                    referenced.insert(self.root.join(&p.path));
                }
            }
        }
        for d in read_dirs(self.root) {
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
}

/// Read part files (paths relative to `root`), decoded into `kind`'s schema.
pub(crate) fn read_parts(
    root: &Path,
    paths: impl IntoIterator<Item = String>,
    kind: Kind,
) -> Result<Vec<RecordBatch>, ReadError> {
    let schema = kind.schema();
    let mut out = Vec::new();
    for p in paths {
        out.extend(parquet::read_parquet_as(&root.join(p), Some(&schema))?);
    }
    Ok(out)
}
