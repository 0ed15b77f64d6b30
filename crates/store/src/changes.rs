//! Per-dataset change log: "this range of this symbol changed in a way a resume point
//! would not see".
//!
//! A follower copies a primary's datasets by resuming from its newest stored bar per
//! symbol. Deletes, trims and rewrites of OLDER bars would never reach it; so every writer
//! of a store records them here, per dataset, BEFORE the data change (and durably first
//! when the dataset's fsync policy syncs writes). A follower asks
//! [`crate::BarStore::changes_since`] for the entries since the last one it applied and
//! re-copies each range. An entry left by a write that then failed is harmless: the
//! follower re-copies an unchanged range.
//!
//! # File format
//! `<root>/_changes/<dataset>.log`, one line per record, each `<json>\t<crc32c of the
//! json, 8 lowercase hex>\n`:
//! ```text
//! {"ringfeed_changes":1,"log_id":"5f0c…","first_seq":0}\t1a2b3c4d
//! {"seq":0,"kind":"remove","symbol":"BTCUSDT","start":-9223372036854775808,"end":1704067200000000000}\t…
//! {"seq":1,"kind":"rewrite","symbol":"ETHUSDT","start":1704067200000000000,"end":1704067260000000001}\t…
//! ```
//! A torn tail (a write cut by a crash, which was never acknowledged, so its data change
//! never started) is cut back by the writer's next open or write. A damaged header, or a
//! damaged line with valid lines after it (bytes changed after they were written), moves
//! the log aside to `<dataset>.log.corrupt-<n>` and starts a new log with a NEW `log_id`:
//! followers then re-copy everything, which is safe.
//!
//! # Compaction
//! When a log holds more than [`CHANGES_KEEP`] entries, its oldest half is replaced by
//! merged entries: per symbol one [`ChangeKind::Remove`] over the union of its ranges, and
//! one for the all-symbol entries, every one with the largest seq it replaced;
//! `first_seq` becomes that seq + 1. The file is rewritten atomically (temp, fsync,
//! rename, fsync the directory).
//!
//! ```
//! use ringfeed_store::{BarStore, DatasetConfig, DeleteRange};
//! use ringfeed_store::changes::ChangeKind;
//! let dir = tempfile::tempdir().unwrap();
//! let mut store = BarStore::open(dir.path()).unwrap();
//! store.create_dataset("demo", DatasetConfig::new("1m".parse().unwrap())).unwrap();
//! store.delete("demo", DeleteRange { symbol: Some("X".into()), start: 0, end: 60 }).unwrap();
//! let c = store.changes_since("demo", 0, 100).unwrap();
//! assert_eq!((c.next_seq, c.changes[0].kind), (1, ChangeKind::Remove));
//! ```

use crate::perms::{Create, StoreOptions};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

/// Entries a log holds before its oldest half is merged (see the module doc).
pub const CHANGES_KEEP: usize = 100_000;

/// The version written in a log's header.
const FORMAT: u32 = 1;

/// What kind of change an entry records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChangeKind {
    /// Rows in the range were inserted or replaced (an upsert below the symbol's newest bar):
    /// a follower copies the primary's range over its own (no delete needed).
    Rewrite,
    /// Rows in the range may have been removed (delete, trim, or merged older entries):
    /// a follower deletes its own range, then copies the primary's.
    Remove,
}

/// One entry of a change log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Its sequence number (merged entries may share one).
    pub seq: u64,
    /// What changed.
    pub kind: ChangeKind,
    /// None: every symbol of the dataset.
    pub symbol: Option<String>,
    /// [start, end) in ns since the epoch at the base timeframe; start == i64::MIN means
    /// "from the first bar" (a trim).
    pub start: i64,
    /// First ns not changed (exclusive).
    pub end: i64,
}

/// What [`crate::BarStore::changes_since`] answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChangesSince {
    /// Random id made when the log was created (128 bits, lowercase hex). A dataset dropped and
    /// created again has a new id: a follower that sees a different id must re-copy everything.
    pub log_id: String,
    /// Entries with seq < first_seq were merged away (see compaction); a caller whose `since` is
    /// below it still gets correct merged entries, nothing is lost.
    pub first_seq: u64,
    /// The seq the next entry will get. A caller that applied every returned entry asks next
    /// time with since = next_seq.
    pub next_seq: u64,
    /// Entries with seq >= since, in seq order (merged entries may share one seq).
    pub changes: Vec<Change>,
}

