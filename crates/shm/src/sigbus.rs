//! The SIGBUS guard for reader tables (the technique of libwayland-server's
//! `wl_shm`).
//!
//! Readers open the reader table read-write, so a buggy one can `ftruncate`
//! it; touching a page past the new end of file then raises SIGBUS, which
//! would kill the writer (and every other reader). Every reader table mapping
//! is registered here. A process-wide `SIGBUS` handler checks whether the
//! faulting address lies in a registered mapping: if so, it maps anonymous
//! zero pages over the whole mapping with `MAP_FIXED` (the faulting access is
//! retried and sees zeros: every row FREE, nothing pinned) and sets the
//! mapping's `lost` flag, which the owner polls. Faults elsewhere go to the
//! handler that was installed before (or to the default action, which
//! re-raises the fault and dumps core as if we were not there).
//!
//! Everything the handler touches is a lock-free table of atomics and one
//! `mmap` call, so it is async-signal-safe.

use crate::sync::{AtomicU32, Ordering};
use std::cell::UnsafeCell;
use std::mem::MaybeUninit;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Once};

/// Reader tables one process may have mapped at once. Mappings past this are
/// not guarded (a truncation by another process would then be fatal).
const SLOTS: usize = 1024;

const EMPTY: u32 = 0;
const FILLING: u32 = 1;
const LIVE: u32 = 2;

struct Slot {
    state: AtomicU32,
    start: AtomicUsize,
    len: AtomicUsize,
    /// Address of the owner's `lost` flag (an `AtomicU32` inside an `Arc`
    /// the registration keeps alive).
    lost: AtomicUsize,
}

#[allow(clippy::declare_interior_mutable_const)]
const SLOT: Slot = Slot {
    state: AtomicU32::new(EMPTY),
    start: AtomicUsize::new(0),
    len: AtomicUsize::new(0),
    lost: AtomicUsize::new(0),
};
static TABLE: [Slot; SLOTS] = [SLOT; SLOTS];

/// The action that was installed before ours, to chain to.
struct Previous(UnsafeCell<MaybeUninit<libc::sigaction>>);
// SAFETY: written once, in `install` (under `INSTALL`), by the same
// `sigaction` call that installs the handler reading it; read-only afterwards.
unsafe impl Sync for Previous {}
static PREVIOUS: Previous = Previous(UnsafeCell::new(MaybeUninit::uninit()));
static INSTALL: Once = Once::new();

/// A registered mapping. Dropping it unregisters the range (do that before
/// unmapping it).
pub(crate) struct Guarded {
    slot: Option<usize>,
    lost: Arc<AtomicU32>,
}

impl Guarded {
    /// Whether a fault replaced the mapping by zero pages: the file was
    /// truncated under us and the mapping no longer shows it.
    pub(crate) fn lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed) != 0
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        if let Some(i) = self.slot {
            // SYNC POINT: sigbus-slot-reuse. Pairs with the Acquire CAS in `guard`.
            TABLE[i].state.store(EMPTY, Ordering::Release);
        }
    }
}

/// Registers `[start, start + len)` (a shared file mapping) with the guard.
pub(crate) fn guard(start: *mut u8, len: usize) -> Guarded {
    install();
    let lost = Arc::new(AtomicU32::new(0));
    let slot = TABLE.iter().position(|s| {
        // SYNC POINT: sigbus-slot-reuse. Pairs with the Release store of EMPTY
        // in `Guarded::drop`: the previous owner is done with the slot.
        s.state
            .compare_exchange(EMPTY, FILLING, Ordering::Acquire, Ordering::Relaxed)
            .is_ok()
    });
    if let Some(i) = slot {
        let s = &TABLE[i];
        s.start.store(start as usize, Ordering::Relaxed);
        s.len.store(len, Ordering::Relaxed);
        s.lost.store(Arc::as_ptr(&lost) as usize, Ordering::Relaxed);
        // SYNC POINT: sigbus-slot. Pairs with the handler's Acquire load of
        // `state`: it sees the range and flag address filled in.
        s.state.store(LIVE, Ordering::Release);
    }
    Guarded { slot, lost }
}

fn install() {
    INSTALL.call_once(|| {
        // SAFETY: sigaction is a plain C struct; all-zero is valid, then we set
        // the fields we use. PREVIOUS is written once, here, before the
        // handler can run (it is installed by the same call), and only read
        // afterwards.
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_sigbus as *const () as usize;
            sa.sa_flags = libc::SA_SIGINFO | libc::SA_NODEFER | libc::SA_ONSTACK;
            libc::sigemptyset(&mut sa.sa_mask);
            libc::sigaction(libc::SIGBUS, &sa, (*PREVIOUS.0.get()).as_mut_ptr());
        }
    });
}

extern "C" fn on_sigbus(sig: libc::c_int, info: *mut libc::siginfo_t, ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo for SA_SIGINFO handlers.
    let addr = unsafe { (*info).si_addr() } as usize;
    for s in TABLE.iter() {
        // SYNC POINT: sigbus-slot. Pairs with the Release store in `guard`.
        if s.state.load(Ordering::Acquire) != LIVE {
            continue;
        }
        let start = s.start.load(Ordering::Relaxed);
        let len = s.len.load(Ordering::Relaxed);
        if addr < start || addr >= start + len {
            continue;
        }
        // SAFETY: [start, start+len) is a mapping we own (registered until
        // unmapped); replacing it by private zero pages keeps it mapped, so
        // every pointer into it stays valid, and the faulting access is
        // retried on the new pages. mmap is a raw syscall, safe in a handler.
        let p = unsafe {
            libc::mmap(
                start as *mut libc::c_void,
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            break; // cannot repair: fall through to the default action
        }
        let lost = s.lost.load(Ordering::Relaxed) as *const AtomicU32;
        // SAFETY: the flag lives in an Arc held by the `Guarded`, which
        // empties the slot before it is dropped.
        unsafe { (*lost).store(1, Ordering::Relaxed) };
        return;
    }
    // Not ours: chain to whoever was there before.
    // SAFETY: PREVIOUS was initialised by `install` before this handler was
    // installed. Calling the previous handler with our arguments is what it
    // would have received; SIG_DFL/SIG_IGN are restored so that returning
    // re-executes the fault under the default action.
    unsafe {
        let prev = (*PREVIOUS.0.get()).assume_init_ref();
        let h = prev.sa_sigaction;
        if h == libc::SIG_DFL || h == libc::SIG_IGN {
            libc::sigaction(libc::SIGBUS, prev, std::ptr::null_mut());
        } else if prev.sa_flags & libc::SA_SIGINFO != 0 {
            let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                std::mem::transmute(h);
            f(sig, info, ctx);
        } else {
            let f: extern "C" fn(libc::c_int) = std::mem::transmute(h);
            f(sig);
        }
    }
}
