//! The hot tier: the WAL of each (dataset, timeframe, UTC day) not yet written down, what
//! the writer knows about those files (valid lengths, the days per timeframe, what to
//! sync), its cache of merged days, and the undo of a write that failed halfway.
//!
//! ```text
//! <root>/_hot/<dataset>/<tf>/<YYYY-MM-DD>.wal
//! ```
//!
//! The façade ([`crate::BarStore`]) names WALs by (dataset, timeframe, day) and never by
//! path; reads of a day overlay its cold parts (given by the caller, from the catalog)
//! with its WAL.

mod day_cache;
mod recover;
mod undo;

use crate::catalog::PartFile;
use crate::merge::{self, Op};
use crate::perms::StoreOptions;
use crate::quarantine::CorruptionReport;
use crate::schema::Kind;
use crate::store::ReadError;
use crate::time::{day_string, parse_day};
use crate::timeframe::Timeframe;
use crate::wal::{self, FsyncPolicy, WalError};
use crate::{par_map, read_dirs};
use arrow_array::RecordBatch;
use day_cache::{CachedDay, DayCache};
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use day_cache::DAY_CACHE_BYTES;
pub(crate) use recover::Recovered;
use undo::{append_frames, Undo, UndoStep};

/// WAL appends of one write: (timeframe, day, operations), one file each.
pub(crate) type Jobs = Vec<(Timeframe, i64, Vec<Op>)>;

/// The hot tier of one store (see the module docs).
pub(crate) struct HotTier {
    /// The store's root (WALs live under `<root>/_hot`).
    root: PathBuf,
    opts: StoreOptions,
    /// A writer that may append (false for read-only stores, and for a writer that
    /// degraded to read-only): reads then go to disk, without the index or the cache.
    writable: bool,
    /// Writer only: every hot WAL file and the length up to which it is known valid
    /// (recovered at open, or written since). Appends to a file whose length still matches
    /// skip the recovery pass; a path absent here does not exist (one writer per directory).
    wal_lens: HashMap<PathBuf, u64>,
    /// Writer only: the days of `wal_lens`, per timeframe directory (`_hot/<dataset>/<tf>`),
    /// so "the days with a WAL before / after day D" needs no directory listing.
    index: HashMap<PathBuf, BTreeSet<i64>>,
    /// WAL files appended since the last [`HotTier::sync_pending`] that the policy wants
    /// synced, and the directories that gained a file (synced under `always`).
    pending_sync: BTreeSet<PathBuf>,
    pending_dirs: BTreeSet<PathBuf>,
    /// Writer only: recently read days, merged.
    day_cache: Mutex<DayCache>,
    /// Writer only: what the write in progress changed, to put back if it fails.
    undo: Option<Undo>,
    /// Writer only: the steps of an undo that failed (the store went read-only), run
    /// again by [`HotTier::finish_undo`] before anything else.
    undo_left: Vec<UndoStep>,
    /// Damaged WAL regions and torn tails set aside, at open and on later appends.
    pub(crate) damage: Vec<CorruptionReport>,
}

impl HotTier {
    /// A hot tier with nothing recovered, cached or pending yet.
    pub(crate) fn new(root: &Path, opts: StoreOptions, writable: bool) -> Self {
        HotTier {
            root: root.into(),
            opts,
            writable,
            wal_lens: HashMap::new(),
            index: HashMap::new(),
            pending_sync: BTreeSet::new(),
            pending_dirs: BTreeSet::new(),
            day_cache: Mutex::new(DayCache::default()),
            undo: None,
            undo_left: Vec::new(),
            damage: Vec::new(),
        }
    }

    /// Whether this tier appends (a writer that has not degraded to read-only).
    pub(crate) fn writable(&self) -> bool {
        self.writable
    }

    /// How files are created (modes, the test hook that fails writes).
    pub(crate) fn opts(&self) -> &StoreOptions {
        &self.opts
    }

    /// See [`crate::BarStore::set_day_cache_bytes`].
    pub(crate) fn set_day_cache_bytes(&mut self, bytes: usize) {
        let c = self.day_cache.get_mut().unwrap_or_else(|p| p.into_inner());
        c.limit = bytes;
        c.make_room(0);
    }

