//! Where damaged bytes go: `<root>/_quarantine/`, never the bin.
//!
//! When a WAL holds a damaged region (a frame whose CRC, magic or payload is bad) with
//! valid frames after it, the store keeps every valid frame and moves the damaged bytes
//! here; a torn tail longer than a frame header is copied here before it is cut. Each
//! copy is `<root>/_quarantine/<dataset>/<tf>/<YYYY-MM-DD>.wal.<offset>.<unix_ns>.bad`
//! with a JSON sidecar (`… .bad.json`, a [`CorruptionReport`]) saying where the bytes
//! came from, why they were set aside and when. Nothing here is read back by the store;
//! the files are for a person (or a support ticket) to look at, and safe to delete.

use crate::perms::{Create, StoreOptions};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Directory of quarantined bytes under a store root.
pub const DIR: &str = "_quarantine";

/// What was wrong with a region of a WAL.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DamageKind {
    /// Bad bytes with valid frames after them: corruption (bit rot, a bad write), not a
    /// crash. The valid frames were kept.
    Corrupt,
    /// Bad bytes at the end with nothing valid after them: a write cut short by a crash.
    /// They were cut (an unfinished write is never acknowledged).
    TornTail,
}

impl std::fmt::Display for DamageKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DamageKind::Corrupt => "corrupt region",
            DamageKind::TornTail => "torn tail",
        })
    }
}

/// One damaged region of a WAL that the store set aside (also the JSON sidecar of its
/// quarantine copy).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorruptionReport {
    /// The WAL file.
    pub wal: PathBuf,
    /// Byte offset of the region in the WAL as found.
    pub offset: u64,
    /// Length of the region in bytes.
    pub len: u64,
    /// Corrupt region or torn tail.
    pub kind: DamageKind,
    /// Why the first frame of the region was rejected.
    pub reason: String,
    /// Valid frames kept in the WAL.
    pub frames_kept: usize,
    /// The copy of the bytes, when one was made (`None`: a torn tail no longer than a
    /// frame header, which holds no data).
    pub quarantined: Option<PathBuf>,
    /// When it was found (Unix seconds).
    pub found_at: u64,
}

impl std::fmt::Display for CorruptionReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} in {} at offset {} ({} bytes): {}; kept {} valid frames",
            self.kind,
            self.wal.display(),
            self.offset,
            self.len,
            self.reason,
            self.frames_kept
        )?;
        match &self.quarantined {
            Some(q) => write!(f, "; the bytes are kept in {}", q.display()),
            None => Ok(()),
        }
    }
}

/// Where the copy of bytes at `offset` of `wal` goes: under `_quarantine/`, mirroring the
/// WAL's place under `_hot/` (or beside the WAL when it is not under a store root).
pub fn path_for(root: &Path, wal: &Path, offset: u64) -> PathBuf {
    let rel = wal
        .strip_prefix(root.join("_hot"))
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| PathBuf::from(wal.file_name().unwrap_or_default()));
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let mut name = rel.into_os_string();
    name.push(format!(".{offset}.{nanos}.bad"));
    root.join(DIR).join(name)
}

/// Copy `bytes` (the region `report` describes) into quarantine, durably (file and
/// sidecar fsynced, directory fsynced) before the caller changes the WAL. Sets
/// `report.quarantined`.
pub fn save(
    root: &Path,
    opts: &StoreOptions,
    bytes: &[u8],
    report: &mut CorruptionReport,
) -> std::io::Result<()> {
    let path = path_for(root, &report.wal, report.offset);
    let mut side = path.clone().into_os_string();
    side.push(".json");
    let side = PathBuf::from(side);
    let res = write_pair(opts, &path, &side, bytes, report);
    if res.is_err() {
        // A half-written copy is no copy (and on a full disk it holds needed space).
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&side);
        report.quarantined = None;
    }
    res
}

fn write_pair(
    opts: &StoreOptions,
    path: &Path,
    side: &Path,
    bytes: &[u8],
    report: &mut CorruptionReport,
) -> std::io::Result<()> {
    let dir = path.parent().expect("quarantine files live in a directory");
    opts.create_dir_all(dir)?;
    let (mut f, _) = opts.open_write(path, Create::new_only())?;
    opts.check_fault(path)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    report.quarantined = Some(path.to_path_buf());
    let body = serde_json::to_vec_pretty(report).expect("report serialises");
    let (mut f, _) = opts.open_write(side, Create::new_only())?;
    f.write_all(&body)?;
    f.sync_all()?;
    crate::perms::sync_dir(dir)
}

/// Every quarantine sidecar under a store root, oldest first.
pub fn list(root: &Path) -> Vec<CorruptionReport> {
    let mut out = Vec::new();
    let mut stack = vec![root.join(DIR)];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.to_string_lossy().ends_with(".bad.json") {
                if let Some(r) = std::fs::read(&p)
                    .ok()
                    .and_then(|b| serde_json::from_slice::<CorruptionReport>(&b).ok())
                {
                    out.push(r);
                }
            }
        }
    }
    out.sort_by(|a, b| (a.found_at, &a.wal, a.offset).cmp(&(b.found_at, &b.wal, b.offset)));
    out
}
