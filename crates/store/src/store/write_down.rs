//! Write-down: closed days of the hot tier become parts of the cold tier, committed by
//! one catalog version, after which the replaced parts and the WALs go.

use super::{BarStore, ReadError, WriteDownError, WriteDownSummary};
use crate::catalog::PartFile;
use arrow_array::RecordBatch;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

impl BarStore {
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
                    self.hot
                        .days(&name, tf)
                        .into_iter()
                        .filter(|d| *d < before_day),
                );
            }
        }
        Ok(days.into_iter().collect())
    }

    /// Move closed days of the hot tier into Parquet: for every (dataset, timeframe, day)
    /// with `day < before_day` that has a WAL, write the merged day as a new part (a day
    /// inside a compacted month rewrites that month's part), commit the catalog once, then
    /// delete the replaced parts and the WALs. Then compact the months that end before
    /// `before_day` ([`BarStore::compact`]). Datasets with a retention drop their expired
    /// partitions first and after ([`BarStore::apply_retention`], counting back from
    /// `before_day`'s midnight, or from now when that is later).
    pub fn write_down(
        &mut self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<WriteDownSummary, WriteDownError> {
        self.write_down_at(dataset, (i64::MIN, before_day), Passes::ALL)
    }

    /// [`BarStore::write_down`] without the compaction: closed days become day parts (a
    /// day inside an already compacted month still rewrites that month's part). A later
    /// write-down or [`BarStore::compact`] merges them. Retention applies as in
    /// [`BarStore::write_down`].
    pub fn write_down_uncompacted(
        &mut self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<WriteDownSummary, WriteDownError> {
        let passes = Passes {
            compact: false,
            ..Passes::ALL
        };
        self.write_down_at(dataset, (i64::MIN, before_day), passes)
    }

    /// [`BarStore::write_down`] of the days in `from_day..before_day`, with the retention
    /// passes or (`retention` false, as [`BarStore::apply_retention`] writes down days
    /// whose rollups outlive their base bars) without: then it changes no row, only where
    /// rows live; and with the compaction or without.
    pub(super) fn write_down_at(
        &mut self,
        dataset: Option<&str>,
        (from_day, before_day): (i64, i64),
        Passes { retention, compact }: Passes,
    ) -> Result<WriteDownSummary, WriteDownError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteDownError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(WriteDownError::ReadOnly);
        }
        let names = self.write_down_names(dataset)?;
        let mut summary = WriteDownSummary::default();
        // Retention first: expired hot days are dropped, not written down.
        let now = super::lifecycle::retention_now(before_day);
        if retention {
            summary.expired = self.drop_expired(&names, now)?;
        }
        let mut next = self.catalog.clone();
        let mut old_parts: Vec<PathBuf> = Vec::new();
        let mut wals: BTreeSet<(String, i64)> = BTreeSet::new();
        let cold = self.cold();
        for name in &names {
            for tf in self.stored_timeframes(name) {
                let cfg = &self.catalog.datasets[name].config;
                let kind = Self::kind_of(cfg, tf);
                // Days inside a compacted part, per part: the part is rewritten once.
                let mut runs: BTreeMap<String, (PartFile, DaysOfRun)> = BTreeMap::new();
                let days: Vec<i64> = self
                    .hot
                    .days(name, tf)
                    .into_iter()
                    .filter(|d| (from_day..before_day).contains(d))
                    .collect();
                let parts = next
                    .datasets
                    .get_mut(name)
                    .expect("dataset exists")
                    .cold
                    .entry(tf.to_string())
                    .or_default();
                for day in days {
                    let old = cold.on(name, tf, day);
                    let merged = self.hot.read_day(name, tf, kind, day, &old, None, false)?;
                    summary.partitions += 1;
                    wals.insert((name.clone(), day));
                    if let Some(run) = old.iter().find(|p| p.is_compacted()) {
                        runs.entry(run.path.clone())
                            .or_insert_with(|| (run.clone(), Vec::new()))
                            .1
                            .push((day, merged));
                        continue;
                    }
                    parts.retain(|p| !p.covers(day));
                    old_parts.extend(old.iter().map(|p| self.root.join(&p.path)));
                    if let Some(b) = merged {
                        let part = cold.write_part(name, tf, day, &old, &b)?;
                        summary.rows += part.rows;
                        summary.bytes += part.bytes;
                        parts.push(part);
                    }
                }
                for (_, (run, days)) in runs {
                    // The run's rows of other days, then the new content of these days.
                    let gone: BTreeSet<i64> = days.iter().map(|(d, _)| *d).collect();
                    let mut pieces = crate::cold::read_rows(
                        &self.root,
                        std::slice::from_ref(&run),
                        kind,
                        None,
                        (i64::MIN, i64::MAX),
                        &gone,
                    )?;
                    pieces.extend(days.into_iter().filter_map(|(_, b)| b));
                    let rows = arrow_select::concat::concat_batches(&kind.schema(), &pieces)
                        .and_then(|b| crate::merge::sort_dedup(kind, b))
                        .map_err(ReadError::from)?;
                    parts.retain(|p| p.path != run.path);
                    old_parts.push(self.root.join(&run.path));
                    if rows.num_rows() > 0 {
                        let part =
                            cold.write_run(name, tf, (run.day, run.last()), run.part + 1, &rows)?;
                        summary.rows += part.rows;
                        summary.bytes += part.bytes;
                        parts.push(part);
                    }
                }
                parts.sort_by_key(|p| p.day);
            }
        }
        if summary.partitions > 0 {
            crate::failpoint("writedown:before_commit");
            next.commit_with(&self.root, self.hot.opts())?;
            self.catalog = next;
            crate::failpoint("writedown:after_commit");
            for p in old_parts {
                let _ = std::fs::remove_file(&p);
            }
            // Every timeframe of these days is in the cold tier now: their WALs go.
            for (name, day) in wals {
                self.hot.remove_day(&name, day);
            }
            self.cold().collect_garbage();
        }
        if compact {
            let c = self.compact(dataset, before_day)?;
            summary.compacted_months = c.months;
            summary.compacted_parts = c.parts_in;
        }
        // Base days whose rollups outlive them were written down above; their parts go.
        if retention {
            let later = self.drop_expired(&names, now)?;
            summary.expired.parts += later.parts;
            summary.expired.rows += later.rows;
            summary.expired.bytes += later.bytes;
        }
        Ok(summary)
    }

    /// Merge the day parts of every month that ends before `before_day` into one part per
    /// (dataset, timeframe, month), rows sorted by (symbol, ts), so that a year reads 12
    /// files. One catalog commit for all of them, then the merged parts are deleted:
    /// a crash before the commit leaves the day parts (the new files are removed as
    /// orphans at the next open), after it the month parts.
    pub fn compact(
        &mut self,
        dataset: Option<&str>,
        before_day: i64,
    ) -> Result<CompactSummary, WriteDownError> {
        if let Some((root, reason)) = self.unwritable() {
            return Err(WriteDownError::Unwritable { root, reason });
        }
        if !self.hot.writable() {
            return Err(WriteDownError::ReadOnly);
        }
        let names = self.write_down_names(dataset)?;
        let mut summary = CompactSummary::default();
        let mut next = self.catalog.clone();
        let mut old_parts: Vec<PathBuf> = Vec::new();
        let cold = self.cold();
        for name in &names {
            for tf in self.stored_timeframes(name) {
                let kind = Self::kind_of(&self.catalog.datasets[name].config, tf);
                // Months with day parts, each with every part it holds.
                let mut months: BTreeMap<(i64, i64), Vec<PartFile>> = BTreeMap::new();
                for p in cold.parts(name, tf) {
                    let m = crate::cold::month_of(p.day);
                    if p.last() <= m.1 && m.1 < before_day {
                        months.entry(m).or_default().push(p.clone());
                    }
                }
                months.retain(|_, ps| ps.iter().any(|p| !p.is_compacted()));
                if months.is_empty() {
                    continue;
                }
                let parts = next
                    .datasets
                    .get_mut(name)
                    .expect("dataset exists")
                    .cold
                    .entry(tf.to_string())
                    .or_default();
                for ((first, last), old) in months {
                    let pieces = crate::cold::read_rows(
                        &self.root,
                        &old,
                        kind,
                        None,
                        (i64::MIN, i64::MAX),
                        &BTreeSet::new(),
                    )?;
                    let rows = arrow_select::concat::concat_batches(&kind.schema(), &pieces)
                        .and_then(|b| crate::merge::sort_dedup(kind, b))
                        .map_err(ReadError::from)?;
                    let part_no = old
                        .iter()
                        .filter(|p| p.is_compacted())
                        .map(|p| p.part + 1)
                        .max()
                        .unwrap_or(0);
                    let part = cold.write_run(name, tf, (first, last), part_no, &rows)?;
                    summary.months += 1;
                    summary.parts_in += old.len();
                    summary.bytes_in += old.iter().map(|p| p.bytes).sum::<u64>();
                    summary.bytes_out += part.bytes;
                    summary.rows += part.rows;
                    let gone: BTreeSet<&str> = old.iter().map(|p| p.path.as_str()).collect();
                    parts.retain(|p| !gone.contains(p.path.as_str()));
                    parts.push(part);
                    old_parts.extend(old.iter().map(|p| self.root.join(&p.path)));
                }
                parts.sort_by_key(|p| p.day);
            }
        }
        if summary.months == 0 {
            return Ok(summary);
        }
        crate::failpoint("compact:before_commit");
        next.commit_with(&self.root, self.hot.opts())?;
        self.catalog = next;
        crate::failpoint("compact:after_commit");
        for p in old_parts {
            let _ = std::fs::remove_file(&p);
        }
        self.cold().collect_garbage();
        Ok(summary)
    }
}

/// The merged content of days inside one compacted part (`None`: no rows left).
type DaysOfRun = Vec<(i64, Option<RecordBatch>)>;

/// What a compaction ([`BarStore::compact`]) merged.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompactSummary {
    /// (dataset, timeframe, month) parts written.
    pub months: usize,
    /// Parts merged into them.
    pub parts_in: usize,
    /// Rows written.
    pub rows: u64,
    /// Bytes of the parts merged.
    pub bytes_in: u64,
    /// Bytes of the parts written.
    pub bytes_out: u64,
}

/// What a write-down does besides moving closed days into Parquet.
#[derive(Clone, Copy, Debug)]
pub(super) struct Passes {
    /// Drop the partitions the datasets' retention has expired, before and after.
    pub(super) retention: bool,
    /// Merge finished months into month files ([`BarStore::compact`]).
    pub(super) compact: bool,
}

impl Passes {
    /// Every pass: what [`BarStore::write_down`] does.
    pub(super) const ALL: Passes = Passes {
        retention: true,
        compact: true,
    };
}
