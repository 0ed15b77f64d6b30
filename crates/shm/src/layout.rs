//! Byte layout of an arena, version 2. `docs/layout.md` is the prose twin of
//! this file; the `const` assertions below keep the two honest.
//!
//! An arena is two files. The *arena file* holds everything only the writer
//! writes; readers open it `O_RDONLY` and map it read-only, and the writer
//! makes it mode 0400 once it is READY:
//!
//! ```text
//! 0            Header          (one 4 KiB page, immutable after READY)
//! 4096         Control         (4 lines of 128 bytes: state, write_seq, notify, writer stats)
//! meta_off     MetaBlock       (64-byte head + meta_cap bytes: the Arrow IPC schema message)
//! gens_off     M x u64         (buffer generations; odd = being written)
//! descs_off    D x Descriptor  (64 bytes each, a seqlock per entry)
//! pool_off     M x buffer      (page-aligned, buffer_bytes each)
//! ```
//!
//! The *reader table* (`<arena file>@readers`) holds everything readers
//! write; the writer validates every value it reads from it:
//!
//! ```text
//! 0            TableHeader     (magic, version, the arena's instance_id, geometry)
//! 128          TableControl    (2 lines: waiters, writer doorbell)
//! ROWS_OFF     R x ReaderRow   (128-byte head + M x u32 pins, stride a multiple of 128)
//! ```

use crate::sync::{AtomicU32, AtomicU64};
use std::mem::{offset_of, size_of};

/// `b"RINGFEED"`: first eight bytes of every arena.
pub const MAGIC: [u8; 8] = *b"RINGFEED";
/// Incompatible layout changes bump this; readers refuse other majors.
pub const LAYOUT_MAJOR: u16 = 2;
/// Compatible additions bump this. 1: `WriterStats::bytes_published` (in
/// what was padding of control line 3) and `ReaderRow::{lease_gen,
/// leased_since_ns}` (in what was padding of the row head). Readers of minor 0
/// never look at those bytes; readers of minor 1 treat them as absent in a
/// minor-0 arena (see `docs/layout.md`).
pub const LAYOUT_MINOR: u16 = 1;
/// Written in native byte order; a reader of the other endianness sees it swapped.
pub const ENDIAN_TAG: u32 = 0x0102_0304;
/// Every region and every buffer starts on this boundary (Arrow's recommended alignment).
pub const ALIGN: u64 = 64;
/// The page size the layout was computed for.
pub const PAGE: u64 = 4096;
/// Feature bits a reader must understand to attach. None exist in v2.
pub const FEATURES_REQUIRED_KNOWN: u64 = 0;
/// Value of [`Descriptor::seq`] while the writer rewrites the entry.
pub const SEQ_BUSY: u64 = u64::MAX;
/// Byte of the arena file that the live writer holds an OFD write lock on.
pub const WRITER_LOCK_BYTE: u64 = 0;
/// Reader row *i* is owned by whoever holds the OFD lock on byte
/// `READER_LOCK_BASE + i` of the reader table file.
pub const READER_LOCK_BASE: u64 = 1;
/// `b"RFREADRS"`: first eight bytes of every reader table file.
pub const TABLE_MAGIC: [u8; 8] = *b"RFREADRS";
/// Offset of [`TableControl`] in the reader table file.
pub const TABLE_CONTROL_OFF: u64 = 128;
/// Offset of the first reader row in the reader table file.
pub const ROWS_OFF: u64 = TABLE_CONTROL_OFF + 256;

/// Upper bounds that keep every size computation far from overflow.
pub const MAX_SLOTS: u32 = 1 << 20;
/// See [`MAX_SLOTS`].
pub const MAX_READERS: u32 = 4096;
/// See [`MAX_SLOTS`].
pub const MAX_BUFFERS: u32 = 1 << 20;
/// See [`MAX_SLOTS`]: 64 GiB per buffer.
pub const MAX_BUFFER_BYTES: u64 = 1 << 36;
/// See [`MAX_SLOTS`]: 16 MiB of schema.
pub const MAX_META_CAP: u32 = 1 << 24;

