//! Dropping whole days and whole datasets from the hot tier: the WALs of days before a
//! retention floor, and a dropped dataset's directory. The catalog says what is gone
//! (the caller commits it first); these remove the files and what the writer knew of them.

use super::HotTier;
use crate::read_dirs;
use crate::time::parse_day;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// What dropping hot days removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// WAL files removed.
    pub(crate) files: usize,
    /// Their bytes.
    pub(crate) bytes: u64,
}

impl HotTier {
    /// Record each dataset's retention floor (readers never list a WAL day before it).
    pub(crate) fn set_floors(&mut self, floors: HashMap<String, i64>) {
        self.floors = floors;
    }

    /// The floor of `dataset` (`i64::MIN` when none).
    pub(crate) fn floor(&self, dataset: &str) -> i64 {
        self.floors.get(dataset).copied().unwrap_or(i64::MIN)
    }

    /// The WAL files of `dataset` for days before `day`: dataset-day files and legacy
    /// one-timeframe files, with their days.
    pub(crate) fn wal_files_before(&self, dataset: &str, day: i64) -> Vec<(i64, PathBuf)> {
        let day_of = |p: &Path| {
            p.extension()
                .is_some_and(|e| e == "wal")
                .then(|| parse_day(p.file_stem()?.to_str()?))
                .flatten()
        };
        let mut out = Vec::new();
        for f in read_dirs(&self.root.join("_hot").join(dataset)) {
            if f.is_dir() {
                out.extend(
                    read_dirs(&f)
                        .into_iter()
                        .filter_map(|x| Some((day_of(&x)?, x))),
                );
            } else if let Some(d) = day_of(&f) {
                out.push((d, f));
            }
        }
        out.retain(|(d, _)| *d < day);
        out
    }

    /// Remove every WAL of `dataset` before `day` (every timeframe of those days), and
    /// forget them. A file that cannot be removed is left (and logged): readers skip
    /// days before the floor, and the writer tries again when it opens.
    pub(crate) fn drop_days_before(&mut self, dataset: &str, day: i64) -> Pruned {
        let mut pruned = Pruned::default();
        for (i, (_, f)) in self.wal_files_before(dataset, day).into_iter().enumerate() {
            if i == 1 {
                crate::failpoint("lifecycle:mid_remove");
            }
            let bytes = std::fs::metadata(&f).map_or(0, |m| m.len());
            match std::fs::remove_file(&f) {
                Ok(()) => {
                    pruned.files += 1;
                    pruned.bytes += bytes;
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(path = %f.display(), "a WAL before the retention floor stays until the next open: {e}")
                }
            }
            self.forget_path(&f);
        }
        pruned
    }

    /// Forget every WAL of `dataset` and remove its directory `_hot/<dataset>`.
    pub(crate) fn remove_dataset(&mut self, dataset: &str) -> std::io::Result<()> {
        let dir = self.root.join("_hot").join(dataset);
        let paths: Vec<PathBuf> = self
            .wal_lens
            .keys()
            .filter(|p| p.starts_with(&dir))
            .cloned()
            .collect();
        for p in paths {
            self.forget_path(&p);
        }
        self.index.remove(dataset);
        crate::failpoint("lifecycle:mid_remove");
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Forget a WAL that is gone: its length, cache entry, index day and pending syncs.
    fn forget_path(&mut self, path: &Path) {
        self.pending_sync.remove(path);
        self.unmarked.remove(path);
        self.forget_wal(path);
    }
}
