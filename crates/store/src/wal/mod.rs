//! The hot tier's write-ahead log: one append-only file per (dataset, UTC day), holding the
//! frames of the base timeframe and of every rollup, each frame tagged with its stream.
//!
//! A file is a sequence of frames, each starting on a 64-byte boundary:
//!
//! ```text
//! 0   magic  u32 LE  0x314C5752 ("RWL1")
//! 4   kind   u8      1 = upsert (payload: Arrow IPC stream), 2 = delete (payload: JSON),
//!                    3 = rollup marker (no payload; see below)
//! 5   stream u24 LE  which timeframe the frame belongs to (see [`stream_of`]); 0 in the
//!                    one-timeframe files of stores written before dataset-day files
//! 8   len    u32 LE  payload length in bytes
//! 12  crc    u32 LE  crc32c of bytes 0..12 followed by the payload
//! 16  payload, then zero padding to the next multiple of 64
//! ```
//!
//! A rollup marker says that the rollups derived from every base frame before it are
//! written and durable. The store appends one after each write's rollup frames; a file
//! whose last upsert or delete has no marker after it was cut between the base frames and
//! the rollup frames (a crash), and the store rewrites that day's rollups when it next
//! opens.
//!
//! A frame that is short, has a bad magic or CRC, or does not decode is bad. Replay then
//! looks for the next valid frame on the 64-byte grid: when one follows, the bad bytes are
//! a damaged region (corruption: every valid frame after it is kept, and the writer moves
//! the region to `_quarantine/` when it opens, see [`crate::quarantine`]); when none does,
//! they are a torn tail (a write cut short), which the writer cuts on open after copying
//! it to quarantine when it is longer than a frame header.

use crate::merge::{DeleteRange, Op};
use crate::perms::{Create, StoreOptions};
use crate::quarantine::{self, CorruptionReport, DamageKind};
use arrow_ipc::writer::{IpcWriteOptions, StreamWriter};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

mod writer;
pub(crate) use writer::sync_parent;
pub use writer::WalWriter;

const MAGIC: u32 = 0x314C_5752;
const HEADER: usize = 16;
const ALIGN: usize = 64;
/// Largest payload accepted (a frame claiming more is treated as torn).
pub const MAX_FRAME: usize = 1 << 30;
const KIND_UPSERT: u8 = 1;
const KIND_DELETE: u8 = 2;
const KIND_ROLLED: u8 = 3;
/// Largest stream tag (24 bits).
const MAX_STREAM: u32 = 0xFF_FFFF;

/// The stream tag of a timeframe's frames in a dataset-day WAL: its length in seconds for
/// bars (capped at 2^24 - 1: only a base of 194 days or more reaches it, and rollups are at
/// most a day, so tags stay distinct within a dataset), 0 for ticks, and `MAX_STREAM`
/// less the months for calendar timeframes (`1M`: 2^24 - 2, `1Y`: 2^24 - 13; a fixed
/// base would need 194 days to reach them).
pub fn stream_of(tf: crate::timeframe::Timeframe) -> u32 {
    if tf.is_tick() {
        return 0;
    }
    match (tf.nanos(), tf.months()) {
        (Some(n), _) => ((n / 1_000_000_000) as u64).min(MAX_STREAM as u64) as u32,
        (None, m) => MAX_STREAM - m.unwrap_or(1).min(crate::timeframe::MAX_CALENDAR_MONTHS),
    }
}

/// When appended frames are forced to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum FsyncPolicy {
    /// `fsync` after every append call, before it returns: an acknowledged write survives
    /// power loss.
    #[default]
    Always,
    /// `fsync` when the last one is older than this many milliseconds (and on close).
    EveryMillis(u64),
    /// Leave it to the OS: survives a process crash, not power loss.
    Never,
}

impl std::fmt::Display for FsyncPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsyncPolicy::Always => f.write_str("always"),
            FsyncPolicy::EveryMillis(ms) => write!(f, "{ms}ms"),
            FsyncPolicy::Never => f.write_str("never"),
        }
    }
}