/// Arena lifecycle, stored in [`Control::state`].
pub mod state {
    /// Being built under a temporary name; never visible under the final name.
    pub const INIT: u32 = 0;
    /// Open for business.
    pub const READY: u32 = 1;
    /// The writer closed it: readers drain what is left and then stop.
    pub const CLOSED: u32 = 2;
}

/// Reader row lifecycle, stored in [`ReaderRow::state`].
pub mod row_state {
    /// Nobody owns the row.
    pub const FREE: u32 = 0;
    /// A live reader: its cursor holds back a `Block` writer.
    pub const ACTIVE: u32 = 1;
    /// The reader handle is closed but leases are still out: pins count, the cursor does not.
    pub const DRAINING: u32 = 2;
}

/// Marker for types that may be placed in shared memory and viewed by several
/// processes.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain no pointers, references or
/// process-local handles (offsets only), have no padding whose content matters,
/// and be valid for every bit pattern of their fields that are not atomics
/// (atomics are valid for every bit pattern too).
pub unsafe trait ZeroCopy: Sized {}

/// One 128-byte line, so that two hot atomics never share a cache line
/// (adjacent-line prefetch pairs 64-byte lines on x86).
#[repr(C, align(128))]
pub struct Line<T>(pub T);

/// The header page. Immutable once the arena is READY, guarded by a CRC.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    /// [`MAGIC`].
    pub magic: [u8; 8],
    /// [`LAYOUT_MAJOR`].
    pub layout_major: u16,
    /// [`LAYOUT_MINOR`].
    pub layout_minor: u16,
    /// [`ENDIAN_TAG`] in the creator's byte order.
    pub endian_tag: u32,
    /// [`PAGE`].
    pub page_size: u32,
    /// [`ALIGN`].
    pub align: u32,
    /// Feature bits a reader must know.
    pub features_required: u64,
    /// Feature bits a reader may ignore.
    pub features_optional: u64,
    /// Random per creation; tells a re-created arena from the one you mapped.
    pub instance_id: u64,
    /// Creation time, ns since the Unix epoch.
    pub created_unix_ns: u64,
    /// Exact file length.
    pub total_len: u64,
    /// D: descriptor ring entries.
    pub slots: u32,
    /// M: buffers in the pool.
    pub buffers: u32,
    /// Bytes per buffer (a multiple of [`PAGE`]).
    pub buffer_bytes: u64,
    /// R: reader rows.
    pub max_readers: u32,
    /// P: leases one reader may hold at once.
    pub leases_per_reader: u32,
    /// Capacity of the meta block.
    pub meta_cap: u32,
    /// 0 = overwrite oldest, 1 = block.
    pub on_full: u32,
    /// Block timeout in ns (diagnostics; the writer enforces it).
    pub block_timeout_ns: u64,
    /// Offset of [`Control`].
    pub control_off: u64,
    /// Offset of [`MetaBlock`].
    pub meta_off: u64,
    /// Offset of the generation array.
    pub gens_off: u64,
    /// Offset of the descriptor ring.
    pub descs_off: u64,
    /// Length of the reader table file (a separate file, see the module docs).
    pub readers_len: u64,
    /// Bytes per reader row.
    pub reader_stride: u64,
    /// Offset of the buffer pool (page-aligned).
    pub pool_off: u64,
    /// Uid of the creator.
    pub creator_uid: u32,
    /// CRC32C of every byte before this field.
    pub header_crc: u32,
}

/// The control block of the arena file: written by the writer only, one hot
/// atomic per line.
#[repr(C)]
pub struct Control {
    /// Line 0: arena state, writer epoch, reader-table epoch, writer pid/start.
    pub state: Line<StateLine>,
    /// Line 1: highest published sequence number (0 = none yet).
    pub write_seq: Line<AtomicU64>,
    /// Line 2: futex word readers sleep on; the writer bumps it to wake them.
    pub notify: Line<AtomicU32>,
    /// Line 3: writer heartbeat and statistics (diagnostics).
    pub writer_stats: Line<WriterStats>,
}

