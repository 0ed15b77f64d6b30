//! Mapping an arena file and finding its regions. Creation and validation live
//! here; the ring protocol lives in `writer.rs` and `reader.rs`.

use crate::error::{CreateError, OpenError};
use crate::layout::*;
use crate::os;
use crate::sync::{AtomicU32, AtomicU64, Ordering};
use memmap2::{Mmap, MmapMut, MmapOptions};
use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

enum Maps {
    /// The writer maps everything read-write.
    Whole(#[allow(dead_code)] MmapMut),
    /// A reader maps header..pool read-write (it owns its row) and the pool read-only.
    Split(#[allow(dead_code)] MmapMut, #[allow(dead_code)] Mmap),
}

/// Raw views of an arena's regions. Owns the mappings, so the pointers stay
/// valid as long as it lives.
pub(crate) struct Regions {
    head: *mut u8,
    pool: *mut u8,
    pub(crate) header: Header,
    pub(crate) geo: Geometry,
    pub(crate) off: Offsets,
    pool_len: usize,
    _maps: Maps,
}

// SAFETY: the pointers refer to MAP_SHARED memory owned by `_maps`; everything
// mutable in it is accessed through atomics, and buffer bytes are only written
// by the single writer under the pin protocol, so sharing across threads is as
// sound as sharing across processes.
unsafe impl Send for Regions {}
// SAFETY: see `Send`.
unsafe impl Sync for Regions {}

impl Regions {
    pub(crate) fn control(&self) -> &Control {
        // SAFETY: CONTROL_OFF + size_of::<Control>() <= meta_off <= pool_off, the
        // head mapping covers [0, pool_off) and is page-aligned, so the pointer
        // is in bounds and 128-aligned. Control is ZeroCopy (atomics only).
        unsafe { &*(self.head.add(CONTROL_OFF as usize) as *const Control) }
    }

    pub(crate) fn meta_head(&self) -> MetaHead {
        // SAFETY: meta_off + 8 is inside the head mapping (layout checked);
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
        // SAFETY: [meta_off+64, meta_off+64+meta_cap) lies inside the head
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
        // SAFETY: buf < M, and gens_off + 8*M <= descs_off lies inside the head
        // mapping; 128-aligned base + 8*buf is 8-aligned.
        unsafe {
            &*(self.head.add(self.off.gens_off as usize + 8 * buf as usize) as *const AtomicU64)
        }
    }

    pub(crate) fn desc(&self, seq: u64) -> &Descriptor {
        let slot = (seq % self.geo.slots as u64) as usize;
        // SAFETY: slot < D and the descriptor array [descs_off, descs_off+64*D)
        // lies inside the head mapping; 128-aligned base + 64*slot is 64-aligned.
        unsafe { &*(self.head.add(self.off.descs_off as usize + 64 * slot) as *const Descriptor) }
    }

    pub(crate) fn row(&self, i: u32) -> &ReaderRow {
        assert!(i < self.geo.max_readers);
        // SAFETY: i < R and rows occupy [readers_off, readers_off + stride*R)
        // inside the head mapping; stride is a multiple of 128.
        unsafe {
            &*(self
                .head
                .add(self.off.readers_off as usize + self.off.reader_stride as usize * i as usize)
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
        _ => OpenError::Io {
            path: path.to_path_buf(),
            source: e,
        },
    }
}

/// Opens `name`, checks ownership, size, magic, version, byte order, CRC,
/// features and that the offsets match the geometry.
pub(crate) fn open_validated(name: &str, allow_foreign: bool) -> Result<Validated, OpenError> {
    os::check_name(name).map_err(|reason| OpenError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    let path = os::arena_path(name);
    let file = File::options()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(|e| open_err(&path, name, e))?;
    let md = file.metadata().map_err(|e| open_err(&path, name, e))?;
    let me = os::euid();
    if md.uid() != me && !allow_foreign {
        return Err(OpenError::ForeignOwner {
            path,
            owner: md.uid(),
            me,
        });
    }
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

/// Maps a validated arena for a reader: head read-write, pool read-only.
pub(crate) fn map_reader(v: &Validated) -> io::Result<Regions> {
    let off = v.header.offsets();
    // SAFETY: the file is a regular tmpfs file of total_len bytes (checked);
    // other processes modify it only through atomics and the pin protocol,
    // which is what every access through `Regions` assumes.
    let mut head = unsafe {
        MmapOptions::new()
            .len(off.pool_off as usize)
            .map_mut(&v.file)?
    };
    // SAFETY: as above; this mapping is read-only.
    let pool = unsafe {
        MmapOptions::new()
            .offset(off.pool_off)
            .len((off.total_len - off.pool_off) as usize)
            .map(&v.file)?
    };
    let head_ptr = head.as_mut_ptr();
    let pool_ptr = pool.as_ptr() as *mut u8;
    Ok(Regions {
        head: head_ptr,
        pool: pool_ptr,
        header: v.header,
        geo: v.header.geometry(),
        off,
        pool_len: pool.len(),
        _maps: Maps::Split(head, pool),
    })
}

/// Maps a whole arena read-write with `MAP_POPULATE` (writer side).
pub(crate) fn map_writer(file: &File, header: Header) -> io::Result<Regions> {
    let off = header.offsets();
    // SAFETY: see `map_reader`; the writer is the only process that writes
    // non-atomic bytes (buffer contents), under the pin protocol.
    let mut map = unsafe {
        MmapOptions::new()
            .len(off.total_len as usize)
            .populate()
            .map_mut(file)?
    };
    let base = map.as_mut_ptr();
    // SAFETY: pool_off < total_len, the mapping's length.
    let pool = unsafe { base.add(off.pool_off as usize) };
    Ok(Regions {
        head: base,
        pool,
        header,
        geo: header.geometry(),
        off,
        pool_len: (off.total_len - off.pool_off) as usize,
        _maps: Maps::Whole(map),
    })
}

/// Removes a temporary file unless disarmed.
struct TmpGuard(Option<PathBuf>);
impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Builds a new arena under a temporary name, initialises every region,
/// marks it READY and renames it into place without replacing anything.
/// Returns the file (holding the writer lock) and its mapping.
pub(crate) fn create(
    name: &str,
    geo: Geometry,
    on_full: u32,
    block_timeout_ns: u64,
    meta: &[u8],
    force: bool,
) -> Result<(File, PathBuf, Regions), CreateError> {
    os::check_name(name).map_err(|reason| CreateError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    geo.check().map_err(CreateError::InvalidOptions)?;
    if meta.len() > geo.meta_cap as usize {
        return Err(CreateError::MetaTooLarge {
            len: meta.len(),
            cap: geo.meta_cap as usize,
        });
    }
    let path = os::arena_path(name);
    let io_err = |p: &Path, e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => CreateError::PermissionDenied {
            path: p.to_path_buf(),
        },
        _ => CreateError::Io {
            path: p.to_path_buf(),
            source: e,
        },
    };
    let exists_err = |path: &Path| {
        let writer_alive = File::open(path)
            .and_then(|f| os::byte_is_locked(&f, WRITER_LOCK_BYTE))
            .unwrap_or(false);
        CreateError::AlreadyExists {
            name: name.to_string(),
            path: path.to_path_buf(),
            writer_alive,
        }
    };
    if path.exists() {
        if !force {
            return Err(exists_err(&path));
        }
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
    }

    let off = geo.layout();
    let tmp = os::shm_dir().join(format!(
        "{}{name}{}{}-{:x}",
        os::FILE_PREFIX,
        os::TMP_MARKER,
        std::process::id(),
        os::random_u64()
    ));
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, e))?;
    let mut guard = TmpGuard(Some(tmp.clone()));
    if !os::try_lock_byte(&file, WRITER_LOCK_BYTE).map_err(|e| io_err(&tmp, e))? {
        return Err(io_err(
            &tmp,
            io::Error::other("fresh arena file is locked by someone else"),
        ));
    }
    file.set_len(off.total_len).map_err(|e| io_err(&tmp, e))?;
    os::fallocate(&file, off.total_len).map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            CreateError::NoSpace {
                bytes: off.total_len,
                dir: os::shm_dir(),
            }
        } else {
            io_err(&tmp, e)
        }
    })?;

    let mut header = Header {
        magic: MAGIC,
        layout_major: LAYOUT_MAJOR,
        layout_minor: LAYOUT_MINOR,
        endian_tag: ENDIAN_TAG,
        page_size: PAGE as u32,
        align: ALIGN as u32,
        features_required: 0,
        features_optional: 0,
        instance_id: os::random_u64(),
        created_unix_ns: os::realtime_ns(),
        total_len: off.total_len,
        slots: geo.slots,
        buffers: geo.buffers,
        buffer_bytes: geo.buffer_bytes,
        max_readers: geo.max_readers,
        leases_per_reader: geo.leases_per_reader,
        meta_cap: geo.meta_cap,
        on_full,
        block_timeout_ns,
        control_off: CONTROL_OFF,
        meta_off: off.meta_off,
        gens_off: off.gens_off,
        descs_off: off.descs_off,
        readers_off: off.readers_off,
        reader_stride: off.reader_stride,
        pool_off: off.pool_off,
        creator_uid: os::euid(),
        header_crc: 0,
    };
    header.header_crc = header.compute_crc();
    let regions = map_writer(&file, header).map_err(|e| io_err(&tmp, e))?;
    // The file is fresh (zero-filled by tmpfs), so every atomic already holds
    // its initial value: state INIT, write_seq 0, rows FREE, gens 0, seq 0.
    // SAFETY: the header page [0, 4096) is inside the writable mapping and no
    // other process can see the file yet (temporary, exclusive name).
    unsafe {
        std::ptr::copy_nonoverlapping(
            header.as_bytes().as_ptr(),
            regions.head,
            size_of::<Header>(),
        );
        let mh = MetaHead {
            len: meta.len() as u32,
            crc: crc32c::crc32c(meta),
        };
        std::ptr::write(regions.head.add(off.meta_off as usize) as *mut MetaHead, mh);
        std::ptr::copy_nonoverlapping(
            meta.as_ptr(),
            regions.head.add((off.meta_off + META_PAYLOAD_OFF) as usize),
            meta.len(),
        );
    }
    let ctl = regions.control();
    ctl.state.0.writer_epoch.store(1, Ordering::Relaxed);
    ctl.state
        .0
        .writer_pid
        .store(std::process::id(), Ordering::Relaxed);
    ctl.state.0.writer_start.store(
        os::process_start_time(std::process::id()),
        Ordering::Relaxed,
    );
    ctl.heartbeat_ns
        .0
        .store(os::monotonic_ns(), Ordering::Relaxed);
    // SYNC POINT: ready. Everything above happens-before a reader's Acquire
    // load of READY (map_reader → check_ready).
    ctl.state.0.state.store(state::READY, Ordering::Release);

    match os::rename_noreplace(&tmp, &path) {
        Ok(()) => {
            guard.0 = None;
            Ok((file, path, regions))
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(exists_err(&path)),
        Err(e) => Err(io_err(&path, e)),
    }
}

/// Removes the arena `name`. Readers that have it mapped keep their mapping;
/// a live writer keeps writing into the unlinked file.
pub fn remove(name: &str) -> Result<(), OpenError> {
    os::check_name(name).map_err(|reason| OpenError::InvalidName {
        name: name.to_string(),
        reason,
    })?;
    let path = os::arena_path(name);
    std::fs::remove_file(&path).map_err(|e| open_err(&path, name, e))
}