impl std::str::FromStr for FsyncPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "always" => Ok(FsyncPolicy::Always),
            "never" => Ok(FsyncPolicy::Never),
            _ => s
                .strip_suffix("ms")
                .and_then(|n| n.parse().ok())
                .map(FsyncPolicy::EveryMillis)
                .ok_or_else(|| {
                    format!("invalid fsync policy {s:?}: use `always`, `never` or `<N>ms`")
                }),
        }
    }
}

/// Failure to read or append a WAL file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The file could not be opened, read, written or synced.
    #[error("WAL {path}: {source}; check the data directory's permissions and free space")]
    Io {
        /// The WAL file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk is full (or over quota, or read-only): nothing was acknowledged.
    #[error("WAL {path}: the disk is full ({source}); the write was not acknowledged: free space on the data directory's disk (or raise its quota) and retry")]
    DiskFull {
        /// The WAL file.
        path: PathBuf,
        /// The OS error (`ENOSPC`, `EDQUOT` or `EROFS`).
        source: std::io::Error,
    },
    /// A batch could not be encoded as Arrow IPC.
    #[error("WAL {path}: cannot encode the batch: {source}")]
    Encode {
        /// The WAL file.
        path: PathBuf,
        /// The Arrow error.
        source: arrow_schema::ArrowError,
    },
    /// A frame would exceed the maximum frame size.
    #[error("WAL {path}: a frame of {len} bytes exceeds the {MAX_FRAME}-byte limit; append smaller batches")]
    TooLarge {
        /// The WAL file.
        path: PathBuf,
        /// Payload size.
        len: usize,
    },
}

/// What replaying one WAL file found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Valid frames.
    pub frames: usize,
    /// Bytes up to the end of the last valid frame (and its padding).
    pub valid_len: u64,
    /// File length when read.
    pub file_len: u64,
    /// Why replay stopped early, if it did: the bytes from `valid_len` on hold no valid
    /// frame (a torn tail).
    pub torn: Option<String>,
    /// Damaged regions with valid frames after them (corruption, not a torn write), in
    /// file order. Replay skips them and keeps the frames after.
    pub damaged: Vec<Damage>,
    /// The last valid upsert or delete frame has no rollup marker after it. Meaningful
    /// for the WALs of datasets with rollups only.
    pub rollups_pending: bool,
    /// The streams of the valid upsert and delete frames.
    pub streams: std::collections::BTreeSet<u32>,
}

/// A region of a WAL with no valid frame in it, followed by a valid frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Offset of the first bad frame.
    pub offset: u64,
    /// Bytes up to the next valid frame.
    pub len: u64,
    /// Why the first frame of the region was rejected.
    pub reason: String,
}

impl ReplayReport {
    /// Bytes after the last valid frame.
    pub fn cut_bytes(&self) -> u64 {
        self.file_len.saturating_sub(self.valid_len)
    }

    /// No damaged region and no torn tail: every byte is a valid frame.
    pub fn is_clean(&self) -> bool {
        self.torn.is_none() && self.damaged.is_empty()
    }
}

