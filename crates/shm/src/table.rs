//! The reader table: the one file readers write to (`<arena file>@readers`).
//!
//! It lives apart from the arena file so that readers can map everything the
//! writer depends on read-only. The writer never trusts it: [`row_problem`]
//! range-checks every value a row holds, rows that break an invariant are
//! ignored for buffer reuse, and [`read_rows`] reports them (`ringfeed
//! inspect` shows them as bad, with the reason).

use crate::arena::Regions;
use crate::layout::*;
use crate::sync::{AtomicU32, Ordering};
use std::mem::size_of;

/// A live (or suspicious) reader row as the writer or `inspect` sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReaderInfo {
    /// Row index.
    pub row: u32,
    /// Row state (see [`crate::layout::row_state`]); may be out of range in a bad row.
    pub state: u32,
    /// Owner pid (diagnostic).
    pub pid: u32,
    /// Next seq it will read.
    pub cursor: u64,
    /// Leases held (sum of the row's pins, saturating).
    pub leases: u32,
    /// Batches lost to lag.
    pub missed: u64,
    /// While the row holds leases: ns since its lease count last went from 0
    /// to 1, the age of its oldest outstanding lease or more (exact for a
    /// reader that holds one batch too long; see `docs/layout.md`, "Lease
    /// age"). `None` with no leases, or when the owner does not record it (a
    /// reader built against layout minor 0).
    pub lease_age_ns: Option<u64>,
    /// Why the writer does not trust this row, if it breaks an invariant: its
    /// pins are then ignored for buffer reuse (and its cursor by a Block writer).
    pub problem: Option<&'static str>,
}

impl ReaderInfo {
    /// Batches this reader has yet to read when the newest published seq is `write_seq`.
    pub fn lag(&self, write_seq: u64) -> u64 {
        (write_seq + 1).saturating_sub(self.cursor)
    }
}

/// Raw view of one row (head and pins), for validation.
pub(crate) struct RowView<'a> {
    pub(crate) head: &'a ReaderRow,
    pub(crate) pins: &'a [AtomicU32],
}

/// What is wrong with a row, if anything. Every value is read once
/// (Relaxed: this is a diagnosis, not a synchronisation), so a row changing
/// under us gives at worst a transient verdict that the next sweep revises.
pub(crate) fn row_problem(
    row: &RowView<'_>,
    leases_per_reader: u32,
    write_seq: u64,
) -> Option<&'static str> {
    let st = row.head.state.load(Ordering::Relaxed);
    if !matches!(
        st,
        row_state::FREE | row_state::ACTIVE | row_state::DRAINING
    ) {
        return Some("unknown row state");
    }
    if row.head.sleeping.load(Ordering::Relaxed) > 1 {
        return Some("sleeping flag is neither 0 nor 1");
    }
    let mut pinned = 0u64;
    let mut total = 0u64;
    for p in row.pins {
        let v = p.load(Ordering::Relaxed);
        if v != 0 {
            pinned += 1;
            total += v as u64;
        }
    }
    if st == row_state::FREE && total != 0 {
        return Some("pins in a FREE row");
    }
    if pinned > leases_per_reader as u64 || total > leases_per_reader as u64 {
        return Some("more pins than leases_per_reader");
    }
    if st == row_state::ACTIVE && row.head.cursor.load(Ordering::Relaxed) > write_seq + 1 {
        return Some("cursor beyond write_seq + 1");
    }
    None
}

/// Rows worth reporting: attached ones, and FREE ones that break an invariant.
pub(crate) fn read_rows(r: &Regions) -> Vec<ReaderInfo> {
    // SYNC POINT: publish (diagnostic read). Pairs with the writer's Release store.
    let write_seq = r.control().write_seq.0.load(Ordering::Acquire);
    let p = r.geo.leases_per_reader;
    let now = crate::os::monotonic_ns();
    (0..r.geo.max_readers)
        .filter_map(|i| {
            let row = r.row_view(i);
            // SYNC POINT: row-active (diagnostic read). Pairs with the reader's Release store.
            let st = row.head.state.load(Ordering::Acquire);
            let problem = row_problem(&row, p, write_seq);
            (st != row_state::FREE || problem.is_some()).then(|| {
                let leases = row
                    .pins
                    .iter()
                    .map(|p| p.load(Ordering::Relaxed) as u64)
                    .sum::<u64>()
                    .min(u32::MAX as u64) as u32;
                ReaderInfo {
                    row: i,
                    state: st,
                    pid: row.head.pid.load(Ordering::Relaxed),
                    cursor: row.head.cursor.load(Ordering::Relaxed),
                    leases,
                    missed: row.head.missed.load(Ordering::Relaxed),
                    lease_age_ns: lease_age(row.head, leases, now),
                    problem,
                }
            })
        })
        .collect()
}

/// Age of a row's oldest lease (or more), if it holds leases and records the
/// time: `leased_since_ns` counts only under the `gen` its owner stamped in
/// `lease_gen` at claim, so a row claimed by an owner that does not record it
/// (layout minor 0: both fields left as the previous owner wrote them, or
/// zero) says `None` instead of a stale age. A time in the future (a clock of
/// another time namespace, or a scribble) reads as age 0.
fn lease_age(head: &ReaderRow, leases: u32, now: u64) -> Option<u64> {
    if leases == 0 || head.lease_gen.load(Ordering::Relaxed) != head.gen.load(Ordering::Relaxed) {
        return None;
    }
    match head.leased_since_ns.load(Ordering::Relaxed) {
        0 => None,
        since => Some(now.saturating_sub(since)),
    }
}

/// The reader table header's minor version: 0 while additions to the table stay in
/// what older readers see as padding. Every reader (the released minor-0 ones too)
/// compares the whole table header for equality, so writing the arena's
/// [`crate::layout::LAYOUT_MINOR`] here would make every older reader refuse a newer
/// writer's table ("belongs to another instance"), breaking the minor-version promise.
pub(crate) const TABLE_MINOR: u16 = 0;

/// The table header for an arena with this `header`.
pub(crate) fn table_header(header: &Header) -> TableHeader {
    TableHeader {
        magic: TABLE_MAGIC,
        layout_major: LAYOUT_MAJOR,
        layout_minor: TABLE_MINOR,
        _reserved: 0,
        instance_id: header.instance_id,
        total_len: header.readers_len,
    }
}

/// Reads the table header out of a mapping at least `ROWS_OFF` long.
///
/// # Safety
/// `base` must point at a live mapping of at least [`ROWS_OFF`] bytes.
pub(crate) unsafe fn read_table_header(base: *const u8) -> TableHeader {
    // SAFETY: the caller guarantees the mapping; TableHeader is plain data,
    // valid for every bit pattern; volatile because other processes write it.
    unsafe { std::ptr::read_volatile(base as *const TableHeader) }
}

/// Writes the table header into a fresh (or rebuilt) table mapping.
///
/// # Safety
/// `base` must point at a live, writable mapping of at least [`ROWS_OFF`]
/// bytes that no other process relies on yet (fresh file, or one being rebuilt).
pub(crate) unsafe fn write_table_header(base: *mut u8, h: &TableHeader) {
    const _: () = assert!(size_of::<TableHeader>() as u64 <= ROWS_OFF);
    // SAFETY: see the caller's contract.
    unsafe { std::ptr::write_volatile(base as *mut TableHeader, *h) }
}
