//! Faces of the service. Each face parses and checks its input, calls one
//! [`crate::service::Service`] method, and encodes the answer; nothing else.
//! What every face must do the same way lives in [`Boundary`], in one place:
//! panics are caught there; connections are counted, capped per client and
//! in total there (an idle connection yields its slot to a new one); and the
//! bytes of request payloads in flight are bounded there, so no face can be
//! made to hold more memory than [`FaceLimits::max_inflight_bytes`].

pub mod flight;
pub mod frame;
pub mod http;
pub mod live;
pub mod unix;

use crate::metrics::Metrics;
use crate::service::ServiceError;
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// What every face enforces (from the daemon's config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaceLimits {
    /// Open connections across faces.
    pub max_connections: u32,
    /// Open connections of one client (one process on the local socket).
    pub max_connections_per_client: u32,
    /// A connection that sends nothing for this long is closed (its client
    /// reconnects on its next call); a full table also takes the slot of the
    /// longest-idle connection.
    pub idle_timeout: Duration,
    /// A request (header and payload) must arrive whole within this, once its
    /// first byte has; an answer must be taken within it too.
    pub request_timeout: Duration,
    /// Bytes of request payloads held at once, across connections.
    pub max_inflight_bytes: u64,
}

impl Default for FaceLimits {
    fn default() -> Self {
        Self {
            max_connections: 256,
            max_connections_per_client: 64,
            idle_timeout: Duration::from_secs(300),
            request_timeout: Duration::from_secs(30),
            max_inflight_bytes: 1 << 30,
        }
    }
}

/// Who is on the other end, as far as limits are concerned.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Peer {
    /// A local process (from `SO_PEERCRED`).
    Pid(u32),
    /// A network peer.
    Ip(std::net::IpAddr),
    /// Not known (each such connection counts as its own client).
    Unknown(u64),
}

/// Why a connection was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    /// Every slot is busy with a request.
    #[error("too many connections ({0} open, all active): retry later, or raise max_connections")]
    Full(u32),
    /// This client already holds its share.
    #[error("this client already has {0} connections open (max_connections_per_client): reuse one, or close some")]
    PerClient(u32),
}

/// Closes a connection from outside its thread (shuts its socket down).
pub type Closer = Box<dyn Fn() + Send + Sync>;

struct Entry {
    peer: Peer,
    /// When it last began or finished a request.
    last_active: Instant,
    /// Inside a request: never evicted.
    busy: bool,
    closer: Closer,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    entries: HashMap<u64, Entry>,
}

/// The request boundary shared by every face.
pub struct Boundary {
    limits: FaceLimits,
    table: Arc<Mutex<Table>>,
    inflight: Arc<AtomicU64>,
    metrics: Arc<Metrics>,
}

/// A counted connection; dropping it frees the slot, however the
/// connection's thread ends.
pub struct ConnectionSlot {
    id: u64,
    table: Arc<Mutex<Table>>,
}

fn lock(t: &Mutex<Table>) -> MutexGuard<'_, Table> {
    // The table is only ever updated by whole-entry inserts and removes, so a
    // panic elsewhere while it was held cannot leave it half-changed.
    t.lock().unwrap_or_else(|p| p.into_inner())
}

impl ConnectionSlot {
    /// Marks the start (`true`) or end (`false`) of a request: a connection
    /// inside a request is never taken for another.
    pub fn busy(&self, busy: bool) {
        if let Some(e) = lock(&self.table).entries.get_mut(&self.id) {
            e.busy = busy;
            e.last_active = Instant::now();
        }
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        lock(&self.table).entries.remove(&self.id);
    }
}

/// Payload bytes reserved against [`FaceLimits::max_inflight_bytes`];
/// dropping it gives them back.
pub struct PayloadBudget {
    bytes: u64,
    inflight: Arc<AtomicU64>,
}

impl Drop for PayloadBudget {
    fn drop(&mut self) {
        self.inflight.fetch_sub(self.bytes, Ordering::Relaxed);
    }
}

impl Boundary {
    /// A boundary that counts into `metrics`.
    pub fn new(limits: FaceLimits, metrics: Arc<Metrics>) -> Self {
        Self {
            limits,
            table: Arc::default(),
            inflight: Arc::default(),
            metrics,
        }
    }

    /// The limits this boundary enforces.
    pub fn limits(&self) -> &FaceLimits {
        &self.limits
    }

    /// Open connections, across faces.
    pub fn connections(&self) -> u32 {
        lock(&self.table).entries.len() as u32
    }

