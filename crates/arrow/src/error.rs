//! Errors of the Arrow ring, one type per operation, and the one
//! [`ErrorKind`] they all map to.

use arrow_schema::ArrowError;

/// What kind of failure an error is: the one thing a binding matches on to
/// pick its exception or error code, without looking inside the error (or
/// importing `ringfeed-shm`). Every error type of this crate has a `kind()`.
///
/// ```
/// use ringfeed_arrow::{ErrorKind, Reader, StartAt};
/// # std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
/// let err = Reader::open("no-such-ring", StartAt::Latest).err().unwrap();
/// assert_eq!(err.kind(), ErrorKind::NotFound);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// A bad argument: an invalid arena name or ring option, a schema or
    /// batch that Arrow IPC cannot carry, foreign data that is not valid Arrow.
    InvalidArgument,
    /// No arena with that name exists.
    NotFound,
    /// An arena with that name exists already, or has a live writer.
    AlreadyExists,
    /// The arena belongs to another user, or the OS refused access.
    PermissionDenied,
    /// A batch does not match the ring's schema (and cannot be conformed to it).
    SchemaMismatch,
    /// A batch is larger than a slot, or a schema larger than the meta block.
    TooLarge,
    /// `Block` mode: the slowest reader did not make room in time.
    Timeout,
    /// No free buffer (all leased by readers) or no free reader row.
    Full,
    /// The reader fell behind and batches were overwritten; it goes on.
    Lagged,
    /// The writer's process died without closing the ring.
    WriterGone,
    /// The ring was closed and drained, or the writer is closed.
    Closed,
    /// The reader holds as many batches as the ring allows.
    TooManyLeases,
    /// The arena, its schema block or a slot failed validation.
    Corrupt,
    /// The handle was created before `fork()`; the parent process owns it.
    Forked,
    /// Anything else (I/O errors, no space in the shm directory, ...).
    Other,
}

impl ErrorKind {
    /// A stable lower-case name (`"not_found"`, ...), for logs and error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidArgument => "invalid_argument",
            Self::NotFound => "not_found",
            Self::AlreadyExists => "already_exists",
            Self::PermissionDenied => "permission_denied",
            Self::SchemaMismatch => "schema_mismatch",
            Self::TooLarge => "too_large",
            Self::Timeout => "timeout",
            Self::Full => "full",
            Self::Lagged => "lagged",
            Self::WriterGone => "writer_gone",
            Self::Closed => "closed",
            Self::TooManyLeases => "too_many_leases",
            Self::Corrupt => "corrupt",
            Self::Forked => "forked",
            Self::Other => "other",
        }
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

fn shm_create_kind(e: &ringfeed_shm::CreateError) -> ErrorKind {
    use ringfeed_shm::CreateError as E;
    match e {
        E::InvalidName { .. } | E::InvalidOptions(_) => ErrorKind::InvalidArgument,
        E::MetaTooLarge { .. } => ErrorKind::TooLarge,
        E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
        E::PermissionDenied { .. } | E::UnsafeFile { .. } => ErrorKind::PermissionDenied,
        _ => ErrorKind::Other,
    }
}

fn shm_open_kind(e: &ringfeed_shm::OpenError) -> ErrorKind {
    use ringfeed_shm::OpenError as E;
    match e {
        E::InvalidName { .. } => ErrorKind::InvalidArgument,
        E::NotFound { .. } => ErrorKind::NotFound,
        E::PermissionDenied { .. } | E::ForeignOwner { .. } | E::UnsafeFile { .. } => {
            ErrorKind::PermissionDenied
        }
        // The arena is being (re-)created: as if it were not there yet.
        E::StaleTable { .. } => ErrorKind::NotFound,
        E::Truncated { .. }
        | E::BadMagic { .. }
        | E::UnsupportedVersion { .. }
        | E::ForeignEndianness { .. }
        | E::UnknownFeatures { .. }
        | E::CorruptHeader { .. } => ErrorKind::Corrupt,
        E::ReaderTableFull { .. } => ErrorKind::Full,
        E::WriterAlive { .. } => ErrorKind::AlreadyExists,
        _ => ErrorKind::Other,
    }
}

