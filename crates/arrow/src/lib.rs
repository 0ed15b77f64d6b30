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
//! encoding into slots ([`codec`]) and zero-copy decoding out of them.
#![deny(missing_docs)]

pub mod arena;
pub mod codec;
mod error;
pub mod foreign;
mod reader;
mod schema;
mod writer;

pub use error::{CreateError, ErrorKind, OpenError, ReadError, WriteError};
pub use reader::{Batch, Reader};
pub use ringfeed_shm::{ClaimError, ReaderOptions, StartAt};
#[allow(deprecated)]
pub use schema::bar_schema;
pub use schema::{ohlcv_schema, storage_schema, StringLayout};
pub use writer::{EncodedBatches, OnFull, RingOptions, Writer, Written, FORMAT_ARROW_IPC_V1};
