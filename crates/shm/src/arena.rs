//! Mapping an arena file and finding its regions. Creation and validation live
//! here; the ring protocol lives in `writer.rs` and `reader.rs`.

use crate::create::new_table_file;
use crate::error::OpenError;
use crate::layout::*;
use crate::sync::{AtomicU32, AtomicU64};
use crate::{fork, os, sigbus, table};
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The mappings behind [`Regions`], kept alive (and unmapped on drop).
enum ArenaMap {
    /// The writer maps the arena file read-write.
    Writer(#[allow(dead_code)] MmapMut),
    /// Readers map it read-only, from an `O_RDONLY` descriptor.
    Reader(#[allow(dead_code)] Mmap),
}

/// Raw views of an arena's regions in both files. Owns the files and the
/// mappings, so the pointers stay valid as long as it lives. Fields drop in
/// order: the fork and SIGBUS registrations go before the mappings they
/// describe, the mappings before the files.
pub(crate) struct Regions {
    pub(crate) head: *mut u8,
    pool: *mut u8,
    pub(crate) table: *mut u8,
    pub(crate) header: Header,
    pub(crate) geo: Geometry,
    pub(crate) off: Offsets,
    pool_len: usize,
    guard: sigbus::Guarded,
    _fork: [fork::Registered; 2],
    _arena_map: ArenaMap,
    table_map: MmapMut,
    /// The arena file: read-write for the writer, `O_RDONLY` for readers.
    pub(crate) file: File,
    /// The reader table file (read-write for everyone).
    pub(crate) table_file: File,
}

// SAFETY: the pointers refer to MAP_SHARED memory owned by the maps; everything
// mutable in it is accessed through atomics, and buffer bytes are only written
// by the single writer under the pin protocol, so sharing across threads is as
// sound as sharing across processes.
unsafe impl Send for Regions {}
// SAFETY: see `Send`.
unsafe impl Sync for Regions {}

impl Regions {
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: CONTROL_OFF + size_of::<Control>() <= meta_off <= pool_off, the
        // arena mapping covers [0, total_len) and is page-aligned, so the pointer
        // is in bounds and 128-aligned. Control is ZeroCopy (atomics only).
        unsafe { &*(self.head.add(CONTROL_OFF as usize) as *const Control) }
    }

    /// The part of the control state readers write (waiters, writer doorbell).
    pub(crate) fn table_control(&self) -> &TableControl {
        // SAFETY: the table mapping is readers_len >= ROWS_OFF bytes long and
        // page-aligned; TABLE_CONTROL_OFF is 128-aligned; atomics only.
        unsafe { &*(self.table.add(TABLE_CONTROL_OFF as usize) as *const TableControl) }
    }

    /// The table's header as stored now.
    pub(crate) fn table_header(&self) -> TableHeader {
        // SAFETY: the table mapping is at least ROWS_OFF bytes long.
        unsafe { table::read_table_header(self.table) }
    }

    /// Whether a fault replaced the table mapping by zero pages (a process
    /// truncated the table file): see `sigbus.rs`.
    pub(crate) fn table_lost(&self) -> bool {
        self.guard.lost()
    }

    pub(crate) fn meta_head(&self) -> MetaHead {
        // SAFETY: meta_off + 8 is inside the arena mapping (layout checked);
        // MetaHead is plain data, valid for any bits; read_volatile because
        // another process wrote it (it is immutable after READY).
        unsafe {
            std::ptr::read_volatile(self.head.add(self.off.meta_off as usize) as *const MetaHead)
        }
    }

    /// The meta payload, if its length and CRC check out.
    pub(crate) fn meta_bytes(&self) -> Option<Vec<u8>> {
        let h = self.meta_head();
        if h.len > self.geo.meta_cap {
            return None;
        }
        let mut v = vec![0u8; h.len as usize];
        // SAFETY: [meta_off+64, meta_off+64+meta_cap) lies inside the arena
        // mapping (layout), and len <= meta_cap was checked above.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.head
                    .add((self.off.meta_off + META_PAYLOAD_OFF) as usize),
                v.as_mut_ptr(),
                v.len(),
            )
        };
        (crc32c::crc32c(&v) == h.crc).then_some(v)
    }

    pub(crate) fn gen(&self, buf: u32) -> &AtomicU64 {
        assert!(buf < self.geo.buffers);
        // SAFETY: buf < M, and gens_off + 8*M <= descs_off lies inside the arena
        // mapping; 128-aligned base + 8*buf is 8-aligned.
        unsafe {
            &*(self.head.add(self.off.gens_off as usize + 8 * buf as usize) as *const AtomicU64)
        }
    }

    pub(crate) fn desc(&self, seq: u64) -> &Descriptor {
        let slot = (seq % self.geo.slots as u64) as usize;
        // SAFETY: slot < D and the descriptor array [descs_off, descs_off+64*D)
        // lies inside the arena mapping; 128-aligned base + 64*slot is 64-aligned.
        unsafe { &*(self.head.add(self.off.descs_off as usize + 64 * slot) as *const Descriptor) }
    }

    pub(crate) fn row(&self, i: u32) -> &ReaderRow {
        assert!(i < self.geo.max_readers);
        // SAFETY: i < R and rows occupy [ROWS_OFF, ROWS_OFF + stride*R) = the
        // rest of the table mapping (readers_len); stride is a multiple of 128.
        unsafe {
            &*(self
                .table
                .add(ROWS_OFF as usize + self.off.reader_stride as usize * i as usize)
                as *const ReaderRow)
        }
    }

    pub(crate) fn pins(&self, i: u32) -> &[AtomicU32] {
        let row = self.row(i) as *const ReaderRow as *const u8;
        // SAFETY: the pin array of row i holds M u32 right after the 128-byte
        // row head and fits in the stride (layout: stride >= 128 + 4*M).
        unsafe {
            std::slice::from_raw_parts(
                row.add(size_of::<ReaderRow>()) as *const AtomicU32,
                self.geo.buffers as usize,
            )
        }
    }

    pub(crate) fn row_view(&self, i: u32) -> table::RowView<'_> {
        table::RowView {
            head: self.row(i),
            pins: self.pins(i),
        }
    }

    /// Start of buffer `buf` in the pool.
    pub(crate) fn buffer_ptr(&self, buf: u32) -> *mut u8 {
        assert!(buf < self.geo.buffers);
        let off = self.geo.buffer_bytes as usize * buf as usize;
        debug_assert!(off + self.geo.buffer_bytes as usize <= self.pool_len);
        // SAFETY: buf < M and the pool mapping is M * buffer_bytes long.
        unsafe { self.pool.add(off) }
    }

    /// Address range of the pool, for zero-copy checks.
    pub(crate) fn pool_range(&self) -> std::ops::Range<usize> {
        self.pool as usize..self.pool as usize + self.pool_len
    }

    /// Writer only: gives the table file back its length and maps it again
    /// over the same addresses (after a process truncated it), with every row
    /// FREE, then registers the fresh mapping with the SIGBUS guard. Readers
    /// attached before are detached by the caller (readers_epoch).
    pub(crate) fn rebuild_table(&mut self) -> io::Result<()> {
        let len = self.off.readers_len;
        self.table_file.set_len(0)?;
        self.table_file.set_len(len)?;
        os::fallocate(&self.table_file, len)?;
        // SAFETY: [table, table+len) is our table mapping (now possibly zero
        // pages put there by the SIGBUS guard); mapping the same file range
        // over it with MAP_FIXED keeps every pointer valid. The file is ours
        // (we hold the writer lock) and was just zeroed by the truncation.
        let p = unsafe {
            libc::mmap(
                self.table as *mut libc::c_void,
                len as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                self.table_file.as_raw_fd(),
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the table mapping is writable and at least ROWS_OFF long.
        unsafe { table::write_table_header(self.table, &table::table_header(&self.header)) };
        self.guard = sigbus::guard(self.table, len as usize);
        Ok(())
    }
}

/// Maps the arena (`writable`: read-write with `MAP_POPULATE`, else read-only)
/// and the reader table, and registers both with the fork and SIGBUS guards.
pub(crate) fn map_both(
    file: File,
    table_file: File,
    header: Header,
    writable: bool,
) -> io::Result<Regions> {
    let off = header.offsets();
    let (arena_map, head) = if writable {
        // SAFETY: the file is a regular tmpfs file of total_len bytes
        // (checked or just created); other processes modify it only through
        // atomics and the pin protocol, which is what `Regions` assumes.
        let mut m = unsafe {
            MmapOptions::new()
                .len(off.total_len as usize)
                .populate()
                .map_mut(&file)?
        };
        let p = m.as_mut_ptr();
        (ArenaMap::Writer(m), p)
    } else {
        // SAFETY: as above; this mapping is read-only.
        let m = unsafe { MmapOptions::new().len(off.total_len as usize).map(&file)? };
        let p = m.as_ptr() as *mut u8;
        (ArenaMap::Reader(m), p)
    };
    // SAFETY: as above: a tmpfs file of readers_len bytes (checked or just
    // created), shared through atomics only. A truncation by another process
    // is survived through the SIGBUS guard registered below.
    let mut table_map = unsafe {
        MmapOptions::new()
            .len(off.readers_len as usize)
            .map_mut(&table_file)?
    };
    let table = table_map.as_mut_ptr();
    let guard = sigbus::guard(table, off.readers_len as usize);
    let fork = [
        fork::register(
            file.as_raw_fd(),
            writable,
            &[fork::Mapping {
                addr: head,
                len: off.total_len as usize,
                offset: 0,
                writable,
            }],
        ),
        fork::register(
            table_file.as_raw_fd(),
            true,
            &[fork::Mapping {
                addr: table,
                len: off.readers_len as usize,
                offset: 0,
                writable: true,
            }],
        ),
    ];
    // SAFETY: pool_off < total_len, the mapping's length.
    let pool = unsafe { head.add(off.pool_off as usize) };
    Ok(Regions {
        head,
        pool,
        table,
        header,
        geo: header.geometry(),
        off,
        pool_len: (off.total_len - off.pool_off) as usize,
        guard,
        _fork: fork,
        _arena_map: arena_map,
        table_map,
        file,
        table_file,
    })
}

impl Regions {
    /// Length of the table mapping (diagnostics and tests).
    #[allow(dead_code)]
    pub(crate) fn table_len(&self) -> usize {
        self.table_map.len()
    }
}

/// How an arena is opened.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// A reader or `inspect`: the arena file `O_RDONLY`.
    Read,
    /// A writer taking over: the arena file read-write (it is mode 0400 once
    /// READY, so the owner lifts that for the open and puts it back).
    TakeOver,
}

