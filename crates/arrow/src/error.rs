//! Errors of the Arrow ring, one type per operation.

use arrow_schema::ArrowError;

/// Why [`crate::Writer::create`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The arena could not be created.
    #[error(transparent)]
    Ring(#[from] ringfeed_shm::CreateError),
    /// The schema cannot be encoded as Arrow IPC.
    #[error("schema cannot be sent over IPC: {0}")]
    Schema(ArrowError),
}

/// Why attaching to a ring failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The arena could not be opened or validated.
    #[error(transparent)]
    Ring(#[from] ringfeed_shm::OpenError),
    /// The arena's schema block does not hold a valid Arrow schema.
    #[error(
        "arena's schema block is not a valid Arrow IPC schema: {0}; remove it with `ringfeed rm`"
    )]
    BadSchema(String),
}

/// Why [`crate::Writer::write`] refused a batch. Nothing was published.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WriteError {
    /// The batch's schema is not the ring's.
    #[error("batch schema does not match the ring's: {detail}; cast the batch, or create a ring with this schema")]
    SchemaMismatch {
        /// The first difference found.
        detail: String,
    },
    /// The encoded batch does not fit a slot.
    #[error("encoded batch is {size} bytes but a slot holds {slot_bytes}: raise the ring's slot_bytes (RingOptions::slot_bytes; slot_bytes= in Python) or split the batch")]
    BatchTooLarge {
        /// Bytes needed.
        size: u64,
        /// Bytes per slot.
        slot_bytes: u64,
    },
    /// `Block` mode: the slowest reader did not make room in time.
    #[error(transparent)]
    Full(ringfeed_shm::ClaimError),
    /// Arrow could not encode the batch.
    #[error("batch cannot be encoded as Arrow IPC: {0}")]
    Encode(ArrowError),
    /// The writer is closed.
    #[error("the writer is closed")]
    Closed,
    /// The writer was created before `fork()`; the parent owns it.
    #[error("this writer was created before fork(): the parent process owns it; create a new one in the child")]
    Forked,
}

impl From<ringfeed_shm::ClaimError> for WriteError {
    fn from(e: ringfeed_shm::ClaimError) -> Self {
        match e {
            ringfeed_shm::ClaimError::TooLarge { size, slot_bytes } => {
                Self::BatchTooLarge { size, slot_bytes }
            }
            ringfeed_shm::ClaimError::Closed => Self::Closed,
            ringfeed_shm::ClaimError::Forked => Self::Forked,
            other => Self::Full(other),
        }
    }
}

/// Why a read failed. After `Lagged` and `TooManyLeases` the reader goes on.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The reader fell behind; it continues from the oldest batch still present.
    #[error("reader fell behind and missed {missed} batches; it continues from the oldest available one (read faster, or use a Block ring or more slots)")]
    Lagged {
        /// Batches lost.
        missed: u64,
    },
    /// The writer died; batches already read stay valid.
    #[error("the writer of ring {name:?} is gone (its process died without closing); batches already read stay valid")]
    WriterGone {
        /// Ring name.
        name: String,
    },
    /// The writer closed the ring and every batch was read.
    #[error("the writer closed ring {name:?} and every batch was read")]
    Closed {
        /// Ring name.
        name: String,
    },
    /// This reader holds as many batches as the ring allows.
    #[error("this reader holds {held} batches and the ring allows {max} per reader: drop old batches (DataFrames, arrays) first, or create the ring with more leases_per_reader")]
    TooManyLeases {
        /// Held.
        held: u32,
        /// Cap.
        max: u32,
    },
    /// The reader was opened before `fork()`; the parent owns it.
    #[error("this reader was opened before fork(): the parent process owns it; open a new reader in the child")]
    Forked,
    /// A slot failed its structural checks; it was skipped.
    #[error("batch {seq} is corrupt and was skipped: {what}")]
    Corrupt {
        /// Its seq.
        seq: u64,
        /// What was wrong.
        what: String,
    },
}

impl From<ringfeed_shm::ReadError> for ReadError {
    fn from(e: ringfeed_shm::ReadError) -> Self {
        use ringfeed_shm::ReadError as R;
        match e {
            R::Lagged { missed } => Self::Lagged { missed },
            R::WriterGone { name } => Self::WriterGone { name },
            R::Closed { name } => Self::Closed { name },
            R::TooManyLeases { held, max } => Self::TooManyLeases { held, max },
            R::Forked => Self::Forked,
            R::Corrupt { what, .. } => Self::Corrupt {
                seq: 0,
                what: what.to_string(),
            },
            other => Self::Corrupt {
                seq: 0,
                what: other.to_string(),
            },
        }
    }
}
