//! Thin wrappers over the Linux calls the arena needs: names and paths, OFD
//! locks, `posix_fallocate`, `renameat2(RENAME_NOREPLACE)`, clocks.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Prefix of every arena file, so leftovers can be listed and told apart.
pub const FILE_PREFIX: &str = "ringfeed.";
/// Marker inside the name of an arena that is still being built.
pub const TMP_MARKER: &str = ".tmp-";

/// Directory that holds arenas: `$RINGFEED_SHM_DIR`, else `/dev/shm`.
pub fn shm_dir() -> PathBuf {
    std::env::var_os("RINGFEED_SHM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/dev/shm"))
}

/// Why a name was refused.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 200 {
        return Err("must be 1 to 200 characters long");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return Err("must not start with '.' or '-'");
    }
    if name.contains(TMP_MARKER) {
        return Err("must not contain '.tmp-' (reserved for arenas being built)");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        return Err("may only contain ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Path of the arena called `name` (the name must have passed [`check_name`]).
pub fn arena_path(name: &str) -> PathBuf {
    shm_dir().join(format!("{FILE_PREFIX}{name}"))
}

/// Suffix of an arena's reader table file. `@` is not allowed in names, so
/// no arena name collides with a table and [`list_arenas`] skips tables.
pub const TABLE_SUFFIX: &str = "@readers";

/// Path of the reader table of the arena called `name`.
pub fn table_path(name: &str) -> PathBuf {
    shm_dir().join(format!("{FILE_PREFIX}{name}{TABLE_SUFFIX}"))
}

/// Whether a live process holds the writer lock of the arena file at `path`
/// (false if it cannot be opened).
pub fn writer_alive_at(path: &Path) -> bool {
    File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .and_then(|f| writer_lock_held(&f))
        .unwrap_or(false)
}

/// Names of all arenas in [`shm_dir`] (finished ones, not temporaries),
/// including the names of leftover reader tables whose arena file is gone
/// (`inspect` then fails with `NotFound` and `remove` deletes the table).
pub fn list_arenas() -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(shm_dir())? {
        let entry = entry?;
        let file_name = entry.file_name();
        let Some(s) = file_name.to_str() else {
            continue;
        };
        let Some(name) = s.strip_prefix(FILE_PREFIX) else {
            continue;
        };
        let (name, is_table) = match name.strip_suffix(TABLE_SUFFIX) {
            Some(n) => (n, true),
            None => (name, false),
        };
        if name.contains(TMP_MARKER) || check_name(name).is_err() {
            continue;
        }
        if !is_table || std::fs::symlink_metadata(arena_path(name)).is_err() {
            names.push(name.to_string());
        }
    }
    names.sort();
    names.dedup();
    Ok(names)
}

fn cpath(p: &Path) -> io::Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))
}

/// Reserves `len` bytes of tmpfs now, so a full `/dev/shm` fails here with
/// ENOSPC instead of a SIGBUS on first touch.
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    // SAFETY: plain syscall on an owned, open fd.
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len as libc::off_t) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// `rename(from, to)` that fails with `AlreadyExists` instead of replacing `to`.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (f, t) = (cpath(from)?, cpath(to)?);
    // SAFETY: both are valid NUL-terminated paths that outlive the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

