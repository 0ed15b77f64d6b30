//! Creating an arena: both files built under temporary names, initialised,
//! marked READY, made read-only and renamed into place without replacing
//! anything a live writer (or another user) owns.

use crate::arena::{map_both, unsafe_file, Regions};
use crate::error::CreateError;
use crate::layout::*;
use crate::sync::Ordering;
use crate::{os, table};
use std::fs::File;
use std::io;
use std::mem::size_of;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Removes a temporary file unless disarmed.
struct TmpGuard(Option<PathBuf>);
impl Drop for TmpGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn tmp_path(name: &str, what: &str) -> PathBuf {
    os::shm_dir().join(format!(
        "{}{name}{}{what}{}-{:x}",
        os::FILE_PREFIX,
        os::TMP_MARKER,
        std::process::id(),
        os::random_u64()
    ))
}

/// A zero-filled reader table file under a temporary name (mode 0600).
pub(crate) fn new_table_file(name: &str, header: &Header) -> io::Result<(File, PathBuf)> {
    let tmp = tmp_path(name, "t");
    let file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)?;
    let mut guard = TmpGuard(Some(tmp.clone()));
    file.set_len(header.readers_len)?;
    os::fallocate(&file, header.readers_len)?;
    guard.0 = None; // the caller's own guard takes over
    Ok((file, tmp))
}

/// Builds a new arena under temporary names, initialises every region,
/// marks it READY, makes the arena file read-only (0400) and renames it into
/// place without replacing anything, then the reader table beside it.
/// Returns the mapping (holding the writer lock).
pub(crate) fn create(
    name: &str,
    geo: Geometry,
    on_full: u32,
    block_timeout_ns: u64,
    meta: &[u8],
    force: bool,
) -> Result<(PathBuf, Regions), CreateError> {
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
    let tpath = os::table_path(name);
    let io_err = |p: &Path, e: io::Error| match e.kind() {
        io::ErrorKind::PermissionDenied => CreateError::PermissionDenied {
            path: p.to_path_buf(),
        },
        _ => CreateError::Io {
            path: p.to_path_buf(),
            source: e,
        },
    };
    let exists_err = |path: &Path| CreateError::AlreadyExists {
        name: name.to_string(),
        path: path.to_path_buf(),
        writer_alive: os::writer_alive_at(path),
    };
    // Anything already at either name must be ours; a live writer's arena is
    // never replaced, not even with `force` (two daemons with one prefix).
    for p in [&path, &tpath] {
        if let Ok(md) = std::fs::symlink_metadata(p) {
            if let Some((why, owner)) = unsafe_file(&md) {
                return Err(CreateError::UnsafeFile {
                    path: p.to_path_buf(),
                    why,
                    owner,
                });
            }
        }
    }
    if std::fs::symlink_metadata(&path).is_ok() {
        let e = exists_err(&path);
        if !force || os::writer_alive_at(&path) {
            return Err(e);
        }
        std::fs::remove_file(&path).map_err(|e| io_err(&path, e))?;
    }

    let off = geo.layout();
    let tmp = tmp_path(name, "a");
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
    let no_space = |e: io::Error, bytes: u64, p: &Path| {
        if e.raw_os_error() == Some(libc::ENOSPC) {
            CreateError::NoSpace {
                bytes,
                dir: os::shm_dir(),
            }
        } else {
            io_err(p, e)
        }
    };
    file.set_len(off.total_len).map_err(|e| io_err(&tmp, e))?;
    os::fallocate(&file, off.total_len).map_err(|e| no_space(e, off.total_len, &tmp))?;

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
        readers_len: off.readers_len,
        reader_stride: off.reader_stride,
        pool_off: off.pool_off,
        creator_uid: os::euid(),
        header_crc: 0,
    };
    header.header_crc = header.compute_crc();
    let (table_file, ttmp) =
        new_table_file(name, &header).map_err(|e| no_space(e, off.readers_len, &tpath))?;
    let mut tguard = TmpGuard(Some(ttmp.clone()));
    let regions = map_both(file, table_file, header, true).map_err(|e| io_err(&tmp, e))?;
    // The files are fresh (zero-filled by tmpfs), so every atomic already
    // holds its initial value: state INIT, write_seq 0, rows FREE, gens 0, seq 0.
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
        table::write_table_header(regions.table, &table::table_header(&header));
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
    ctl.writer_stats
        .0
        .heartbeat_ns
        .store(os::monotonic_ns(), Ordering::Relaxed);
    // SYNC POINT: ready. Everything above happens-before a reader's Acquire
    // load of READY (RingReader::open_with).
    ctl.state.0.state.store(state::READY, Ordering::Release);
    // Only the writer writes this file: an O_RDWR open by anyone else (not
    // root) now fails, so a buggy client cannot truncate or scribble on it.
    regions
        .file
        .set_permissions(std::fs::Permissions::from_mode(0o400))
        .map_err(|e| io_err(&tmp, e))?;

    match os::rename_noreplace(&tmp, &path) {
        Ok(()) => guard.0 = None,
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Err(exists_err(&path)),
        Err(e) => return Err(io_err(&path, e)),
    }
    // The arena name is ours now; anything at the table's name is a leftover
    // of ours (checked above). Until this rename, readers find a missing or
    // stale table and get NotFound / StaleTable (both say: retry).
    if let Err(e) = std::fs::rename(&ttmp, &tpath) {
        let _ = std::fs::remove_file(&path);
        return Err(io_err(&tpath, e));
    }
    tguard.0 = None;
    Ok((path, regions))
}
