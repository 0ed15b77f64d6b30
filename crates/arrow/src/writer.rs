//! [`Writer`] of Arrow record batches into a shared-memory ring, its
//! [`RingOptions`], and rings sized for a given set of batches
//! ([`Writer::create_for_batches`], [`EncodedBatches`]).

use crate::codec::{self, SlotEncoder};
use crate::error::{CreateError, OpenError, WriteError};
use crate::foreign::{self, ForeignError};
use crate::schema::{storage_schema, StringLayout};
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::{Schema, SchemaRef};
pub use ringfeed_shm::OnFull;
use ringfeed_shm::RingWriter;
use std::borrow::Cow;
use std::sync::Arc;

/// Tag in the descriptor's `user` word: "this slot is an Arrow IPC stream prefix, v1".
pub const FORMAT_ARROW_IPC_V1: u64 = 0x4152_5731; // "ARW1"

/// Sizing and policy of a new ring: the byte ring's options, plus how
/// string columns are stored.
///
/// ```
/// use ringfeed_arrow::{OnFull, RingOptions, StringLayout};
/// let opts = RingOptions {
///     slots: 64,
///     on_full: OnFull::Block(std::time::Duration::from_secs(1)),
///     strings: StringLayout::AsGiven,
///     ..RingOptions::default()
/// };
/// assert_eq!(opts.ring().slots, 64);
/// ```
#[derive(Clone, Debug)]
pub struct RingOptions {
    /// D: batches the ring keeps (descriptor entries). Default 8.
    pub slots: u32,
    /// Largest encoded batch one slot holds, in bytes (rounded up to 4 KiB). Default 1 MiB.
    pub slot_bytes: u64,
    /// R: readers that may attach at once. Default 8.
    pub max_readers: u32,
    /// P: batches one reader may hold (lease) at once. Default 4.
    pub leases_per_reader: u32,
    /// M: buffers in the pool. Default D + R·P + 1, which guarantees the
    /// writer always finds a free buffer.
    pub buffers: Option<u32>,
    /// Full-ring policy. Default `OverwriteOldest`.
    pub on_full: OnFull,
    /// Capacity of the meta (schema) block. Default 64 KiB.
    pub meta_cap: u32,
    /// Replace an existing arena of the same name. Default false.
    pub force: bool,
    /// How string and binary columns are stored. Default
    /// [`StringLayout::View`]: `Utf8View`/`BinaryView`, whatever the schema
    /// given to [`Writer::create`] says (see [`crate::storage_schema`]).
    pub strings: StringLayout,
}

impl Default for RingOptions {
    fn default() -> Self {
        ringfeed_shm::RingOptions::default().into()
    }
}

impl From<ringfeed_shm::RingOptions> for RingOptions {
    /// The byte ring's options, with the default string layout.
    fn from(o: ringfeed_shm::RingOptions) -> Self {
        // Destructured without `..`: a new byte-ring option fails to compile
        // here until it is carried over.
        let ringfeed_shm::RingOptions {
            slots,
            slot_bytes,
            max_readers,
            leases_per_reader,
            buffers,
            on_full,
            meta_cap,
            force,
        } = o;
        Self {
            slots,
            slot_bytes,
            max_readers,
            leases_per_reader,
            buffers,
            on_full,
            meta_cap,
            force,
            strings: StringLayout::default(),
        }
    }
}

impl RingOptions {
    /// The geometry these options produce (slot bytes rounded up, default
    /// buffer count), or why they are out of range.
    pub fn geometry(&self) -> Result<ringfeed_shm::layout::Geometry, ringfeed_shm::CreateError> {
        self.ring().geometry()
    }