/// An arena file opened and its header validated, not yet mapped.
pub(crate) struct Validated {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    pub(crate) header: Header,
}

fn open_err(path: &Path, name: &str, e: io::Error) -> OpenError {
    match e.kind() {
        io::ErrorKind::NotFound => OpenError::NotFound {
            name: name.to_string(),
            path: path.to_path_buf(),
        },
        io::ErrorKind::PermissionDenied => OpenError::PermissionDenied {
            path: path.to_path_buf(),
        },
        _ if e.raw_os_error() == Some(libc::ELOOP) => OpenError::UnsafeFile {
            path: path.to_path_buf(),
            why: "it is a symbolic link",
        },
        _ => OpenError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Why a file in the shm directory must not be trusted: another owner, or a
/// mode that lets others write it, or not a regular file. `None` if it is fine.
pub(crate) fn unsafe_file(md: &std::fs::Metadata) -> Option<(&'static str, u32)> {
    if !md.file_type().is_file() {
        return Some(("it is not a regular file", md.uid()));
    }
    if md.uid() != os::euid() {
        return Some(("it belongs to another user", md.uid()));
    }
    if md.permissions().mode() & 0o022 != 0 {
        return Some(("its group or others may write it", md.uid()));
    }
    None
}

fn check_owner(md: &std::fs::Metadata, path: &Path, allow_foreign: bool) -> Result<(), OpenError> {
    match unsafe_file(md) {
        None => Ok(()),
        Some(_) if allow_foreign && md.file_type().is_file() => Ok(()),
        Some((_, owner)) if owner != os::euid() => Err(OpenError::ForeignOwner {
            path: path.to_path_buf(),
            owner,
            me: os::euid(),
        }),
        Some((why, _)) => Err(OpenError::UnsafeFile {
            path: path.to_path_buf(),
            why,
        }),
    }
}

/// Opens `name`'s arena file (never following a symlink), checks ownership,
/// mode, size, magic, version, byte order, CRC, features and that the
/// offsets match the geometry.
pub(crate) fn open_validated(
    name: &str,
    allow_foreign: bool,
    access: Access,
) -> Result<Validated, OpenError> {
    os::check_name(name).map_err(|reason| OpenError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    let path = os::arena_path(name);
    let ro = || {
        File::options()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&path)
    };
    let file = match access {
        Access::Read => ro(),
        Access::TakeOver => {
            // Check before lifting the 0400: never chmod someone else's file.
            let md = ro()
                .and_then(|f| f.metadata())
                .map_err(|e| open_err(&path, name, e))?;
            check_owner(&md, &path, allow_foreign)?;
            let rw = || {
                File::options()
                    .read(true)
                    .write(true)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(&path)
            };
            match rw() {
                Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .and_then(|()| rw())
                        .inspect(|f| {
                            let _ = f.set_permissions(std::fs::Permissions::from_mode(0o400));
                        })
                }
                r => r,
            }
        }
    }
    .map_err(|e| open_err(&path, name, e))?;
    let md = file.metadata().map_err(|e| open_err(&path, name, e))?;
    check_owner(&md, &path, allow_foreign)?;
    let len = md.len();
    if len < PAGE {
        return Err(OpenError::Truncated {
            path,
            len,
            expected: PAGE,
        });
    }
    let mut page = vec![0u8; size_of::<Header>()];
    file.read_exact_at(&mut page, 0)
        .map_err(|e| open_err(&path, name, e))?;
    let header = Header::from_bytes(&page).ok_or(OpenError::Truncated {
        path: path.clone(),
        len,
        expected: PAGE,
    })?;
    validate_header(&header, &path)?;
    if len != header.total_len {
        return Err(OpenError::Truncated {
            path,
            len,
            expected: header.total_len,
        });
    }
    Ok(Validated { file, path, header })
}

/// The header checks, separate so they can be fuzzed without a file.
pub fn validate_header(h: &Header, path: &Path) -> Result<(), OpenError> {
    let corrupt = |what| OpenError::CorruptHeader {
        path: path.to_path_buf(),
        what,
    };
    if h.magic != MAGIC {
        return Err(OpenError::BadMagic {
            path: path.to_path_buf(),
        });
    }
    if h.endian_tag != ENDIAN_TAG {
        if h.endian_tag == ENDIAN_TAG.swap_bytes() {
            return Err(OpenError::ForeignEndianness {
                path: path.to_path_buf(),
            });
        }
        return Err(corrupt("endianness tag"));
    }
    if h.layout_major != LAYOUT_MAJOR {
        return Err(OpenError::UnsupportedVersion {
            path: path.to_path_buf(),
            found: h.layout_major,
            supported: LAYOUT_MAJOR,
        });
    }
    if h.compute_crc() != h.header_crc {
        return Err(corrupt("header CRC mismatch"));
    }
    let unknown = h.features_required & !FEATURES_REQUIRED_KNOWN;
    if unknown != 0 {
        return Err(OpenError::UnknownFeatures {
            path: path.to_path_buf(),
            bits: unknown,
        });
    }
    if h.page_size as u64 != PAGE || h.align as u64 != ALIGN {
        return Err(corrupt("page size or alignment"));
    }
    if h.control_off != CONTROL_OFF {
        return Err(corrupt("control offset"));
    }
    let geo = h.geometry();
    geo.check().map_err(|_| corrupt("geometry out of range"))?;
    if geo.layout() != h.offsets() {
        return Err(corrupt("region offsets disagree with the geometry"));
    }
    if h.on_full > 1 {
        return Err(corrupt("on_full policy"));
    }
    Ok(())
}

/// Opens the reader table of a validated arena (read-write, never following
/// a symlink) and checks its owner, mode and length.
fn open_table(name: &str, v: &Validated, allow_foreign: bool) -> Result<File, OpenError> {
    let path = os::table_path(name);
    let file = File::options()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(&path)
        .map_err(|e| open_err(&path, name, e))?;
    let md = file.metadata().map_err(|e| open_err(&path, name, e))?;
    check_owner(&md, &path, allow_foreign)?;
    if md.len() != v.header.readers_len {
        return Err(OpenError::Truncated {
            path,
            len: md.len(),
            expected: v.header.readers_len,
        });
    }
    Ok(file)
}

/// Maps a validated arena for a reader (or `inspect`): the arena file
/// read-only, the reader table read-write, whose header must name this
/// arena instance.
pub(crate) fn map_reader(
    name: &str,
    v: Validated,
    allow_foreign: bool,
) -> Result<Regions, OpenError> {
    let table_file = open_table(name, &v, allow_foreign)?;
    let tpath = os::table_path(name);
    let header = v.header;
    let regions = map_both(v.file, table_file, header, false).map_err(|e| OpenError::Io {
        path: v.path.clone(),
        source: e,
    })?;
    let th = regions.table_header();
    if th != table::table_header(&header) {
        return Err(OpenError::StaleTable { path: tpath });
    }
    Ok(regions)
}

/// Maps a validated arena whose writer lock we hold, for a writer taking
/// over. A missing, short or foreign-instance reader table is rebuilt (its
/// readers, if any, are detached).
pub(crate) fn map_takeover(name: &str, v: Validated) -> Result<(Regions, bool), OpenError> {
    let header = v.header;
    let path = v.path.clone();
    let io = |p: &Path, e| OpenError::Io {
        path: p.to_path_buf(),
        source: e,
    };
    match open_table(name, &v, false) {
        Ok(t) => {
            let mut r = map_both(v.file, t, header, true).map_err(|e| io(&path, e))?;
            let rebuilt = r.table_header() != table::table_header(&header);
            if rebuilt {
                r.rebuild_table().map_err(|e| io(&path, e))?;
            }
            Ok((r, rebuilt))
        }
        Err(OpenError::NotFound { .. } | OpenError::Truncated { .. }) => {
            let tpath = os::table_path(name);
            let (t, tmp) = new_table_file(name, &header).map_err(|e| io(&tpath, e))?;
            let r = map_both(v.file, t, header, true).map_err(|e| io(&path, e))?;
            // SAFETY: fresh table mapping, at least ROWS_OFF long, not yet visible.
            unsafe { table::write_table_header(r.table, &table::table_header(&header)) };
            std::fs::rename(&tmp, &tpath).map_err(|e| io(&tpath, e))?;
            Ok((r, true))
        }
        Err(e) => Err(e),
    }
}

/// Removes the arena `name` (both its files). Readers that have it mapped
/// keep their mapping; a live writer keeps writing into the unlinked file.
pub fn remove(name: &str) -> Result<(), OpenError> {
    os::check_name(name).map_err(|reason| OpenError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    let path = os::arena_path(name);
    let tpath = os::table_path(name);
    let main = std::fs::remove_file(&path).map_err(|e| open_err(&path, name, e));
    let table = std::fs::remove_file(&tpath);
    match (main, table) {
        (Err(OpenError::NotFound { .. }), Ok(())) => Ok(()), // a leftover table alone
        (r, _) => r,
    }
}