    /// WAL path of a (dataset, timeframe, day).
    pub(crate) fn wal_path(&self, dataset: &str, tf: Timeframe, day: i64) -> PathBuf {
        self.tf_dir(dataset, tf)
            .join(format!("{}.wal", day_string(day)))
    }

    fn tf_dir(&self, dataset: &str, tf: Timeframe) -> PathBuf {
        self.root.join("_hot").join(dataset).join(tf.to_string())
    }

    fn all_wal_files(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for d in read_dirs(&self.root.join("_hot")) {
            for t in read_dirs(&d) {
                for f in read_dirs(&t) {
                    if f.extension().is_some_and(|e| e == "wal") {
                        out.push(f);
                    }
                }
            }
        }
        out
    }

    /// UTC days with a WAL for (dataset, tf), ascending (from the directory: the writer's
    /// index may be behind a read-only opener's view of the disk).
    pub(crate) fn days(&self, dataset: &str, tf: Timeframe) -> Vec<i64> {
        let mut days: Vec<i64> = read_dirs(&self.tf_dir(dataset, tf))
            .iter()
            .filter_map(|p| parse_day(p.file_stem()?.to_str()?))
            .collect();
        days.sort();
        days
    }

    /// Writer only: the days in `range` with a WAL for (dataset, tf), from the index.
    pub(crate) fn indexed_days(
        &self,
        dataset: &str,
        tf: Timeframe,
        range: impl std::ops::RangeBounds<i64>,
    ) -> Vec<i64> {
        self.index
            .get(&self.tf_dir(dataset, tf))
            .map(|d| d.range(range).copied().collect())
            .unwrap_or_default()
    }

    /// Whether (dataset, tf, day) has a WAL (writer only: from the index, no `stat`).
    pub(crate) fn exists(&self, dataset: &str, tf: Timeframe, day: i64) -> bool {
        self.wal_lens.contains_key(&self.wal_path(dataset, tf, day))
    }

