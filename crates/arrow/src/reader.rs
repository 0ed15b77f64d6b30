//! [`Reader`] of Arrow record batches over a shared-memory ring, and the
//! [`Batch`]es it hands out.

use crate::codec;
use crate::error::{OpenError, ReadError};
use crate::writer::FORMAT_ARROW_IPC_V1;
use arrow_array::RecordBatch;
use arrow_buffer::Buffer;
use arrow_schema::SchemaRef;
use ringfeed_shm::{Lease, ReaderOptions, RingReader, StartAt, Validate};
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
///
/// By default ([`Validate::Trusted`]) a batch's structure is checked in
/// O(columns) and its values are trusted, because only the ring's writer can
/// have written them (`docs/layout.md`, "Trust model"). For a ring written by
/// a less trusted writer, ask for [`Validate::Full`]:
///
/// ```
/// # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
/// use ringfeed_arrow::{Reader, ReaderOptions, RingOptions, StartAt, Validate, Writer};
/// use arrow_array::record_batch;
/// let name = format!("doc-validate-{}", std::process::id());
/// let batch = record_batch!(("symbol", Utf8, ["BTC", "ETH"]))?;
/// let mut w = Writer::create(&name, &batch.schema(), RingOptions::default())?;
/// let opts = ReaderOptions { start: StartAt::Oldest, validate: Validate::Full, ..Default::default() };
/// let mut r = Reader::open_with(&name, opts)?;
/// w.write(&batch)?;
/// let got = r.read(std::time::Duration::from_secs(1))?.expect("a batch");
/// assert_eq!(got.num_rows(), 2);
/// assert_eq!(r.validation(), Validate::Full);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct Reader {
    ring: RingReader,
    schema: SchemaRef,
    validate: Validate,
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

    /// Attaches with full options (start position, spin budget, validation).
    /// `allow_foreign_owner` implies [`Validate::Full`]: another user's arena
    /// is not one only a trusted writer could write.
    pub fn open_with(name: &str, opts: ReaderOptions) -> Result<Self, OpenError> {
        let validate = if opts.allow_foreign_owner {
            Validate::Full
        } else {
            opts.validate
        };
        let ring = RingReader::open_with(name, opts)?;
        let schema =
            codec::decode_schema(&ring.meta()).map_err(|e| OpenError::BadSchema(e.to_string()))?;
        Ok(Self {
            ring,
            schema: Arc::new(schema),
            validate,
            done: false,
        })
    }

    /// How this reader validates batches.
    pub fn validation(&self) -> Validate {
        self.validate
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

    /// For event loops: `Ok(Some(fd))` to wait for readability before the next
    /// [`Reader::try_read`], or `Ok(None)` when it would not wait now. See
    /// [`RingReader::arm`].
    pub fn arm(&mut self) -> std::io::Result<Option<std::os::fd::RawFd>> {
        self.ring.arm()
    }

    /// Undoes [`Reader::arm`]. See [`RingReader::disarm`].
    pub fn disarm(&mut self) {
        self.ring.disarm()
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
        let batch = match self.validate {
            Validate::Full => codec::decode_validated(&self.schema, &buffer),
            // SAFETY: the trust model (docs/layout.md): the arena file is owned
            // by this user, writable by nobody else, mode 0400 once READY and
            // mapped read-only by every reader, so only its writer wrote this
            // payload (`Reader::open` refuses other arenas unless
            // `allow_foreign_owner`, which selects `Full`); that writer is a
            // `Writer`, which encodes only arrays validated when they were
            // built or imported (`foreign::import_array`). `decode` checks the
            // structure itself.
            _ => unsafe { codec::decode(&self.schema, &buffer) },
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{self, SlotEncoder};
    use crate::{RingOptions, Writer};
    use arrow_array::{ArrayRef, StringViewArray};

    /// A writer that puts a slot with a corrupt view in the ring (as a less
    /// trusted writer could): a `Full` reader refuses that batch with an
    /// error and reads on; every batch written properly arrives.
    #[test]
    fn full_validation_skips_a_corrupt_batch_and_reads_on() {
        let name = format!("reader-full-{}", std::process::id());
        let long = "a string longer than twelve bytes";
        let col: ArrayRef = Arc::new(StringViewArray::from_iter_values([long, long]));
        let batch = RecordBatch::try_from_iter([("s", col)]).unwrap();
        let mut w = Writer::create(&name, &batch.schema(), RingOptions::default()).unwrap();
        let opts = ReaderOptions {
            start: StartAt::Oldest,
            validate: Validate::Full,
            ..Default::default()
        };
        let mut r = Reader::open_with(&name, opts).unwrap();
        assert_eq!(r.validation(), Validate::Full);

        let mut enc = SlotEncoder::new(r.schema()).unwrap();
        let bufs = enc.encode(&batch).unwrap();
        let mut slot = vec![0u8; codec::encoded_len(&bufs)];
        codec::copy_into(&bufs, &mut slot);
        let len = (long.len() as u32).to_le_bytes();
        let needle = [&len[..], &long.as_bytes()[..4]].concat();
        let at = slot
            .windows(8)
            .position(|x| x == needle.as_slice())
            .unwrap();
        slot[at + 12..at + 16].copy_from_slice(&100_000u32.to_le_bytes());

        let good1 = w.write(&batch).unwrap();
        let bad = w.ring_mut().publish(&slot, 2, FORMAT_ARROW_IPC_V1).unwrap();
        let good2 = w.write(&batch).unwrap();
        let t = Duration::from_secs(5);
        assert_eq!(r.read(t).unwrap().unwrap().seq(), good1);
        match r.read(t) {
            Err(ReadError::Corrupt { seq, what }) => {
                assert_eq!(seq, bad);
                assert!(what.contains("is invalid"), "{what}");
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        let b = r.read(t).unwrap().unwrap();
        assert_eq!(b.seq(), good2);
        assert_eq!(b.record_batch(), &batch);
        drop(w);
    }
}
