//! A futex wait an event loop can poll: an io_uring `FUTEX_WAIT` (Linux 6.7+) on the
//! ring's `notify` word, whose completion makes the io_uring's file descriptor readable.
//!
//! Why: an asyncio (or any epoll-based) reader that waits on a thread of its own pays
//! two wake-ups per batch — the writer's futex wake of that thread, then that thread's
//! wake of the event loop — where a blocking reader pays one. Registering the io_uring's
//! fd with the loop makes the writer's existing `FUTEX_WAKE` wake the loop directly: the
//! writer and the wake protocol are unchanged (a sleeper is counted in `waiters` exactly
//! as a blocked reader is, see [`crate::RingReader::arm`]).
//!
//! Where io_uring is missing, disabled (`kernel.io_uring_disabled`, seccomp) or too old
//! for `FUTEX_WAIT`, [`FutexFd::new`] fails with the OS error and callers fall back to a
//! waiting thread.

use crate::sync::AtomicU32;
use std::io;
use std::os::fd::{AsRawFd, RawFd};

/// `FUTEX2_SIZE_U32`, without `FUTEX2_PRIVATE`: the word is shared between processes.
const FUTEX2_SIZE_U32: u32 = 0x02;
/// `FUTEX_BITSET_MATCH_ANY`: woken by a plain `FUTEX_WAKE`, as the writer sends it.
const MATCH_ANY: u64 = 0xffff_ffff;

/// One io_uring with at most one futex wait (and its linked timeout) in flight.
pub(crate) struct FutexFd {
    ring: io_uring::IoUring,
    /// Submitted entries whose completions are not yet reaped (a wait and its timeout:
    /// both complete, one with the result, the other cancelled).
    in_flight: u32,
    /// The linked timeout's duration (read by the kernel while the entry is submitted).
    slice: io_uring::types::Timespec,
}

impl FutexFd {
    /// A new io_uring that supports `FUTEX_WAIT`; the OS error otherwise
    /// (`Unsupported` for a kernel without the opcode).
    ///
    /// A wait ends after `slice` at the latest (the fd turns readable then too), so
    /// that an event loop reads, and so checks the writer's liveness, that often
    /// without a timer of its own.
    pub(crate) fn new(slice: std::time::Duration) -> io::Result<Self> {
        let ring = io_uring::IoUring::new(2)?;
        let mut probe = io_uring::Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(io_uring::opcode::FutexWait::CODE) {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "this kernel's io_uring has no FUTEX_WAIT (Linux 6.7 or later has it)",
            ));
        }
        Ok(FutexFd {
            ring,
            in_flight: 0,
            slice: io_uring::types::Timespec::from(slice),
        })
    }

    /// The fd that turns readable when the wait completes.
    pub(crate) fn fd(&self) -> RawFd {
        self.ring.as_raw_fd()
    }

    /// Reaps finished entries (so the fd is quiet until the next completion).
    pub(crate) fn reap(&mut self) {
        let done = self.ring.completion().count() as u32;
        self.in_flight = self.in_flight.saturating_sub(done);
    }

    /// Ensures a wait on `word` is in flight: one that completes when `word` is woken,
    /// at once if it no longer holds `expected`, or after the slice. A wait already in
    /// flight is kept (it completes on the next wake, which is what the caller wants).
    pub(crate) fn arm(&mut self, word: &AtomicU32, expected: u32) -> io::Result<()> {
        if self.in_flight > 0 {
            return Ok(());
        }
        let wait = io_uring::opcode::FutexWait::new(
            word.as_ptr().cast_const(),
            u64::from(expected),
            MATCH_ANY,
            FUTEX2_SIZE_U32,
        )
        .build()
        .flags(io_uring::squeue::Flags::IO_LINK);
        let timeout = io_uring::opcode::LinkTimeout::new(&self.slice).build();
        // SAFETY: neither entry names memory the kernel uses after `submit()` returns:
        // the futex wait reads `word` once while the submission is processed (futex waits
        // are issued inline) and keys the wait by the shared page, not by our mapping;
        // `word` lives in the arena mapping that the caller (a `RingReader`) keeps for
        // its whole life anyway. The timeout's timespec is copied at submission, and
        // lives in `self` besides.
        unsafe {
            let mut sq = self.ring.submission();
            sq.push_multiple(&[wait, timeout])
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.ring.submit()?;
        self.in_flight = 2;
        Ok(())
    }
}
