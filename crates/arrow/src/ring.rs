//! `Writer` and `Reader` of Arrow record batches over a shared-memory ring.

use crate::codec::{self, SlotEncoder};
use crate::error::{CreateError, OpenError, ReadError, WriteError};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{Schema, SchemaRef};
use ringfeed_shm::{Lease, ReaderOptions, RingReader, RingWriter, StartAt};
pub use ringfeed_shm::{OnFull, RingOptions};
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

/// Tag in the descriptor's `user` word: "this slot is an Arrow IPC stream prefix, v1".
pub const FORMAT_ARROW_IPC_V1: u64 = 0x4152_5731; // "ARW1"

/// Publishes record batches of one schema into a ring.
///
/// ```
/// use ringfeed_arrow::{Writer, Reader, RingOptions, StartAt};
/// use arrow_array::{record_batch, RecordBatch};
/// use std::time::Duration;
/// # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
/// let batch = record_batch!(("close", Float64, [1.0, 2.5]))?;
/// let name = format!("doc-arrow-{}", std::process::id());
/// let mut w = Writer::create(&name, &batch.schema(), RingOptions::default())?;
/// let mut r = Reader::open(&name, StartAt::Oldest)?;
/// w.write(&batch)?;
/// let got = r.read(Duration::from_secs(1))?.expect("one batch");
/// assert_eq!(*got, batch);       // a RecordBatch whose buffers live in the arena
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Writer {
    ring: RingWriter,
    schema: SchemaRef,
    encoder: SlotEncoder,
    /// The last batch schema (a different `Arc` than ours, e.g. the caller's
    /// own) found equal to the ring's: batches sharing it skip the comparison.
    verified: Option<SchemaRef>,
}

impl Writer {
    /// Creates arena `name` for batches of `schema`.
    pub fn create(name: &str, schema: &Schema, opts: RingOptions) -> Result<Self, CreateError> {
        let meta = codec::encode_schema(schema);
        let encoder = SlotEncoder::new(schema).map_err(CreateError::Schema)?;
        let ring = RingWriter::create(name, &opts, &meta)?;
        Ok(Self {
            ring,
            schema: Arc::new(schema.clone()),
            encoder,
            verified: None,
        })
    }

    /// Takes over arena `name` after its writer died. Its stored schema is kept.
    pub fn open_existing(name: &str) -> Result<Self, OpenError> {
        let ring = RingWriter::open_existing(name)?;
        let schema =
            codec::decode_schema(&ring.meta()).map_err(|e| OpenError::BadSchema(e.to_string()))?;
        let encoder = SlotEncoder::new(&schema).map_err(|e| OpenError::BadSchema(e.to_string()))?;
        Ok(Self {
            ring,
            schema: Arc::new(schema),
            encoder,
            verified: None,
        })
    }

    /// The ring's schema.
    pub fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    /// Largest encoded batch one slot holds.
    pub fn slot_bytes(&self) -> u64 {
        self.ring.slot_bytes()
    }

    /// The underlying byte ring (readers, sweeps, geometry).
    pub fn ring(&self) -> &RingWriter {
        &self.ring
    }

    /// Mutable access to the byte ring (e.g. `wait_for_readers`).
    pub fn ring_mut(&mut self) -> &mut RingWriter {
        &mut self.ring
    }

    /// Publishes `batch`: one copy of its buffers into a free slot. Returns its seq.
    /// A batch whose schema differs from the ring's is refused; so is one
    /// larger than a slot (nothing is truncated or half-written).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<u64, WriteError> {
        let theirs = batch.schema_ref();
        // Holding the verified `Arc` keeps its address from being reused by
        // another schema, so pointer equality means "this very schema".
        if !Arc::ptr_eq(theirs, &self.schema)
            && !self
                .verified
                .as_ref()
                .is_some_and(|v| Arc::ptr_eq(theirs, v))
        {
            check_schema(&self.schema, theirs)?;
            self.verified = Some(theirs.clone());
        }
        // Size the slot first (no copy), then write it in one pass.
        let prepared = self.encoder.prepare(batch).map_err(WriteError::Encode)?;
        let len = prepared.len() as u64;
        let mut claim = self.ring.claim(len)?;
        let n = prepared.write_to(claim.buf());
        debug_assert_eq!(n as u64, len);
        Ok(claim.commit(len, batch.num_rows() as u64, FORMAT_ARROW_IPC_V1))
    }

    /// Closes the ring: readers drain what is left, then see `Closed`.
    pub fn close(self) {
        self.ring.close();
    }
}

fn check_schema(expected: &Schema, found: &Schema) -> Result<(), WriteError> {
    if expected.fields() == found.fields() {
        return Ok(());
    }
    let detail = if expected.fields().len() != found.fields().len() {
        format!(
            "{} columns expected, batch has {}",
            expected.fields().len(),
            found.fields().len()
        )
    } else {
        expected
            .fields()
            .iter()
            .zip(found.fields())
            .find(|(a, b)| a != b)
            .map(|(a, b)| {
                format!(
                    "column {:?}: expected {} {}nullable, batch has {:?} {} {}nullable",
                    a.name(),
                    a.data_type(),
                    if a.is_nullable() { "" } else { "non-" },
                    b.name(),
                    b.data_type(),
                    if b.is_nullable() { "" } else { "non-" },
                )
            })
            .unwrap_or_else(|| "field metadata differs".into())
    };
    Err(WriteError::SchemaMismatch { detail })
}

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
