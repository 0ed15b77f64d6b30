//! What a child process does with the arenas it inherited across `fork()`.
//!
//! Liveness is an OFD lock, which belongs to an *open file description*. A
//! forked child shares the parent's descriptions, through its copies of the
//! fds **and through its copies of the mappings** (a `MAP_SHARED` mapping
//! holds a reference to the description it was made from). The kernel drops
//! an OFD lock only when the last reference goes, so a child that merely
//! lives on would keep a killed writer looking alive and a dead reader's row
//! taken. Unlocking in the child is no fix: it would release the parent's lock.
//!
//! So every handle registers its fd and mappings here, and a `pthread_atfork`
//! child handler gives the child descriptions of its own: it reopens each file
//! through `/proc/self/fd/N` (a new description of the same inode, holding no
//! locks), maps it again over the inherited ranges with `MAP_FIXED` (same
//! addresses, same shared pages: batches the parent handed out stay readable
//! in the child) and `dup3`s it over the inherited fd number. The parent's
//! descriptions are then referenced by the parent alone.
//!
//! The handler uses only syscalls on a lock-free table of atomics (no
//! allocation, no locks), as a child of a multi-threaded parent must.

use crate::sync::{AtomicU32, Ordering};
use std::sync::atomic::{AtomicI32, AtomicUsize};

const SLOTS: usize = 1024;
const MAPS: usize = 2;
const EMPTY: u32 = 0;
const FILLING: u32 = 1;
const LIVE: u32 = 2;

struct Map {
    addr: AtomicUsize,
    len: AtomicUsize,
    offset: AtomicUsize,
    writable: AtomicU32,
}

struct Slot {
    state: AtomicU32,
    fd: AtomicI32,
    writable: AtomicU32,
    maps: [Map; MAPS],
}

#[allow(clippy::declare_interior_mutable_const)]
const MAP: Map = Map {
    addr: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    offset: AtomicUsize::new(0),
    writable: AtomicU32::new(0),
};
#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    state: AtomicU32::new(EMPTY),
    fd: AtomicI32::new(-1),
    writable: AtomicU32::new(0),
    maps: [MAP; MAPS],
};
static TABLE: [Slot; SLOTS] = [SLOT; SLOTS];

/// One mapping of a registered file.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Mapping {
    pub(crate) addr: *mut u8,
    pub(crate) len: usize,
    pub(crate) offset: u64,
    pub(crate) writable: bool,
}

/// A registered file; dropping it unregisters (do that before unmapping or
/// closing).
pub(crate) struct Registered(Option<usize>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(i) = self.0 {
            // SYNC POINT: fork-slot-reuse. Pairs with the Acquire CAS in `register`.
            TABLE[i].state.store(EMPTY, Ordering::Release);
        }
    }
}

