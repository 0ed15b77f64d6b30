//! The hot tier: one WAL per (dataset, UTC day) not yet written down, holding the frames
//! of the base timeframe and of every rollup (each frame tagged with its timeframe's
//! stream, [`wal::stream_of`]); what the writer knows about those files (valid lengths,
//! the days and streams of each dataset, what to sync); its cache of merged days; and the
//! undo of a write that failed halfway.
//!
//! ```text
//! <root>/_hot/<dataset>/<YYYY-MM-DD>.wal
//! <root>/_hot/<dataset>/<tf>/<YYYY-MM-DD>.wal    one timeframe per file: stores written
//!                                                 before dataset-day files (read, and
//!                                                 moved into the day files by the writer)
//! ```
//!
//! One file per dataset-day instead of one per timeframe-day: a symbol-year of 1m bars
//! with four rollups creates 365 files, not 1,825, and a write syncs one file per day.
//!
//! The façade ([`crate::BarStore`]) names WALs by (dataset, timeframe, day) and never by
//! path; reads of a day overlay its cold parts (given by the caller, from the catalog)
//! with the day's frames of the timeframe's stream.

mod day_cache;
mod prune;
mod recover;
mod span;
mod undo;

pub(crate) use span::ts_span;

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
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

pub use day_cache::DAY_CACHE_BYTES;
pub(crate) use recover::Recovered;
use undo::{append_frames, Appended, Undo, UndoStep};

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
    /// Writer only: per dataset, the days of `wal_lens` and the streams each holds frames
    /// of, so "the days with rows of this timeframe before / after day D" needs no
    /// directory listing or read.
    index: HashMap<String, BTreeMap<i64, BTreeSet<u32>>>,
    /// WAL files appended since the last [`HotTier::sync_pending`] that the policy wants
    /// synced, and the directories that gained a file (synced under `always`).
    pending_sync: BTreeSet<PathBuf>,
    pending_dirs: BTreeSet<PathBuf>,
    /// WAL files appended since the last rollup marker ([`HotTier::mark_rollups_done`]).
    unmarked: BTreeSet<PathBuf>,
    /// Writer only: recently read days, merged.
    day_cache: Mutex<DayCache>,
    /// Writer only: what the write in progress changed, to put back if it fails.
    undo: Option<Undo>,
    /// Writer only: the steps of an undo that failed (the store went read-only), run
    /// again by [`HotTier::finish_undo`] before anything else.
    undo_left: Vec<UndoStep>,
    /// Damaged WAL regions and torn tails set aside, at open and on later appends.
    pub(crate) damage: Vec<CorruptionReport>,
    /// Per dataset, the first day the hot tier may hold (the catalog's retention floor):
    /// a WAL of an earlier day is a leftover of a crash and is never read.
    floors: HashMap<String, i64>,
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
            unmarked: BTreeSet::new(),
            day_cache: Mutex::new(DayCache::default()),
            undo: None,
            undo_left: Vec::new(),
            damage: Vec::new(),
            floors: HashMap::new(),
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

    /// The WAL of (dataset, day): every timeframe's frames of the day.
    pub(crate) fn day_path(&self, dataset: &str, day: i64) -> PathBuf {
        self.root
            .join("_hot")
            .join(dataset)
            .join(format!("{}.wal", day_string(day)))
    }

    /// The one-timeframe WAL of (dataset, tf, day) of a store written before dataset-day
    /// files (read-only openers read it; the writer moves it into the day file).
    fn legacy_path(&self, dataset: &str, tf: Timeframe, day: i64) -> PathBuf {
        self.root
            .join("_hot")
            .join(dataset)
            .join(tf.to_string())
            .join(format!("{}.wal", day_string(day)))
    }

    /// (dataset, day) of a dataset-day WAL path.
    fn key_of(path: &Path) -> Option<(String, i64)> {
        let day = parse_day(path.file_stem()?.to_str()?)?;
        let dataset = path.parent()?.file_name()?.to_str()?.to_string();
        Some((dataset, day))
    }

    /// Dataset-day WALs, and legacy one-timeframe WALs as (file, timeframe).
    fn all_wal_files(&self) -> (Vec<PathBuf>, Vec<(PathBuf, Timeframe)>) {
        let (mut days, mut legacy) = (Vec::new(), Vec::new());
        let is_wal = |f: &Path| f.extension().is_some_and(|e| e == "wal");
        for d in read_dirs(&self.root.join("_hot")) {
            for f in read_dirs(&d) {
                if f.is_dir() {
                    let Some(tf) = canonical_tf(&f) else { continue };
                    legacy.extend(
                        read_dirs(&f)
                            .into_iter()
                            .filter(|x| is_wal(x))
                            .map(|x| (x, tf)),
                    );
                } else if is_wal(&f) {
                    days.push(f);
                }
            }
        }
        (days, legacy)
    }

    /// UTC days with rows of (dataset, tf) in the hot tier, ascending. The writer answers
    /// from its index; a read-only opener lists the files (a day listed may hold frames of
    /// other timeframes only: reading it then gives nothing).
    pub(crate) fn days(&self, dataset: &str, tf: Timeframe) -> Vec<i64> {
        if self.writable {
            return self.indexed_days(dataset, tf, ..);
        }
        let dir = self.root.join("_hot").join(dataset);
        let day_of = |p: &PathBuf| {
            p.extension()
                .is_some_and(|e| e == "wal")
                .then(|| parse_day(p.file_stem()?.to_str()?))
                .flatten()
        };
        let mut days: BTreeSet<i64> = read_dirs(&dir).iter().filter_map(day_of).collect();
        days.extend(
            read_dirs(&dir.join(tf.to_string()))
                .iter()
                .filter_map(day_of),
        );
        let floor = self.floor(dataset);
        days.into_iter().filter(|d| *d >= floor).collect()
    }

    /// Writer only: the days in `range` with frames of (dataset, tf), from the index.
    pub(crate) fn indexed_days(
        &self,
        dataset: &str,
        tf: Timeframe,
        range: impl std::ops::RangeBounds<i64>,
    ) -> Vec<i64> {
        let stream = wal::stream_of(tf);
        let floor = self.floor(dataset);
        self.index
            .get(dataset)
            .map(|d| {
                d.range(range)
                    .filter(|(d, s)| **d >= floor && s.contains(&stream))
                    .map(|(d, _)| *d)
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Whether (dataset, tf, day) has frames in the hot tier (writer only: from the index,
    /// no `stat`). May say yes after a failed write whose frames were cut back: reads then
    /// find nothing, which costs a read, never a row.
    pub(crate) fn exists(&self, dataset: &str, tf: Timeframe, day: i64) -> bool {
        self.index
            .get(dataset)
            .and_then(|d| d.get(&day))
            .is_some_and(|s| s.contains(&wal::stream_of(tf)))
    }

    /// Append each job's operations to its day's WAL (the jobs of one day as one write),
    /// the files on every CPU, then record them (valid lengths, streams, the sync list,
    /// the undo) in day order. Unsynced: the write syncs with [`HotTier::sync_pending`]
    /// before it returns. The first failure, in day order, is returned.
    pub(crate) fn write(
        &mut self,
        dataset: &str,
        policy: FsyncPolicy,
        jobs: Jobs,
    ) -> Result<(), WalError> {
        let mut by_day: BTreeMap<i64, Vec<(Timeframe, Vec<Op>)>> = BTreeMap::new();
        for (tf, day, ops) in jobs {
            by_day.entry(day).or_default().push((tf, ops));
        }
        type Work = (
            PathBuf,
            Option<u64>,
            Vec<(u32, Vec<Op>)>,
            Option<std::io::Error>,
        );
        let work: Vec<Work> = by_day
            .into_iter()
            .map(|(day, groups)| {
                let p = self.day_path(dataset, day);
                let known = self.wal_lens.get(&p).copied();
                // The test hook that fails writes under a directory: a timeframe's frames
                // fail as its own directory's file did before dataset-day files.
                let fault = groups.iter().find_map(|(tf, _)| {
                    let dir = self.root.join("_hot").join(dataset).join(tf.to_string());
                    self.opts.check_fault(&dir).err()
                });
                let groups = groups
                    .into_iter()
                    .map(|(tf, ops)| (wal::stream_of(tf), ops))
                    .collect();
                (p, known, groups, fault)
            })
            .collect();
        let (root, opts) = (&self.root, &self.opts);
        let append = |(path, known, groups, fault): &Work| match fault {
            Some(e) => Appended::failed(wal::io_error(
                path,
                std::io::Error::new(e.kind(), e.to_string()),
                e.raw_os_error(),
            )),
            None => append_frames(path, *known, root, opts, |w| {
                let g: Vec<(u32, &[Op])> = groups.iter().map(|(s, o)| (*s, o.as_slice())).collect();
                w.append_streams(&g)
            }),
        };
        let results = if work.len() == 1 {
            vec![append(&work[0])]
        } else {
            par_map(&work, append)
        };
        let mut first_err = None;
        for ((path, _, groups, _), r) in work.into_iter().zip(results) {
            let ok = r.is_ok();
            if let Err(e) = self.record_append(&path, policy, r) {
                first_err.get_or_insert(e);
            }
            if ok {
                self.note_streams(&path, groups.iter().map(|(s, _)| *s));
                self.unmarked.insert(path);
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Append a rollup marker to each WAL of `dataset` appended since the last marker
    /// (see [`crate::wal`]): the rollups derived from everything before it are durable (the
    /// caller synced them). A write's rollup frames can land in earlier days' WALs (the
    /// bars the write closes), which get a marker too. Not synced itself: a marker lost in
    /// a power cut costs one needless repair at the next open.
    pub(crate) fn mark_rollups_done(&mut self, dataset: &str) -> Result<(), WalError> {
        let paths: Vec<PathBuf> = self
            .unmarked
            .iter()
            .filter(|p| Self::key_of(p).is_some_and(|(d, _)| d == dataset))
            .cloned()
            .collect();
        for path in paths {
            let known = self.wal_lens.get(&path).copied();
            let res = append_frames(&path, known, &self.root, &self.opts, |w| {
                w.append_rollup_marker()
            });
            self.record_append(&path, FsyncPolicy::Never, res)?;
            self.unmarked.remove(&path);
        }
        Ok(())
    }

    /// Drop the sync list of a write that failed before its sync point.
    pub(crate) fn forget_pending(&mut self) {
        self.pending_sync.clear();
        self.pending_dirs.clear();
        self.unmarked.clear();
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
        let threads = crate::cpus()
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
        if let Some((dataset, day)) = Self::key_of(path) {
            self.index
                .entry(dataset)
                .or_default()
                .entry(day)
                .or_default();
        }
    }

    /// Record that a hot WAL holds frames of `streams`.
    fn note_streams(&mut self, path: &Path, streams: impl IntoIterator<Item = u32>) {
        if let Some((dataset, day)) = Self::key_of(path) {
            self.index
                .entry(dataset)
                .or_default()
                .entry(day)
                .or_default()
                .extend(streams);
        }
    }

    /// Delete the WAL of (dataset, day) after its day was written down (every timeframe
    /// of it), and forget it.
    pub(crate) fn remove_day(&mut self, dataset: &str, day: i64) {
        let path = self.day_path(dataset, day);
        let _ = std::fs::remove_file(&path);
        self.forget_wal(&path);
    }

    /// Forget a hot WAL that was deleted.
    fn forget_wal(&mut self, path: &Path) {
        self.wal_lens.remove(path);
        self.day_cache().forget(path);
        if let Some((dataset, day)) = Self::key_of(path) {
            if let Some(days) = self.index.get_mut(&dataset) {
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
        let path = self.day_path(dataset, day);
        let stream = wal::stream_of(tf);
        if !self.writable {
            // Parts without any of the symbols asked for are not read.
            let wanted: Vec<PartFile> = cold
                .iter()
                .filter(|p| symbols.is_none_or(|s| p.symbols.iter().any(|x| s.contains(x))))
                .cloned()
                .collect();
            let base = crate::cold::read_day(&self.root, &wanted, kind, day)?;
            // A legacy one-timeframe WAL holds older frames than the day file.
            let (mut ops, _) = wal::replay(&self.legacy_path(dataset, tf, day))?;
            ops.extend(wal::replay_stream(&path, Some(stream))?.0);
            return select(merge::apply(kind, base, ops)?, symbols);
        }
        let parts = cold;
        let cold: Vec<String> = cold.iter().map(|p| p.path.clone()).collect();
        let newest = self.indexed_days(dataset, tf, day..).last() == Some(&day);
        let keep = keep || newest;
        // The WAL's valid length as the writer knows it (0: no WAL). Unknown after a failed
        // append: then the file is read as it is, and not cached.
        let len = match self.wal_lens.get(&path) {
            None => Some(0),
            Some(&u64::MAX) => None,
            Some(&n) => Some(n),
        };
        if let Some(len) = len {
            let have = match self.day_cache().find(&path, stream, &cold) {
                Some(e) if e.wal_len == len => return Ok(e.select(kind, symbols)?),
                Some(e) if e.wal_len < len => Some(e.wal_len),
                _ => None,
            };
            // Decode the frames appended since, outside the lock, then merge them in.
            let tail = have
                .map(|h| wal::replay_range_stream(&path, h, len, Some(stream)))
                .transpose()?;
            if let (Some(have), Some(Some(ops))) = (have, tail) {
                let mut cache = self.day_cache();
                if let Some(e) = cache
                    .find(&path, stream, &cold)
                    .filter(|e| e.wal_len == have)
                {
                    if let Err(err) = merge::apply_by_symbol(kind, e.day_mut(), ops) {
                        cache.forget(&path);
                        return Err(err.into());
                    }
                    e.wal_len = len;
                    e.bytes = e.estimate();
                }
                // (Another reader may have brought it up to date meanwhile.)
                if let Some(e) = cache
                    .find(&path, stream, &cold)
                    .filter(|e| e.wal_len == len)
                {
                    let out = e.select(kind, symbols)?;
                    cache.make_room(0);
                    return Ok(out);
                }
            }
        }
        let base = crate::cold::read_day(&self.root, parts, kind, day)?;
        let (ops, rep) = wal::replay_stream(&path, Some(stream))?;
        let replayed = rep.is_clean().then_some(rep.valid_len);
        let merged = merge::apply(kind, base, ops)?;
        if keep && len.is_some() && replayed == len {
            self.day_cache().put(CachedDay::new(
                path,
                stream,
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
        // Days of bars a day or longer are a row a symbol: cheap to keep, and read again by
        // every write of their month (calendar rollups) or week.
        let keep = tf
            .approx_nanos()
            .is_some_and(|n| n >= crate::timeframe::NANOS_PER_DAY);
        let read = |days: &[(i64, Vec<PartFile>)]| -> Result<Vec<RecordBatch>, ReadError> {
            let mut out = Vec::with_capacity(days.len());
            for (day, cold) in days {
                if let Some(b) = self.read_day(dataset, tf, kind, *day, cold, symbols, keep)? {
                    out.push(crate::schema::conform(&b, &schema)?);
                }
            }
            Ok(out)
        };
        let threads = crate::cpus().min(plan.len() / 4).max(1);
        // Kept days come from the cache in microseconds: threads would cost more.
        if threads == 1 || keep {
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
            c.clear();
            self.day_cache.clear_poison();
            c
        })
    }

    /// Refuse appends from now on (the writer degraded to read-only): reads go the
    /// read-only way (every valid frame from disk, no cache).
    pub(crate) fn degrade(&mut self) {
        self.writable = false;
        self.forget_pending();
        self.day_cache().clear();
    }
}

/// The timeframe a legacy one-timeframe WAL directory is named after, when the name is
/// its normalized spelling (others are left alone: see [`HotTier::rename_timeframes`]).
fn canonical_tf(dir: &Path) -> Option<Timeframe> {
    let name = dir.file_name()?.to_str()?;
    let tf: Timeframe = name.parse().ok()?;
    (tf.to_string() == name).then_some(tf)
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