/// Contents of control line 3: written by the writer on every publish, read
/// only by diagnostics (`inspect`, `ringfeed top`), never by the ring protocol.
#[repr(C)]
pub struct WriterStats {
    /// Writer's last publish, ns on `CLOCK_MONOTONIC`.
    pub heartbeat_ns: AtomicU64,
    /// Payload bytes published since the arena was created, monotonically
    /// increasing (minor 1; zero padding in a minor-0 arena). Relaxed: statistics.
    pub bytes_published: AtomicU64,
}

/// Head of the reader table file. Written once by the arena's creator (or a
/// writer that rebuilt the table); readers check it, the writer never reads it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TableHeader {
    /// [`TABLE_MAGIC`].
    pub magic: [u8; 8],
    /// [`LAYOUT_MAJOR`].
    pub layout_major: u16,
    /// [`LAYOUT_MINOR`].
    pub layout_minor: u16,
    /// Reserved, zero.
    pub _reserved: u32,
    /// [`Header::instance_id`] of the arena this table belongs to.
    pub instance_id: u64,
    /// Exact file length ([`Header::readers_len`]).
    pub total_len: u64,
}

/// The control block of the reader table: the atomics readers store to.
#[repr(C)]
pub struct TableControl {
    /// Line 0: how many readers are (about to be) asleep on `Control::notify`.
    pub waiters: Line<AtomicU32>,
    /// Line 1: the doorbell a blocked writer sleeps on.
    pub writer_bell: Line<WriterBell>,
}

/// Contents of control line 0.
#[repr(C)]
pub struct StateLine {
    /// One of [`state`].
    pub state: AtomicU32,
    /// Bumped by every writer that takes over.
    pub writer_epoch: AtomicU32,
    /// Pid of the current writer (liveness: with `writer_start`, tells a
    /// writer whose lock a forked child kept alive from a live one).
    pub writer_pid: AtomicU32,
    /// Bumped by the writer whenever it rebuilds the reader table (after a
    /// process truncated it): readers attached to the old table are detached.
    pub readers_epoch: AtomicU32,
    /// Start time of the writer process, clock ticks since boot.
    pub writer_start: AtomicU64,
}

/// Contents of control line 5.
#[repr(C)]
pub struct WriterBell {
    /// Futex word a blocked writer sleeps on.
    pub bell: AtomicU32,
    /// Non-zero while the writer is (about to be) asleep on `bell`.
    pub writer_waiting: AtomicU32,
}

/// Head of the meta block; `len` bytes of payload follow at offset 64.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct MetaHead {
    /// Payload length.
    pub len: u32,
    /// CRC32C of the payload.
    pub crc: u32,
}

/// One descriptor ring entry, read as a seqlock on `seq`.
#[repr(C, align(64))]
pub struct Descriptor {
    /// Sequence number held here, or [`SEQ_BUSY`] while being rewritten.
    pub seq: AtomicU64,
    /// Index of the buffer that holds the payload.
    pub buf_idx: AtomicU32,
    /// Reserved.
    pub _reserved: AtomicU32,
    /// Generation of that buffer when it was published.
    pub buf_gen: AtomicU64,
    /// Payload length in bytes.
    pub len: AtomicU64,
    /// Rows in the batch (informational).
    pub rows: AtomicU64,
    /// Publish time, ns since the Unix epoch.
    pub ts_ns: AtomicU64,
    /// Free for the layer above (e.g. a format tag).
    pub user: AtomicU64,
}