/// The error of an I/O failure on `path` (a full disk is [`WalError::DiskFull`]); `errno`
/// when `e` was rebuilt from an OS error.
pub(crate) fn io_error(path: &Path, e: std::io::Error, errno: Option<i32>) -> WalError {
    io(path)(errno.map_or(e, std::io::Error::from_raw_os_error))
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> WalError + '_ {
    move |source| {
        if crate::perms::is_no_space(&source) {
            WalError::DiskFull {
                path: path.to_path_buf(),
                source,
            }
        } else {
            WalError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

fn pad(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}

/// A checked frame: its operations (empty unless decoded), kind, stream, and the offset
/// after it.
type Checked = (Vec<Op>, u8, u32, usize);

/// Check the frame at `bytes[off..]`: magic, bounds, CRC, kind, and the payload decodes
/// when `decode`. Returns its operations (empty unless decoding), its kind, its stream and
/// the offset after it (and its padding, which may run past the end: a cut-short padding
/// is whole).
fn check_frame(bytes: &[u8], off: usize, decode: bool) -> Result<Checked, String> {
    let rest = &bytes[off..];
    if rest.len() < HEADER {
        return Err(format!(
            "{} bytes of a frame header at offset {off}",
            rest.len()
        ));
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let (magic, kind, len, crc) = (word(0), rest[4], word(8) as usize, word(12));
    let stream = u32::from_le_bytes([rest[5], rest[6], rest[7], 0]);
    if magic != MAGIC {
        return Err(format!("bad frame magic {magic:#010x} at offset {off}"));
    }
    if len > MAX_FRAME || HEADER + len > rest.len() {
        return Err(format!(
            "frame at offset {off} claims {len} payload bytes, {} present",
            rest.len() - HEADER
        ));
    }
    let payload = &rest[HEADER..HEADER + len];
    let want = crc32c::crc32c_append(crc32c::crc32c(&rest[..12]), payload);
    if want != crc {
        return Err(format!("CRC mismatch in the frame at offset {off}"));
    }
    let ops = if decode {
        decode_op(kind, payload)
            .map_err(|e| format!("frame at offset {off} does not decode: {e}"))?
    } else if matches!(kind, KIND_UPSERT | KIND_DELETE | KIND_ROLLED) {
        Vec::new()
    } else {
        return Err(format!("unknown frame kind {kind} at offset {off}"));
    };
    Ok((ops, kind, stream, off + pad(HEADER + len)))
}

/// The next offset after `bad` (on the frame grid) where a valid frame starts, if any.
/// Only offsets holding the magic are checked further, so a scan of a long damaged run
/// costs one comparison per 64 bytes.
fn resync(bytes: &[u8], bad: usize, decode: bool) -> Option<usize> {
    let magic = MAGIC.to_le_bytes();
    (bad + ALIGN..bytes.len())
        .step_by(ALIGN)
        .filter(|&c| bytes[c..].starts_with(&magic))
        .find(|&c| check_frame(bytes, c, decode).is_ok())
}

/// Walk the frames of `bytes`, checking magic, bounds and CRC, and decoding payloads when
/// `decode` is true. Returns the operations (empty unless decoding) and the report.
///
/// A bad frame is not the end: the scan looks for the next valid frame on the frame grid
/// (every frame starts on a 64-byte boundary) and, when one follows, records the bad
/// bytes as a [`Damage`] and goes on. Only bad bytes with nothing valid after them are a
/// torn tail (`torn`).
pub fn scan(bytes: &[u8], decode: bool) -> (Vec<Op>, ReplayReport) {
    scan_stream(bytes, decode, None)
}

/// [`scan`] keeping the operations of one stream only (`None`: all). Frames of other
/// streams are checked (magic, bounds, CRC) but not decoded.
pub fn scan_stream(bytes: &[u8], decode: bool, stream: Option<u32>) -> (Vec<Op>, ReplayReport) {
    let mut ops = Vec::new();
    let mut rep = ReplayReport {
        file_len: bytes.len() as u64,
        ..Default::default()
    };
    let mut off = 0usize;
    while off < bytes.len() {
        let wanted = |o: usize| {
            stream
                .is_none_or(|s| bytes.len() >= o + 8 && bytes[o + 5..o + 8] == s.to_le_bytes()[..3])
        };
        match check_frame(bytes, off, decode && wanted(off)) {
            Ok((mut o, kind, tag, next)) => {
                if stream.is_none_or(|s| s == tag) {
                    ops.append(&mut o);
                }
                if kind != KIND_ROLLED {
                    rep.streams.insert(tag);
                }
                rep.rollups_pending = kind != KIND_ROLLED;
                rep.frames += 1;
                off = next;
                rep.valid_len = off as u64;
            }
            Err(reason) => match resync(bytes, off, decode) {
                Some(next) => {
                    rep.damaged.push(Damage {
                        offset: off as u64,
                        len: (next - off) as u64,
                        reason,
                    });
                    off = next;
                }
                None => {
                    rep.torn = Some(reason);
                    break;
                }
            },
        }
    }
    (ops, rep)
}

fn decode_op(kind: u8, payload: &[u8]) -> Result<Vec<Op>, String> {
    match kind {
        KIND_UPSERT => {
            let r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)
                .map_err(|e| e.to_string())?;
            r.map(|b| b.map(Op::Upsert).map_err(|e| e.to_string()))
                .collect()
        }
        KIND_DELETE => serde_json::from_slice::<DeleteRange>(payload)
            .map(|d| vec![Op::Delete(d)])
            .map_err(|e| e.to_string()),
        KIND_ROLLED => Ok(Vec::new()),
        k => Err(format!("unknown frame kind {k}")),
    }
}

/// Read and decode a WAL file without changing it. A missing file is empty.
pub fn replay(path: &Path) -> Result<(Vec<Op>, ReplayReport), WalError> {
    replay_stream(path, None)
}

/// [`replay`] keeping the operations of one stream only (`None`: all).
pub fn replay_stream(
    path: &Path,
    stream: Option<u32>,
) -> Result<(Vec<Op>, ReplayReport), WalError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(io(path)(e)),
    };
    Ok(scan_stream(&bytes, true, stream))
}

/// Decode the frames in bytes `from..to` of a WAL file, for a caller that knows those
/// bytes hold whole frames (the store's writer, which appended them). `None` when they do
/// not (short file, torn or undecodable frame): the caller replays the whole file instead.
pub fn replay_range(path: &Path, from: u64, to: u64) -> Result<Option<Vec<Op>>, WalError> {
    replay_range_stream(path, from, to, None)
}

/// [`replay_range`] keeping the operations of one stream only (`None`: all).
pub fn replay_range_stream(
    path: &Path,
    from: u64,
    to: u64,
    stream: Option<u32>,
) -> Result<Option<Vec<Op>>, WalError> {
    if to < from || !(from as usize).is_multiple_of(ALIGN) {
        return Ok(None);
    }
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(path)(e)),
    };
    f.seek(SeekFrom::Start(from)).map_err(io(path))?;
    let mut bytes = Vec::with_capacity((to - from) as usize);
    f.take(to - from)
        .read_to_end(&mut bytes)
        .map_err(io(path))?;
    let (ops, rep) = scan_stream(&bytes, true, stream);
    let whole = rep.is_clean() && rep.valid_len == to - from;
    Ok(whole.then_some(ops))
}

