//! Read-only snapshots of an arena for `ringfeed inspect`.

use crate::arena::{self, Access};
use crate::error::OpenError;
use crate::layout::{state, Control, Header, StateLine, WriterStats, CONTROL_OFF};
use crate::os;
use crate::sync::Ordering;
use crate::table::{read_rows, ReaderInfo};
use std::mem::offset_of;
use std::os::unix::fs::FileExt;

/// What `ringfeed inspect NAME` shows.
#[derive(Debug, Clone)]
pub struct ArenaInfo {
    /// Arena name.
    pub name: String,
    /// File path.
    pub path: std::path::PathBuf,
    /// The validated header.
    pub header: Header,
    /// "ready", "closed", or "init".
    pub state: &'static str,
    /// Highest published seq.
    pub write_seq: u64,
    /// Writer epoch (bumped on every takeover).
    pub writer_epoch: u32,
    /// Last writer pid.
    pub writer_pid: u32,
    /// Whether a live process holds the writer lock.
    pub writer_alive: bool,
    /// Attached readers, and rows that break an invariant (`problem` set).
    pub readers: Vec<ReaderInfo>,
    /// Buffers currently pinned by at least one reader.
    pub leased_buffers: u32,
    /// Meta payload length.
    pub meta_len: u32,
    /// The meta payload, if intact.
    pub meta: Option<Vec<u8>>,
    /// Payload bytes published over the arena's life (all writers), if the
    /// arena records it (layout minor >= 1; `None` for a minor-0 arena).
    pub bytes_published: Option<u64>,
    /// Why the reader table could not be read, if it could not (then
    /// `readers` is empty and `meta` unread; the rest comes from the arena file).
    pub table_problem: Option<String>,
}

impl ArenaInfo {
    /// Batches the slowest attached reader has yet to read.
    pub fn max_lag(&self) -> u64 {
        self.readers
            .iter()
            .map(|r| r.lag(self.write_seq))
            .max()
            .unwrap_or(0)
    }

    /// Leases held by well-formed reader rows (a bad row's pins are ignored by
    /// the writer, and its count may be nonsense).
    pub fn leases(&self) -> u64 {
        self.readers
            .iter()
            .filter(|r| r.problem.is_none())
            .map(|r| r.leases as u64)
            .sum()
    }

    /// Age in ns of the oldest outstanding lease of any reader that records it
    /// (see [`ReaderInfo::lease_age_ns`]); `None` when nothing is leased.
    pub fn oldest_lease_age_ns(&self) -> Option<u64> {
        self.readers
            .iter()
            .filter(|r| r.problem.is_none())
            .filter_map(|r| r.lease_age_ns)
            .max()
    }
}

/// `bytes_published` if this arena's layout has it.
fn bytes_published(header: &Header, value: u64) -> Option<u64> {
    (header.layout_minor >= 1).then_some(value)
}

/// Validates and snapshots arena `name` without joining it as a reader.
pub fn inspect(name: &str) -> Result<ArenaInfo, OpenError> {
    let v = arena::open_validated(name, true, Access::Read)?;
    let path = v.path.clone();
    let header = v.header;
    let regions = match arena::map_reader(name, v, true) {
        Ok(r) => r,
        // The arena is fine but its reader table is not (missing, short,
        // another instance's: being created, or damaged): still tell whether
        // the writer lives, so that nobody removes a live writer's arena.
        Err(e @ OpenError::Io { .. }) => return Err(e),
        Err(e) => return without_table(name, e),
    };
    let ctl = regions.control();
    let st = ctl.state.0.state.load(Ordering::Acquire);
    // SYNC POINT: publish (diagnostic read). Pairs with the writer's Release
    // store: the byte count read after it includes every batch up to write_seq.
    let write_seq = ctl.write_seq.0.load(Ordering::Acquire);
    let bytes = ctl.writer_stats.0.bytes_published.load(Ordering::Relaxed);
    let readers = read_rows(&regions);
    let leased_buffers = (0..regions.geo.buffers)
        .filter(|&b| {
            readers.iter().any(|r| {
                r.problem.is_none() && regions.pins(r.row)[b as usize].load(Ordering::Relaxed) != 0
            })
        })
        .count() as u32;
    Ok(ArenaInfo {
        name: name.to_string(),
        path,
        header,
        state: state_name(st),
        write_seq,
        writer_epoch: ctl.state.0.writer_epoch.load(Ordering::Relaxed),
        writer_pid: ctl.state.0.writer_pid.load(Ordering::Relaxed),
        writer_alive: os::writer_lock_held(&regions.file).unwrap_or(false),
        readers,
        leased_buffers,
        meta_len: regions.meta_head().len,
        meta: regions.meta_bytes(),
        bytes_published: bytes_published(&header, bytes),
        table_problem: None,
    })
}

fn state_name(st: u32) -> &'static str {
    match st {
        state::READY => "ready",
        state::CLOSED => "closed",
        _ => "init",
    }
}

/// [`inspect`] from the arena file alone (read with `pread`, not mapped).
fn without_table(name: &str, why: OpenError) -> Result<ArenaInfo, OpenError> {
    let v = arena::open_validated(name, true, Access::Read)?;
    let io = |e| OpenError::Io {
        path: v.path.clone(),
        source: e,
    };
    let u32_at = |off: u64| -> Result<u32, OpenError> {
        let mut b = [0u8; 4];
        v.file.read_exact_at(&mut b, off).map_err(io)?;
        Ok(u32::from_ne_bytes(b))
    };
    let line0 = CONTROL_OFF + offset_of!(Control, state) as u64;
    let st = u32_at(line0 + offset_of!(StateLine, state) as u64)?;
    let u64_at = |off: u64| -> Result<u64, OpenError> {
        let mut b = [0u8; 8];
        v.file.read_exact_at(&mut b, off).map_err(io)?;
        Ok(u64::from_ne_bytes(b))
    };
    let write_seq = u64_at(CONTROL_OFF + offset_of!(Control, write_seq) as u64)?;
    let bytes = u64_at(
        CONTROL_OFF
            + offset_of!(Control, writer_stats) as u64
            + offset_of!(WriterStats, bytes_published) as u64,
    )?;
    Ok(ArenaInfo {
        name: name.to_string(),
        path: v.path.clone(),
        header: v.header,
        state: state_name(st),
        write_seq,
        writer_epoch: u32_at(line0 + offset_of!(StateLine, writer_epoch) as u64)?,
        writer_pid: u32_at(line0 + offset_of!(StateLine, writer_pid) as u64)?,
        writer_alive: os::writer_lock_held(&v.file).unwrap_or(false),
        readers: Vec::new(),
        leased_buffers: 0,
        meta_len: u32_at(v.header.meta_off)?,
        meta: None,
        bytes_published: bytes_published(&v.header, bytes),
        table_problem: Some(why.to_string()),
    })
}