/// Head of one reader row; `buffers` pin counters (u32) follow at offset 128.
#[repr(C, align(128))]
pub struct ReaderRow {
    /// One of [`row_state`].
    pub state: AtomicU32,
    /// Bumped on every claim of the row.
    pub gen: AtomicU32,
    /// Owner pid (diagnostics only).
    pub pid: AtomicU32,
    /// Leases currently held (sum of this row's pins; diagnostics).
    pub leases: AtomicU32,
    /// Owner start time, clock ticks since boot (diagnostics only).
    pub start_time: AtomicU64,
    /// Next sequence number this reader will read.
    pub cursor: AtomicU64,
    /// Last time the reader read or waited, ns on `CLOCK_MONOTONIC`.
    pub heartbeat_ns: AtomicU64,
    /// Batches this reader lost to lag, in total.
    pub missed: AtomicU64,
    /// 1 while the owner counts itself in `Control::waiters`, so a sweep of a
    /// reader killed in its sleep can take its count back.
    pub sleeping: AtomicU32,
    /// Minor 1: the `gen` under which the owner last reset `leased_since_ns`.
    /// `leased_since_ns` means something only while this equals `gen` (an
    /// owner of minor 0 claims the row without touching either field).
    pub lease_gen: AtomicU32,
    /// Minor 1: when this row's lease count last went from 0 to 1, ns on
    /// `CLOCK_MONOTONIC` (0 = never). While the row holds leases, now minus
    /// this is the age of its oldest outstanding lease, or more (see
    /// `docs/layout.md`, "Lease age"). Diagnostics only.
    pub leased_since_ns: AtomicU64,
}

// SAFETY: repr(C), plain integers, byte arrays and atomics; no pointers.
unsafe impl ZeroCopy for Header {}
// SAFETY: repr(C) lines of atomics only.
unsafe impl ZeroCopy for Control {}
// SAFETY: repr(C), two u32.
unsafe impl ZeroCopy for MetaHead {}
// SAFETY: repr(C), atomics only.
unsafe impl ZeroCopy for Descriptor {}
// SAFETY: repr(C), atomics only.
unsafe impl ZeroCopy for ReaderRow {}
// SAFETY: repr(C), integers and a byte array, no padding (asserted below).
unsafe impl ZeroCopy for TableHeader {}
// SAFETY: repr(C) lines of atomics only.
unsafe impl ZeroCopy for TableControl {}

/// Size of the byte range covered by [`Header::header_crc`].
pub const HEADER_CRC_SPAN: usize = offset_of!(Header, header_crc);
/// Offset of the control block.
pub const CONTROL_OFF: u64 = PAGE;
/// Payload offset inside the meta block.
pub const META_PAYLOAD_OFF: u64 = 64;

