//! A zero-copy ring of Arrow record batches in shared memory.
//!
//! One [`Writer`] publishes `RecordBatch`es of a fixed schema; any number of
//! [`Reader`]s in other processes get `RecordBatch`es whose buffers point
//! straight into the arena (no copy, no deserialisation beyond O(columns)
//! structural checks). A batch stays valid, and its slot untouched, until the
//! last array that refers to it is dropped.
//!
//! ```
//! use ringfeed_arrow::{ohlcv_schema, Writer, Reader, RingOptions, StartAt};
//! # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
//! let name = format!("doc-lib-{}", std::process::id());
//! let w = Writer::create(&name, &ohlcv_schema(), RingOptions::default())?;
//! let r = Reader::open(&name, StartAt::Latest)?;
//! assert_eq!(r.schema().fields().len(), 7);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The byte-level ring lives in `ringfeed-shm`; this crate adds Arrow IPC
//! encoding into slots ([`codec`]) and zero-copy decoding out of them, and
//! the policies every language binding shares:
//! - [`foreign`]: batches imported through the C Data Interface are fully
//!   validated ([`foreign::import_array`]) and conformed to a ring's schema
//!   ([`foreign::conform`]), the same rule [`Writer::write`] applies;
//! - string columns are stored as views unless [`RingOptions::strings`]
//!   says otherwise ([`StringLayout`], [`storage_schema`]);
//! - every error has a [`kind`](ErrorKind) to map to an exception or error
//!   code, and [`arena`] lists, inspects and removes arenas, so a binding
//!   needs no other ringfeed crate;
//! - [`Writer::create_for_batches`] makes a ring sized for a fixed result.
#![deny(missing_docs)]

pub mod arena;
pub mod codec;
mod error;
pub mod foreign;
pub mod ipc_stream;
mod reader;
mod schema;
mod writer;

pub use error::{CreateError, ErrorKind, OpenError, ReadError, WriteError};
pub use reader::{Batch, Reader};
pub use ringfeed_shm::{ClaimError, ReaderOptions, StartAt, Validate};
#[allow(deprecated)]
pub use schema::bar_schema;
pub use schema::{ohlcv_schema, storage_schema, StringLayout};
pub use writer::{EncodedBatches, OnFull, RingOptions, Writer, Written, FORMAT_ARROW_IPC_V1};
