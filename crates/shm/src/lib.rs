//! Shared-memory arenas for ringfeed: a single-writer, multi-reader ring of
//! byte payloads in a `/dev/shm` file, read without copies.
//!
//! This crate knows bytes, not Arrow (`ringfeed-arrow` builds on it). It owns
//! almost all of ringfeed's `unsafe`: the layout ([`layout`]), the arena file
//! and its mappings, the ring protocol (descriptor seqlock, buffer generations,
//! per-reader pins), shared futex wake-ups and OFD-lock liveness.
//!
//! The invariant: **memory a reader can still see is never rewritten.** A
//! reader pins a buffer in its own row before it trusts it; the writer marks a
//! buffer odd and re-checks every pin before it writes.
//!
//! ```
//! use ringfeed_shm::{RingWriter, RingReader, RingOptions, StartAt};
//! use std::time::Duration;
//! # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
//! let name = format!("doc-example-{}", std::process::id());
//! let mut w = RingWriter::create(&name, &RingOptions::default(), b"meta")?;
//! let mut r = RingReader::open(&name, StartAt::Oldest)?;
//! w.publish(b"hello", 1, 0)?;
//! let lease = r.read(Duration::from_secs(1))?.expect("a batch");
//! assert_eq!(lease.bytes(), b"hello");
//! assert_eq!(lease.seq(), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![deny(missing_docs)]

mod arena;
mod create;
mod error;
mod fork;
mod inspect;
pub mod layout;
pub mod malloc;
mod os;
mod reader;
mod sigbus;
pub mod sync;
mod table;
mod uring;
mod writer;

pub use arena::{remove, validate_header};
pub use error::{ClaimError, CreateError, OpenError, ReadError};
pub use inspect::{inspect, ArenaInfo};
pub use os::{arena_path, check_name, list_arenas, mmap_large_allocations, shm_dir, table_path};
pub use reader::{Lease, ReaderOptions, RingReader, StartAt, Validate};
pub use table::ReaderInfo;
pub use writer::{Claim, OnFull, RingOptions, RingWriter};
