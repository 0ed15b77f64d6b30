//! Fork safety.
//!
//! A forked child inherits the parent's mappings, file descriptions and
//! Python objects, but the ring state they stand for (the reader row, its
//! pins, the OFD locks, the writer role) still belongs to the parent: the OFD
//! locks are shared with the parent's open file descriptions, so a child
//! that dropped an inherited `Reader` would unlock the parent's row, and one
//! that dropped an inherited `Batch` would unpin a buffer the parent may
//! still be reading. So `ringfeed/__init__.py` registers
//! [`_after_fork_in_child`] with `os.register_at_fork`; it bumps a process
//! epoch, and every object created before the bump
//! - refuses to be used in the child (the child must re-open), and
//! - leaks its Rust state instead of dropping it there.
//!
//! Arrow data already exported to pyarrow/polars stays readable in the child
//! (the mapping is inherited) and its release there leaks too, because every
//! exported buffer is owned by a [`Guarded`], never by the lease directly.

use std::mem::ManuallyDrop;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};

static EPOCH: AtomicU64 = AtomicU64::new(0);

/// The current fork epoch of this process.
pub(crate) fn epoch() -> u64 {
    EPOCH.load(Ordering::Relaxed)
}

/// Called by `os.register_at_fork(after_in_child=...)`; not for users.
#[pyo3::pyfunction]
pub(crate) fn _after_fork_in_child() {
    EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// A value that is dropped only in the process (fork epoch) that made it; in
/// a forked child it is leaked instead.
pub(crate) struct Guarded<T> {
    value: ManuallyDrop<AssertUnwindSafe<T>>,
    epoch: u64,
}

impl<T> Guarded<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            value: ManuallyDrop::new(AssertUnwindSafe(value)),
            epoch: epoch(),
        }
    }

    /// Whether this process is the one that created the value.
    pub(crate) fn is_current(&self) -> bool {
        self.epoch == epoch()
    }

    pub(crate) fn get(&self) -> &T {
        &self.value.0
    }
}

impl<T> Drop for Guarded<T> {
    fn drop(&mut self) {
        if self.is_current() {
            // SAFETY: `value` is never used again: this is the only place that
            // drops it, and `drop` runs once.
            unsafe { ManuallyDrop::drop(&mut self.value) }
        }
        // Else: a forked child. Leak it; the parent owns the shared state.
    }
}

/// The error for an object used in a fork child.
pub(crate) fn forked_error(what: &str) -> pyo3::PyErr {
    crate::errors::RingfeedError::new_err(format!(
        "this {what} was opened in the parent process before fork(); a child must open its own (ringfeed.Reader.open / Writer.create after the fork)"
    ))
}