/// What [`recover`] found and set aside.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Recovered {
    /// The scan of the file as found.
    pub report: ReplayReport,
    /// Damaged regions and torn tails set aside, each copied to quarantine first.
    pub damage: Vec<CorruptionReport>,
}

/// Make a WAL file hold valid frames only, losing none of them: copy each damaged region
/// (bad bytes with valid frames after them) to quarantine, rewrite the file without them
/// (temp file, fsync, rename, fsync the directory), and cut a torn tail (copied to
/// quarantine first when longer than a frame header). Quarantine lives under `root`
/// (see [`crate::quarantine`]). A copy that cannot be made fails the call with the file
/// unchanged: bytes are never dropped without one.
pub fn recover(path: &Path, root: &Path, opts: &StoreOptions) -> Result<Recovered, WalError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let (_, rep) = scan(&bytes, true);
    let mut out = Recovered {
        report: rep.clone(),
        damage: Vec::new(),
    };
    if rep.damaged.is_empty() && rep.valid_len == rep.file_len {
        return Ok(out);
    }
    let found_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut set_aside = |offset: u64, len: u64, kind, reason: &str| -> Result<(), WalError> {
        let mut r = CorruptionReport {
            wal: path.to_path_buf(),
            offset,
            len,
            kind,
            reason: reason.to_string(),
            frames_kept: rep.frames,
            quarantined: None,
            found_at,
        };
        if kind == DamageKind::Corrupt || len > HEADER as u64 {
            let region = &bytes[offset as usize..(offset + len) as usize];
            quarantine::save(root, opts, region, &mut r).map_err(io(path))?;
        }
        out.damage.push(r);
        Ok(())
    };
    for d in &rep.damaged {
        set_aside(d.offset, d.len, DamageKind::Corrupt, &d.reason)?;
    }
    if rep.cut_bytes() > 0 {
        let reason = rep.torn.as_deref().unwrap_or("torn tail");
        set_aside(rep.valid_len, rep.cut_bytes(), DamageKind::TornTail, reason)?;
    }
    for r in &out.damage {
        match r.kind {
            DamageKind::Corrupt => {
                tracing::error!(wal = %path.display(), offset = r.offset, len = r.len, "WAL corruption: {r}")
            }
            DamageKind::TornTail => {
                tracing::warn!(wal = %path.display(), offset = r.offset, len = r.len, "WAL torn tail: {r}")
            }
        }
    }
    if rep.damaged.is_empty() {
        // Cut the torn tail, or restore the cut-short padding of the last frame.
        let f = opts
            .open_write(path, Create::existing())
            .map_err(io(path))?
            .0;
        f.set_len(rep.valid_len).map_err(io(path))?;
        f.sync_all().map_err(io(path))?;
        return Ok(out);
    }
    // Every valid frame, in order, without the damaged regions and the torn tail.
    let end = (rep.valid_len as usize).min(bytes.len());
    let mut body = Vec::with_capacity(end);
    let mut at = 0usize;
    for d in &rep.damaged {
        body.extend_from_slice(&bytes[at..d.offset as usize]);
        at = (d.offset + d.len) as usize;
    }
    body.extend_from_slice(&bytes[at..end]);
    body.resize(pad(body.len()), 0);
    crate::failpoint("wal:before_rewrite");
    opts.write_atomic(path, &body).map_err(io(path))?;
    Ok(out)
}

