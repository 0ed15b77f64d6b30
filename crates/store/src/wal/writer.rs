//! Appending to a WAL: [`WalWriter`], an open file positioned after its last valid frame,
//! and the directory syncs that make a new file durable.

use super::{
    encode_stream_into, finish_frame, io, recover, FsyncPolicy, Recovered, ReplayReport, WalError,
    HEADER, KIND_ROLLED, MAX_FRAME,
};
use crate::merge::Op;
use crate::perms::{Create, StoreOptions, WriteFault};
use crate::quarantine::CorruptionReport;
use std::fs::File;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Sync the directory holding `path`, making a new entry in it durable.
pub(crate) fn sync_parent(path: &Path) -> Result<(), WalError> {
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(path))?;
    }
    Ok(())
}

/// An open WAL file, positioned after its last valid frame.
pub struct WalWriter {
    path: PathBuf,
    file: File,
    policy: FsyncPolicy,
    last_sync: Instant,
    dirty: bool,
    /// File length after the last successful append (= the end of the last valid frame).
    pos: u64,
    /// Whether opening created the file.
    created: bool,
    /// Test hook of the store's options: appends fail while it is set.
    fault: Option<WriteFault>,
    /// What opening found (before it set damaged bytes aside).
    pub recovered: ReplayReport,
    /// What opening set aside: damaged regions moved to quarantine, a torn tail cut.
    pub damage: Vec<CorruptionReport>,
}

impl WalWriter {
    /// Open (creating if needed) a WAL file for appending with the default modes, setting
    /// damaged bytes aside first (see [`recover`]; quarantine goes beside the file).
    pub fn open(path: &Path, policy: FsyncPolicy) -> Result<Self, WalError> {
        let root = path.parent().unwrap_or(Path::new("."));
        Self::open_in(path, policy, root, &StoreOptions::default())
    }

    /// [`WalWriter::open`] within a store: directories and the file are created with the
    /// modes of `opts`, and damaged bytes go to `root`'s quarantine.
    pub fn open_in(
        path: &Path,
        policy: FsyncPolicy,
        root: &Path,
        opts: &StoreOptions,
    ) -> Result<Self, WalError> {
        if let Some(dir) = path.parent() {
            opts.create_dir_all(dir).map_err(io(path))?;
        }
        let existed = path.exists();
        let rec = if existed {
            recover(path, root, opts)?
        } else {
            Recovered::default()
        };
        let (mut file, created) = opts.open_write(path, Create::either()).map_err(io(path))?;
        let pos = file.seek(SeekFrom::End(0)).map_err(io(path))?;
        if created && policy == FsyncPolicy::Always {
            sync_parent(path)?;
        }
        Ok(Self::assemble(
            path,
            file,
            policy,
            (pos, created),
            opts,
            rec,
        ))
    }

    /// A writer of `file` (at `pos`, `created` by this open), with what recovery found.
    fn assemble(
        path: &Path,
        file: File,
        policy: FsyncPolicy,
        (pos, created): (u64, bool),
        opts: &StoreOptions,
        rec: Recovered,
    ) -> Self {
        WalWriter {
            path: path.to_path_buf(),
            file,
            policy,
            last_sync: Instant::now(),
            dirty: false,
            pos,
            created,
            fault: opts.fault.clone(),
            recovered: rec.report,
            damage: rec.damage,
        }
    }

    /// [`WalWriter::open_in`] for a caller that tracks its WAL files (the store's writer,
    /// which recovers every WAL when it opens and is the only writer). `known_len =
    /// Some(n)`: the file is valid up to its `n` bytes, so if its length is still `n` the
    /// recovery pass (a read and decode of the whole file) is skipped. `None`: the file is
    /// not expected to exist and is created with `O_EXCL` (no `stat`, `mkdir` or read
    /// first). Anything else (a different length, a file that exists after all, a missing
    /// directory) takes the general path of [`WalWriter::open_in`].
    pub fn open_known(
        path: &Path,
        policy: FsyncPolicy,
        known_len: Option<u64>,
        root: &Path,
        opts: &StoreOptions,
    ) -> Result<Self, WalError> {
        let writer = |file: File, pos: u64| {
            Self::assemble(
                path,
                file,
                policy,
                (pos, pos == 0),
                opts,
                Recovered::default(),
            )
        };
        match known_len {
            None => match opts.open_write(path, Create::new_only()) {
                Ok((file, _)) => {
                    if policy == FsyncPolicy::Always {
                        sync_parent(path)?;
                    }
                    Ok(writer(file, 0))
                }
                Err(_) => Self::open_in(path, policy, root, opts),
            },
            Some(n) => match opts.open_write(path, Create::existing()) {
                Ok((mut file, _)) => {
                    let len = file.metadata().map_err(io(path))?.len();
                    if len != n {
                        drop(file);
                        return Self::open_in(path, policy, root, opts);
                    }
                    file.seek(SeekFrom::End(0)).map_err(io(path))?;
                    Ok(writer(file, n))
                }
                Err(_) => Self::open_in(path, policy, root, opts),
            },
        }
    }