fn claim_kind(e: &ringfeed_shm::ClaimError) -> ErrorKind {
    use ringfeed_shm::ClaimError as E;
    match e {
        E::TooLarge { .. } => ErrorKind::TooLarge,
        E::Timeout { .. } => ErrorKind::Timeout,
        E::AllLeased { .. } => ErrorKind::Full,
        E::Closed => ErrorKind::Closed,
        E::Forked => ErrorKind::Forked,
        _ => ErrorKind::Other,
    }
}

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
    /// [`crate::Writer::create_for_batches`]: one of the batches cannot be
    /// written (another schema, or arrow cannot encode it). No arena was made.
    #[error("batch {index} of the result cannot be written: {source}")]
    Batch {
        /// Its position in the slice given.
        index: usize,
        /// Why.
        source: WriteError,
    },
}

impl CreateError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Ring(e) => shm_create_kind(e),
            Self::Schema(_) => ErrorKind::InvalidArgument,
            Self::Batch { source, .. } => source.kind(),
        }
    }
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

impl OpenError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Ring(e) => shm_open_kind(e),
            Self::BadSchema(_) => ErrorKind::Corrupt,
        }
    }
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

impl WriteError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
            Self::BatchTooLarge { .. } => ErrorKind::TooLarge,
            Self::Full(e) => claim_kind(e),
            Self::Encode(_) => ErrorKind::InvalidArgument,
            Self::Closed => ErrorKind::Closed,
            Self::Forked => ErrorKind::Forked,
        }
    }
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