/// Registers `fd` (opened read-write if `writable`) and its mappings, so a
/// forked child re-homes them. Past 1024 files per process, files are not
/// registered (a child then keeps them, as before this fix).
pub(crate) fn register(fd: i32, writable: bool, maps: &[Mapping]) -> Registered {
    debug_assert!(maps.len() <= MAPS);
    crate::sync::fork_generation(); // installs the atfork hook
    let slot = TABLE.iter().position(|s| {
        // SYNC POINT: fork-slot-reuse. Pairs with the Release store of EMPTY
        // in `Registered::drop`: the previous owner is done with the slot.
        s.state
            .compare_exchange(EMPTY, FILLING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        let s = &TABLE[i];
        s.fd.store(fd, Ordering::Relaxed);
        s.writable.store(writable as u32, Ordering::Relaxed);
        for (k, m) in s.maps.iter().enumerate() {
            let (addr, len, off, w) = maps.get(k).map_or((0, 0, 0, false), |m| {
                (m.addr as usize, m.len, m.offset as usize, m.writable)
            });
            m.addr.store(addr, Ordering::Relaxed);
            m.len.store(len, Ordering::Relaxed);
            m.offset.store(off, Ordering::Relaxed);
            m.writable.store(w as u32, Ordering::Relaxed);
        }
        // SYNC POINT: fork-slot. Pairs with the Acquire load in
        // `rehome_in_child` (same thread of the child, or a fork after this).
        s.state.store(LIVE, Ordering::Release);
    }
    Registered(slot)
}

/// `/proc/self/fd/<fd>` as a C string in `buf`, without allocating.
fn proc_fd_path(fd: i32, buf: &mut [u8; 40]) {
    const PREFIX: &[u8] = b"/proc/self/fd/";
    buf[..PREFIX.len()].copy_from_slice(PREFIX);
    let mut digits = [0u8; 12];
    let mut n = fd.unsigned_abs();
    let mut k = 0;
    loop {
        digits[k] = b'0' + (n % 10) as u8;
        k += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for j in 0..k {
        buf[PREFIX.len() + j] = digits[k - 1 - j];
    }
    buf[PREFIX.len() + k] = 0;
}

/// The atfork child handler: gives every registered file a description of
/// the child's own (see the module docs).
pub(crate) fn rehome_in_child() {
    for s in TABLE.iter() {
        // SYNC POINT: fork-slot. Pairs with the Release store in `register`.
        if s.state.load(Ordering::Acquire) != LIVE {
            continue;
        }
        let fd = s.fd.load(Ordering::Relaxed);
        let mut path = [0u8; 40];
        proc_fd_path(fd, &mut path);
        let flags = libc::O_CLOEXEC
            | if s.writable.load(Ordering::Relaxed) != 0 {
                libc::O_RDWR
            } else {
                libc::O_RDONLY
            };
        // SAFETY: `path` is NUL-terminated; open is async-signal-safe.
        let mut nfd = unsafe { libc::open(path.as_ptr() as *const libc::c_char, flags) };
        let mut writable = flags & libc::O_RDWR != 0;
        if nfd < 0 && writable {
            // A writer's arena file is mode 0400 once READY: the child only
            // needs to read it (its inherited writer handle refuses to write).
            // SAFETY: as above.
            nfd = unsafe {
                libc::open(
                    path.as_ptr() as *const libc::c_char,
                    libc::O_RDONLY | libc::O_CLOEXEC,
                )
            };
            writable = false;
        }
        for m in &s.maps {
            let (addr, len) = (
                m.addr.load(Ordering::Relaxed),
                m.len.load(Ordering::Relaxed),
            );
            if len == 0 {
                continue;
            }
            let prot = if writable && m.writable.load(Ordering::Relaxed) != 0 {
                libc::PROT_READ | libc::PROT_WRITE
            } else {
                libc::PROT_READ
            };
            // SAFETY: [addr, addr+len) is a mapping of this file that the
            // registration keeps alive; mapping the same file range over it
            // keeps every pointer into it valid and shows the same pages. If
            // the file cannot be reopened, zero pages replace the mapping:
            // still mapped, no longer referencing the parent's description.
            unsafe {
                if nfd >= 0 {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        prot,
                        libc::MAP_SHARED | libc::MAP_FIXED,
                        nfd,
                        m.offset.load(Ordering::Relaxed) as libc::off_t,
                    );
                } else {
                    libc::mmap(
                        addr as *mut libc::c_void,
                        len,
                        libc::PROT_READ,
                        libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                        -1,
                        0,
                    );
                }
            }
        }
        // SAFETY: plain fd syscalls on fds this child owns. dup3 atomically
        // points the inherited fd number at the new description (or at
        // /dev/null), so the Rust `File` that owns the number stays valid.
        unsafe {
            if nfd < 0 {
                nfd = libc::open(c"/dev/null".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            }
            if nfd >= 0 {
                libc::dup3(nfd, fd, libc::O_CLOEXEC);
                libc::close(nfd);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_paths_are_built_without_allocation() {
        let mut b = [0u8; 40];
        proc_fd_path(1234, &mut b);
        assert_eq!(&b[..19], b"/proc/self/fd/1234\0");
        proc_fd_path(0, &mut b);
        assert_eq!(&b[..16], b"/proc/self/fd/0\0");
    }
}
