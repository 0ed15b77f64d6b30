//! Read-only snapshots of an arena for `ringfeed inspect`.

use crate::arena::{self, Access};
use crate::error::OpenError;
use crate::layout::{state, Header};
use crate::os;
use crate::sync::Ordering;
use crate::table::{read_rows, ReaderInfo};

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
}

impl ArenaInfo {
    /// Batches the slowest attached reader has yet to read.
    pub fn max_lag(&self) -> u64 {
        self.readers
            .iter()
            .map(|r| (self.write_seq + 1).saturating_sub(r.cursor))
            .max()
            .unwrap_or(0)
    }
}

/// Validates and snapshots arena `name` without joining it as a reader.
pub fn inspect(name: &str) -> Result<ArenaInfo, OpenError> {
    let v = arena::open_validated(name, true, Access::Read)?;
    let path = v.path.clone();
    let header = v.header;
    let regions = arena::map_reader(name, v, true)?;
    let ctl = regions.control();
    let st = ctl.state.0.state.load(Ordering::Acquire);
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
        state: match st {
            state::READY => "ready",
            state::CLOSED => "closed",
            _ => "init",
        },
        write_seq: ctl.write_seq.0.load(Ordering::Acquire),
        writer_epoch: ctl.state.0.writer_epoch.load(Ordering::Relaxed),
        writer_pid: ctl.state.0.writer_pid.load(Ordering::Relaxed),
        writer_alive: os::writer_lock_held(&regions.file).unwrap_or(false),
        readers,
        leased_buffers,
        meta_len: regions.meta_head().len,
        meta: regions.meta_bytes(),
    })
}