    /// File length after the last successful append: the end of the last valid frame.
    pub fn valid_len(&self) -> u64 {
        self.pos
    }

    /// Whether opening created the file (its directory entry is new).
    pub fn created(&self) -> bool {
        self.created
    }

    /// Append operations as frames, then sync per policy. When this returns `Ok` under
    /// `FsyncPolicy::Always`, the frames are durable.
    pub fn append(&mut self, ops: &[Op]) -> Result<(), WalError> {
        self.append_stream(0, ops)
    }

    /// [`WalWriter::append`] with the frames tagged as `stream` (see [`stream_of`]).
    pub fn append_stream(&mut self, stream: u32, ops: &[Op]) -> Result<(), WalError> {
        self.append_streams(&[(stream, ops)])
    }

    /// Append the operations of several streams as one write (one `write` call, one sync
    /// per policy): all frames or none.
    pub fn append_streams(&mut self, groups: &[(u32, &[Op])]) -> Result<(), WalError> {
        // Room for every frame up front: growing a many-megabyte buffer would copy it.
        let estimate: usize = groups
            .iter()
            .flat_map(|(_, ops)| ops.iter())
            .map(|op| match op {
                // (Not get_array_memory_size: a slice reports its whole buffers.)
                Op::Upsert(b) => {
                    let row: usize = b
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| f.data_type().primitive_width().unwrap_or(16) + 1)
                        .sum();
                    b.num_rows() * row + 64 * b.num_columns() + 4096
                }
                Op::Delete(_) => 256,
            })
            .sum();
        let mut buf = Vec::with_capacity(estimate);
        for (stream, ops) in groups {
            for op in *ops {
                let len = encode_stream_into(op, *stream, &mut buf).map_err(|source| {
                    WalError::Encode {
                        path: self.path.clone(),
                        source,
                    }
                })?;
                if len > MAX_FRAME {
                    return Err(WalError::TooLarge {
                        path: self.path.clone(),
                        len,
                    });
                }
            }
        }
        self.write_frames(&buf)
    }

    /// Write whole frames at the end, then sync per policy. All or nothing: when any step
    /// fails, the file is cut back to where it ended before (best effort; recovery cuts a
    /// torn tail otherwise) and the writer's position with it.
    pub(super) fn write_frames(&mut self, buf: &[u8]) -> Result<(), WalError> {
        crate::failpoint("wal:before_write");
        if crate::failpoint_active("wal:torn_write") {
            // Simulate a crash halfway through the write.
            let _ = self.file.write_all(&buf[..buf.len() / 2]);
            std::process::abort();
        }
        if let Some(f) = &self.fault {
            f.check(&self.path).map_err(io(&self.path))?;
        }
        let start = self.pos;
        let res = self
            .file
            .write_all(buf)
            .map_err(io(&self.path))
            .and_then(|()| {
                self.pos += buf.len() as u64;
                self.dirty = true;
                match self.policy {
                    FsyncPolicy::Always => self.sync(),
                    FsyncPolicy::EveryMillis(ms)
                        if self.last_sync.elapsed() >= Duration::from_millis(ms) =>
                    {
                        self.sync()
                    }
                    _ => Ok(()),
                }
            });
        if res.is_err() {
            // A write cut short (a full disk) leaves part of a frame, and a failed sync
            // leaves frames nobody was told about: cut both, so the file ends where it did.
            let _ = self
                .file
                .set_len(start)
                .and_then(|()| self.file.seek(SeekFrom::Start(start)));
            self.pos = start;
        }
        res
    }

    /// Append a rollup marker frame (see the module docs), synced per policy. The caller
    /// syncs the rollup frames it covers first.
    pub fn append_rollup_marker(&mut self) -> Result<(), WalError> {
        let mut buf = vec![0u8; HEADER];
        finish_frame(&mut buf, 0, KIND_ROLLED, 0);
        self.write_frames(&buf)
    }

    /// Force written frames to disk.
    pub fn sync(&mut self) -> Result<(), WalError> {
        if self.dirty {
            self.file.sync_data().map_err(io(&self.path))?;
            self.dirty = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Sync (unless the policy is `Never`) and close.
    pub fn close(mut self) -> Result<(), WalError> {
        if self.policy != FsyncPolicy::Never {
            self.sync()?;
        }
        Ok(())
    }
}