/// Failure to read or write a dataset's change log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChangesError {
    /// The dataset does not exist.
    #[error("unknown dataset {name:?}; datasets: {known}. Ask for one of them")]
    UnknownDataset {
        /// The name asked for.
        name: String,
        /// The datasets that exist.
        known: String,
    },
    /// The log file could not be read, written or synced.
    #[error("change log {path}: {source}; check the data directory's permissions, then retry (a write that failed here stored no row)")]
    Io {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The disk is full (or over quota, or read-only): the write that needed the log
    /// stored no row.
    #[error("change log {path}: the disk is full ({source}); the write was not acknowledged: free space on the data directory's disk (or raise its quota) and retry")]
    DiskFull {
        /// The log file (or its directory).
        path: PathBuf,
        /// The OS error (`ENOSPC`, `EDQUOT` or `EROFS`).
        source: std::io::Error,
    },
    /// A read-only store found no log (a store written before change logs, whose writer
    /// has not opened it since).
    #[error("dataset {dataset:?} has no change log at {path} yet: open the store with its writer once (the daemon or `ringfeed ingest`), which creates it")]
    Missing {
        /// The dataset.
        dataset: String,
        /// Where the log belongs.
        path: PathBuf,
    },
    /// A read-only store found a damaged log header.
    #[error("change log {path} is damaged ({reason}): its writer moves it aside and starts a new log (followers then re-copy everything) when it next opens or writes; open the store with its writer")]
    Corrupt {
        /// The log file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

#[derive(Serialize, Deserialize)]
struct Header {
    ringfeed_changes: u32,
    log_id: String,
    first_seq: u64,
}

/// Entries a write records: `(kind, symbol, start, end)`; [`ChangeLogs::record`] gives
/// them their seqs.
pub(crate) type Entries = Vec<(ChangeKind, Option<String>, i64, i64)>;

/// One dataset's log, as held in memory.
#[derive(Debug)]
pub(crate) struct Log {
    log_id: String,
    first_seq: u64,
    next_seq: u64,
    entries: Vec<Change>,
    /// Bytes of the file holding valid lines: where the next write goes.
    valid_len: u64,
    /// Whether the file was repaired for writing (torn tail cut, damage moved aside);
    /// a log loaded for reading only is reloaded before the first write.
    repaired: bool,
    /// (inode, length, mtime in ns) of the file when read: a reader rereads it when they
    /// change.
    seen: (u64, u64, i64),
}

/// How a log file parsed.
struct Parsed {
    header: Header,
    entries: Vec<Change>,
    valid_len: u64,
    /// Bytes after the valid lines that are a torn tail (no valid line after them).
    torn: u64,
}

/// One line: the JSON, a tab, its CRC32C in hex, a newline.
fn line(json: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(json.len() + 10);
    out.extend_from_slice(json);
    out.extend_from_slice(format!("\t{:08x}\n", crc32c::crc32c(json)).as_bytes());
    out
}

/// The JSON of a complete line whose CRC matches.
fn check_line(l: &[u8]) -> Option<&[u8]> {
    let tab = l.iter().rposition(|&b| b == b'\t')?;
    let (json, crc) = (&l[..tab], &l[tab + 1..]);
    let crc = u32::from_str_radix(std::str::from_utf8(crc).ok()?, 16).ok()?;
    (crc32c::crc32c(json) == crc).then_some(json)
}

/// Parse a log file's bytes. `Err` when the header is damaged, or a damaged line has a
/// valid line after it (not a torn tail).
fn parse(bytes: &[u8]) -> Result<Parsed, String> {
    let mut lines = bytes.split_inclusive(|&b| b == b'\n');
    let first = lines.next().ok_or("empty file")?;
    let header: Header = first
        .strip_suffix(b"\n")
        .and_then(check_line)
        .and_then(|j| serde_json::from_slice(j).ok())
        .ok_or("the header line does not check")?;
    if header.ringfeed_changes != FORMAT {
        return Err(format!(
            "format {} (this build reads {FORMAT})",
            header.ringfeed_changes
        ));
    }
    let mut entries: Vec<Change> = Vec::new();
    let mut valid_len = first.len() as u64;
    let mut bad_at: Option<u64> = None;
    let mut at = valid_len;
    for l in lines {
        let c: Option<Change> = l
            .strip_suffix(b"\n")
            .and_then(check_line)
            .and_then(|j| serde_json::from_slice(j).ok());
        // Merged entries share a seq below first_seq; others grow one by one.
        let ordered = |c: &Change| match entries.last() {
            Some(p) => c.seq > p.seq || (c.seq == p.seq && c.seq < header.first_seq),
            None => c.seq.saturating_add(1) >= header.first_seq,
        };
        match c {
            Some(c) if ordered(&c) => {
                if bad_at.is_some() {
                    return Err(format!(
                        "a damaged line at byte {} has valid lines after it",
                        bad_at.unwrap_or(0)
                    ));
                }
                entries.push(c);
                valid_len = at + l.len() as u64;
            }
            _ => {
                bad_at.get_or_insert(at);
            }
        }
        at += l.len() as u64;
    }
    Ok(Parsed {
        header,
        entries,
        valid_len,
        torn: bytes.len() as u64 - valid_len,
    })
}

/// The seq the next entry after `entries` gets (never below `first_seq`).
fn next_seq(entries: &[Change], first_seq: u64) -> u64 {
    entries
        .last()
        .map_or(first_seq, |c| (c.seq + 1).max(first_seq))
}

/// What tells a reader that a log file changed: its inode (a compaction renames a new
/// file in), length and modification time.
fn identity(path: &Path) -> std::io::Result<(u64, u64, i64)> {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(path)?;
    Ok((m.ino(), m.len(), m.mtime() * 1_000_000_000 + m.mtime_nsec()))
}

/// An I/O error of the log at `path`.
fn io_err(path: &Path) -> impl Fn(std::io::Error) -> ChangesError {
    let path = path.to_path_buf();
    move |source| {
        let path = path.clone();
        if crate::perms::is_no_space(&source) {
            ChangesError::DiskFull { path, source }
        } else {
            ChangesError::Io { path, source }
        }
    }
}

/// A new random 128-bit id, lowercase hex: from the OS, else from hashing the time, the
/// process and a counter with std's randomly keyed hasher.
fn new_log_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let from_os = std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut b));
    if from_os.is_err() {
        use std::hash::{BuildHasher, Hasher};
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        // Relaxed: a counter that only has to differ between calls.
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        for (i, half) in b.chunks_mut(8).enumerate() {
            let mut h = std::collections::hash_map::RandomState::new().build_hasher();
            h.write_u128(t);
            h.write_u32(std::process::id());
            h.write_u64(n);
            h.write_usize(i);
            half.copy_from_slice(&h.finish().to_le_bytes());
        }
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The oldest part of `entries` merged (see the module doc): returns the new entries and
/// first_seq. `entries` holds more than one group.
fn compacted(entries: &[Change], first_seq: u64) -> (Vec<Change>, u64) {
    let merged_len = entries.iter().take_while(|c| c.seq < first_seq).count();
    let mut cut = (entries.len() / 2).max(merged_len + 1).min(entries.len());
    // Never split a group sharing one seq.
    while cut < entries.len() && entries[cut].seq == entries[cut - 1].seq {
        cut += 1;
    }
    let seq = entries[cut - 1].seq;
    let mut union: BTreeMap<Option<&str>, (i64, i64)> = BTreeMap::new();
    for c in &entries[..cut] {
        let r = union.entry(c.symbol.as_deref()).or_insert((c.start, c.end));
        *r = (r.0.min(c.start), r.1.max(c.end));
    }
    // The all-symbol entry goes last (BTreeMap puts `None` first).
    let mut out: Vec<Change> = union
        .iter()
        .filter(|(s, _)| s.is_some())
        .chain(union.iter().filter(|(s, _)| s.is_none()))
        .map(|(s, &(start, end))| Change {
            seq,
            kind: ChangeKind::Remove,
            symbol: s.map(str::to_string),
            start,
            end,
        })
        .collect();
    out.extend_from_slice(&entries[cut..]);
    (out, seq + 1)
}

/// The change logs of a store's datasets, kept in memory so that a follower's poll does
/// not reparse the file.
pub(crate) struct ChangeLogs {
    dir: PathBuf,
    opts: StoreOptions,
    /// Whether this is a writer's (its memory is the truth) or a reader's (rereads files
    /// that changed).
    writer: bool,
    keep: usize,
    /// Behind a lock so that `changes_since(&self)` can load and refresh.
    logs: Mutex<HashMap<String, Log>>,
    /// Writer: the newest stored base ts per symbol, per dataset, loaded on the dataset's
    /// first upsert and raised by every successful one; never lowered.
    pub(crate) newest: HashMap<String, HashMap<String, i64>>,
}

impl ChangeLogs {
    pub(crate) fn new(root: &Path, opts: StoreOptions, writer: bool) -> Self {
        ChangeLogs {
            dir: root.join("_changes"),
            opts,
            writer,
            keep: CHANGES_KEEP,
            logs: Mutex::new(HashMap::new()),
            newest: HashMap::new(),
        }
    }

    pub(crate) fn set_keep(&mut self, n: usize) {
        self.keep = n.max(1);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Log>> {
        // A panic while holding it left a log in memory that the file still matches or
        // exceeds; the next load rereads it.
        self.logs.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `<root>/_changes/<dataset>.log`.
    pub(crate) fn path(&self, dataset: &str) -> PathBuf {
        self.dir.join(format!("{dataset}.log"))
    }

    /// Start a new, empty log for `dataset` (replacing any file of that name).
    pub(crate) fn create(&self, dataset: &str) -> Result<(), ChangesError> {
        let log = self.write_new(dataset, new_log_id(), 0, &[])?;
        self.lock().insert(dataset.to_string(), log);
        Ok(())
    }

    /// Write a whole log atomically: header, then `entries`.
    fn write_new(
        &self,
        dataset: &str,
        log_id: String,
        first_seq: u64,
        entries: &[Change],
    ) -> Result<Log, ChangesError> {
        let path = self.path(dataset);
        self.opts
            .create_dir_all(&self.dir)
            .map_err(io_err(&self.dir))?;
        let header = Header {
            ringfeed_changes: FORMAT,
            log_id,
            first_seq,
        };
        let mut body = line(&serde_json::to_vec(&header).expect("header serialises"));
        for c in entries {
            body.extend(line(&serde_json::to_vec(c).expect("entry serialises")));
        }
        self.opts
            .write_atomic(&path, &body)
            .map_err(io_err(&path))?;
        let seen = identity(&path).unwrap_or_default();
        Ok(Log {
            log_id: header.log_id,
            first_seq,
            next_seq: next_seq(entries, first_seq),
            entries: entries.to_vec(),
            valid_len: body.len() as u64,
            repaired: true,
            seen,
        })
    }

    /// Read `dataset`'s log from its file. With `repair` (a writer about to write): a
    /// missing log is created, a torn tail cut, a damaged log moved aside and replaced.
    fn load(&self, dataset: &str, repair: bool) -> Result<Log, ChangesError> {
        let path = self.path(dataset);
        // Before the read: a write racing with it then makes the next call read again.
        let seen = identity(&path).unwrap_or_default();
        let bytes = match std::fs::read(&path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && repair => {
                tracing::info!(dataset, path = %path.display(), "starting a change log");
                return self.write_new(dataset, new_log_id(), 0, &[]);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ChangesError::Missing {
                    dataset: dataset.into(),
                    path,
                })
            }
            r => r.map_err(io_err(&path))?,
        };
        let p = match parse(&bytes) {
            Ok(p) => p,
            Err(reason) if repair => return self.replace_corrupt(dataset, &path, &reason),
            Err(reason) => return Err(ChangesError::Corrupt { path, reason }),
        };
        if p.torn > 0 && repair {
            tracing::warn!(
                dataset,
                path = %path.display(),
                bytes = p.torn,
                "cutting the torn tail of a change log (a write cut short, never acknowledged)"
            );
            let (f, _) = self
                .opts
                .open_write(&path, Create::existing())
                .map_err(io_err(&path))?;
            f.set_len(p.valid_len).map_err(io_err(&path))?;
            f.sync_all().map_err(io_err(&path))?;
        }
        let first_seq = p.header.first_seq;
        Ok(Log {
            log_id: p.header.log_id,
            first_seq,
            next_seq: next_seq(&p.entries, first_seq),
            entries: p.entries,
            valid_len: p.valid_len,
            repaired: repair,
            seen,
        })
    }

    /// Move a damaged log aside (`.corrupt-<n>`) and start a new one with a new id.
    fn replace_corrupt(
        &self,
        dataset: &str,
        path: &Path,
        reason: &str,
    ) -> Result<Log, ChangesError> {
        let mut n = 0;
        let aside = loop {
            let p = self.dir.join(format!("{dataset}.log.corrupt-{n}"));
            if !p.exists() {
                break p;
            }
            n += 1;
        };
        std::fs::rename(path, &aside).map_err(io_err(path))?;
        tracing::warn!(
            dataset,
            path = %path.display(),
            moved_to = %aside.display(),
            "change log damaged ({reason}): moved aside, starting a new log (followers re-copy everything)"
        );
        self.write_new(dataset, new_log_id(), 0, &[])
    }

    /// Writer open: load (and repair) the log of every dataset in `names`, and remove logs
    /// of datasets no longer in the catalog. Failures are logged: the first write retries.
    pub(crate) fn open_all<'a>(&self, names: impl Iterator<Item = &'a String>) {
        let names: Vec<&String> = names.collect();
        for f in crate::read_dirs(&self.dir) {
            let stale = f.extension().is_some_and(|e| e == "log")
                && f.file_stem()
                    .and_then(|s| s.to_str())
                    .is_some_and(|s| !names.iter().any(|n| n.as_str() == s));
            if stale || f.extension().is_some_and(|e| e == "tmp") {
                let _ = std::fs::remove_file(&f);
            }
        }
        for n in names {
            match self.load(n, true) {
                Ok(log) => {
                    self.lock().insert(n.clone(), log);
                }
                Err(e) => {
                    tracing::warn!(dataset = %n, "change log not loaded (the first write retries): {e}")
                }
            }
        }
    }

    /// Remove `dataset`'s log (a dropped dataset).
    pub(crate) fn remove(&mut self, dataset: &str) -> std::io::Result<()> {
        self.lock().remove(dataset);
        self.newest.remove(dataset);
        match std::fs::remove_file(self.path(dataset)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Append entries `(kind, symbol, start, end)` to `dataset`'s log with the next seqs,
    /// as one write, synced when `sync`. Compacts the log when it holds more than the cap.
    pub(crate) fn record(
        &self,
        dataset: &str,
        sync: bool,
        new: Entries,
    ) -> Result<(), ChangesError> {
        if new.is_empty() {
            return Ok(());
        }
        let mut logs = self.lock();
        if !logs.get(dataset).is_some_and(|l| l.repaired) {
            let log = self.load(dataset, true)?;
            logs.insert(dataset.to_string(), log);
        }
        let log = logs.get_mut(dataset).expect("loaded above");
        let path = self.path(dataset);
        let changes: Vec<Change> = new
            .into_iter()
            .enumerate()
            .map(|(i, (kind, symbol, start, end))| Change {
                seq: log.next_seq + i as u64,
                kind,
                symbol,
                start,
                end,
            })
            .collect();
        let mut body = Vec::new();
        for c in &changes {
            body.extend(line(&serde_json::to_vec(c).expect("entry serialises")));
        }
        let write = || -> std::io::Result<()> {
            self.opts.check_fault(&path)?;
            let (mut f, _) = self.opts.open_write(&path, Create::existing())?;
            // Anything past the valid lines is a torn write of ours: overwrite it.
            if f.metadata()?.len() != log.valid_len {
                f.set_len(log.valid_len)?;
            }
            f.seek(SeekFrom::Start(log.valid_len))?;
            f.write_all(&body)?;
            if sync {
                f.sync_data()?;
            }
            Ok(())
        };
        if let Err(e) = write() {
            // The file may hold part of it: reload (cutting it) before the next write.
            log.repaired = false;
            return Err(io_err(&path)(e));
        }
        log.valid_len += body.len() as u64;
        log.next_seq += changes.len() as u64;
        log.entries.extend(changes);
        if log.entries.len() > self.keep {
            let (entries, first_seq) = compacted(&log.entries, log.first_seq);
            match self.write_new(dataset, log.log_id.clone(), first_seq, &entries) {
                Ok(mut c) => {
                    c.next_seq = log.next_seq;
                    *log = c;
                }
                // The entries are stored; a later write compacts again.
                Err(e) => tracing::warn!(dataset, "change log not compacted: {e}"),
            }
        }
        Ok(())
    }

    /// Entries of `dataset`'s log with seq >= since, at most `limit` (see
    /// [`crate::BarStore::changes_since`]).
    pub(crate) fn since(
        &self,
        dataset: &str,
        since: u64,
        limit: usize,
    ) -> Result<ChangesSince, ChangesError> {
        let mut logs = self.lock();
        let fresh = match (self.writer, logs.get(dataset)) {
            (true, Some(_)) => None,
            (true, None) => Some(
                self.load(dataset, true)
                    .or_else(|_| self.load(dataset, false))?,
            ),
            (false, known) => match (known, identity(&self.path(dataset))) {
                (Some(l), Ok(id)) if l.seen == id => None,
                _ => Some(self.load(dataset, false)?),
            },
        };
        if let Some(log) = fresh {
            logs.insert(dataset.to_string(), log);
        }
        let log = &logs[dataset];
        let from = log.entries.partition_point(|c| c.seq < since);
        let rest = &log.entries[from..];
        let mut n = limit.max(1).min(rest.len());
        // Never end inside a group sharing one seq: stop before it, or (when it is the
        // first group) take all of it.
        if n < rest.len() && n > 0 && rest[n].seq == rest[n - 1].seq {
            let start = rest[..n].partition_point(|c| c.seq < rest[n].seq);
            n = if start > 0 {
                start
            } else {
                rest.partition_point(|c| c.seq <= rest[0].seq)
            };
        }
        let next_seq = rest.get(n).map_or(log.next_seq, |c| c.seq);
        Ok(ChangesSince {
            log_id: log.log_id.clone(),
            first_seq: log.first_seq,
            next_seq,
            changes: rest[..n].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(seq: u64, sym: Option<&str>, start: i64, end: i64) -> Change {
        Change {
            seq,
            kind: ChangeKind::Rewrite,
            symbol: sym.map(str::to_string),
            start,
            end,
        }
    }

    #[test]
    fn lines_check_and_damage_is_told_from_a_torn_tail() {
        let h = Header {
            ringfeed_changes: FORMAT,
            log_id: new_log_id(),
            first_seq: 0,
        };
        assert_eq!(h.log_id.len(), 32);
        assert!(h
            .log_id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
        let mut f = line(&serde_json::to_vec(&h).unwrap());
        for i in 0..3 {
            f.extend(line(&serde_json::to_vec(&c(i, Some("X"), 0, 1)).unwrap()));
        }
        let p = parse(&f).unwrap();
        assert_eq!((p.entries.len(), p.torn), (3, 0));
        // A torn last line is a tail to cut.
        let last = f[..f.len() - 1].iter().rposition(|&b| b == b'\n').unwrap() + 1;
        let p = parse(&f[..f.len() - 5]).unwrap();
        assert_eq!((p.entries.len(), p.torn), (2, (f.len() - 5 - last) as u64));
        // A flipped byte in the middle, with valid lines after it: damage.
        let mut bad = f.clone();
        let mid = bad.iter().position(|&b| b == b'\n').unwrap() + 10;
        bad[mid] ^= 0x20;
        assert!(parse(&bad).is_err());
        // Garbage appended: a torn tail.
        let mut g = f.clone();
        g.extend_from_slice(b"\x00\xff garbage");
        assert_eq!(parse(&g).unwrap().entries.len(), 3);
        // A damaged header.
        let mut h = f.clone();
        h[3] ^= 1;
        assert!(parse(&h).is_err());
        assert!(parse(b"").is_err());
    }

    #[test]
    fn compaction_merges_the_oldest_half_per_symbol() {
        let e: Vec<Change> = (0..6)
            .map(|i| {
                c(
                    i,
                    [Some("A"), Some("B"), None][i as usize % 3],
                    i as i64 * 10,
                    i as i64 * 10 + 5,
                )
            })
            .collect();
        let (out, first) = compacted(&e, 0);
        assert_eq!(first, 3);
        assert_eq!(out.len(), 3 + 3);
        assert!(out[..3]
            .iter()
            .all(|c| c.seq == 2 && c.kind == ChangeKind::Remove));
        assert_eq!(out[0].symbol.as_deref(), Some("A"));
        assert_eq!(out[2].symbol, None);
        assert_eq!(&out[3..], &e[3..]);
        // Compacting again merges the merged group with the next entries.
        let (again, first) = compacted(&out, first);
        assert_eq!(first, 4);
        assert_eq!(again.iter().filter(|c| c.seq == 3).count(), 3);
        assert_eq!(again[0].end, 35); // A: [0, 5) and [30, 35)
        assert_eq!(&again[3..], &e[4..]);
    }
}
