//! The service core: every operation of the daemon, once, with typed inputs,
//! outputs and errors, knowing nothing of sockets, frames or JSON. Faces
//! (the Unix socket in [`crate::transport`], later Flight and HTTP) parse
//! their input, call one method here, and encode the answer.
//!
//! State is owned by the parts it belongs to:
//! - [`cache::ResultCache`]: query results in shared memory (get-or-build,
//!   release, evict, invalidate, budget), held per client by a [`Session`];
//! - [`topics::Topics`]: the live topic rings (create once, publish, split);
//! - `health.rs`: [`Service::health`] (do queries and appends work?) and
//!   [`Service::maintain`] (the periodic pass: dead readers, unpublished rows);
//! - `open.rs`: the [`Service`] itself (the store, the ingest lock, the parts
//!   above) and opening it; `reads.rs` and `writes.rs` hold its operations
//!   (appends, deletes and write-downs are serialised by the ingest lock);
//!   `lifecycle.rs` holds retention, trim and drop-dataset; `listing.rs`
//!   the stored timeframes a network face lists; `ops.rs` the operational
//!   snapshot (the web page's operations view), read from the parts above;
//!   `followed.rs` the datasets followed from a primary (local writes to them
//!   refused) and their followers' state.
//!
//! Files import downwards only: `mod.rs` re-exports; `reads`/`writes` use
//! `open`; `open` uses `cache`, `topics`, `error`.

pub mod cache;
mod error;
mod followed;
mod health;
mod lifecycle;
mod listing;
mod open;
mod ops;
mod reads;
mod spec;
pub mod topics;
mod writes;

pub use cache::{CacheLimits, ResultArena, Session};
pub use error::{ErrorKind, ServiceError};
pub use followed::{FollowState, HeldTail};
pub use health::{ReplayHook, HEALTH_LOCK_WAIT, MAINTENANCE_EVERY};
pub use lifecycle::LifecycleOutcome;
pub use listing::StoredTimeframe;
pub use open::{OpenError, Service};
pub use ops::{
    CacheOps, HostRing, HotDays, IngestOps, OpsSnapshot, QueryOps, StoreOps, WriteDownOps,
};
pub use reads::{dataset_ready, ReplayAnswer};
pub use writes::{
    decode_append_payload, write_down_boundary, write_down_loop, AppendOutcome, DeleteOutcome,
    WriteDownOutcome,
};