// The layout is an ABI between processes and versions: pin it.
const _: () = {
    assert!(size_of::<Header>() == 168);
    assert!(offset_of!(Header, layout_major) == 8);
    assert!(offset_of!(Header, endian_tag) == 12);
    assert!(offset_of!(Header, instance_id) == 40);
    assert!(offset_of!(Header, total_len) == 56);
    assert!(offset_of!(Header, slots) == 64);
    assert!(offset_of!(Header, buffer_bytes) == 72);
    assert!(offset_of!(Header, control_off) == 104);
    assert!(offset_of!(Header, readers_len) == 136);
    assert!(offset_of!(Header, reader_stride) == 144);
    assert!(offset_of!(Header, pool_off) == 152);
    assert!(offset_of!(Header, creator_uid) == 160);
    assert!(offset_of!(Header, header_crc) == 164);

    assert!(size_of::<Control>() == 4 * 128);
    assert!(offset_of!(Control, state) == 0);
    assert!(offset_of!(Control, write_seq) == 128);
    assert!(offset_of!(Control, notify) == 256);
    assert!(offset_of!(Control, writer_stats) == 384);
    assert!(offset_of!(WriterStats, heartbeat_ns) == 0);
    assert!(offset_of!(WriterStats, bytes_published) == 8);
    assert!(offset_of!(StateLine, writer_pid) == 8);
    assert!(offset_of!(StateLine, readers_epoch) == 12);
    assert!(offset_of!(StateLine, writer_start) == 16);
    assert!(offset_of!(WriterBell, writer_waiting) == 4);

    assert!(size_of::<TableHeader>() == 32);
    assert!(offset_of!(TableHeader, instance_id) == 16);
    assert!(offset_of!(TableHeader, total_len) == 24);
    assert!(size_of::<TableHeader>() as u64 <= TABLE_CONTROL_OFF);
    assert!(size_of::<TableControl>() == 2 * 128);
    assert!(offset_of!(TableControl, waiters) == 0);
    assert!(offset_of!(TableControl, writer_bell) == 128);
    assert!(TABLE_CONTROL_OFF + size_of::<TableControl>() as u64 == ROWS_OFF);
    assert!(ROWS_OFF.is_multiple_of(128));

    assert!(size_of::<MetaHead>() == 8);

    assert!(size_of::<Descriptor>() == 64);
    assert!(offset_of!(Descriptor, seq) == 0);
    assert!(offset_of!(Descriptor, buf_idx) == 8);
    assert!(offset_of!(Descriptor, buf_gen) == 16);
    assert!(offset_of!(Descriptor, len) == 24);
    assert!(offset_of!(Descriptor, rows) == 32);
    assert!(offset_of!(Descriptor, ts_ns) == 40);
    assert!(offset_of!(Descriptor, user) == 48);

    assert!(size_of::<ReaderRow>() == 128);
    assert!(offset_of!(ReaderRow, cursor) == 24);
    assert!(offset_of!(ReaderRow, missed) == 40);
    assert!(offset_of!(ReaderRow, sleeping) == 48);
    assert!(offset_of!(ReaderRow, lease_gen) == 52);
    assert!(offset_of!(ReaderRow, leased_since_ns) == 56);
};

/// The numbers an arena is built from. Every offset derives from these by
/// [`Geometry::layout`], which writer and reader both run: a reader rejects a
/// header whose offsets disagree with its own computation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// D.
    pub slots: u32,
    /// M.
    pub buffers: u32,
    /// Bytes per buffer, already rounded up to [`PAGE`].
    pub buffer_bytes: u64,
    /// R.
    pub max_readers: u32,
    /// P.
    pub leases_per_reader: u32,
    /// Meta block payload capacity.
    pub meta_cap: u32,
}

/// Offsets of every region, derived from a [`Geometry`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offsets {
    /// [`Header::meta_off`].
    pub meta_off: u64,
    /// [`Header::gens_off`].
    pub gens_off: u64,
    /// [`Header::descs_off`].
    pub descs_off: u64,
    /// [`Header::readers_len`].
    pub readers_len: u64,
    /// [`Header::reader_stride`].
    pub reader_stride: u64,
    /// [`Header::pool_off`].
    pub pool_off: u64,
    /// [`Header::total_len`].
    pub total_len: u64,
}

/// Rounds `v` up to a multiple of `to` (a power of two).
pub const fn round_up(v: u64, to: u64) -> u64 {
    (v + to - 1) & !(to - 1)
}

impl Geometry {
    /// Checks the bounds that keep the layout arithmetic overflow-free.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.slots == 0 || self.slots > MAX_SLOTS {
            return Err("slots must be in 1..=1048576");
        }
        if self.max_readers == 0 || self.max_readers > MAX_READERS {
            return Err("max_readers must be in 1..=4096");
        }
        if self.buffers == 0 || self.buffers > MAX_BUFFERS {
            return Err("buffers must be in 1..=1048576");
        }
        if self.buffer_bytes == 0
            || self.buffer_bytes > MAX_BUFFER_BYTES
            || !self.buffer_bytes.is_multiple_of(PAGE)
        {
            return Err("buffer_bytes must be a non-zero multiple of 4096, at most 64 GiB");
        }
        if self.meta_cap > MAX_META_CAP {
            return Err("meta_cap must be at most 16 MiB");
        }
        if self.leases_per_reader == 0 {
            return Err("leases_per_reader must be at least 1");
        }
        Ok(())
    }

    /// Computes every region's offset. Call [`Geometry::check`] first.
    pub fn layout(&self) -> Offsets {
        let meta_off = CONTROL_OFF + size_of::<Control>() as u64;
        let gens_off = round_up(meta_off + META_PAYLOAD_OFF + self.meta_cap as u64, 128);
        let descs_off = round_up(gens_off + 8 * self.buffers as u64, 128);
        let reader_stride = round_up(size_of::<ReaderRow>() as u64 + 4 * self.buffers as u64, 128);
        let readers_len = ROWS_OFF + reader_stride * self.max_readers as u64;
        let pool_off = round_up(
            descs_off + size_of::<Descriptor>() as u64 * self.slots as u64,
            PAGE,
        );
        let total_len = pool_off + self.buffer_bytes * self.buffers as u64;
        Offsets {
            meta_off,
            gens_off,
            descs_off,
            readers_len,
            reader_stride,
            pool_off,
            total_len,
        }
    }
}

