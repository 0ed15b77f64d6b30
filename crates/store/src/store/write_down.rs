//! Write-down: closed days of the hot tier become parts of the cold tier, committed by
//! one catalog version, after which the replaced parts and the WALs go.

use super::{BarStore, WriteDownError, WriteDownSummary};
use crate::timeframe::Timeframe;
use std::collections::BTreeSet;
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
        if !self.hot.writable() {
            return Err(WriteDownError::ReadOnly);
        }
        let names = self.write_down_names(dataset)?;
        let mut summary = WriteDownSummary::default();
        let mut next = self.catalog.clone();
        let mut old_parts: Vec<PathBuf> = Vec::new();
        let mut wals: Vec<(String, Timeframe, i64)> = Vec::new();
        let cold = self.cold();
        for name in &names {
            for tf in self.stored_timeframes(name) {
                let cfg = &self.catalog.datasets[name].config;
                let kind = Self::kind_of(cfg, tf);
                for day in self
                    .hot
                    .days(name, tf)
                    .into_iter()
                    .filter(|d| *d < before_day)
                {
                    let old = cold.on(name, tf, day);
                    let merged = self.hot.read_day(name, tf, kind, day, &old, None, false)?;
                    let parts = next
                        .datasets
                        .get_mut(name)
                        .expect("dataset exists")
                        .cold
                        .entry(tf.to_string())
                        .or_default();
                    parts.retain(|p| p.day != day);
                    if let Some(b) = merged {
                        let part = cold.write_part(name, tf, day, &old, &b)?;
                        summary.rows += part.rows;
                        summary.bytes += part.bytes;
                        parts.push(part);
                        parts.sort_by_key(|p| p.day);
                    }
                    summary.partitions += 1;
                    old_parts.extend(old.iter().map(|p| self.root.join(&p.path)));
                    wals.push((name.clone(), tf, day));
                }
            }
        }
        if summary.partitions == 0 {
            return Ok(summary);
        }
        crate::failpoint("writedown:before_commit");
        next.commit_with(&self.root, self.hot.opts())?;
        self.catalog = next;
        crate::failpoint("writedown:after_commit");
        for p in old_parts {
            let _ = std::fs::remove_file(&p);
        }
        for (name, tf, day) in wals {
            self.hot.remove(&name, tf, day);
        }
        self.cold().collect_garbage();
        Ok(summary)
    }
}