    /// A slot for a new connection from `peer`. When the table is full, the
    /// longest-idle connection (not inside a request) is closed to make room;
    /// `close` is how this one can be closed likewise later.
    pub fn connection(&self, peer: Peer, close: Closer) -> Result<ConnectionSlot, Refused> {
        let mut t = lock(&self.table);
        let mine = t.entries.values().filter(|e| e.peer == peer).count() as u32;
        if mine >= self.limits.max_connections_per_client {
            self.metrics
                .refused_connections
                .fetch_add(1, Ordering::Relaxed);
            return Err(Refused::PerClient(mine));
        }
        if t.entries.len() as u32 >= self.limits.max_connections {
            let idlest = t
                .entries
                .iter()
                .filter(|(_, e)| !e.busy)
                .min_by_key(|(_, e)| e.last_active)
                .map(|(id, _)| *id);
            match idlest {
                Some(id) => {
                    let e = t.entries.remove(&id).expect("just found");
                    (e.closer)();
                    self.metrics
                        .evicted_connections
                        .fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = ?e.peer, "closed the idlest connection to make room");
                }
                None => {
                    self.metrics
                        .refused_connections
                        .fetch_add(1, Ordering::Relaxed);
                    return Err(Refused::Full(t.entries.len() as u32));
                }
            }
        }
        t.next_id += 1;
        let id = t.next_id;
        t.entries.insert(
            id,
            Entry {
                peer,
                last_active: Instant::now(),
                busy: false,
                closer: close,
            },
        );
        Ok(ConnectionSlot {
            id,
            table: self.table.clone(),
        })
    }

    /// Reserves `bytes` of payload memory, or `None` when the daemon already
    /// holds [`FaceLimits::max_inflight_bytes`] of payloads.
    pub fn reserve_payload(&self, bytes: u64) -> Option<PayloadBudget> {
        let max = self.limits.max_inflight_bytes;
        self.inflight
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                n.checked_add(bytes).filter(|t| *t <= max)
            })
            .ok()
            .map(|_| PayloadBudget {
                bytes,
                inflight: self.inflight.clone(),
            })
    }

    /// Counts a malformed or refused request.
    pub fn bad_request(&self) {
        self.metrics.bad_requests.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a connection closed for missing a deadline.
    pub fn timed_out(&self) {
        self.metrics
            .timed_out_connections
            .fetch_add(1, Ordering::Relaxed);
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn boundary(max: u32, per_client: u32) -> Boundary {
        Boundary::new(
            FaceLimits {
                max_connections: max,
                max_connections_per_client: per_client,
                max_inflight_bytes: 100,
                ..Default::default()
            },
            Arc::default(),
        )
    }

    fn counting(closed: &Arc<AtomicU32>) -> Closer {
        let c = closed.clone();
        Box::new(move || {
            c.fetch_add(1, Ordering::Relaxed);
        })
    }

    #[test]
    fn a_client_gets_its_share_and_no_more() {
        let b = boundary(10, 2);
        let closed = Arc::new(AtomicU32::new(0));
        let _a = b.connection(Peer::Pid(1), counting(&closed)).unwrap();
        let _c = b.connection(Peer::Pid(1), counting(&closed)).unwrap();
        assert_eq!(
            b.connection(Peer::Pid(1), counting(&closed)).err(),
            Some(Refused::PerClient(2))
        );
        let _other = b.connection(Peer::Pid(2), counting(&closed)).unwrap();
        assert_eq!(b.connections(), 3);
        assert_eq!(closed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_full_table_closes_the_idlest_connection_but_never_a_busy_one() {
        let b = boundary(2, 10);
        let closed = Arc::new(AtomicU32::new(0));
        let first = b.connection(Peer::Pid(1), counting(&closed)).unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let second = b.connection(Peer::Pid(2), counting(&closed)).unwrap();
        // Full: the idlest (first) is closed for the newcomer.
        let third = b.connection(Peer::Pid(3), counting(&closed)).unwrap();
        assert_eq!(closed.load(Ordering::Relaxed), 1);
        assert_eq!(b.connections(), 2);
        drop(first); // its thread ends later; the slot was already given away
        assert_eq!(b.connections(), 2);
        // Both remaining are inside requests: a newcomer is refused.
        second.busy(true);
        third.busy(true);
        assert_eq!(
            b.connection(Peer::Pid(4), counting(&closed)).err(),
            Some(Refused::Full(2))
        );
        third.busy(false);
        assert!(b.connection(Peer::Pid(4), counting(&closed)).is_ok());
        assert_eq!(closed.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn payload_budget_is_bounded_and_returned() {
        let b = boundary(10, 10);
        let x = b.reserve_payload(60).unwrap();
        assert!(b.reserve_payload(60).is_none());
        let y = b.reserve_payload(40).unwrap();
        assert!(b.reserve_payload(1).is_none());
        drop(x);
        assert!(b.reserve_payload(60).is_some());
        drop(y);
        assert!(b.reserve_payload(u64::MAX).is_none(), "no overflow");
    }
}