    /// The byte ring's part of these options.
    pub fn ring(&self) -> ringfeed_shm::RingOptions {
        ringfeed_shm::RingOptions {
            slots: self.slots,
            slot_bytes: self.slot_bytes,
            max_readers: self.max_readers,
            leases_per_reader: self.leases_per_reader,
            buffers: self.buffers,
            on_full: self.on_full,
            meta_cap: self.meta_cap,
            force: self.force,
        }
    }
}

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
    /// Creates arena `name` for batches of `schema`. With the default
    /// [`StringLayout::View`], the ring's schema has `Utf8View` and
    /// `BinaryView` where `schema` has other string or binary layouts
    /// ([`crate::storage_schema`]); [`Self::schema`] tells which.
    pub fn create(name: &str, schema: &Schema, opts: RingOptions) -> Result<Self, CreateError> {
        let stored = storage_schema(schema, opts.strings);
        Self::create_stored(name, stored, &opts.ring())
    }

    /// Creates the arena for batches of `schema`, already in its stored layout.
    fn create_stored(
        name: &str,
        schema: Schema,
        opts: &ringfeed_shm::RingOptions,
    ) -> Result<Self, CreateError> {
        let meta = codec::encode_schema(&schema);
        let encoder = SlotEncoder::new(&schema).map_err(CreateError::Schema)?;
        let ring = RingWriter::create(name, opts, &meta)?;
        Ok(Self {
            ring,
            schema: Arc::new(schema),
            encoder,
            verified: None,
        })
    }

    /// Creates arena `name` holding exactly `batches`, one slot each, and
    /// writes them: each batch is encoded once (see [`EncodedBatches`]).
    /// `opts` gives `max_readers`, `meta_cap`, `force` and `strings`; the
    /// rest is set to fit: `slots = buffers = leases_per_reader = n`, every
    /// buffer sized for the largest encoded batch, `OverwriteOldest`. A
    /// reader can hold every batch at once, and nothing is ever overwritten.
    ///
    /// ```
    /// use ringfeed_arrow::{Reader, RingOptions, StartAt, Writer};
    /// use arrow_array::record_batch;
    /// # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
    /// let a = record_batch!(("x", Int64, [1, 2, 3]))?;
    /// let name = format!("doc-sized-{}", std::process::id());
    /// let (w, written) =
    ///     Writer::create_for_batches(&name, &a.schema(), &[a.clone(), a.slice(0, 1)], RingOptions::default())?;
    /// assert_eq!(written.batches, 2);
    /// assert_eq!(w.ring().next_seq(), 3);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn create_for_batches(
        name: &str,
        schema: &Schema,
        batches: &[RecordBatch],
        opts: RingOptions,
    ) -> Result<(Self, Written), CreateError> {
        EncodedBatches::new(schema, batches, opts.strings)?.write(name, &opts)
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

    /// The ring's schema (string columns in their stored layout).
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
    ///
    /// A batch of the ring's schema is encoded as it is. Any other batch goes
    /// through [`foreign::conform`] first, the rule every binding applies:
    /// columns in another layout of the same logical type are cast (e.g.
    /// `Utf8` to the ring's `Utf8View`), and anything else is refused with
    /// [`WriteError::SchemaMismatch`] naming the columns. A batch larger than
    /// a slot is refused too (nothing is truncated or half-written).
    pub fn write(&mut self, batch: &RecordBatch) -> Result<u64, WriteError> {
        let theirs = batch.schema_ref();
        // Holding the verified `Arc` keeps its address from being reused by
        // another schema, so pointer equality means "this very schema".
        let same = Arc::ptr_eq(theirs, &self.schema)
            || self
                .verified
                .as_ref()
                .is_some_and(|v| Arc::ptr_eq(theirs, v));
        if same || self.schema.fields() == theirs.fields() {
            if !same {
                self.verified = Some(theirs.clone());
            }
            return self.publish(batch);
        }
        let conformed = foreign::conform(batch, &self.schema).map_err(mismatch)?;
        self.publish(&conformed)
    }

    /// Encodes `batch` (of the ring's schema) into a slot and commits it.
    fn publish(&mut self, batch: &RecordBatch) -> Result<u64, WriteError> {
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

fn mismatch(e: ForeignError) -> WriteError {
    match e {
        ForeignError::SchemaMismatch { detail, .. } => WriteError::SchemaMismatch { detail },
        other => WriteError::SchemaMismatch {
            detail: other.to_string(),
        },
    }
}

/// What [`Writer::create_for_batches`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Written {
    /// Batches written, one slot each (seqs `1..=batches`).
    pub batches: u64,
    /// Encoded bytes of all of them.
    pub bytes: u64,
    /// Bytes of the largest one: what each slot was sized for.
    pub slot_bytes: u64,
}

/// Batches encoded for a ring of their own, each exactly once: measure them
/// ([`Self::bytes`], e.g. against a memory budget), then
/// [`write`](Self::write) them into an arena sized for them. The encoding
/// keeps the batches' buffers (no copy) until it is written.
///
/// ```
/// use ringfeed_arrow::{EncodedBatches, RingOptions, StringLayout};
/// use arrow_array::record_batch;
/// # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
/// let a = record_batch!(("x", Int64, [1, 2, 3]))?;
/// let enc = EncodedBatches::new(&a.schema(), &[a.clone()], StringLayout::View)?;
/// assert!(enc.bytes() > 24);
/// let name = format!("doc-encoded-{}", std::process::id());
/// let (_w, written) = enc.write(&name, &RingOptions::default())?;
/// assert_eq!(written.batches, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct EncodedBatches {
    schema: Schema,
    slots: Vec<EncodedSlot>,
}