/// Cut a WAL file back to its first `len` bytes, durably (`set_len`, then `fsync`): the
/// undo of frames appended after them by a write that failed. With `remove`, the write
/// created the file: it is emptied and synced before it is unlinked (and its directory
/// synced), so a crash halfway leaves an empty WAL, never the frames.
pub fn cut_back(path: &Path, len: u64, remove: bool, opts: &StoreOptions) -> Result<(), WalError> {
    opts.check_undo_fault().map_err(io(path))?;
    let f = match opts.open_write(path, Create::existing()) {
        Ok((f, _)) => f,
        // Nothing to cut: the file is gone (it was never created, or the cut already ran).
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io(path)(e)),
    };
    let target = if remove { 0 } else { len };
    // Synced even when the length is right already: a cut made after a failed write
    // (see `write_frames`) was not.
    f.set_len(target).map_err(io(path))?;
    f.sync_all().map_err(io(path))?;
    drop(f);
    if remove {
        std::fs::remove_file(path).map_err(io(path))?;
        sync_parent(path)?;
    }
    Ok(())
}

/// The valid frames of `bytes` (a recovered WAL: whole frames only) re-tagged as
/// `stream`, each with its CRC recomputed: how the frames of a one-timeframe WAL of an
/// older store move into its dataset-day WAL. `None` when `bytes` are not whole frames.
pub fn restream(bytes: &[u8], stream: u32) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut off = 0;
    while off < bytes.len() {
        let (_, kind, _, next) = check_frame(bytes, off, false).ok()?;
        let len =
            u32::from_le_bytes(bytes[off + 8..off + 12].try_into().expect("4 bytes")) as usize;
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER]);
        out.extend_from_slice(&bytes[off + HEADER..off + HEADER + len]);
        finish_frame(
            &mut out,
            start,
            kind,
            if kind == KIND_ROLLED { 0 } else { stream },
        );
        off = next;
    }
    Some(out)
}

