//! Opening a store: the writer lock, recovery of the hot tier (damaged WAL bytes moved to
//! quarantine, torn tails cut, rollups of an interrupted write rewritten), and the
//! read-only start when that recovery cannot write (a full disk), so that reads survive
//! what writes cannot.

use super::lock::lock_writer;
use super::{list, BarStore, OpenError};
use crate::catalog::{Catalog, DatasetConfig};
use crate::changes::ChangeLogs;
use crate::hot::{HotTier, Recovered};
use crate::perms::StoreOptions;
use crate::quarantine::{CorruptionReport, DamageKind};
use crate::read_dirs;
use crate::time::day_string;
use std::collections::BTreeSet;
use std::path::Path;

impl BarStore {
    /// Open (creating if needed) a store for reading and writing, with the default modes
    /// (directories `0700`, files `0600`); see [`BarStore::open_with`].
    pub fn open(root: &Path) -> Result<Self, OpenError> {
        Self::open_with(root, StoreOptions::default())
    }

    /// A handle with nothing recovered, cached or pending yet.
    pub(super) fn fresh(
        root: &Path,
        catalog: Catalog,
        writable: bool,
        opts: StoreOptions,
        lock: Option<std::fs::File>,
    ) -> Self {
        let changes = ChangeLogs::new(root, opts.clone(), writable);
        let mut hot = HotTier::new(root, opts, writable);
        hot.set_floors(super::lifecycle::floors_of(&catalog));
        BarStore {
            root: root.into(),
            catalog,
            hot,
            read_only_reason: None,
            _writer_lock: lock,
            recovered: Vec::new(),
            rollups_repaired: Vec::new(),
            unrenamed: Vec::new(),
            new_symbols: None,
            changes,
        }
    }

    /// Open (creating if needed) a store for reading and writing. Recovers every hot WAL:
    /// damaged regions with valid frames after them are moved to quarantine and every
    /// valid frame is kept (listed in [`BarStore::damage`], logged as errors), torn tails
    /// are cut (listed in `recovered`); rollups of a write cut short are rewritten; cold
    /// files the catalog does not reference (leftovers of an interrupted write-down) and
    /// temp files of interrupted commits are removed.
    ///
    /// When that recovery cannot write (a full disk, a read-only mount), the store opens
    /// **read-only** instead of failing: queries serve every valid frame, writes return
    /// an `Unwritable` error with the reason ([`BarStore::read_only_reason`]) until
    /// [`BarStore::retry_writable`] succeeds or the writer restarts with space freed. Fails
    /// only when nothing can be read (the catalog is unreadable) or another writer holds
    /// the store.
    pub fn open_with(root: &Path, opts: StoreOptions) -> Result<Self, OpenError> {
        opts.create_dir_all(root).map_err(|source| OpenError::Io {
            path: root.into(),
            source,
        })?;
        let (lock, lock_err) = match lock_writer(root, &opts) {
            Ok(f) => (Some(f), None),
            Err(OpenError::Io { path, source }) if crate::perms::is_no_space(&source) => (
                None,
                Some(format!(
                    "the writer lock {} cannot be created: {source}",
                    path.display()
                )),
            ),
            Err(e) => return Err(e),
        };
        let catalog = Catalog::load(root)?;
        let mut s = BarStore::fresh(root, catalog, true, opts, lock);
        s.unrenamed = s.hot.rename_timeframes();
        s.remove_temp_files();
        match lock_err {
            Some(reason) => s.degrade(reason),
            None => {
                // Before recovery: WALs of dropped days and datasets are never recovered.
                s.remove_dropped_wals();
                if let Err(e) = s.recover_hot() {
                    s.degrade(e.to_string());
                } else {
                    // Torn tails cut, damaged logs replaced, missing ones started.
                    s.changes.open_all(s.catalog.datasets.keys());
                }
            }
        }
        Ok(s)
    }

    /// Why the writer is read-only, when it opened read-only because recovery could not
    /// write (see [`BarStore::open_with`]); `None` when it is writable, and for stores
    /// opened with [`BarStore::open_read_only`] (read-only by request, not by fault).
    pub fn read_only_reason(&self) -> Option<&str> {
        self.read_only_reason.as_deref()
    }

    /// Every damaged region and torn tail this writer set aside since it opened (at open
    /// and on later appends), oldest first. Corruption (`kind == Corrupt`) means bytes on
    /// disk changed after they were written; each region's copy is in `quarantined`.
    pub fn damage(&self) -> &[CorruptionReport] {
        &self.hot.damage
    }

    /// How many corrupt regions ([`DamageKind::Corrupt`]) this writer found: the
    /// number for a metric or `ringfeed stat` (torn tails are crashes, not corruption).
    pub fn corruption_count(&self) -> usize {
        self.hot
            .damage
            .iter()
            .filter(|r| r.kind == DamageKind::Corrupt)
            .count()
    }