impl Header {
    /// Bytes of the header as stored.
    pub fn as_bytes(&self) -> &[u8] {
        // SAFETY: Header is repr(C) POD without padding (size 168 = sum of
        // fields, asserted above), so all its bytes are initialised.
        unsafe { std::slice::from_raw_parts(self as *const Self as *const u8, size_of::<Self>()) }
    }

    /// Parses a header from raw bytes (copied out of the file, not mapped).
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: length checked above; Header is valid for every bit pattern
        // (integers and a byte array); read_unaligned needs no alignment.
        Some(unsafe { std::ptr::read_unaligned(bytes.as_ptr() as *const Self) })
    }

    /// CRC32C over the span before `header_crc`.
    pub fn compute_crc(&self) -> u32 {
        crc32c::crc32c(&self.as_bytes()[..HEADER_CRC_SPAN])
    }

    /// The geometry recorded in the header.
    pub fn geometry(&self) -> Geometry {
        Geometry {
            slots: self.slots,
            buffers: self.buffers,
            buffer_bytes: self.buffer_bytes,
            max_readers: self.max_readers,
            leases_per_reader: self.leases_per_reader,
            meta_cap: self.meta_cap,
        }
    }

    /// The offsets recorded in the header, in [`Offsets`] form.
    pub fn offsets(&self) -> Offsets {
        Offsets {
            meta_off: self.meta_off,
            gens_off: self.gens_off,
            descs_off: self.descs_off,
            readers_len: self.readers_len,
            reader_stride: self.reader_stride,
            pool_off: self.pool_off,
            total_len: self.total_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn geo() -> Geometry {
        Geometry {
            slots: 8,
            buffers: 25,
            buffer_bytes: 1 << 20,
            max_readers: 8,
            leases_per_reader: 2,
            meta_cap: 4096,
        }
    }

    #[test]
    fn regions_are_ordered_aligned_and_disjoint() {
        let g = geo();
        g.check().unwrap();
        let o = g.layout();
        assert!(o.meta_off >= CONTROL_OFF + 512);
        assert!(o.gens_off >= o.meta_off + 64 + 4096);
        assert!(o.descs_off >= o.gens_off + 8 * 25);
        assert!(o.pool_off >= o.descs_off + 64 * 8);
        assert!(o.reader_stride >= 128 + 4 * 25);
        assert_eq!(o.readers_len, ROWS_OFF + o.reader_stride * 8);
        assert_eq!(o.pool_off % PAGE, 0);
        assert_eq!(o.total_len, o.pool_off + 25 * (1 << 20));
        for off in [o.gens_off, o.descs_off, o.reader_stride, ROWS_OFF] {
            assert_eq!(off % 128, 0);
        }
    }

    #[test]
    fn geometry_bounds_are_enforced() {
        let mut g = geo();
        g.buffer_bytes = 100;
        assert!(g.check().is_err());
        let mut g = geo();
        g.slots = 0;
        assert!(g.check().is_err());
        let mut g = geo();
        g.max_readers = MAX_READERS + 1;
        assert!(g.check().is_err());
    }
}