/// Move the frames of `from` (a one-timeframe WAL of an older store, recovered: whole
/// frames only) to the end of the dataset-day WAL `to`, tagged as `stream`: appended and
/// synced, then `from` removed and its directory synced. A crash in between leaves the
/// frames in both files, and moving them again appends them again, which replays to the
/// same rows: a sequence of upserts and deletes applied twice gives what it gives once.
pub fn move_frames(
    from: &Path,
    stream: u32,
    to: &Path,
    root: &Path,
    opts: &StoreOptions,
) -> Result<(), WalError> {
    let bytes = std::fs::read(from).map_err(io(from))?;
    let frames = restream(&bytes, stream).ok_or_else(|| {
        io(from)(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "not whole frames after recovery",
        ))
    })?;
    if !frames.is_empty() {
        let mut w = WalWriter::open_in(to, FsyncPolicy::Always, root, opts)?;
        w.write_frames(&frames)?;
        w.close()?;
    }
    crate::failpoint("wal:moved_before_remove");
    std::fs::remove_file(from).map_err(io(from))?;
    sync_parent(from)
}

/// Encode an operation as one frame.
pub fn encode(op: &Op) -> Result<Vec<u8>, arrow_schema::ArrowError> {
    let mut out = Vec::new();
    encode_into(op, &mut out)?;
    Ok(out)
}

/// Append the frame of `op` to `out`, the payload encoded in place (no intermediate copy).
/// Returns the frame's length.
pub fn encode_into(op: &Op, out: &mut Vec<u8>) -> Result<usize, arrow_schema::ArrowError> {
    encode_stream_into(op, 0, out)
}

/// [`encode_into`] with the frame tagged as `stream` (see [`stream_of`]).
pub fn encode_stream_into(
    op: &Op,
    stream: u32,
    out: &mut Vec<u8>,
) -> Result<usize, arrow_schema::ArrowError> {
    let start = out.len();
    out.extend_from_slice(&[0u8; HEADER]);
    let kind = match op {
        Op::Upsert(b) => {
            let opts = IpcWriteOptions::try_new(64, false, arrow_ipc::MetadataVersion::V5)?;
            let mut w = StreamWriter::try_new_with_options(&mut *out, &b.schema(), opts)?;
            w.write(b)?;
            w.finish()?;
            KIND_UPSERT
        }
        Op::Delete(d) => {
            serde_json::to_writer(&mut *out, d)
                .map_err(|e| arrow_schema::ArrowError::ExternalError(e.into()))?;
            KIND_DELETE
        }
    };
    Ok(finish_frame(out, start, kind, stream))
}

