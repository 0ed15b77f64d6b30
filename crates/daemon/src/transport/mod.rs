//! Faces of the service. Each face parses and checks its input, calls one
//! [`crate::service::Service`] method, and encodes the answer; nothing else.
//! What every face must do the same way lives in [`Boundary`], in one place:
//! panics are caught there, and connections are counted and capped there.

pub mod unix;

use crate::metrics::Metrics;
use crate::service::ServiceError;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

/// The request boundary shared by every face.
pub struct Boundary {
    connections: Arc<AtomicU32>,
    metrics: Arc<Metrics>,
}

/// A counted connection; dropping it frees the slot, however the
/// connection's thread ends.
pub struct ConnectionSlot(Arc<AtomicU32>);

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Boundary {
    /// A boundary that counts into `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            connections: Arc::new(AtomicU32::new(0)),
            metrics,
        }
    }

    /// Open connections, across faces.
    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::Relaxed)
    }

    /// A slot for a new connection, or `None` when `max` are open.
    pub fn connection(&self, max: u32) -> Option<ConnectionSlot> {
        self.connections
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| ConnectionSlot(self.connections.clone()))
    }

    /// Counts a malformed or refused request.
    pub fn bad_request(&self) {
        self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Runs one request; a panic inside it becomes an `internal` error (and
    /// is logged) instead of ending the connection's thread.
    pub fn call<T>(&self, f: impl FnOnce() -> T) -> Result<T, ServiceError> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(panic = %what, "a request panicked; answered `internal`");
            self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
            ServiceError::internal(format!(
                "the daemon failed on this request ({what}); it is logged, please report it"
            ))
        })
    }
}
