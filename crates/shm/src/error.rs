//! One error type per operation. Each message says what happened and what to do.

use std::path::PathBuf;
use std::time::Duration;

/// Why [`crate::RingWriter::create`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CreateError {
    /// The arena name is not acceptable.
    #[error("invalid arena name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The ring options are out of range.
    #[error("invalid ring options: {0}")]
    InvalidOptions(&'static str),
    /// The meta payload (the schema) does not fit the meta block.
    #[error("schema message is {len} bytes but the arena's meta block holds {cap}: raise RingOptions::meta_cap")]
    MetaTooLarge {
        /// Payload length.
        len: usize,
        /// Capacity.
        cap: usize,
    },
    /// An arena with this name exists already.
    #[error("arena {name:?} already exists at {path:?}{}", if *writer_alive { " and its writer is alive: another process (another daemon with the same arena prefix?) owns it, and force never replaces a live writer; stop that writer or use another name".to_string() } else { format!(" (its writer is gone: a leftover): remove it with `ringfeed rm {name}`, take it over with Writer::open_existing, or pass force") })]
    AlreadyExists {
        /// The name.
        name: String,
        /// Its file.
        path: PathBuf,
        /// Whether a live process holds its writer lock.
        writer_alive: bool,
    },
    /// A file at the arena's (or its reader table's) name must not be
    /// trusted: another user's (it may have been planted there), writable by
    /// others, or not a regular file. Never replaced, not even with `force`.
    #[error("refusing {path:?}: {why} (owner uid {owner}); remove it as its owner or root, or pick another arena name")]
    UnsafeFile {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
        /// Its owner.
        owner: u32,
    },
    /// The tmpfs has no room for the arena.
    #[error("no space for a {bytes}-byte arena in {dir:?}: free /dev/shm (see `ringfeed inspect`), or lower slots, slot_bytes or max_readers")]
    NoSpace {
        /// Bytes requested.
        bytes: u64,
        /// Directory.
        dir: PathBuf,
    },
    /// The directory refused us.
    #[error("permission denied creating {path:?}")]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },
    /// Another I/O failure.
    #[error("creating arena file {path:?} failed: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why attaching to an arena (as reader, or as a writer taking over) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The arena name is not acceptable.
    #[error("invalid arena name {name:?}: {reason}")]
    InvalidName {
        /// The name given.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// No arena with this name exists.
    #[error("no arena named {name:?} ({path:?} does not exist): start its writer first; `ringfeed inspect` lists the arenas that exist")]
    NotFound {
        /// The name.
        name: String,
        /// The path looked at.
        path: PathBuf,
    },
    /// The OS refused access.
    #[error(
        "permission denied opening {path:?}: arenas are mode 0600 and readable only by their owner"
    )]
    PermissionDenied {
        /// The path.
        path: PathBuf,
    },
    /// The arena belongs to another user.
    #[error("arena {path:?} belongs to uid {owner}, not to you (uid {me}): run as its owner")]
    ForeignOwner {
        /// The path.
        path: PathBuf,
        /// Owner uid.
        owner: u32,
        /// Our euid.
        me: u32,
    },
    /// The file is writable by other users, or not a regular file.
    #[error("refusing {path:?}: {why}; ringfeed creates arenas mode 0600/0400 owned by their user: remove it with `ringfeed rm` and re-create it")]
    UnsafeFile {
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        why: &'static str,
    },
    /// The reader table beside the arena belongs to another instance of it:
    /// the arena is being (re-)created right now, or the table is a leftover.
    #[error("reader table {path:?} belongs to another instance of the arena (it is being re-created): retry in a moment, or re-create the arena")]
    StaleTable {
        /// The table's path.
        path: PathBuf,
    },
    /// The file is shorter than its header says.
    #[error("arena {path:?} is truncated: {len} bytes, expected {expected}; remove it with `ringfeed rm`")]
    Truncated {
        /// The path.
        path: PathBuf,
        /// Actual length.
        len: u64,
        /// Expected length.
        expected: u64,
    },
    /// The file is not a ringfeed arena.
    #[error("{path:?} is not a ringfeed arena (bad magic)")]
    BadMagic {
        /// The path.
        path: PathBuf,
    },
    /// The layout major version is not ours.
    #[error("arena {path:?} has layout version {found}, this build reads version {supported}: use a matching ringfeed version")]
    UnsupportedVersion {
        /// The path.
        path: PathBuf,
        /// Found major.
        found: u16,
        /// Supported major.
        supported: u16,
    },
    /// The arena was written on a machine of the other byte order.
    #[error("arena {path:?} was created with the other byte order")]
    ForeignEndianness {
        /// The path.
        path: PathBuf,
    },
    /// The arena needs features this build does not have.
    #[error(
        "arena {path:?} requires features {bits:#x} this build does not know: upgrade ringfeed"
    )]
    UnknownFeatures {
        /// The path.
        path: PathBuf,
        /// Unknown required bits.
        bits: u64,
    },
    /// A header field is inconsistent.
    #[error("arena {path:?} has a corrupt header ({what}); remove it with `ringfeed rm`")]
    CorruptHeader {
        /// The path.
        path: PathBuf,
        /// Which check failed.
        what: &'static str,
    },
    /// Every reader row is taken by a live reader.
    #[error("arena {name:?} already has {max_readers} live readers: close one, or create the ring with a larger max_readers")]
    ReaderTableFull {
        /// The name.
        name: String,
        /// Rows in the table.
        max_readers: u32,
    },
    /// A live writer holds the arena (only when taking over).
    #[error("arena {name:?} still has a live writer (pid {pid}): only one writer at a time")]
    WriterAlive {
        /// The name.
        name: String,
        /// Pid recorded by that writer (diagnostic).
        pid: u32,
    },
    /// Another I/O failure.
    #[error("opening arena {path:?} failed: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why the writer could not get a buffer for the next batch.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClaimError {
    /// The payload is larger than one buffer. Nothing was written.
    #[error("batch needs {size} bytes but a slot holds {slot_bytes}: raise RingOptions::slot_bytes (or split the batch)")]
    TooLarge {
        /// Bytes needed.
        size: u64,
        /// Bytes per buffer.
        slot_bytes: u64,
    },
    /// `Block` mode: the slowest reader did not catch up in time.
    #[error("ring full for {waited:?}: reader pid {pid} is at seq {cursor}, the writer needs it past {needed}; it is stuck or slow (use OverwriteOldest to never block)")]
    Timeout {
        /// How long the writer waited.
        waited: Duration,
        /// Pid of the slowest reader.
        pid: u32,
        /// Its cursor.
        cursor: u64,
        /// The cursor it must exceed.
        needed: u64,
    },
    /// Every free buffer is leased by readers (they hold more batches than the ring was sized for).
    #[error("all {buffers} buffers are leased by readers: readers should drop old batches, or create the ring with more leases_per_reader")]
    AllLeased {
        /// Buffers in the pool.
        buffers: u32,
    },
    /// The writer was closed.
    #[error("the writer is closed")]
    Closed,
    /// This handle was inherited across `fork()`; the parent owns it.
    #[error("this writer was created before fork(): the parent process owns it; create a new one in the child")]
    Forked,
    /// The reader table was truncated by another process and could not be rebuilt.
    #[error("the reader table {path:?} was truncated by another process and rebuilding it failed ({source}): close this writer and re-create the ring")]
    TableLost {
        /// The table's path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Why a read failed. The reader stays usable after `Lagged` and `TooManyLeases`.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReadError {
    /// The writer overwrote batches this reader had not read; it continues from the oldest still present.
    #[error("reader fell behind and missed {missed} batches; it continues from the oldest available one (read faster, or use a Block ring or more slots)")]
    Lagged {
        /// Batches lost.
        missed: u64,
    },
    /// The writer process died (its lock is gone) and nothing is left to read.
    #[error("the writer of arena {name:?} is gone (process died without closing); batches already read stay valid")]
    WriterGone {
        /// Arena name.
        name: String,
    },
    /// The writer closed the ring and every batch has been read.
    #[error("the writer closed arena {name:?} and every batch was read")]
    Closed {
        /// Arena name.
        name: String,
    },
    /// This reader already holds as many leases as the ring allows.
    #[error("this reader holds {held} batches, the ring allows {max} per reader: drop old batches (DataFrames/arrays) first, or create the ring with more leases_per_reader")]
    TooManyLeases {
        /// Leases held.
        held: u32,
        /// The cap.
        max: u32,
    },
    /// This reader was inherited across `fork()`; the parent owns it.
    #[error("this reader was opened before fork(): the parent process owns it; open a new reader in the child")]
    Forked,
    /// The arena's reader table was truncated by some process and the writer
    /// rebuilt it: this reader's row (and its pins) are gone.
    #[error("the reader table of arena {name:?} was truncated by another process and rebuilt: this reader is detached; open a new reader (batches already read may have been overwritten)")]
    Detached {
        /// Arena name.
        name: String,
    },
    /// A descriptor read from shared memory is out of bounds.
    #[error("corrupt descriptor in arena {name:?}: {what}")]
    Corrupt {
        /// Arena name.
        name: String,
        /// Which check failed.
        what: &'static str,
    },
}