impl ReadError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Lagged { .. } => ErrorKind::Lagged,
            Self::WriterGone { .. } => ErrorKind::WriterGone,
            Self::Closed { .. } => ErrorKind::Closed,
            Self::TooManyLeases { .. } => ErrorKind::TooManyLeases,
            Self::Forked => ErrorKind::Forked,
            Self::Corrupt { .. } => ErrorKind::Corrupt,
        }
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use ringfeed_shm::{ClaimError, CreateError as ShmCreate, OpenError as ShmOpen};
    use std::collections::HashSet;
    use std::path::PathBuf;
    use std::time::Duration;

    fn path() -> PathBuf {
        PathBuf::from("/dev/shm/x")
    }

    fn io() -> std::io::Error {
        std::io::Error::other("disk on fire")
    }

    fn arrow() -> ArrowError {
        ArrowError::InvalidArgumentError("no".into())
    }

    /// Every variant of every error type, with the kind it must report.
    fn cases() -> Vec<(String, ErrorKind)> {
        use ErrorKind as K;
        let name = || "r".to_string();
        let create = [
            (
                ShmCreate::InvalidName {
                    name: name(),
                    reason: "bad",
                },
                K::InvalidArgument,
            ),
            (ShmCreate::InvalidOptions("bad"), K::InvalidArgument),
            (ShmCreate::MetaTooLarge { len: 9, cap: 1 }, K::TooLarge),
            (
                ShmCreate::AlreadyExists {
                    name: name(),
                    path: path(),
                    writer_alive: true,
                },
                K::AlreadyExists,
            ),
            (
                ShmCreate::NoSpace {
                    bytes: 1,
                    dir: path(),
                },
                K::Other,
            ),
            (
                ShmCreate::PermissionDenied { path: path() },
                K::PermissionDenied,
            ),
            (
                ShmCreate::Io {
                    path: path(),
                    source: io(),
                },
                K::Other,
            ),
        ];
        let open = [
            (
                ShmOpen::InvalidName {
                    name: name(),
                    reason: "bad",
                },
                K::InvalidArgument,
            ),
            (
                ShmOpen::NotFound {
                    name: name(),
                    path: path(),
                },
                K::NotFound,
            ),
            (
                ShmOpen::PermissionDenied { path: path() },
                K::PermissionDenied,
            ),
            (
                ShmOpen::ForeignOwner {
                    path: path(),
                    owner: 1,
                    me: 2,
                },
                K::PermissionDenied,
            ),
            (
                ShmOpen::Truncated {
                    path: path(),
                    len: 1,
                    expected: 2,
                },
                K::Corrupt,
            ),
            (ShmOpen::BadMagic { path: path() }, K::Corrupt),
            (
                ShmOpen::UnsupportedVersion {
                    path: path(),
                    found: 9,
                    supported: 1,
                },
                K::Corrupt,
            ),
            (ShmOpen::ForeignEndianness { path: path() }, K::Corrupt),
            (
                ShmOpen::UnknownFeatures {
                    path: path(),
                    bits: 1,
                },
                K::Corrupt,
            ),
            (
                ShmOpen::CorruptHeader {
                    path: path(),
                    what: "crc",
                },
                K::Corrupt,
            ),
            (
                ShmOpen::ReaderTableFull {
                    name: name(),
                    max_readers: 1,
                },
                K::Full,
            ),
            (
                ShmOpen::WriterAlive {
                    name: name(),
                    pid: 1,
                },
                K::AlreadyExists,
            ),
            (
                ShmOpen::Io {
                    path: path(),
                    source: io(),
                },
                K::Other,
            ),
        ];
        let write = || {
            vec![
                (
                    WriteError::SchemaMismatch { detail: "x".into() },
                    K::SchemaMismatch,
                ),
                (
                    WriteError::BatchTooLarge {
                        size: 2,
                        slot_bytes: 1,
                    },
                    K::TooLarge,
                ),
                (
                    WriteError::Full(ClaimError::Timeout {
                        waited: Duration::from_secs(1),
                        pid: 1,
                        cursor: 1,
                        needed: 2,
                    }),
                    K::Timeout,
                ),
                (
                    WriteError::Full(ClaimError::AllLeased { buffers: 3 }),
                    K::Full,
                ),
                (WriteError::Encode(arrow()), K::InvalidArgument),
                (WriteError::Closed, K::Closed),
                (WriteError::Forked, K::Forked),
                // Claim errors arrive through `From`, each with its own kind.
                (
                    ClaimError::TooLarge {
                        size: 2,
                        slot_bytes: 1,
                    }
                    .into(),
                    K::TooLarge,
                ),
                (ClaimError::Closed.into(), K::Closed),
                (ClaimError::Forked.into(), K::Forked),
            ]
        };
        let read = [
            (ReadError::Lagged { missed: 3 }, K::Lagged),
            (ReadError::WriterGone { name: name() }, K::WriterGone),
            (ReadError::Closed { name: name() }, K::Closed),
            (
                ReadError::TooManyLeases { held: 4, max: 4 },
                K::TooManyLeases,
            ),
            (ReadError::Forked, K::Forked),
            (
                ReadError::Corrupt {
                    seq: 1,
                    what: "x".into(),
                },
                K::Corrupt,
            ),
        ];
        let mut out: Vec<(String, ErrorKind)> = Vec::new();
        for (e, k) in create {
            let e = CreateError::Ring(e);
            out.push((e.to_string(), e.kind()));
            assert_eq!(e.kind(), k, "{e}");
        }
        let e = CreateError::Schema(arrow());
        assert_eq!(e.kind(), K::InvalidArgument);
        for (source, k) in write() {
            let e = CreateError::Batch { index: 0, source };
            assert_eq!(e.kind(), k, "{e}");
        }
        for (e, k) in open {
            let e = OpenError::Ring(e);
            out.push((e.to_string(), e.kind()));
            assert_eq!(e.kind(), k, "{e}");
        }
        let e = OpenError::BadSchema("x".into());
        assert_eq!(e.kind(), K::Corrupt);
        for (e, k) in write() {
            out.push((e.to_string(), e.kind()));
            assert_eq!(e.kind(), k, "{e}");
        }
        for (e, k) in read {
            out.push((e.to_string(), e.kind()));
            assert_eq!(e.kind(), k, "{e}");
        }
        // Shared-memory read errors keep their kind through `From`.
        let e: ReadError = ringfeed_shm::ReadError::Lagged { missed: 2 }.into();
        assert_eq!(e.kind(), K::Lagged);
        out
    }

    #[test]
    fn every_error_reports_its_kind_and_every_kind_is_reachable() {
        let seen: HashSet<ErrorKind> = cases().into_iter().map(|(_, k)| k).collect();
        use ErrorKind as K;
        let all = [
            K::InvalidArgument,
            K::NotFound,
            K::AlreadyExists,
            K::PermissionDenied,
            K::SchemaMismatch,
            K::TooLarge,
            K::Timeout,
            K::Full,
            K::Lagged,
            K::WriterGone,
            K::Closed,
            K::TooManyLeases,
            K::Corrupt,
            K::Forked,
            K::Other,
        ];
        for k in all {
            assert!(seen.contains(&k), "no error maps to {k:?}");
        }
        let names: HashSet<&str> = all.iter().map(|k| k.as_str()).collect();
        assert_eq!(names.len(), all.len(), "names are distinct");
        assert_eq!(K::NotFound.to_string(), "not_found");
    }
}