/// Fill in the header of the frame that starts at `out[start]` (its payload written after
/// the header) and pad it. Returns the frame's length.
fn finish_frame(out: &mut Vec<u8>, start: usize, kind: u8, stream: u32) -> usize {
    let len = out.len() - start - HEADER;
    let h = &mut out[start..start + HEADER];
    h[0..4].copy_from_slice(&MAGIC.to_le_bytes());
    h[4] = kind;
    h[5..8].copy_from_slice(&stream.min(MAX_STREAM).to_le_bytes()[..3]);
    h[8..12].copy_from_slice(&(len as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(&out[start..start + 12]),
        &out[start + HEADER..],
    );
    out[start + 12..start + HEADER].copy_from_slice(&crc.to_le_bytes());
    out.resize(start + pad(HEADER + len), 0);
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::BarColumns;
    use arrow_array::RecordBatch;

    fn batch(n: usize) -> RecordBatch {
        let mut c = BarColumns::default();
        for i in 0..n {
            c.ts.push(i as i64 * 60_000_000_000);
            c.symbol.push("X".into());
            for v in [
                &mut c.open,
                &mut c.high,
                &mut c.low,
                &mut c.close,
                &mut c.volume,
            ] {
                v.push(1.0 + i as f64);
            }
        }
        c.into_batch().unwrap()
    }

    #[test]
    fn torn_tails_are_cut_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("d.wal");
        let mut w = WalWriter::open(&p, FsyncPolicy::Never).unwrap();
        w.append(&[Op::Upsert(batch(3))]).unwrap();
        w.append(&[Op::Delete(DeleteRange {
            symbol: Some("X".into()),
            start: 0,
            end: 1,
        })])
        .unwrap();
        w.close().unwrap();
        let full = std::fs::read(&p).unwrap();
        let (ops, rep) = scan(&full, true);
        assert_eq!((ops.len(), rep.frames, rep.torn.clone()), (2, 2, None));
        let unpadded = HEADER + u32::from_le_bytes(full[8..12].try_into().unwrap()) as usize;
        let first_end = pad(unpadded);
        for cut in 0..full.len() {
            let (ops, rep) = scan(&full[..cut], true);
            let second = first_end
                + HEADER
                + u32::from_le_bytes(full[first_end + 8..first_end + 12].try_into().unwrap())
                    as usize;
            let want = usize::from(cut >= unpadded) + usize::from(cut >= second);
            assert_eq!(ops.len(), want, "cut at {cut}");
            assert!(
                rep.torn.is_some()
                    || cut == 0
                    || cut >= second
                    || (unpadded..=first_end).contains(&cut)
            );
        }
        // Flip one payload byte: the CRC catches it.
        let mut bad = full.clone();
        bad[first_end + 20] ^= 0xff;
        let (ops, rep) = scan(&bad, true);
        assert_eq!(ops.len(), 1);
        assert!(rep.torn.unwrap().contains("CRC"));
        // A writer reopening a torn file truncates and appends after the last good frame.
        let second = first_end
            + HEADER
            + u32::from_le_bytes(full[first_end + 8..first_end + 12].try_into().unwrap()) as usize;
        std::fs::write(&p, &full[..second - 1]).unwrap();
        let mut w = WalWriter::open(&p, FsyncPolicy::Always).unwrap();
        assert_eq!(w.recovered.valid_len as usize, first_end);
        w.append(&[Op::Upsert(batch(1))]).unwrap();
        w.close().unwrap();
        let (ops, rep) = replay(&p).unwrap();
        assert_eq!((ops.len(), rep.torn), (2, None));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 512, ..Default::default() })]

        /// Flipped bits and a cut anywhere: no panic; every frame not hit and before the
        /// cut is replayed, and nothing else.
        #[test]
        fn scan_keeps_every_frame_it_can(
            flips in proptest::collection::vec((0usize..100_000, 0u8..8), 0..8),
            cut in 0usize..100_000,
        ) {
            let mut buf = Vec::new();
            let mut spans = Vec::new();
            for i in 0..12 {
                let start = buf.len();
                let op = if i % 3 == 2 {
                    Op::Delete(DeleteRange { symbol: Some("X".into()), start: i, end: i + 1 })
                } else {
                    Op::Upsert(batch(1 + i as usize))
                };
                let len = encode_into(&op, &mut buf).unwrap();
                let payload = u32::from_le_bytes(buf[start + 8..start + 12].try_into().unwrap()) as usize;
                spans.push((start, start + HEADER + payload, start + len));
            }
            let cut = cut % (buf.len() + 1);
            let original = buf.clone();
            for (at, bit) in flips {
                let at = at % buf.len();
                buf[at] ^= 1 << bit;
            }
            // A frame is hit when its bytes differ in the end (two flips of
            // the same bit cancel).
            let hit: Vec<bool> = spans
                .iter()
                .map(|(s, e, _)| buf[*s..*e] != original[*s..*e])
                .collect();
            let (ops, rep) = scan(&buf[..cut], true);
            let want = spans
                .iter()
                .zip(&hit)
                .filter(|((_, e, _), h)| !**h && *e <= cut)
                .count();
            proptest::prop_assert_eq!(rep.frames, want);
            proptest::prop_assert_eq!(ops.len(), want);
        }
    }

    #[test]
    fn fsync_policy_parses() {
        assert_eq!("always".parse(), Ok(FsyncPolicy::Always));
        assert_eq!("50ms".parse(), Ok(FsyncPolicy::EveryMillis(50)));
        assert!("sometimes".parse::<FsyncPolicy>().is_err());
    }
}