    /// Append each job's operations to its WAL, the files on every CPU, then record them
    /// (valid lengths, the sync list, the undo) in job order. Unsynced: the write syncs
    /// with [`HotTier::sync_pending`] before it returns. The first failure, in job order,
    /// is returned.
    pub(crate) fn write(
        &mut self,
        dataset: &str,
        policy: FsyncPolicy,
        jobs: Jobs,
    ) -> Result<(), WalError> {
        let work: Vec<(PathBuf, Option<u64>, Vec<Op>)> = jobs
            .into_iter()
            .map(|(tf, day, ops)| {
                let p = self.wal_path(dataset, tf, day);
                let known = self.wal_lens.get(&p).copied();
                (p, known, ops)
            })
            .collect();
        let (root, opts) = (&self.root, &self.opts);
        let results = if work.len() == 1 {
            let (path, known, ops) = &work[0];
            vec![append_frames(path, *known, root, opts, |w| w.append(ops))]
        } else {
            par_map(&work, |(path, known, ops)| {
                append_frames(path, *known, root, opts, |w| w.append(ops))
            })
        };
        let mut first_err = None;
        for ((path, _, _), r) in work.into_iter().zip(results) {
            if let Err(e) = self.record_append(&path, policy, r) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Append a rollup marker to the base WAL of each of `days` (see [`crate::wal`]): the
    /// rollups derived from everything before it are durable. Not synced itself: a marker
    /// lost in a power cut costs one needless repair at the next open.
    pub(crate) fn mark_rollups_done(
        &mut self,
        dataset: &str,
        base: Timeframe,
        days: &[i64],
    ) -> Result<(), WalError> {
        for &day in days {
            let path = self.wal_path(dataset, base, day);
            let known = self.wal_lens.get(&path).copied();
            let res = append_frames(&path, known, &self.root, &self.opts, |w| {
                w.append_rollup_marker()
            });
            self.record_append(&path, FsyncPolicy::Never, res)?;
        }
        Ok(())
    }

    /// Drop the sync list of a write that failed before its sync point.
    pub(crate) fn forget_pending(&mut self) {
        self.pending_sync.clear();
        self.pending_dirs.clear();
    }

    /// `fdatasync` every WAL appended since the last call (on up to 4 threads: the device
    /// works on several at once), then `fsync` each directory that gained a file.
    pub(crate) fn sync_pending(&mut self) -> Result<(), WalError> {
        let files: Vec<PathBuf> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        let dirs = std::mem::take(&mut self.pending_dirs);
        let sync = |paths: &[PathBuf], data_only: bool| -> Result<(), WalError> {
            for p in paths {
                let io = |source| WalError::Io {
                    path: p.clone(),
                    source,
                };
                let f = File::open(p).map_err(io)?;
                if data_only {
                    f.sync_data().map_err(io)?;
                } else {
                    f.sync_all().map_err(io)?;
                }
            }
            Ok(())
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .clamp(1, 4)
            .min(files.len().div_ceil(8).max(1));
        if threads <= 1 {
            sync(&files, true)?;
        } else {
            let per = files.len().div_ceil(threads);
            std::thread::scope(|sc| {
                let sync = &sync;
                let handles: Vec<_> = files
                    .chunks(per)
                    .map(|c| sc.spawn(move || sync(c, true)))
                    .collect();
                handles
                    .into_iter()
                    .try_for_each(|h| h.join().expect("sync thread"))
            })?;
        }
        let dirs: Vec<PathBuf> = dirs.into_iter().collect();
        sync(&dirs, false)
    }

    /// Record a hot WAL (writer only) and the length up to which it is valid.
    fn note_wal(&mut self, path: &Path, len: u64) {
        self.wal_lens.insert(path.to_path_buf(), len);
        if len == u64::MAX {
            // A failed append: whatever the file holds now is read afresh.
            self.day_cache().forget(path);
        }
        let day = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_day);
        if let (Some(dir), Some(day)) = (path.parent(), day) {
            self.index.entry(dir.to_path_buf()).or_default().insert(day);
        }
    }

    /// Delete the WAL of (dataset, tf, day) after its day was written down, and forget it.
    pub(crate) fn remove(&mut self, dataset: &str, tf: Timeframe, day: i64) {
        let path = self.wal_path(dataset, tf, day);
        let _ = std::fs::remove_file(&path);
        self.forget_wal(&path);
    }

    /// Forget a hot WAL that was deleted.
    fn forget_wal(&mut self, path: &Path) {
        self.wal_lens.remove(path);
        self.day_cache().forget(path);
        let day = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(parse_day);
        if let (Some(dir), Some(day)) = (path.parent(), day) {
            if let Some(days) = self.index.get_mut(dir) {
                days.remove(&day);
            }
        }
    }

    /// The merged content of one (dataset, timeframe, day): its cold parts `cold` (paths
    /// relative to the root, in catalog order) overlaid with its WAL, restricted to
    /// `symbols` when given, sorted by key. A read-only tier skips parts without any of
    /// `symbols`; a writer reads them all (its cache holds whole days).
    ///
    /// The writer keeps recently read days merged in memory (the day cache) and, when a
    /// WAL has grown since, decodes only the frames appended since: a live feed's append
    /// then reads its day in time linear in the day's rows, not in its frames. `keep`
    /// caches a day read from disk; otherwise only the newest hot day of a timeframe (the
    /// live one) is kept.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn read_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
        cold: &[PartFile],
        symbols: Option<&BTreeSet<String>>,
        keep: bool,
    ) -> Result<Option<RecordBatch>, ReadError> {
        let path = self.wal_path(dataset, tf, day);
        if !self.writable {
            // Parts without any of the symbols asked for are not read.
            let wanted = cold
                .iter()
                .filter(|p| symbols.is_none_or(|s| p.symbols.iter().any(|x| s.contains(x))))
                .map(|p| p.path.clone());
            let base = crate::cold::read_parts(&self.root, wanted, kind)?;
            let (ops, _) = wal::replay(&path)?;
            return select(merge::apply(kind, base, ops)?, symbols);
        }
        let cold: Vec<String> = cold.iter().map(|p| p.path.clone()).collect();
        let keep = keep
            || self
                .index
                .get(&self.tf_dir(dataset, tf))
                .and_then(|d| d.last())
                == Some(&day);
        // The WAL's valid length as the writer knows it (0: no WAL). Unknown after a failed
        // append: then the file is read as it is, and not cached.
        let len = match self.wal_lens.get(&path) {
            None => Some(0),
            Some(&u64::MAX) => None,
            Some(&n) => Some(n),
        };
        if let Some(len) = len {
            let have = match self.day_cache().find(&path, &cold) {
                Some(e) if e.wal_len == len => return Ok(e.select(kind, symbols)?),
                Some(e) if e.wal_len < len => Some(e.wal_len),
                _ => None,
            };
            // Decode the frames appended since, outside the lock, then merge them in.
            let tail = have.map(|h| wal::replay_range(&path, h, len)).transpose()?;
            if let (Some(have), Some(Some(ops))) = (have, tail) {
                let mut cache = self.day_cache();
                if let Some(e) = cache.find(&path, &cold).filter(|e| e.wal_len == have) {
                    if let Err(err) = merge::apply_by_symbol(kind, &mut e.day, ops) {
                        cache.forget(&path);
                        return Err(err.into());
                    }
                    e.wal_len = len;
                    e.bytes = e.estimate();
                }
                // (Another reader may have brought it up to date meanwhile.)
                if let Some(e) = cache.find(&path, &cold).filter(|e| e.wal_len == len) {
                    let out = e.select(kind, symbols)?;
                    cache.make_room(0);
                    return Ok(out);
                }
            }
        }
        let base = crate::cold::read_parts(&self.root, cold.iter().cloned(), kind)?;
        let (ops, rep) = wal::replay(&path)?;
        let replayed = rep.is_clean().then_some(rep.valid_len);
        let merged = merge::apply(kind, base, ops)?;
        if keep && len.is_some() && replayed == len {
            self.day_cache().put(CachedDay::new(
                path,
                cold,
                replayed.unwrap_or(0),
                merged.as_ref(),
            ));
        }
        select(merged, symbols)
    }

    /// [`HotTier::read_day`] of each day of `plan` (days ascending, each with its cold
    /// parts), conformed to `kind`'s schema, in day order. Days are independent (a file or
    /// two each): they are read on every CPU.
    pub(crate) fn read_days(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        plan: &[(i64, Vec<PartFile>)],
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Vec<RecordBatch>, ReadError> {
        let schema = kind.schema();
        let read = |days: &[(i64, Vec<PartFile>)]| -> Result<Vec<RecordBatch>, ReadError> {
            let mut out = Vec::with_capacity(days.len());
            for (day, cold) in days {
                if let Some(b) = self.read_day(dataset, tf, kind, *day, cold, symbols, false)? {
                    out.push(crate::schema::conform(&b, &schema)?);
                }
            }
            Ok(out)
        };
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(plan.len() / 4)
            .max(1);
        if threads == 1 {
            return read(plan);
        }
        let per = plan.len().div_ceil(threads);
        let results: Vec<Result<Vec<RecordBatch>, ReadError>> = std::thread::scope(|sc| {
            let read = &read;
            let handles: Vec<_> = plan
                .chunks(per)
                .skip(1)
                .map(|c| sc.spawn(move || read(c)))
                .collect();
            let mut r = vec![read(&plan[..per.min(plan.len())])];
            r.extend(
                handles
                    .into_iter()
                    .map(|h| h.join().expect("reader thread")),
            );
            r
        });
        let mut pieces = Vec::new();
        for r in results {
            pieces.extend(r?);
        }
        Ok(pieces)
    }

    /// The day cache; a panic while it was locked leaves it empty, not half-updated.
    fn day_cache(&self) -> std::sync::MutexGuard<'_, DayCache> {
        self.day_cache.lock().unwrap_or_else(|poisoned| {
            let mut c = poisoned.into_inner();
            c.entries.clear();
            self.day_cache.clear_poison();
            c
        })
    }

    /// Refuse appends from now on (the writer degraded to read-only): reads go the
    /// read-only way (every valid frame from disk, no cache).
    pub(crate) fn degrade(&mut self) {
        self.writable = false;
        self.forget_pending();
        self.day_cache().entries.clear();
    }
}

/// The rows of `symbols` (all when `None`) of a merged day.
fn select(
    merged: Option<RecordBatch>,
    symbols: Option<&BTreeSet<String>>,
) -> Result<Option<RecordBatch>, ReadError> {
    match (merged, symbols) {
        (Some(b), Some(s)) => Ok(crate::store::select_symbols(&b, s)?),
        (m, _) => Ok(m),
    }
}
