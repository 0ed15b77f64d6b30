//! Opening the hot tier for writing: temp files of cut-short writes removed, old timeframe
//! spellings renamed, the one-timeframe WALs of older stores moved into dataset-day WALs,
//! and every WAL recovered (damaged regions to quarantine, torn tails cut), with the days
//! whose last write lacks its rollup marker listed for repair.

use super::HotTier;
use crate::read_dirs;
use crate::timeframe::Timeframe;
use crate::wal::{self, ReplayReport, WalError};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// What recovering the hot tier found.
#[derive(Default)]
pub(crate) struct Recovered {
    /// WAL files whose torn tails were cut or damaged regions set aside.
    pub(crate) repaired: Vec<(PathBuf, ReplayReport)>,
    /// Dataset-day WALs whose last write has no rollup marker.
    pub(crate) unrolled: BTreeSet<PathBuf>,
    /// One-timeframe WALs of an older store moved into dataset-day WALs.
    pub(crate) moved: usize,
}

impl HotTier {
    /// Recover every WAL (see [`wal::recover`]) and index it: first the one-timeframe WALs
    /// of an older store, each then moved into its dataset-day WAL (coarsest timeframe
    /// first, so that the base frames, with their rollup marker, come last), then every
    /// dataset-day WAL. Stops at the first failure (the caller degrades to read-only).
    pub(crate) fn recover(&mut self) -> Result<Recovered, WalError> {
        self.wal_lens.clear();
        self.index.clear();
        self.forget_pending();
        self.day_cache().clear();
        let mut out = Recovered::default();
        let (_, mut legacy) = self.all_wal_files();
        // Per day, rollups (coarser) before the base; ticks are the finest.
        legacy.sort_by_key(|(p, tf)| {
            let width = if tf.is_tick() {
                0
            } else {
                tf.nanos().unwrap_or(i64::MAX)
            };
            (
                p.parent().and_then(|d| d.parent()).map(Path::to_path_buf),
                p.file_name().map(|n| n.to_owned()),
                std::cmp::Reverse(width),
            )
        });
        for (p, tf) in &legacy {
            let rec = wal::recover(p, &self.root, &self.opts)?;
            self.damage.extend(rec.damage);
            if !rec.report.is_clean() {
                out.repaired.push((p.clone(), rec.report));
            }
            let (Some(tf_dir), Some(name)) = (p.parent(), p.file_name()) else {
                continue;
            };
            let Some(ds_dir) = tf_dir.parent() else {
                continue;
            };
            wal::move_frames(
                p,
                wal::stream_of(*tf),
                &ds_dir.join(name),
                &self.root,
                &self.opts,
            )?;
            out.moved += 1;
        }
        for (p, _) in &legacy {
            if let Some(dir) = p.parent() {
                let _ = std::fs::remove_dir(dir); // only succeeds when empty
            }
        }
        let (days, _) = self.all_wal_files();
        for p in days {
            let rec = wal::recover(&p, &self.root, &self.opts)?;
            let rep = rec.report;
            self.note_wal(&p, rep.valid_len);
            self.note_streams(&p, rep.streams.iter().copied());
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
    pub(crate) fn is_unrolled(&self, r: &Recovered, dataset: &str, day: i64) -> bool {
        r.unrolled.contains(&self.day_path(dataset, day))
    }

    /// Remove temp files of WAL rewrites cut short: they are never read, and on a full
    /// disk they hold the space recovery needs.
    pub(crate) fn remove_temp_files(&self) {
        let is_tmp = |f: &Path| f.extension().is_some_and(|e| e == "tmp");
        for d in read_dirs(&self.root.join("_hot")) {
            for t in read_dirs(&d) {
                if is_tmp(&t) {
                    let _ = std::fs::remove_file(&t);
                }
                for f in read_dirs(&t) {
                    if is_tmp(&f) {
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
