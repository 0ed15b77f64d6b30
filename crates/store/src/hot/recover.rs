//! Opening the hot tier for writing: temp files of cut-short writes removed, old timeframe
//! spellings renamed, and every WAL recovered (damaged regions to quarantine, torn tails
//! cut), with the days whose last write lacks its rollup marker listed for repair.

use super::HotTier;
use crate::read_dirs;
use crate::timeframe::Timeframe;
use crate::wal::{self, ReplayReport, WalError};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// What recovering the hot tier found.
#[derive(Default)]
pub(crate) struct Recovered {
    /// WAL files whose torn tails were cut or damaged regions set aside.
    pub(crate) repaired: Vec<(PathBuf, ReplayReport)>,
    /// Base WALs whose last write has no rollup marker: (dataset, day) per timeframe dir.
    pub(crate) unrolled: BTreeSet<PathBuf>,
}

impl HotTier {
    /// Recover every WAL (see [`wal::recover`]) and index it. Stops at the first failure
    /// (the caller degrades to read-only).
    pub(crate) fn recover(&mut self) -> Result<Recovered, WalError> {
        self.wal_lens.clear();
        self.index.clear();
        self.forget_pending();
        self.day_cache().entries.clear();
        let mut out = Recovered::default();
        for p in self.all_wal_files() {
            let rec = wal::recover(&p, &self.root, &self.opts)?;
            let rep = rec.report;
            self.note_wal(&p, rep.valid_len);
            if rep.rollups_pending {
                out.unrolled.insert(p.clone());
            }
            self.damage.extend(rec.damage);
            if !rep.is_clean() {
                out.repaired.push((p, rep));
            }
        }
        self.writable = true;
        Ok(out)
    }

    /// Whether the WAL of (dataset, tf, day) was listed in `unrolled` by [`HotTier::recover`].
    pub(crate) fn is_unrolled(
        &self,
        r: &Recovered,
        dataset: &str,
        tf: Timeframe,
        day: i64,
    ) -> bool {
        r.unrolled.contains(&self.wal_path(dataset, tf, day))
    }

    /// Remove temp files of WAL rewrites cut short: they are never read, and on a full
    /// disk they hold the space recovery needs.
    pub(crate) fn remove_temp_files(&self) {
        for d in read_dirs(&self.root.join("_hot")) {
            for t in read_dirs(&d) {
                for f in read_dirs(&t) {
                    if f.extension().is_some_and(|e| e == "tmp") {
                        let _ = std::fs::remove_file(&f);
                    }
                }
            }
        }
    }

    /// Rename timeframe directories written before timeframe spellings were normalized
    /// (`_hot/<dataset>/60m` → `1h`), so that their WALs are found under the name every
    /// path now uses. Returns the directories whose normalized name exists already (left
    /// alone; named in the recovery notes).
    pub(crate) fn rename_timeframes(&mut self) -> Vec<(PathBuf, PathBuf)> {
        let mut unrenamed = Vec::new();
        for d in read_dirs(&self.root.join("_hot")) {
            for t in read_dirs(&d) {
                let Some(name) = t.file_name().and_then(|n| n.to_str()) else {
                    continue;
                };
                let Ok(tf) = name.parse::<Timeframe>() else {
                    continue;
                };
                let canonical = tf.to_string();
                if canonical == name {
                    continue;
                }
                let to = d.join(&canonical);
                if to.exists() || std::fs::rename(&t, &to).is_err() {
                    unrenamed.push((t, to));
                }
            }
        }
        unrenamed
    }
}