struct EncodedSlot {
    buffers: Vec<Buffer>,
    len: u64,
    rows: u64,
}

impl EncodedBatches {
    /// Encodes `batches` for a ring of `schema` stored with `strings`
    /// (each batch conformed to it as [`Writer::write`] does).
    pub fn new(
        schema: &Schema,
        batches: &[RecordBatch],
        strings: StringLayout,
    ) -> Result<Self, CreateError> {
        let stored = Arc::new(storage_schema(schema, strings));
        let mut encoder = SlotEncoder::new(&stored).map_err(CreateError::Schema)?;
        let slots = batches
            .iter()
            .enumerate()
            .map(|(index, batch)| {
                let fail = |source| CreateError::Batch { index, source };
                let batch = if batch.schema_ref().fields() == stored.fields() {
                    Cow::Borrowed(batch)
                } else {
                    let b = foreign::conform(batch, &stored).map_err(|e| fail(mismatch(e)))?;
                    Cow::Owned(b)
                };
                let buffers = encoder
                    .encode(&batch)
                    .map_err(|e| fail(WriteError::Encode(e)))?;
                Ok(EncodedSlot {
                    len: codec::encoded_len(&buffers) as u64,
                    buffers,
                    rows: batch.num_rows() as u64,
                })
            })
            .collect::<Result<_, CreateError>>()?;
        Ok(Self {
            schema: Arc::unwrap_or_clone(stored),
            slots,
        })
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Encoded bytes of all batches: what the arena's slots will hold.
    pub fn bytes(&self) -> u64 {
        self.slots.iter().map(|s| s.len).sum()
    }

    /// Encoded bytes of the largest batch: the size of every slot.
    pub fn max_slot_bytes(&self) -> u64 {
        self.slots.iter().map(|s| s.len).max().unwrap_or(0)
    }

    /// The schema of the ring they are encoded for.
    pub fn schema(&self) -> &Schema {
        &self.schema
    }

    /// Creates arena `name` sized for these batches (see
    /// [`Writer::create_for_batches`] for which options are overridden) and
    /// writes them, seqs `1..=len`.
    pub fn write(self, name: &str, opts: &RingOptions) -> Result<(Writer, Written), CreateError> {
        let n = u32::try_from(self.slots.len().max(1)).map_err(|_| {
            CreateError::Ring(ringfeed_shm::CreateError::InvalidOptions(
                "more batches than a ring has slots (u32)",
            ))
        })?;
        let written = Written {
            batches: self.slots.len() as u64,
            bytes: self.bytes(),
            slot_bytes: self.max_slot_bytes(),
        };
        let ring = ringfeed_shm::RingOptions {
            slots: n,
            slot_bytes: written.slot_bytes.max(1),
            leases_per_reader: n,
            // Written once, never overwritten: no spare buffers needed.
            buffers: Some(n),
            on_full: OnFull::OverwriteOldest,
            ..opts.ring()
        };
        let mut w = Writer::create_stored(name, self.schema, &ring)?;
        for (index, slot) in self.slots.iter().enumerate() {
            let mut claim = w.ring.claim(slot.len).map_err(|e| CreateError::Batch {
                index,
                source: e.into(),
            })?;
            let n = codec::copy_into(&slot.buffers, claim.buf());
            debug_assert_eq!(n as u64, slot.len);
            claim.commit(slot.len, slot.rows, FORMAT_ARROW_IPC_V1);
        }
        Ok((w, written))
    }
}
