//! Atomics and the cross-process futex.
//!
//! Every atomic that lives in shared memory comes from this module, so the
//! protocol has one place to audit. Orderings that are not `Relaxed` carry a
//! `// SYNC POINT: <name>` comment at both ends of the pairing; `docs/layout.md`
//! lists the points.

pub use std::sync::atomic::{fence, AtomicU32, AtomicU64, Ordering};

use std::time::Duration;

/// Bumped in the child after every `fork()`. Handles record the value at
/// creation; a handle whose value differs was inherited across a fork and must
/// neither use nor release the parent's shared state (pins, rows, locks: the
/// child shares the parent's open file descriptions, so an unlock in the child
/// would drop the parent's lock).
static FORK_GEN: AtomicU64 = AtomicU64::new(0);

extern "C" fn after_fork_in_child() {
    FORK_GEN.fetch_add(1, Ordering::Relaxed);
    // Give the child descriptions of its own, so it holds none of the
    // parent's OFD locks alive (see `fork.rs`).
    crate::fork::rehome_in_child();
}

/// The current fork generation, registering the `pthread_atfork` hook on first use.
pub fn fork_generation() -> u64 {
    static HOOK: std::sync::Once = std::sync::Once::new();
    HOOK.call_once(|| {
        // SAFETY: registers a plain extern "C" fn with no captured state; the
        // handler bumps an atomic and makes plain syscalls over a lock-free
        // table (`fork::rehome_in_child`), all async-signal-safe.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    FORK_GEN.load(Ordering::Relaxed)
}

/// Outcome of [`futex_wait`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Woken by `FUTEX_WAKE`, or the word no longer held the expected value.
    Woken,
    /// The timeout elapsed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}

/// Sleeps while `word == expected`, for at most `timeout`.
///
/// Uses the *shared* futex (no `FUTEX_PRIVATE_FLAG`): the word lives in a
/// `MAP_SHARED` file mapping and the waker is another process.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) -> Wake {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: `word` is a valid, aligned u32 for the duration of the call (it is
    // borrowed); FUTEX_WAIT only reads it. `ts` is a valid relative timespec.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
            std::ptr::null::<u32>(),
            0u32,
        )
    };
    if rc == 0 {
        return Wake::Woken;
    }
    match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::ETIMEDOUT) => Wake::TimedOut,
        Some(libc::EINTR) => Wake::Interrupted,
        // EAGAIN: the value changed before we slept, which is a wake-up.
        _ => Wake::Woken,
    }
}

/// Wakes up to `n` waiters sleeping on `word` in any process.
pub fn futex_wake(word: &AtomicU32, n: i32) {
    // SAFETY: `word` is a valid, aligned u32; FUTEX_WAKE does not access memory
    // besides hashing the address.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            word.as_ptr(),
            libc::FUTEX_WAKE,
            n,
            std::ptr::null::<libc::timespec>(),
            std::ptr::null::<u32>(),
            0u32,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Instant;

    #[test]
    fn wait_times_out_when_nobody_wakes() {
        let w = AtomicU32::new(7);
        let t = Instant::now();
        assert_eq!(futex_wait(&w, 7, Duration::from_millis(5)), Wake::TimedOut);
        assert!(t.elapsed() >= Duration::from_millis(4));
    }

    #[test]
    fn wait_returns_at_once_when_value_differs() {
        let w = AtomicU32::new(1);
        assert_eq!(futex_wait(&w, 2, Duration::from_secs(5)), Wake::Woken);
    }

    #[test]
    fn wake_reaches_a_sleeping_thread() {
        let w = Arc::new(AtomicU32::new(0));
        let w2 = w.clone();
        let h = std::thread::spawn(move || loop {
            if w2.load(Ordering::Acquire) != 0 {
                return;
            }
            futex_wait(&w2, 0, Duration::from_secs(10));
        });
        std::thread::sleep(Duration::from_millis(20));
        w.store(1, Ordering::Release);
        futex_wake(&w, 1);
        h.join().unwrap();
    }
}
