//! One write, all or nothing: an upsert or delete extends the base WALs, then the rollup
//! WALs, then marks the base WALs, and when any step fails (a frame write on a full disk,
//! an fsync, a read, a catalog commit) every WAL it extended is cut back to its length
//! before it, newest extension first, so the store is exactly as before and the error is
//! honest.
//!
//! The cut runs the write backwards: the base WALs lose their rollup marker before the
//! rollup frames go, and the rollup frames before the base frames. Each cut is synced
//! before the next, so a crash halfway through an undo leaves a state the write itself
//! passed through, which the next open repairs like any interrupted write (rollups
//! rewritten from unmarked base frames). When a cut fails (`EIO`), the store turns
//! read-only rather than serve memory that disagrees with the disk; the cuts left are run
//! again by [`crate::BarStore::retry_writable`].

use super::HotTier;
use crate::perms::StoreOptions;
use crate::quarantine::CorruptionReport;
use crate::wal::{self, FsyncPolicy, WalError, WalWriter};
use std::path::{Path, PathBuf};

/// One extension of a WAL file by a write: what its undo cuts back.
#[derive(Clone, Debug)]
pub(super) struct UndoStep {
    path: PathBuf,
    /// The file's valid length before the extension.
    before: u64,
    /// The extension created the file (its undo removes it).
    created: bool,
}

/// What the write in progress changed (see the module docs).
#[derive(Debug, Default)]
pub(super) struct Undo {
    /// WAL extensions in the order they were made.
    steps: Vec<UndoStep>,
    /// Every WAL file the write tried to append to, extended or not.
    touched: Vec<PathBuf>,
}

/// One WAL append as it went (see [`HotTier::record_append`]).
pub(super) struct Appended {
    /// The file's valid length before the append and whether the append created it;
    /// `None` when the file could not be opened (the append wrote nothing).
    before: Option<(u64, bool)>,
    /// Damage set aside when the file was reopened (it changed on disk since).
    damage: Vec<CorruptionReport>,
    /// The valid length after the append, or why it failed.
    result: Result<u64, WalError>,
}

impl Appended {
    /// An append refused before the file was opened (it wrote nothing).
    pub(super) fn failed(e: WalError) -> Self {
        Appended {
            before: None,
            damage: Vec::new(),
            result: Err(e),
        }
    }

    /// Whether the append went through.
    pub(super) fn is_ok(&self) -> bool {
        self.result.is_ok()
    }
}

/// Open a hot WAL the store tracks (`known`: its valid length in `wal_lens`) and let
/// `write` append to it; unsynced (the store syncs per policy in `sync_pending`).
pub(super) fn append_frames(
    path: &Path,
    known: Option<u64>,
    root: &Path,
    opts: &StoreOptions,
    write: impl FnOnce(&mut WalWriter) -> Result<(), WalError>,
) -> Appended {
    let mut w = match WalWriter::open_known(path, FsyncPolicy::Never, known, root, opts) {
        Ok(w) => w,
        Err(e) => {
            return Appended {
                before: None,
                damage: Vec::new(),
                result: Err(e),
            }
        }
    };
    let before = Some((w.valid_len(), w.created()));
    let damage = std::mem::take(&mut w.damage);
    let result = write(&mut w).and_then(|()| {
        let len = w.valid_len();
        w.close()?;
        Ok(len)
    });
    Appended {
        before,
        damage,
        result,
    }
}

impl HotTier {
    /// Start a write that [`HotTier::end_write`] keeps or undoes.
    pub(crate) fn begin_write(&mut self) {
        self.forget_pending();
        self.undo = Some(Undo::default());
    }

    /// Finish the write begun by [`HotTier::begin_write`]: keep it when `ok`, else cut
    /// back every WAL extension it made. Err when the cut failed (then the caller turns the
    /// store read-only; the cuts left wait in [`HotTier::finish_undo`]).
    pub(crate) fn end_write(&mut self, ok: bool) -> Result<(), WalError> {
        let undo = self.undo.take().unwrap_or_default();
        if ok {
            return Ok(());
        }
        self.forget_pending();
        self.roll_back(undo)
    }

    /// Run the cuts of an undo that failed earlier (see [`HotTier::end_write`]); until
    /// they are done, the disk holds frames of a write that was refused.
    pub(crate) fn finish_undo(&mut self) -> Result<(), WalError> {
        let steps = std::mem::take(&mut self.undo_left);
        self.run_undo(steps)
    }

    /// Cut back every WAL extension of `undo` and bring the writer's view of those files
    /// (valid lengths, day index, day cache) back to before the write.
    fn roll_back(&mut self, undo: Undo) -> Result<(), WalError> {
        let Undo { steps, touched } = undo;
        let firsts: Vec<Option<UndoStep>> = touched
            .iter()
            .map(|p| steps.iter().find(|s| s.path == *p).cloned())
            .collect();
        let res = self.run_undo(steps);
        for (path, first) in touched.iter().zip(firsts) {
            self.day_cache().forget(path);
            match first {
                Some(s) if res.is_ok() && s.created => self.forget_wal(path),
                Some(s) if res.is_ok() => self.note_wal(path, s.before),
                // Not extended (the open failed), or the undo stopped short: read the
                // file as it is next time.
                _ if path.exists() => self.note_wal(path, u64::MAX),
                _ => self.forget_wal(path),
            }
        }
        res
    }

    /// Cut back `steps` newest first, each synced before the next. On failure the steps
    /// not done (the failed one included) are kept in `undo_left`.
    fn run_undo(&mut self, mut steps: Vec<UndoStep>) -> Result<(), WalError> {
        while let Some(s) = steps.pop() {
            if let Err(e) = wal::cut_back(&s.path, s.before, s.created, &self.opts) {
                steps.push(s);
                self.undo_left = steps;
                return Err(e);
            }
        }
        Ok(())
    }

    /// Book-keeping after an append: the extension (for the undo of a failed write), the
    /// file's valid length, and what to sync.
    pub(super) fn record_append(
        &mut self,
        path: &Path,
        policy: FsyncPolicy,
        a: Appended,
    ) -> Result<(), WalError> {
        if let Some(u) = &mut self.undo {
            if !u.touched.iter().any(|p| p == path) {
                u.touched.push(path.to_path_buf());
            }
            if let Some((before, created)) = a.before {
                u.steps.push(UndoStep {
                    path: path.to_path_buf(),
                    before,
                    created,
                });
            }
        }
        self.damage.extend(a.damage);
        match a.result {
            Ok(len) => {
                self.note_wal(path, len);
                // `always` syncs the file and, for a new file, its directory entry;
                // `<N>ms` synced each file when its writer closed, which it still does here.
                if policy != FsyncPolicy::Never {
                    self.pending_sync.insert(path.to_path_buf());
                }
                let created = a.before.is_some_and(|(_, c)| c);
                if created && policy == FsyncPolicy::Always {
                    if let Some(dir) = path.parent() {
                        self.pending_dirs.insert(dir.to_path_buf());
                    }
                }
                Ok(())
            }
            Err(e) => {
                // The file may exist with a torn frame now: recover it on the next append
                // (unless the write's undo cuts it back first).
                self.note_wal(path, u64::MAX);
                Err(e)
            }
        }
    }
}
