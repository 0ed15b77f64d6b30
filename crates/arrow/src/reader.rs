//! [`Reader`] of Arrow record batches over a shared-memory ring, and the
//! [`Batch`]es it hands out.

use crate::codec;
use crate::error::{OpenError, ReadError};
use crate::writer::FORMAT_ARROW_IPC_V1;
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::SchemaRef;
use ringfeed_shm::{Lease, ReaderOptions, RingReader, StartAt};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// A record batch read from a ring. Its buffers point into the arena and
/// keep the slot leased until the last array (or clone) is dropped.
#[derive(Clone, Debug)]
pub struct Batch {
    batch: RecordBatch,
    seq: u64,
    ts_ns: u64,
    pool: std::ops::Range<usize>,
}

impl Batch {
    /// Sequence number, 1-based, gap-free per ring.
    pub fn seq(&self) -> u64 {
        self.seq
    }
    /// Publish time, ns since the Unix epoch.
    pub fn ts_ns(&self) -> u64 {
        self.ts_ns
    }
    /// The record batch (cheap to clone: it shares the leased buffers).
    pub fn record_batch(&self) -> &RecordBatch {
        &self.batch
    }
    /// Takes the record batch; the lease lives on in its buffers.
    pub fn into_record_batch(self) -> RecordBatch {
        self.batch
    }
    /// Whether every buffer of every column lies inside the arena mapping.
    pub fn is_zero_copy(&self) -> bool {
        let mut all = true;
        codec::for_each_buffer(self.batch.columns(), |b| {
            let p = b.as_ptr() as usize;
            let inside = self.pool.contains(&p) && p + b.len() <= self.pool.end;
            if !b.is_empty() && !inside {
                all = false;
            }
        });
        all
    }
    /// Address range of the arena's buffer pool mapping.
    pub fn arena_range(&self) -> std::ops::Range<usize> {
        self.pool.clone()
    }
    /// The same seq and publish time over `batch`, e.g. a filtered or
    /// sliced view of this one ([`Batch::is_zero_copy`] tells whether it
    /// still points into the arena).
    pub fn with_record_batch(&self, batch: RecordBatch) -> Batch {
        Batch {
            batch,
            seq: self.seq,
            ts_ns: self.ts_ns,
            pool: self.pool.clone(),
        }
    }
}

impl Deref for Batch {
    type Target = RecordBatch;
    fn deref(&self) -> &RecordBatch {
        &self.batch
    }
}

impl From<Batch> for RecordBatch {
    fn from(b: Batch) -> Self {
        b.batch
    }
}

/// Reads record batches from a ring, each reader at its own pace.
pub struct Reader {
    ring: RingReader,
    schema: SchemaRef,
    done: bool,
}

impl Reader {
    /// Attaches to ring `name`.
    pub fn open(name: &str, start: StartAt) -> Result<Self, OpenError> {
        Self::open_with(
            name,
            ReaderOptions {
                start,
                ..Default::default()
            },
        )
    }

    /// Attaches with full options (start position, spin budget).
    pub fn open_with(name: &str, opts: ReaderOptions) -> Result<Self, OpenError> {
        let ring = RingReader::open_with(name, opts)?;
        let schema =
            codec::decode_schema(&ring.meta()).map_err(|e| OpenError::BadSchema(e.to_string()))?;
        Ok(Self {
            ring,
            schema: Arc::new(schema),
            done: false,
        })
    }

    /// The ring's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// The underlying byte ring.
    pub fn ring(&self) -> &RingReader {
        &self.ring
    }

    /// The next batch if one is ready; never blocks.
    pub fn try_read(&mut self) -> Result<Option<Batch>, ReadError> {
        match self.ring.try_read()? {
            Some(lease) => self.decode(lease).map(Some),
            None => Ok(None),
        }
    }

    /// Waits up to `timeout` for the next batch; `Ok(None)` on timeout.
    pub fn read(&mut self, timeout: Duration) -> Result<Option<Batch>, ReadError> {
        match self.ring.read(timeout)? {
            Some(lease) => self.decode(lease).map(Some),
            None => Ok(None),
        }
    }

    fn decode(&self, lease: Lease) -> Result<Batch, ReadError> {
        let seq = lease.seq();
        if lease.user() != FORMAT_ARROW_IPC_V1 {
            return Err(ReadError::Corrupt {
                seq,
                what: format!("slot format tag {:#x} is not Arrow IPC v1", lease.user()),
            });
        }
        let ts_ns = lease.ts_ns();
        let pool = lease.pool_range();
        let bytes = lease.bytes();
        let (ptr, len) = (bytes.as_ptr(), bytes.len());
        let owner: Arc<Lease> = Arc::new(lease);
        let buffer = match NonNull::new(ptr as *mut u8) {
            // SAFETY: ptr..ptr+len is the leased payload inside the read-only
            // pool mapping; `owner` keeps both the pin and the mapping alive
            // for as long as any Buffer (or slice of it) exists, and the pin
            // protocol guarantees the bytes do not change meanwhile.
            Some(p) => unsafe { Buffer::from_custom_allocation(p, len, owner) },
            None => {
                return Err(ReadError::Corrupt {
                    seq,
                    what: "null payload".into(),
                })
            }
        };
        // SAFETY: the trust model (docs/layout.md): the arena is mode 0600
        // and owned by this user (`Reader::open` refuses another user's
        // unless `allow_foreign_owner`), and its writer is a `Writer`, which
        // encodes only arrays validated when they were built or imported
        // (`foreign::import_array`). `decode` checks the structure itself.
        let batch = unsafe { codec::decode(&self.schema, &buffer) }
            .map_err(|e| ReadError::Corrupt { seq, what: e.0 })?;
        Ok(Batch {
            batch,
            seq,
            ts_ns,
            pool,
        })
    }

    /// Detaches; batches already read stay valid.
    pub fn close(self) {}
}

/// Blocks for each next batch. Yields `Err(Lagged)` and carries on when the
/// reader fell behind; ends after `Closed`, and after yielding `WriterGone`.
impl Iterator for Reader {
    type Item = Result<Batch, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        loop {
            match self.read(Duration::from_millis(500)) {
                Ok(Some(b)) => return Some(Ok(b)),
                Ok(None) => continue,
                Err(ReadError::Closed { .. }) => {
                    self.done = true;
                    return None;
                }
                Err(e @ ReadError::WriterGone { .. }) => {
                    self.done = true;
                    return Some(Err(e));
                }
                Err(e) => return Some(Err(e)),
            }
        }
    }
}