fn ofd_lock(
    file: &File,
    cmd: libc::c_int,
    kind: libc::c_short,
    byte: u64,
) -> io::Result<libc::flock> {
    // SAFETY: flock is a plain C struct; all-zero is a valid value.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    fl.l_pid = 0; // required for OFD locks
                  // SAFETY: valid fd and a valid, exclusively borrowed flock for the call.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), cmd, &mut fl as *mut libc::flock) };
    if rc == 0 {
        Ok(fl)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Tries to take the OFD write lock on one byte. `Ok(false)` when another open
/// file description holds it. OFD locks belong to the open file description,
/// are released by the kernel when the process dies, and, unlike classic
/// `fcntl` locks, are not dropped when some other fd of the file is closed.
pub fn try_lock_byte(file: &File, byte: u64) -> io::Result<bool> {
    match ofd_lock(
        file,
        libc::F_OFD_SETLK,
        libc::F_WRLCK as libc::c_short,
        byte,
    ) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Releases a lock taken with [`try_lock_byte`].
pub fn unlock_byte(file: &File, byte: u64) -> io::Result<()> {
    ofd_lock(
        file,
        libc::F_OFD_SETLK,
        libc::F_UNLCK as libc::c_short,
        byte,
    )
    .map(|_| ())
}

/// Whether some *other* open file description holds a lock on `byte`.
#[cfg(test)]
pub fn byte_is_locked(file: &File, byte: u64) -> io::Result<bool> {
    let fl = ofd_lock(
        file,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
        byte,
    )?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Whether another description holds the *write* lock on the writer byte.
/// Only a read-write descriptor can take it, so a reader (whose arena
/// descriptor is `O_RDONLY`) taking a read lock there cannot fake a writer.
pub fn writer_lock_held(file: &File) -> io::Result<bool> {
    let fl = ofd_lock(
        file,
        libc::F_OFD_GETLK,
        libc::F_WRLCK as libc::c_short,
        crate::layout::WRITER_LOCK_BYTE,
    )?;
    Ok(fl.l_type == libc::F_WRLCK as libc::c_short)
}

/// Whether process `pid` is known to be a *different* process from the one
/// that had `start_time`: it exists with another start time (pid reused).
/// Absence proves nothing (another pid namespace), so it answers false then.
pub fn pid_reused(pid: u32, start_time: u64) -> bool {
    if pid == 0 || start_time == 0 {
        return false;
    }
    let now = process_start_time(pid);
    now != 0 && now != start_time
}

/// ns on `CLOCK_MONOTONIC` (vDSO, no syscall).
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// ns since the Unix epoch.
pub fn realtime_ns() -> u64 {
    clock_ns(libc::CLOCK_REALTIME)
}

fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and a valid out-pointer.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    (ts.tv_sec as u64)
        .wrapping_mul(1_000_000_000)
        .wrapping_add(ts.tv_nsec as u64)
}

/// 64 random bits from the kernel.
pub fn random_u64() -> u64 {
    let mut v = 0u64;
    // SAFETY: writes at most 8 bytes into `v`.
    let n = unsafe { libc::getrandom(&mut v as *mut u64 as *mut libc::c_void, 8, 0) };
    if n != 8 {
        // Entropy is a nicety here (an instance tag), not security.
        v = realtime_ns() ^ ((std::process::id() as u64) << 32);
    }
    v
}

/// Effective uid of this process.
pub fn euid() -> u32 {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Start time of process `pid` in clock ticks since boot (field 22 of
/// `/proc/PID/stat`); 0 when unknown. Diagnostics only: pid reuse is told
/// apart by it, liveness never is.
pub fn process_start_time(pid: u32) -> u64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0;
    };
    // The command name (field 2) may contain spaces; fields resume after ')'.
    let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return 0;
    };
    rest.split_whitespace()
        .nth(19)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Asks glibc to serve every allocation of `threshold` bytes or more with its
/// own `mmap`, returned to the kernel when freed, and to stop raising that
/// threshold (by default it rises after each large free, up to 32 MiB, after
/// which such buffers stay in per-thread heaps). For long-lived servers that
/// build large temporary buffers on many threads, such as the daemon's query
/// results. Returns false where unsupported (not glibc) or refused.
pub fn mmap_large_allocations(threshold: usize) -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let t = libc::c_int::try_from(threshold).unwrap_or(libc::c_int::MAX);
        // SAFETY: mallopt only sets an allocator parameter; it takes no pointers
        // and glibc serialises it against concurrent allocations.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, t) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        let _ = threshold;
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(check_name("bars.btcusdt-1m_v2").is_ok());
        for bad in [
            "",
            ".hidden",
            "-x",
            "a/b",
            "a b",
            "x.tmp-1",
            "é",
            &"x".repeat(201),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} should be refused");
        }
    }

    #[test]
    fn ofd_locks_conflict_between_descriptions_and_release_on_close() {
        let dir = std::env::temp_dir().join(format!("rf-lock-{}", std::process::id()));
        std::fs::write(&dir, b"x").unwrap();
        let a = File::options().read(true).write(true).open(&dir).unwrap();
        let b = File::options().read(true).write(true).open(&dir).unwrap();
        assert!(try_lock_byte(&a, 3).unwrap());
        assert!(!try_lock_byte(&b, 3).unwrap());
        assert!(byte_is_locked(&b, 3).unwrap());
        assert!(try_lock_byte(&b, 4).unwrap());
        drop(a);
        assert!(!byte_is_locked(&b, 3).unwrap());
        assert!(try_lock_byte(&b, 3).unwrap());
        std::fs::remove_file(&dir).unwrap();
    }

    #[test]
    fn start_time_of_self_is_known() {
        assert!(process_start_time(std::process::id()) > 0);
    }
}