    /// Try again to make a store that opened read-only writable (after space was freed):
    /// takes the writer lock if it had none, reruns recovery, and on success accepts
    /// writes again. Returns whether the store is writable now; on failure the reason is
    /// updated. A writable store, or one opened with [`BarStore::open_read_only`],
    /// returns at once.
    pub fn retry_writable(&mut self) -> bool {
        if self.read_only_reason.is_none() {
            return self.hot.writable();
        }
        if self._writer_lock.is_none() {
            match lock_writer(&self.root, self.hot.opts()) {
                Ok(f) => self._writer_lock = Some(f),
                Err(e) => {
                    self.read_only_reason = Some(e.to_string());
                    return false;
                }
            }
        }
        // First the rest of an undo that failed (see `undo.rs`): until it is done, the
        // disk holds frames of a write that was refused.
        if let Err(e) = self.hot.finish_undo() {
            self.read_only_reason = Some(format!(
                "cutting back the WAL frames of a failed write still fails ({e})"
            ));
            return false;
        }
        self.read_only_reason = None;
        if let Err(e) = self.recover_hot() {
            self.degrade(e.to_string());
            return false;
        }
        tracing::info!(root = %self.root.display(), "store: writable again");
        true
    }

    /// Refuse writes from now on, for `reason`; reads go the read-only way (every valid
    /// frame from disk, no cache).
    pub(super) fn degrade(&mut self, reason: String) {
        tracing::error!(root = %self.root.display(), "store opened READ-ONLY: {reason}");
        self.read_only_reason = Some(reason);
        self.hot.degrade();
    }

    /// Recover every hot WAL (see [`crate::wal::recover`]), collect garbage, and rewrite
    /// the rollups of writes cut short. Stops at the first failure: the caller degrades.
    fn recover_hot(&mut self) -> Result<(), OpenError> {
        let rec = self.hot.recover()?;
        self.recovered.extend(rec.repaired.iter().cloned());
        self.cold().collect_garbage();
        self.repair_rollups(&rec)
    }

    /// Remove temp files of writes cut short (a WAL rewrite, a catalog commit): they are
    /// never read, and on a full disk they hold the space recovery needs.
    fn remove_temp_files(&self) {
        for f in read_dirs(&crate::catalog::dir(&self.root)) {
            if f.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&f);
            }
        }
        self.hot.remove_temp_files();
    }

    /// Rewrite the rollups of every day whose base WAL ends in a write without a rollup
    /// marker (the process stopped between the base frames and the rollup frames), then
    /// mark those WALs. Rollups are a function of the base bars, so this is exact.
    fn repair_rollups(&mut self, rec: &Recovered) -> Result<(), OpenError> {
        let datasets: Vec<(String, DatasetConfig, BTreeSet<String>)> = self
            .catalog
            .datasets
            .iter()
            .filter(|(_, e)| !e.config.rollups.is_empty())
            .map(|(n, e)| (n.clone(), e.config.clone(), e.symbols.clone()))
            .collect();
        for (name, cfg, syms) in datasets {
            let days: Vec<i64> = self
                .hot
                .days(&name, cfg.base)
                .into_iter()
                .filter(|d| self.hot.is_unrolled(rec, &name, *d))
                .collect();
            if days.is_empty() || syms.is_empty() {
                continue;
            }
            let repair = |source| OpenError::Repair {
                dataset: name.clone(),
                source: Box::new(source),
            };
            self.refresh_after_delete(&name, &cfg, &days, &syms)
                .map_err(repair)?;
            self.hot.sync_pending().map_err(|e| repair(e.into()))?;
            self.hot
                .mark_rollups_done(&name)
                .map_err(|e| repair(e.into()))?;
            self.rollups_repaired.push((name, days));
        }
        Ok(())
    }

    /// What opening for writing repaired, one line each (empty when nothing was): torn
    /// WAL tails cut, and days whose rollups were rewritten after an interrupted write.
    pub fn recovery_notes(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .recovered
            .iter()
            .map(|(p, rep)| {
                let mut line = format!(
                    "recovered {}: kept {} valid frames",
                    p.display(),
                    rep.frames
                );
                if !rep.damaged.is_empty() {
                    let bytes: u64 = rep.damaged.iter().map(|d| d.len).sum();
                    line += &format!(
                        ", moved {} damaged region(s) ({bytes} bytes) to quarantine",
                        rep.damaged.len()
                    );
                }
                if let Some(why) = &rep.torn {
                    line += &format!(", cut {} torn bytes ({why})", rep.cut_bytes());
                }
                line
            })
            .collect();
        for r in self
            .hot
            .damage
            .iter()
            .filter(|r| r.kind == DamageKind::Corrupt)
        {
            out.push(format!("CORRUPTION: {r}"));
        }
        if let Some(reason) = &self.read_only_reason {
            out.push(format!(
                "opened READ-ONLY because {reason}: queries work, writes are refused until space is freed and the writer restarts (or retries)"
            ));
        }
        for (from, to) in &self.unrenamed {
            out.push(format!(
                "cannot rename {} to {} (timeframes are now named in one spelling): its WALs are not read; move its files into {} by hand",
                from.display(),
                to.display(),
                to.display()
            ));
        }
        for (dataset, days) in &self.rollups_repaired {
            out.push(format!(
                "rewrote the rollups of dataset {dataset:?} for {} day(s) after an interrupted write: {}",
                days.len(),
                list(days.iter().map(|d| day_string(*d)))
            ));
        }
        out
    }
}
