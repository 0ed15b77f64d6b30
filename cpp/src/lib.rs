//! The C++ binding of ringfeed: a small [cxx] bridge, built as a static
//! library that CMake links.
//!
//! C++ code does not use these items directly: it includes the hand-written
//! header `include/ringfeed/ringfeed.hpp`, whose move-only RAII classes
//! (`ringfeed::Writer`, `ringfeed::Reader`, `ringfeed::Batch`) wrap the opaque
//! types below and turn errors into typed C++ exceptions.
//!
//! Rules this module keeps:
//! - Every bridge function runs inside [`guard`]: a panic becomes an error
//!   (`ringfeed::Error` with kind `Panic` in C++), never an unwind across the
//!   bridge.
//! - An error's message is the Rust `Display` text; its category goes through
//!   a thread-local that the header reads right after catching (`cxx` only
//!   carries the message).
//! - Batches are exported through the Arrow C Data Interface with the leased
//!   arena buffers inside the exported arrays' private data: the slot stays
//!   pinned until the consumer calls `release`, whatever happened to the
//!   `Reader` or `Batch` meanwhile.
//!
//! [cxx]: https://cxx.rs

use arrow_array::builder::make_view;
use arrow_array::ffi::{from_ffi, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{
    Array, ArrayRef, Float64Array, RecordBatch, RecordBatchIterator, StringViewArray, StructArray,
    TimestampNanosecondArray,
};
use arrow_buffer::{ArrowNativeType, Buffer, ScalarBuffer};
use arrow_data::ArrayData;
use arrow_schema::{DataType, Schema, SchemaRef};
use ringfeed_arrow::StartAt;
use ringfeed_arrow::{OnFull, ReadError, RingOptions, WriteError};
use ringfeed_client::protocol::{QuerySpec, TimeSpec};
use ringfeed_client::{Client, ClientError, Replay};
use std::cell::{Cell, RefCell};
use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::ptr::NonNull;
use std::sync::Arc;
use std::time::Duration;

#[cxx::bridge(namespace = "ringfeed::ffi")]
mod ffi {
    /// Error categories; `ringfeed::ErrorKind` in the header mirrors them.
    #[derive(Debug)]
    enum ErrorKind {
        /// Anything not listed below (I/O, no space, ...).
        Other,
        /// A bad argument: an invalid name or option, columns of different lengths.
        InvalidArgument,
        /// No ring with that name.
        NotFound,
        /// A ring with that name exists already, or has a live writer.
        AlreadyExists,
        /// The arena belongs to someone else or the OS refused access.
        PermissionDenied,
        /// The batch does not match the ring's schema, or a column is not of the type asked for.
        SchemaMismatch,
        /// The batch is larger than a slot (or the schema larger than the meta block).
        TooLarge,
        /// Block mode: the slowest reader did not catch up in time.
        Timeout,
        /// No free buffer or reader row.
        Full,
        /// The reader fell behind; the detail is the number of batches missed.
        Lagged,
        /// The writer's process died.
        WriterGone,
        /// The ring was closed (and drained), or the writer is closed.
        Closed,
        /// This reader holds as many batches as the ring allows.
        TooManyLeases,
        /// The arena or a slot failed validation.
        Corrupt,
        /// Rust code panicked; the panic was caught at the bridge.
        Panic,
        /// No daemon listens on the socket, or the connection to it broke.
        Connect,
        /// The daemon refused the request; `last_error_daemon_kind` says why.
        Daemon,
    }

    /// Ring sizing and policy (see `ringfeed::RingOptions` in the header).
    struct RingConfig {
        slots: u32,
        slot_bytes: u64,
        max_readers: u32,
        leases_per_reader: u32,
        /// 0: the default D + R·P + 1.
        buffers: u32,
        /// Negative: overwrite the oldest batch when full; else block up to this many ms.
        block_ms: i64,
        meta_cap: u32,
        force: bool,
    }

    /// Where a new reader starts.
    enum Start {
        Oldest,
        Latest,
        Next,
    }

    /// Reader options.
    struct ReaderConfig {
        start: Start,
        spin_us: u64,
        allow_foreign_owner: bool,
    }

    /// The C++ element type a fixed-width column is read as.
    enum Physical {
        I8,
        I16,
        I32,
        I64,
        U8,
        U16,
        U32,
        U64,
        F32,
        F64,
    }

    /// A fixed-width column: addresses inside the arena, offset already applied to `values`.
    struct FixedView {
        values: usize,
        len: usize,
        /// Validity bitmap address, 0 when the column has no nulls.
        validity: usize,
        /// Bit offset of row 0 in the validity bitmap.
        validity_offset: usize,
        null_count: usize,
    }

    /// How a string column is laid out.
    enum StringLayout {
        Utf8,
        LargeUtf8,
        Utf8View,
    }

    /// A string column: offsets (Utf8, LargeUtf8; offset applied) or 16-byte views (Utf8View).
    struct StringsView {
        layout: StringLayout,
        len: usize,
        offsets_or_views: usize,
        /// Utf8/LargeUtf8: the one value buffer. Utf8View: the variadic data buffers.
        data: Vec<usize>,
        validity: usize,
        validity_offset: usize,
        null_count: usize,
    }

    /// An address range `[begin, end)`.
    struct AddressRange {
        begin: usize,
        end: usize,
    }

    /// A snapshot of an arena, as `ringfeed inspect` shows it.
    struct ArenaStatus {
        state: String,
        write_seq: u64,
        writer_alive: bool,
        readers: u32,
        /// Leases held by all attached readers.
        leases: u32,
        /// Buffers pinned by at least one reader.
        leased_buffers: u32,
        slots: u32,
        buffers: u32,
        slot_bytes: u64,
    }

    /// Which part of a `TimeArg` is set.
    enum TimeKind {
        /// No time (an open end).
        Unset,
        /// `ns` since the Unix epoch.
        Nanos,
        /// `text`: "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" (UTC) or RFC 3339.
        Text,
    }

    /// A point in time for a query or replay.
    struct TimeArg {
        kind: TimeKind,
        ns: i64,
        text: String,
    }

    /// A bars query (`ringfeed::Query` in the header; `QuerySpec` in Rust).
    struct QueryArgs {
        dataset: String,
        /// Empty: all symbols.
        symbols: Vec<String>,
        timeframe: String,
        /// Bucket offset for resampling, e.g. "15m"; empty: none.
        offset: String,
        start: TimeArg,
        end: TimeArg,
        /// Columns besides ts and symbol; empty: all.
        fields: Vec<String>,
        has_limit: bool,
        limit: u64,
        from_end: bool,
    }

    #[namespace = ""]
    unsafe extern "C++" {
        include!("ringfeed/arrow_c.h");
        type ArrowSchema;
        type ArrowArray;
        type ArrowArrayStream;
    }

    extern "Rust" {
        type RustWriter;
        type RustReader;
        type RustBatch;

        fn last_error_kind() -> ErrorKind;
        fn last_error_detail() -> u64;
        fn last_error_daemon_kind() -> String;

        fn writer_create_bars(name: &str, cfg: &RingConfig) -> Result<Box<RustWriter>>;
        /// # Safety
        /// `schema` points to a valid, unreleased `ArrowSchema` (borrowed).
        unsafe fn writer_create(
            name: &str,
            schema: *const ArrowSchema,
            cfg: &RingConfig,
        ) -> Result<Box<RustWriter>>;
        #[allow(clippy::too_many_arguments)]
        fn write_bars(
            self: &mut RustWriter,
            ts: &[i64],
            symbol_data: &[u8],
            symbol_offsets: &[u32],
            open: &[f64],
            high: &[f64],
            low: &[f64],
            close: &[f64],
            volume: &[f64],
        ) -> Result<u64>;
        /// # Safety
        /// `array` points to a valid `ArrowArray` (moved: released on return);
        /// `schema` is null or a valid `ArrowSchema` (borrowed).
        unsafe fn write_arrow(
            self: &mut RustWriter,
            array: *mut ArrowArray,
            schema: *const ArrowSchema,
        ) -> Result<u64>;
        fn wait_for_readers(self: &mut RustWriter, n: usize, timeout_ms: u64) -> Result<bool>;
        fn sweep_dead_readers(self: &mut RustWriter) -> Result<u32>;
        fn next_seq(self: &RustWriter) -> u64;
        fn slot_bytes(self: &RustWriter) -> u64;
        fn name(self: &RustWriter) -> String;
        fn close(self: &mut RustWriter) -> Result<()>;
        /// # Safety
        /// `out` points to writable memory for one `ArrowSchema`.
        unsafe fn export_schema(self: &RustWriter, out: *mut ArrowSchema) -> Result<()>;

        fn reader_open(name: &str, cfg: &ReaderConfig) -> Result<Box<RustReader>>;
        fn read(self: &mut RustReader, timeout_ms: u64) -> Result<Box<RustBatch>>;
        fn try_read(self: &mut RustReader) -> Result<Box<RustBatch>>;
        fn cursor(self: &RustReader) -> u64;
        fn write_seq(self: &RustReader) -> u64;
        fn leases(self: &RustReader) -> u32;
        fn writer_alive(self: &RustReader) -> bool;
        fn name(self: &RustReader) -> String;
        /// # Safety
        /// `out` points to writable memory for one `ArrowSchema`.
        unsafe fn export_schema(self: &RustReader, out: *mut ArrowSchema) -> Result<()>;

        fn present(self: &RustBatch) -> bool;
        fn duplicate(self: &RustBatch) -> Box<RustBatch>;
        fn seq(self: &RustBatch) -> u64;
        fn ts_ns(self: &RustBatch) -> u64;
        fn num_rows(self: &RustBatch) -> usize;
        fn num_columns(self: &RustBatch) -> usize;
        fn column_name(self: &RustBatch, i: usize) -> Result<String>;
        fn column_type(self: &RustBatch, i: usize) -> Result<String>;
        fn column_index(self: &RustBatch, name: &str) -> Result<usize>;
        fn fixed(self: &RustBatch, i: usize, want: Physical) -> Result<FixedView>;
        fn strings(self: &RustBatch, i: usize) -> Result<StringsView>;
        fn arena_range(self: &RustBatch) -> AddressRange;
        fn is_zero_copy(self: &RustBatch) -> bool;
        /// # Safety
        /// `array` and `schema` point to writable memory for one struct each.
        unsafe fn export_array(
            self: &RustBatch,
            array: *mut ArrowArray,
            schema: *mut ArrowSchema,
        ) -> Result<()>;
        /// # Safety
        /// `out` points to writable memory for one `ArrowArrayStream`.
        unsafe fn export_stream(self: &RustBatch, out: *mut ArrowArrayStream) -> Result<()>;

        /// # Safety
        /// `out` points to writable memory for one `ArrowSchema`.
        unsafe fn export_bar_schema(out: *mut ArrowSchema) -> Result<()>;
        fn arena_status(name: &str) -> Result<ArenaStatus>;
        fn arena_remove(name: &str) -> Result<()>;
        fn panic_for_test(message: &str) -> Result<()>;

        type RustClient;
        type RustBars;
        type RustReplay;

        /// `socket` empty: `$RINGFEED_SOCKET`, else the daemon's default path.
        fn client_connect(socket: &str) -> Result<Box<RustClient>>;
        fn ping(self: &mut RustClient) -> Result<()>;
        fn stat(self: &mut RustClient) -> Result<String>;
        fn datasets(self: &mut RustClient) -> Result<String>;
        fn ready(self: &mut RustClient, dataset: &str) -> Result<String>;
        /// `dataset` empty: all; `before` empty: before today.
        fn write_down(
            self: &mut RustClient,
            dataset: &str,
            before: &str,
            all: bool,
        ) -> Result<String>;
        /// `symbol` empty: every symbol.
        fn delete_range(
            self: &mut RustClient,
            dataset: &str,
            symbol: &str,
            start: &TimeArg,
            end: &TimeArg,
        ) -> Result<String>;
        fn bars(self: &mut RustClient, q: &QueryArgs) -> Result<Box<RustBars>>;
        fn subscribe(
            self: &mut RustClient,
            dataset: &str,
            timeframe: &str,
            start: Start,
        ) -> Result<Box<RustReader>>;
        fn replay(
            self: &mut RustClient,
            dataset: &str,
            timeframe: &str,
            start: &TimeArg,
            symbols: &Vec<String>,
        ) -> Result<Box<RustReplay>>;
        /// # Safety
        /// `array` points to a valid `ArrowArray` (moved: released on return);
        /// `schema` points to a valid `ArrowSchema` (borrowed).
        unsafe fn append_arrow(
            self: &mut RustClient,
            dataset: &str,
            array: *mut ArrowArray,
            schema: *const ArrowSchema,
        ) -> Result<u64>;
        #[allow(clippy::too_many_arguments)]
        fn append_bars(
            self: &mut RustClient,
            dataset: &str,
            ts: &[i64],
            symbol_data: &[u8],
            symbol_offsets: &[u32],
            open: &[f64],
            high: &[f64],
            low: &[f64],
            close: &[f64],
            volume: &[f64],
        ) -> Result<u64>;

        fn num_batches(self: &RustBars) -> usize;
        fn batch(self: &RustBars, i: usize) -> Result<Box<RustBatch>>;
        fn rows(self: &RustBars) -> u64;
        fn cached(self: &RustBars) -> bool;
        fn arena(self: &RustBars) -> String;
        /// # Safety
        /// `out` points to writable memory for one `ArrowArrayStream`.
        unsafe fn export_stream(self: &RustBars, out: *mut ArrowArrayStream) -> Result<()>;

        fn read(self: &mut RustReplay, timeout_ms: u64) -> Result<Box<RustBatch>>;
        fn seam(self: &RustReplay) -> u64;
        fn history_rows(self: &RustReplay) -> u64;
        fn in_history(self: &RustReplay) -> bool;
        fn live_name(self: &RustReplay) -> String;
    }
}

use ffi::{ErrorKind, Physical};

// The C structs and arrow-rs's `#[repr(C)]` mirrors must agree (64-bit layout).
const _: () = assert!(std::mem::size_of::<FFI_ArrowArray>() == 80);
const _: () = assert!(std::mem::size_of::<FFI_ArrowSchema>() == 72);
const _: () = assert!(std::mem::size_of::<FFI_ArrowArrayStream>() == 40);

// ---------------------------------------------------------------------------
// Errors and the panic guard.

/// An error on its way to C++: a category and the Rust message.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    detail: u64,
    /// The daemon's machine-readable kind (`unknown_dataset`, ...), for `ErrorKind::Daemon`.
    daemon_kind: String,
    message: String,
}

impl Error {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            detail: 0,
            daemon_kind: String::new(),
            message: message.into(),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

thread_local! {
    static LAST_ERROR: Cell<(ErrorKind, u64)> = const { Cell::new((ErrorKind::Other, 0)) };
    static LAST_DAEMON_KIND: RefCell<String> = const { RefCell::new(String::new()) };
}

fn last_error_kind() -> ErrorKind {
    LAST_ERROR.with(|c| c.get().0)
}

fn last_error_detail() -> u64 {
    LAST_ERROR.with(|c| c.get().1)
}

fn last_error_daemon_kind() -> String {
    LAST_DAEMON_KIND.with(|k| k.borrow().clone())
}

/// Runs `f`, turning a panic into an `Error` of kind `Panic`, and records the
/// kind of any error for the header to pick up after `cxx` throws it.
fn guard<T>(f: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    let result = match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let what = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic payload".into());
            Err(Error::new(
                ErrorKind::Panic,
                format!("internal error (a Rust panic, caught at the C++ bridge): {what}"),
            ))
        }
    };
    if let Err(e) = &result {
        LAST_ERROR.with(|c| c.set((e.kind, e.detail)));
        LAST_DAEMON_KIND.with(|k| k.borrow_mut().clone_from(&e.daemon_kind));
    }
    result
}

impl From<ringfeed_shm::CreateError> for Error {
    fn from(e: ringfeed_shm::CreateError) -> Self {
        use ringfeed_shm::CreateError as E;
        let kind = match &e {
            E::InvalidName { .. } | E::InvalidOptions(_) => ErrorKind::InvalidArgument,
            E::MetaTooLarge { .. } => ErrorKind::TooLarge,
            E::AlreadyExists { .. } => ErrorKind::AlreadyExists,
            E::PermissionDenied { .. } => ErrorKind::PermissionDenied,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ringfeed_arrow::CreateError> for Error {
    fn from(e: ringfeed_arrow::CreateError) -> Self {
        match e {
            ringfeed_arrow::CreateError::Ring(r) => r.into(),
            other => Error::new(ErrorKind::InvalidArgument, other.to_string()),
        }
    }
}

impl From<ringfeed_shm::OpenError> for Error {
    fn from(e: ringfeed_shm::OpenError) -> Self {
        use ringfeed_shm::OpenError as E;
        let kind = match &e {
            E::InvalidName { .. } => ErrorKind::InvalidArgument,
            E::NotFound { .. } => ErrorKind::NotFound,
            E::PermissionDenied { .. } | E::ForeignOwner { .. } => ErrorKind::PermissionDenied,
            E::Truncated { .. }
            | E::BadMagic { .. }
            | E::UnsupportedVersion { .. }
            | E::ForeignEndianness { .. }
            | E::UnknownFeatures { .. }
            | E::CorruptHeader { .. } => ErrorKind::Corrupt,
            E::ReaderTableFull { .. } => ErrorKind::Full,
            E::WriterAlive { .. } => ErrorKind::AlreadyExists,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ringfeed_arrow::OpenError> for Error {
    fn from(e: ringfeed_arrow::OpenError) -> Self {
        match e {
            ringfeed_arrow::OpenError::Ring(r) => r.into(),
            other => Error::new(ErrorKind::Corrupt, other.to_string()),
        }
    }
}

impl From<WriteError> for Error {
    fn from(e: WriteError) -> Self {
        let kind = match &e {
            WriteError::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
            WriteError::BatchTooLarge { .. } => ErrorKind::TooLarge,
            WriteError::Full(ringfeed_shm::ClaimError::Timeout { .. }) => ErrorKind::Timeout,
            WriteError::Full(_) => ErrorKind::Full,
            WriteError::Encode(_) => ErrorKind::InvalidArgument,
            WriteError::Closed => ErrorKind::Closed,
            _ => ErrorKind::Other,
        };
        Error::new(kind, e.to_string())
    }
}

impl From<ReadError> for Error {
    fn from(e: ReadError) -> Self {
        let (kind, detail) = match &e {
            ReadError::Lagged { missed } => (ErrorKind::Lagged, *missed),
            ReadError::WriterGone { .. } => (ErrorKind::WriterGone, 0),
            ReadError::Closed { .. } => (ErrorKind::Closed, 0),
            ReadError::TooManyLeases { .. } => (ErrorKind::TooManyLeases, 0),
            ReadError::Corrupt { .. } => (ErrorKind::Corrupt, 0),
            _ => (ErrorKind::Other, 0),
        };
        Error {
            kind,
            detail,
            daemon_kind: String::new(),
            message: e.to_string(),
        }
    }
}

fn closed_writer() -> Error {
    Error::new(
        ErrorKind::Closed,
        "the writer is closed (Writer::close was called)",
    )
}

// ---------------------------------------------------------------------------
// Raw pointers from C++.

/// Borrows the schema behind `ptr`.
///
/// # Safety
/// `ptr` is null or points to an `ArrowSchema` that stays valid for `'a`.
unsafe fn borrow_schema<'a>(ptr: *const ffi::ArrowSchema) -> Result<&'a FFI_ArrowSchema, Error> {
    // SAFETY: the C struct and `FFI_ArrowSchema` have the same `#[repr(C)]`
    // layout (size asserted above); validity of `ptr` is the caller's promise.
    let schema = unsafe { ptr.cast::<FFI_ArrowSchema>().as_ref() }
        .ok_or_else(|| Error::new(ErrorKind::InvalidArgument, "ArrowSchema pointer is null"))?;
    if schema.release().is_none() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "ArrowSchema is released (its release callback is null)",
        ));
    }
    Ok(schema)
}

/// Moves the array behind `ptr` out (leaving a released one behind), so that
/// it is released exactly once, when the result is dropped.
///
/// # Safety
/// `ptr` is null or points to a valid `ArrowArray` (maybe released).
unsafe fn take_array(ptr: *mut ffi::ArrowArray) -> Result<FFI_ArrowArray, Error> {
    if ptr.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "ArrowArray pointer is null",
        ));
    }
    // SAFETY: `ptr` is non-null and valid (the caller's promise), and the C
    // struct and `FFI_ArrowArray` share layout (size asserted above);
    // `from_raw` moves the struct out and marks the original released.
    let c_array = unsafe { FFI_ArrowArray::from_raw(ptr.cast::<FFI_ArrowArray>()) };
    if c_array.is_released() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            "ArrowArray is released (its release callback is null)",
        ));
    }
    Ok(c_array)
}

/// Imports `array` as described by `schema`, then runs Arrow's full
/// validation before anything reads it: foreign bytes are checked here once,
/// because ring readers skip value validation.
///
/// # Safety
/// `array` follows the C Data Interface and matches `schema`.
unsafe fn import_checked(
    array: FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
) -> Result<ArrayData, Error> {
    // SAFETY: forwarded from this function's contract; everything the import
    // builds is checked with `validate_full` before any of it is read.
    let data = unsafe { from_ffi(array, schema) }.map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("cannot import the ArrowArray: {e}"),
        )
    })?;
    data.validate_full().map_err(|e| {
        Error::new(
            ErrorKind::InvalidArgument,
            format!("the ArrowArray is not valid Arrow data: {e}"),
        )
    })?;
    Ok(data)
}

/// Moves `value` into the C struct at `out`.
///
/// # Safety
/// `out` is null or points to writable memory for one `T`; whatever it held is
/// overwritten without being released (the C Data Interface convention for out-parameters).
unsafe fn write_out<T, C>(out: *mut C, value: T, what: &str) -> Result<(), Error> {
    if out.is_null() {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("{what} out-pointer is null"),
        ));
    }
    // SAFETY: non-null, writable for one `T` (the caller's promise; the C
    // struct and the arrow-rs mirror share layout). `write` does not drop the
    // old contents.
    unsafe { std::ptr::write(out.cast::<T>(), value) };
    Ok(())
}

fn export_schema_to(schema: &Schema, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
    let c = FFI_ArrowSchema::try_from(schema)
        .map_err(|e| Error::new(ErrorKind::Other, format!("cannot export schema: {e}")))?;
    // SAFETY: forwarded from the bridge function's `# Safety` contract.
    unsafe { write_out(out, c, "ArrowSchema") }
}

// ---------------------------------------------------------------------------
// Writer.

/// A ring writer owned by C++ (`ringfeed::Writer`).
pub struct RustWriter {
    inner: Option<ringfeed_arrow::Writer>,
    name: String,
    /// Whether the ring's schema is the bar schema (`write_bars` checks it once).
    is_bars: Option<bool>,
    /// Scratch for `write_bars`' symbol views, reused across calls.
    views: Vec<u128>,
}

fn ring_options(cfg: &ffi::RingConfig) -> RingOptions {
    RingOptions {
        slots: cfg.slots,
        slot_bytes: cfg.slot_bytes,
        max_readers: cfg.max_readers,
        leases_per_reader: cfg.leases_per_reader,
        buffers: (cfg.buffers != 0).then_some(cfg.buffers),
        on_full: match u64::try_from(cfg.block_ms) {
            Ok(ms) => OnFull::Block(Duration::from_millis(ms)),
            Err(_) => OnFull::OverwriteOldest,
        },
        meta_cap: cfg.meta_cap,
        force: cfg.force,
        // Today's behaviour (`write_arrow` checks column types exactly);
        // views by default once it goes through `ringfeed_arrow::foreign`.
        strings: ringfeed_arrow::StringLayout::AsGiven,
    }
}

fn create(name: &str, schema: &Schema, cfg: &ffi::RingConfig) -> Result<Box<RustWriter>, Error> {
    let w = ringfeed_arrow::Writer::create(name, schema, ring_options(cfg))?;
    Ok(Box::new(RustWriter {
        inner: Some(w),
        name: name.to_string(),
        is_bars: None,
        views: Vec::new(),
    }))
}

fn writer_create_bars(name: &str, cfg: &ffi::RingConfig) -> Result<Box<RustWriter>, Error> {
    guard(|| create(name, &ringfeed_arrow::ohlcv_schema(), cfg))
}

/// # Safety
/// `schema` is null or points to a valid `ArrowSchema`, borrowed for the call.
unsafe fn writer_create(
    name: &str,
    schema: *const ffi::ArrowSchema,
    cfg: &ffi::RingConfig,
) -> Result<Box<RustWriter>, Error> {
    guard(|| {
        // SAFETY: forwarded from this function's contract.
        let c = unsafe { borrow_schema(schema) }?;
        let schema = Schema::try_from(c).map_err(|e| {
            Error::new(
                ErrorKind::InvalidArgument,
                format!("ArrowSchema is not a record batch schema (a struct): {e}"),
            )
        })?;
        create(name, &schema, cfg)
    })
}

/// The first difference between the ring's columns and a batch's (names and types).
fn column_mismatch(ring: &Schema, batch: &Schema) -> Option<String> {
    if ring.fields().len() != batch.fields().len() {
        return Some(format!(
            "{} columns expected, batch has {}",
            ring.fields().len(),
            batch.fields().len()
        ));
    }
    ring.fields()
        .iter()
        .zip(batch.fields())
        .find(|(a, b)| a.name() != b.name() || a.data_type() != b.data_type())
        .map(|(a, b)| {
            format!(
                "column {:?}: expected {:?} {}, batch has {:?} {}",
                a.name(),
                a.name(),
                a.data_type(),
                b.name(),
                b.data_type()
            )
        })
}

fn mismatch(detail: String) -> Error {
    Error::from(WriteError::SchemaMismatch { detail })
}

impl RustWriter {
    fn writer(&mut self) -> Result<&mut ringfeed_arrow::Writer, Error> {
        self.inner.as_mut().ok_or_else(closed_writer)
    }

    /// Whether the ring has the bar schema (checked once, then cached).
    fn check_bars(&mut self) -> Result<(), Error> {
        let w = self.inner.as_ref().ok_or_else(closed_writer)?;
        let ok = *self.is_bars.get_or_insert_with(|| {
            column_mismatch(&ringfeed_arrow::ohlcv_schema(), w.schema()).is_none()
        });
        if ok {
            return Ok(());
        }
        let d = column_mismatch(&ringfeed_arrow::ohlcv_schema(), w.schema()).unwrap_or_default();
        Err(mismatch(format!(
            "write_bars needs a ring of ohlcv_schema() (ts, symbol, open, high, low, close, volume); this ring differs: {d}"
        )))
    }

    #[allow(clippy::too_many_arguments)]
    fn write_bars(
        &mut self,
        ts: &[i64],
        symbol_data: &[u8],
        symbol_offsets: &[u32],
        open: &[f64],
        high: &[f64],
        low: &[f64],
        close: &[f64],
        volume: &[f64],
    ) -> Result<u64, Error> {
        guard(|| {
            self.check_bars()?;
            let RustWriter { inner, views, .. } = self;
            let w = inner.as_mut().ok_or_else(closed_writer)?;
            let cols = BarColumns {
                ts,
                symbol_data,
                symbol_offsets,
                open,
                high,
                low,
                close,
                volume,
            };
            with_bar_batch(w.schema().clone(), cols, views, |batch| Ok(w.write(batch)?))
        })
    }

    /// # Safety
    /// `array` points to a valid `ArrowArray`, which this call moves (it is
    /// released, or marked released, whatever the outcome); `schema` is null
    /// or points to a valid `ArrowSchema`, borrowed.
    unsafe fn write_arrow(
        &mut self,
        array: *mut ffi::ArrowArray,
        schema: *const ffi::ArrowSchema,
    ) -> Result<u64, Error> {
        guard(|| {
            // SAFETY: forwarded from this function's contract.
            let c_array = unsafe { take_array(array) }?;
            let w = self.writer()?;
            let ring_schema = w.schema().clone();
            let own;
            let c_schema = if schema.is_null() {
                own = FFI_ArrowSchema::try_from(ring_schema.as_ref()).map_err(|e| {
                    Error::new(ErrorKind::Other, format!("cannot export schema: {e}"))
                })?;
                &own
            } else {
                // SAFETY: forwarded from this function's contract.
                unsafe { borrow_schema(schema) }?
            };
            let batch_schema = Schema::try_from(c_schema).map_err(|e| {
                mismatch(format!(
                    "the ArrowSchema is not a record batch schema (a struct): {e}"
                ))
            })?;
            if let Some(d) = column_mismatch(&ring_schema, &batch_schema) {
                return Err(mismatch(d));
            }
            // SAFETY: the producer promises the array follows the C Data
            // Interface and matches `c_schema` (checked against the ring's above).
            let data = unsafe { import_checked(c_array, c_schema) }?;
            let batch = batch_from_struct(ring_schema, data)?;
            Ok(w.write(&batch)?)
        })
    }

    fn wait_for_readers(&mut self, n: usize, timeout_ms: u64) -> Result<bool, Error> {
        guard(|| {
            Ok(self
                .writer()?
                .ring_mut()
                .wait_for_readers(n, Duration::from_millis(timeout_ms)))
        })
    }

    fn sweep_dead_readers(&mut self) -> Result<u32, Error> {
        guard(|| Ok(self.writer()?.ring_mut().sweep_dead_readers(true)))
    }

    fn next_seq(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.ring().next_seq())
    }

    fn slot_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.slot_bytes())
    }

    fn name(&self) -> String {
        self.name.clone()
    }

    fn close(&mut self) -> Result<(), Error> {
        guard(|| {
            if let Some(w) = self.inner.take() {
                w.close();
            }
            Ok(())
        })
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowSchema`.
    unsafe fn export_schema(&self, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
        guard(|| {
            let w = self.inner.as_ref().ok_or_else(closed_writer)?;
            export_schema_to(w.schema(), out)
        })
    }
}

/// The plain columns of a bar batch, as C++ passes them (symbols flattened
/// into one UTF-8 buffer plus offsets).
struct BarColumns<'a> {
    ts: &'a [i64],
    symbol_data: &'a [u8],
    symbol_offsets: &'a [u32],
    open: &'a [f64],
    high: &'a [f64],
    low: &'a [f64],
    close: &'a [f64],
    volume: &'a [f64],
}

/// Builds a record batch of `schema` (the bar schema, or one with its names
/// and types) over `cols` without copying them, and hands it to `f`, which
/// must not keep any of its buffers (it writes or encodes them). `views` is
/// scratch space for the symbol views.
fn with_bar_batch<T>(
    schema: SchemaRef,
    cols: BarColumns<'_>,
    views: &mut Vec<u128>,
    f: impl FnOnce(&RecordBatch) -> Result<T, Error>,
) -> Result<T, Error> {
    let n = cols.ts.len();
    let lens = [
        ("ts", n),
        ("symbol", cols.symbol_offsets.len().saturating_sub(1)),
        ("open", cols.open.len()),
        ("high", cols.high.len()),
        ("low", cols.low.len()),
        ("close", cols.close.len()),
        ("volume", cols.volume.len()),
    ];
    if lens.iter().any(|&(_, k)| k != n) || cols.symbol_offsets.is_empty() {
        let list: Vec<String> = lens.iter().map(|(c, k)| format!("{c}={k}")).collect();
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("bar columns have different lengths ({})", list.join(", ")),
        ));
    }
    let tz = match schema.field(0).data_type() {
        DataType::Timestamp(_, tz) => tz.clone(),
        _ => None,
    };
    // Declared first, dropped last: checks that no borrowed buffer survives
    // this call. The columns borrow the C++ vectors (valid for the call).
    let scope = BorrowScope(Arc::new(Borrowed));
    // SAFETY: the arrays below and `batch` are locals of this function,
    // dropped before it returns (and before `scope`); `f` copies or encodes
    // their bytes and keeps none of them (its contract).
    let (fc, ts, sym) = unsafe {
        let fc = |v: &[f64]| -> ArrayRef { Arc::new(Float64Array::new(borrow(v, &scope), None)) };
        let ts = TimestampNanosecondArray::new(borrow(cols.ts, &scope), None).with_timezone_opt(tz);
        let sym = string_views(cols.symbol_data, cols.symbol_offsets, views, &scope)?;
        (fc, ts, sym)
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ts),
        Arc::new(sym),
        fc(cols.open),
        fc(cols.high),
        fc(cols.low),
        fc(cols.close),
        fc(cols.volume),
    ];
    let batch = RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::new(ErrorKind::SchemaMismatch, e.to_string()))?;
    f(&batch)
}

/// The owner of Arrow buffers that borrow the caller's memory for the length
/// of one bridge call (`write_bars`): no copy and no allocation per column.
struct Borrowed;

/// Checks, when the call ends (normally or by unwinding), that no buffer
/// borrowing the caller's memory is still alive. Declare it before the
/// borrowing arrays so that it is dropped after them.
struct BorrowScope(Arc<Borrowed>);

impl Drop for BorrowScope {
    fn drop(&mut self) {
        if Arc::strong_count(&self.0) != 1 {
            // Something kept a buffer over memory C++ owns and may free: going
            // on could read freed memory later. Nothing in the write path does
            // this; stop loudly if that ever changes.
            eprintln!("ringfeed-cpp: a borrowed buffer outlived write_bars; aborting");
            std::process::abort();
        }
    }
}

/// Wraps `v` as an Arrow buffer without copying (copies if `v` is misaligned).
///
/// # Safety
/// The result, and every clone of it, must be dropped before `v`'s memory is
/// freed or written: `scope` checks that when it is dropped.
unsafe fn borrow<T: ArrowNativeType>(v: &[T], scope: &BorrowScope) -> ScalarBuffer<T> {
    match NonNull::new(v.as_ptr().cast_mut().cast::<u8>()) {
        Some(p) if p.as_ptr().align_offset(std::mem::align_of::<T>()) == 0 => {
            // SAFETY: p..p+size_of_val(v) is `v`'s memory, readable for the
            // call; the caller keeps every clone from outliving it.
            let b = unsafe {
                Buffer::from_custom_allocation(p, std::mem::size_of_val(v), scope.0.clone())
            };
            ScalarBuffer::new(b, 0, v.len())
        }
        _ => ScalarBuffer::from(v.to_vec()),
    }
}

/// A `Utf8View` array of the strings `data[offsets[i]..offsets[i + 1]]`.
/// Strings of up to 12 bytes live in their views; longer ones point into
/// `data`, borrowed. One UTF-8 check over `data`, plus a char-boundary check
/// per offset, instead of one check per value. `views` is scratch space.
///
/// # Safety
/// As for [`borrow`]: the result must not outlive `data` or `views`' contents.
unsafe fn string_views(
    data: &[u8],
    offsets: &[u32],
    views: &mut Vec<u128>,
    scope: &BorrowScope,
) -> Result<StringViewArray, Error> {
    let bad = |what: String| Error::new(ErrorKind::InvalidArgument, format!("write_bars: {what}"));
    let text = std::str::from_utf8(data).map_err(|e| bad(format!("symbols are not UTF-8: {e}")))?;
    if offsets.first() != Some(&0) {
        return Err(bad("symbol offsets must start at 0".into()));
    }
    views.clear();
    views.reserve(offsets.len() - 1);
    let mut long = false;
    for (j, w) in offsets.windows(2).enumerate() {
        let (b, e) = (w[0] as usize, w[1] as usize);
        if b > e || e > data.len() || !text.is_char_boundary(b) || !text.is_char_boundary(e) {
            return Err(bad(format!(
                "symbol of row {j} has invalid offsets {b}..{e} (data has {} bytes)",
                data.len()
            )));
        }
        long |= e - b > 12;
        views.push(make_view(&data[b..e], 0, w[0]));
    }
    // SAFETY: forwarded from this function's contract.
    let view_buf = unsafe { borrow(views.as_slice(), scope) };
    let buffers: Vec<Buffer> = if long {
        // SAFETY: forwarded from this function's contract.
        vec![unsafe { borrow(data, scope) }.into_inner()]
    } else {
        Vec::new()
    };
    // SAFETY: every view was made by `make_view` from `data[b..e]`, a range
    // checked to lie inside `data` (buffer 0 whenever a view is not inline)
    // on UTF-8 char boundaries of a string checked to be UTF-8; no nulls.
    // That is everything `StringViewArray::try_new` would validate.
    Ok(unsafe { StringViewArray::new_unchecked(view_buf, buffers.into(), None) })
}

/// A record batch of `schema` from an imported struct array (one column per field).
fn batch_from_struct(schema: SchemaRef, data: ArrayData) -> Result<RecordBatch, Error> {
    if !matches!(data.data_type(), DataType::Struct(_)) {
        return Err(mismatch(format!(
            "the ArrowArray is a {}, not a struct array (one child per column)",
            data.data_type()
        )));
    }
    let array = StructArray::from(data);
    if array.null_count() != 0 {
        return Err(Error::new(
            ErrorKind::InvalidArgument,
            format!(
                "the struct ArrowArray has {} null rows; a record batch has none",
                array.null_count()
            ),
        ));
    }
    let (_, columns, _) = array.into_parts();
    RecordBatch::try_new(schema, columns)
        .map_err(|e| Error::new(ErrorKind::SchemaMismatch, e.to_string()))
}

// ---------------------------------------------------------------------------
// Reader.

/// A ring reader owned by C++ (`ringfeed::Reader`).
pub struct RustReader {
    inner: ringfeed_arrow::Reader,
}

fn reader_open(name: &str, cfg: &ffi::ReaderConfig) -> Result<Box<RustReader>, Error> {
    guard(|| {
        let start = match cfg.start {
            ffi::Start::Oldest => ringfeed_arrow::StartAt::Oldest,
            ffi::Start::Next => ringfeed_arrow::StartAt::Next,
            _ => ringfeed_arrow::StartAt::Latest,
        };
        let opts = ringfeed_arrow::ReaderOptions {
            start,
            spin: Duration::from_micros(cfg.spin_us),
            allow_foreign_owner: cfg.allow_foreign_owner,
        };
        Ok(Box::new(RustReader {
            inner: ringfeed_arrow::Reader::open_with(name, opts)?,
        }))
    })
}

impl RustReader {
    fn read(&mut self, timeout_ms: u64) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.read(Duration::from_millis(timeout_ms))?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    fn try_read(&mut self) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.try_read()?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    fn cursor(&self) -> u64 {
        self.inner.ring().cursor()
    }

    fn write_seq(&self) -> u64 {
        self.inner.ring().write_seq()
    }

    fn leases(&self) -> u32 {
        self.inner.ring().leases()
    }

    fn writer_alive(&self) -> bool {
        self.inner.ring().writer_alive()
    }

    fn name(&self) -> String {
        self.inner.ring().name().to_string()
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowSchema`.
    unsafe fn export_schema(&self, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
        guard(|| export_schema_to(self.inner.schema(), out))
    }
}

// ---------------------------------------------------------------------------
// Batch.

/// A batch read from a ring (or nothing, after a timeout), owned by C++.
/// It holds the slot's lease through its buffers.
pub struct RustBatch {
    inner: Option<ringfeed_arrow::Batch>,
}

fn no_batch() -> Error {
    Error::new(ErrorKind::InvalidArgument, "no batch (moved-from or empty)")
}

fn bitmap(data: &ArrayData) -> (usize, usize, usize) {
    match data.nulls() {
        Some(n) if n.null_count() > 0 => (n.buffer().as_ptr() as usize, n.offset(), n.null_count()),
        _ => (0, 0, 0),
    }
}

impl RustBatch {
    fn get(&self) -> Result<&ringfeed_arrow::Batch, Error> {
        self.inner.as_ref().ok_or_else(no_batch)
    }

    fn column(&self, i: usize) -> Result<(&str, &ArrayRef), Error> {
        let b = self.get()?;
        if i >= b.num_columns() {
            return Err(Error::new(
                ErrorKind::InvalidArgument,
                format!(
                    "column index {i} is out of range: the batch has {} columns",
                    b.num_columns()
                ),
            ));
        }
        Ok((b.schema_ref().field(i).name().as_str(), b.column(i)))
    }

    fn present(&self) -> bool {
        self.inner.is_some()
    }

    fn duplicate(&self) -> Box<RustBatch> {
        Box::new(RustBatch {
            inner: self.inner.clone(),
        })
    }

    fn seq(&self) -> u64 {
        self.inner.as_ref().map_or(0, |b| b.seq())
    }

    fn ts_ns(&self) -> u64 {
        self.inner.as_ref().map_or(0, |b| b.ts_ns())
    }

    fn num_rows(&self) -> usize {
        self.inner.as_ref().map_or(0, |b| b.num_rows())
    }

    fn num_columns(&self) -> usize {
        self.inner.as_ref().map_or(0, |b| b.num_columns())
    }

    fn column_name(&self, i: usize) -> Result<String, Error> {
        guard(|| Ok(self.column(i)?.0.to_string()))
    }

    fn column_type(&self, i: usize) -> Result<String, Error> {
        guard(|| Ok(self.column(i)?.1.data_type().to_string()))
    }

    fn column_index(&self, name: &str) -> Result<usize, Error> {
        guard(|| {
            let b = self.get()?;
            b.schema_ref().index_of(name).map_err(|_| {
                let names: Vec<&str> = b
                    .schema_ref()
                    .fields()
                    .iter()
                    .map(|f| f.name().as_str())
                    .collect();
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!("no column named {name:?}; the batch has {names:?}"),
                )
            })
        })
    }

    fn fixed(&self, i: usize, want: Physical) -> Result<ffi::FixedView, Error> {
        guard(|| {
            let (name, col) = self.column(i)?;
            let dt = col.data_type();
            use DataType as D;
            let (ok, width, cpp) = match want {
                Physical::I8 => (matches!(dt, D::Int8), 1, "int8_t"),
                Physical::I16 => (matches!(dt, D::Int16), 2, "int16_t"),
                Physical::I32 => (
                    matches!(dt, D::Int32 | D::Date32 | D::Time32(_)),
                    4,
                    "int32_t",
                ),
                Physical::I64 => (
                    matches!(
                        dt,
                        D::Int64 | D::Timestamp(_, _) | D::Date64 | D::Time64(_) | D::Duration(_)
                    ),
                    8,
                    "int64_t",
                ),
                Physical::U8 => (matches!(dt, D::UInt8), 1, "uint8_t"),
                Physical::U16 => (matches!(dt, D::UInt16), 2, "uint16_t"),
                Physical::U32 => (matches!(dt, D::UInt32), 4, "uint32_t"),
                Physical::U64 => (matches!(dt, D::UInt64), 8, "uint64_t"),
                Physical::F32 => (matches!(dt, D::Float32), 4, "float"),
                Physical::F64 => (matches!(dt, D::Float64), 8, "double"),
                _ => (false, 0, "an unknown type"),
            };
            if !ok {
                return Err(Error::new(
                    ErrorKind::SchemaMismatch,
                    format!("column {name:?} is {dt}, which cannot be read as {cpp}"),
                ));
            }
            let data = col.to_data();
            let values = data.buffers().first().ok_or_else(|| {
                Error::new(
                    ErrorKind::Corrupt,
                    format!("column {name:?} has no value buffer"),
                )
            })?;
            let (validity, validity_offset, null_count) = bitmap(&data);
            Ok(ffi::FixedView {
                values: values.as_ptr() as usize + data.offset() * width,
                len: data.len(),
                validity,
                validity_offset,
                null_count,
            })
        })
    }

    fn strings(&self, i: usize) -> Result<ffi::StringsView, Error> {
        guard(|| {
            let (name, col) = self.column(i)?;
            let data = col.to_data();
            let (validity, validity_offset, null_count) = bitmap(&data);
            let buf = |k: usize| data.buffers().get(k).map_or(0, |b| b.as_ptr() as usize);
            let (layout, offsets_or_views, values) = match col.data_type() {
                DataType::Utf8 => (
                    ffi::StringLayout::Utf8,
                    buf(0) + data.offset() * 4,
                    vec![buf(1)],
                ),
                DataType::LargeUtf8 => (
                    ffi::StringLayout::LargeUtf8,
                    buf(0) + data.offset() * 8,
                    vec![buf(1)],
                ),
                DataType::Utf8View => (
                    ffi::StringLayout::Utf8View,
                    buf(0) + data.offset() * 16,
                    data.buffers()[1..].iter().map(|b| b.as_ptr() as usize).collect(),
                ),
                other => {
                    return Err(Error::new(
                        ErrorKind::SchemaMismatch,
                        format!("column {name:?} is {other}, not a string column (Utf8, LargeUtf8 or Utf8View)"),
                    ))
                }
            };
            Ok(ffi::StringsView {
                layout,
                len: data.len(),
                offsets_or_views,
                data: values,
                validity,
                validity_offset,
                null_count,
            })
        })
    }

    fn arena_range(&self) -> ffi::AddressRange {
        self.inner
            .as_ref()
            .map_or(ffi::AddressRange { begin: 0, end: 0 }, |b| {
                let r = b.arena_range();
                ffi::AddressRange {
                    begin: r.start,
                    end: r.end,
                }
            })
    }

    fn is_zero_copy(&self) -> bool {
        self.inner.as_ref().is_some_and(|b| b.is_zero_copy())
    }

    /// # Safety
    /// `array` and `schema` point to writable memory for one struct each.
    unsafe fn export_array(
        &self,
        array: *mut ffi::ArrowArray,
        schema: *mut ffi::ArrowSchema,
    ) -> Result<(), Error> {
        guard(|| {
            let rb = self.get()?.record_batch().clone();
            if array.is_null() || schema.is_null() {
                return Err(Error::new(
                    ErrorKind::InvalidArgument,
                    "ArrowArray or ArrowSchema out-pointer is null",
                ));
            }
            let c_schema = FFI_ArrowSchema::try_from(rb.schema_ref().as_ref())
                .map_err(|e| Error::new(ErrorKind::Other, format!("cannot export schema: {e}")))?;
            // The exported buffers are clones of the leased ones: the lease
            // lives in the array's private data until its release callback runs.
            let c_array = FFI_ArrowArray::new(&StructArray::from(rb).to_data());
            // SAFETY: both pointers are non-null and writable (the caller's promise).
            unsafe {
                write_out(schema, c_schema, "ArrowSchema")?;
                write_out(array, c_array, "ArrowArray")
            }
        })
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowArrayStream`.
    unsafe fn export_stream(&self, out: *mut ffi::ArrowArrayStream) -> Result<(), Error> {
        guard(|| {
            let rb = self.get()?.record_batch().clone();
            let schema = rb.schema();
            let it = RecordBatchIterator::new(vec![Ok(rb)], schema);
            let stream = FFI_ArrowArrayStream::new(Box::new(it));
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(out, stream, "ArrowArrayStream") }
        })
    }
}

// ---------------------------------------------------------------------------
// Free functions.

/// # Safety
/// `out` points to writable memory for one `ArrowSchema`.
unsafe fn export_bar_schema(out: *mut ffi::ArrowSchema) -> Result<(), Error> {
    guard(|| export_schema_to(&ringfeed_arrow::ohlcv_schema(), out))
}

fn arena_status(name: &str) -> Result<ffi::ArenaStatus, Error> {
    guard(|| {
        let info = ringfeed_shm::inspect(name)?;
        Ok(ffi::ArenaStatus {
            state: info.state.to_string(),
            write_seq: info.write_seq,
            writer_alive: info.writer_alive,
            readers: info.readers.len() as u32,
            leases: info.readers.iter().map(|r| r.leases).sum(),
            leased_buffers: info.leased_buffers,
            slots: info.header.slots,
            buffers: info.header.buffers,
            slot_bytes: info.header.buffer_bytes,
        })
    })
}

fn arena_remove(name: &str) -> Result<(), Error> {
    guard(|| Ok(ringfeed_shm::remove(name)?))
}

fn panic_for_test(message: &str) -> Result<(), Error> {
    guard(|| panic!("{message}"))
}

// ---------------------------------------------------------------------------
// The daemon client.

impl From<ClientError> for Error {
    fn from(e: ClientError) -> Self {
        let message = e.to_string();
        match e {
            ClientError::Connect { .. } | ClientError::Io(_) => {
                Error::new(ErrorKind::Connect, message)
            }
            ClientError::Server { kind, .. } => Error {
                kind: ErrorKind::Daemon,
                detail: 0,
                daemon_kind: kind.to_string(),
                message,
            },
            // A replay's ring error: Closed, Lagged (with the count), ...
            ClientError::Read { source, .. } => Error {
                message,
                ..Error::from(source)
            },
            _ => Error::new(ErrorKind::Other, message),
        }
    }
}

/// A connection to `ringfeedd` owned by C++ (`ringfeed::Client`).
pub struct RustClient {
    inner: Client,
    /// Scratch for `append_bars`' symbol views, reused across calls.
    views: Vec<u128>,
}

fn client_connect(socket: &str) -> Result<Box<RustClient>, Error> {
    guard(|| {
        let path = (!socket.is_empty()).then(|| Path::new(socket));
        Ok(Box::new(RustClient {
            inner: Client::connect(path)?,
            views: Vec::new(),
        }))
    })
}

fn time_spec(t: &ffi::TimeArg) -> Option<TimeSpec> {
    match t.kind {
        ffi::TimeKind::Nanos => Some(TimeSpec::Nanos(t.ns)),
        ffi::TimeKind::Text => Some(TimeSpec::Text(t.text.clone())),
        _ => None,
    }
}

fn query_spec(q: &ffi::QueryArgs) -> QuerySpec {
    QuerySpec {
        dataset: q.dataset.clone(),
        symbols: q.symbols.clone(),
        timeframe: q.timeframe.clone(),
        offset: (!q.offset.is_empty()).then(|| q.offset.clone()),
        start: time_spec(&q.start),
        end: time_spec(&q.end),
        fields: (!q.fields.is_empty()).then(|| q.fields.clone()),
        limit: q
            .has_limit
            .then(|| usize::try_from(q.limit).unwrap_or(usize::MAX)),
        from_end: q.from_end,
    }
}

fn start_at(s: ffi::Start) -> StartAt {
    match s {
        ffi::Start::Oldest => StartAt::Oldest,
        ffi::Start::Latest => StartAt::Latest,
        _ => StartAt::Next,
    }
}

impl RustClient {
    fn ping(&mut self) -> Result<(), Error> {
        guard(|| Ok(self.inner.ping()?))
    }

    fn stat(&mut self) -> Result<String, Error> {
        guard(|| Ok(self.inner.stat()?))
    }

    fn datasets(&mut self) -> Result<String, Error> {
        guard(|| Ok(self.inner.datasets()?.to_string()))
    }

    fn ready(&mut self, dataset: &str) -> Result<String, Error> {
        guard(|| {
            Ok(
                serde_json::to_string(&self.inner.ready((!dataset.is_empty()).then_some(dataset))?)
                    .expect("serialisable"),
            )
        })
    }

    fn write_down(&mut self, dataset: &str, before: &str, all: bool) -> Result<String, Error> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        guard(|| {
            Ok(self
                .inner
                .write_down(opt(dataset).as_deref(), opt(before).as_deref(), all)?)
        })
    }

    fn delete_range(
        &mut self,
        dataset: &str,
        symbol: &str,
        start: &ffi::TimeArg,
        end: &ffi::TimeArg,
    ) -> Result<String, Error> {
        guard(|| {
            let spec = |t: &ffi::TimeArg, what: &str| {
                time_spec(t).ok_or_else(|| {
                    Error::new(
                        ErrorKind::InvalidArgument,
                        format!("delete needs an {what} time"),
                    )
                })
            };
            let (start, end) = (spec(start, "start")?, spec(end, "end")?);
            let symbol = (!symbol.is_empty()).then_some(symbol);
            Ok(self.inner.delete(dataset, symbol, start, end)?)
        })
    }

    fn bars(&mut self, q: &ffi::QueryArgs) -> Result<Box<RustBars>, Error> {
        guard(|| {
            Ok(Box::new(RustBars {
                inner: self.inner.bars(&query_spec(q))?,
            }))
        })
    }

    fn subscribe(
        &mut self,
        dataset: &str,
        timeframe: &str,
        start: ffi::Start,
    ) -> Result<Box<RustReader>, Error> {
        guard(|| {
            let inner = self.inner.subscribe(dataset, timeframe, start_at(start))?;
            Ok(Box::new(RustReader { inner }))
        })
    }

    // cxx passes `rust::Vec<rust::String>` as `&Vec`.
    #[allow(clippy::ptr_arg)]
    fn replay(
        &mut self,
        dataset: &str,
        timeframe: &str,
        start: &ffi::TimeArg,
        symbols: &Vec<String>,
    ) -> Result<Box<RustReplay>, Error> {
        guard(|| {
            let start = time_spec(start).ok_or_else(|| {
                Error::new(ErrorKind::InvalidArgument, "replay needs a start time")
            })?;
            let inner = self.inner.replay(dataset, timeframe, start, symbols)?;
            let live_name = inner.live().ring().name().to_string();
            Ok(Box::new(RustReplay { inner, live_name }))
        })
    }

    /// # Safety
    /// `array` points to a valid `ArrowArray`, which this call moves (it is
    /// released whatever the outcome); `schema` points to a valid
    /// `ArrowSchema`, borrowed.
    unsafe fn append_arrow(
        &mut self,
        dataset: &str,
        array: *mut ffi::ArrowArray,
        schema: *const ffi::ArrowSchema,
    ) -> Result<u64, Error> {
        guard(|| {
            // SAFETY: forwarded from this function's contract.
            let c_array = unsafe { take_array(array) }?;
            // SAFETY: forwarded from this function's contract.
            let c_schema = unsafe { borrow_schema(schema) }?;
            let batch_schema = Schema::try_from(c_schema).map_err(|e| {
                mismatch(format!(
                    "the ArrowSchema is not a record batch schema (a struct): {e}"
                ))
            })?;
            // SAFETY: `c_array` is a valid array described by `c_schema` (the
            // caller's promise); `import_checked` validates it fully.
            let data = unsafe { import_checked(c_array, c_schema) }?;
            let batch = batch_from_struct(Arc::new(batch_schema), data)?;
            Ok(self.inner.append(dataset, &batch)?)
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn append_bars(
        &mut self,
        dataset: &str,
        ts: &[i64],
        symbol_data: &[u8],
        symbol_offsets: &[u32],
        open: &[f64],
        high: &[f64],
        low: &[f64],
        close: &[f64],
        volume: &[f64],
    ) -> Result<u64, Error> {
        guard(|| {
            let cols = BarColumns {
                ts,
                symbol_data,
                symbol_offsets,
                open,
                high,
                low,
                close,
                volume,
            };
            let RustClient { inner, views } = self;
            let schema = Arc::new(ringfeed_arrow::ohlcv_schema());
            // `append` encodes the batch into its request and keeps no buffer.
            with_bar_batch(schema, cols, views, |batch| {
                Ok(inner.append(dataset, batch)?)
            })
        })
    }
}

/// A query answer owned by C++ (`ringfeed::Bars`): batches mapped from the
/// daemon's arena, each holding its slot's lease.
pub struct RustBars {
    inner: ringfeed_client::Bars,
}

impl RustBars {
    fn num_batches(&self) -> usize {
        self.inner.batches.len()
    }

    fn batch(&self, i: usize) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.batches.get(i).ok_or_else(|| {
                Error::new(
                    ErrorKind::InvalidArgument,
                    format!(
                        "batch index {i} is out of range: the result has {} batches",
                        self.inner.batches.len()
                    ),
                )
            })?;
            Ok(Box::new(RustBatch {
                inner: Some(b.clone()),
            }))
        })
    }

    fn rows(&self) -> u64 {
        self.inner.rows
    }

    fn cached(&self) -> bool {
        self.inner.cached
    }

    fn arena(&self) -> String {
        self.inner.arena.clone()
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowArrayStream`.
    unsafe fn export_stream(&self, out: *mut ffi::ArrowArrayStream) -> Result<(), Error> {
        guard(|| {
            let batches = self.inner.record_batches();
            // The daemon always answers with at least one (maybe empty) batch,
            // which carries the schema; an empty schema covers the impossible rest.
            let schema = batches
                .first()
                .map_or_else(|| Arc::new(Schema::empty()), |b| b.schema());
            let it = RecordBatchIterator::new(batches.into_iter().map(Ok), schema);
            let stream = FFI_ArrowArrayStream::new(Box::new(it));
            // SAFETY: forwarded from this function's contract.
            unsafe { write_out(out, stream, "ArrowArrayStream") }
        })
    }
}

/// A replaying subscription owned by C++ (`ringfeed::Replay`).
pub struct RustReplay {
    inner: Replay,
    live_name: String,
}

impl RustReplay {
    fn read(&mut self, timeout_ms: u64) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.read(Duration::from_millis(timeout_ms))?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    fn seam(&self) -> u64 {
        self.inner.seam()
    }

    fn history_rows(&self) -> u64 {
        self.inner.history_rows()
    }

    fn in_history(&self) -> bool {
        self.inner.in_history()
    }

    fn live_name(&self) -> String {
        self.live_name.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> ffi::RingConfig {
        ffi::RingConfig {
            slots: 4,
            slot_bytes: 1 << 16,
            max_readers: 4,
            leases_per_reader: 2,
            buffers: 0,
            block_ms: -1,
            meta_cap: 64 << 10,
            force: false,
        }
    }

    #[test]
    fn panics_become_errors_with_a_kind() {
        let e = panic_for_test("boom").unwrap_err();
        assert_eq!(e.kind, ErrorKind::Panic);
        assert!(e.message.contains("boom"), "{e}");
        assert_eq!(last_error_kind(), ErrorKind::Panic);
    }

    #[test]
    fn client_errors_keep_their_category() {
        let e = Error::from(ClientError::Server {
            kind: ringfeed_client::ErrorKind::UnknownDataset,
            message: "unknown dataset \"x\"".into(),
        });
        assert_eq!(
            (e.kind, e.daemon_kind.as_str()),
            (ErrorKind::Daemon, "unknown_dataset")
        );
        assert!(e.message.contains("unknown dataset"), "{e}");
        let e = client_connect("/nonexistent/ringfeed.sock").err().unwrap();
        assert_eq!(e.kind, ErrorKind::Connect);
        assert!(e.message.contains("/nonexistent/ringfeed.sock"), "{e}");
        assert_eq!(last_error_kind(), ErrorKind::Connect);
        assert_eq!(last_error_daemon_kind(), "");
    }

    #[test]
    fn replay_ring_errors_keep_their_kind() {
        let e = Error::from(ClientError::Read {
            arena: "a.t.x.1m".into(),
            source: ReadError::Lagged { missed: 17 },
        });
        assert_eq!((e.kind, e.detail), (ErrorKind::Lagged, 17));
        assert!(e.message.contains("a.t.x.1m"), "{e}");
        let e = Error::from(ClientError::Read {
            arena: "a.t.x.1m".into(),
            source: ReadError::Closed {
                name: "a.t.x.1m".into(),
            },
        });
        assert_eq!(e.kind, ErrorKind::Closed);
    }

    #[test]
    fn string_views_from_flat_symbols() {
        let scope = BorrowScope(Arc::new(Borrowed));
        let mut views = Vec::new();
        let mut sv = |data: &[u8], offsets: &[u32]| {
            // SAFETY: the arrays are dropped inside this test, before `data` and `views`.
            unsafe { string_views(data, offsets, &mut views, &scope) }.map(|a| {
                // Copy out, so the borrowed array does not outlive this call.
                StringViewArray::from_iter_values(a.iter().map(|v| v.unwrap().to_string()))
            })
        };
        let data = "S0a symbol longer than twelve bytesé".as_bytes();
        let a = sv(data, &[0, 2, 35, 35, 37]).unwrap();
        assert_eq!(a.value(0), "S0");
        assert_eq!(a.value(1), "a symbol longer than twelve bytes");
        assert_eq!(a.value(2), "");
        assert_eq!(a.value(3), "é");
        // Offsets inside a UTF-8 sequence, past the end, or not from 0.
        assert!(sv(data, &[0, 36]).is_err());
        assert!(sv(data, &[0, 99]).is_err());
        assert!(sv(data, &[1, 2]).is_err());
        assert!(sv(&[0xff], &[0, 1]).is_err());
        assert_eq!(sv(b"S0S1", &[0, 2, 4]).unwrap().value(1), "S1");
    }

    #[test]
    fn missing_ring_is_not_found() {
        std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
        let rc = ffi::ReaderConfig {
            start: ffi::Start::Oldest,
            spin_us: 0,
            allow_foreign_owner: false,
        };
        let e = reader_open("rf-cpp-unit-missing", &rc)
            .err()
            .expect("no such ring");
        assert_eq!(e.kind, ErrorKind::NotFound);
        assert_eq!(last_error_kind(), ErrorKind::NotFound);
    }

    #[test]
    fn write_arrow_round_trip_through_the_c_interface() {
        std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
        let name = format!("rf-cpp-unit-ffi-{}", std::process::id());
        let mut w = writer_create_bars(&name, &cfg()).unwrap();
        let rc = ffi::ReaderConfig {
            start: ffi::Start::Oldest,
            spin_us: 0,
            allow_foreign_owner: false,
        };
        let mut r = reader_open(&name, &rc).unwrap();
        let schema = Arc::new(ringfeed_arrow::ohlcv_schema());
        let ts = TimestampNanosecondArray::from(vec![1_000_000_000i64, 1_000_000_001])
            .with_timezone("UTC");
        let cols: Vec<ArrayRef> = vec![
            Arc::new(ts),
            Arc::new(StringViewArray::from_iter_values(["S0", "S1"])),
            Arc::new(Float64Array::from(vec![1.0, 1.5])),
            Arc::new(Float64Array::from(vec![2.0, 2.5])),
            Arc::new(Float64Array::from(vec![0.0, 0.5])),
            Arc::new(Float64Array::from(vec![1.25, 1.75])),
            Arc::new(Float64Array::from(vec![0.0, 1.0])),
        ];
        let rb = RecordBatch::try_new(schema, cols).unwrap();
        let mut c_array = FFI_ArrowArray::new(&StructArray::from(rb.clone()).to_data());
        let p = (&mut c_array as *mut FFI_ArrowArray).cast::<ffi::ArrowArray>();
        // SAFETY: `c_array` is a valid exported array; the call moves it out.
        let seq = unsafe { w.write_arrow(p, std::ptr::null()) }.unwrap();
        assert_eq!(seq, 1);
        assert!(c_array.is_released());
        let b = r.read(1000).unwrap();
        assert!(b.present() && b.is_zero_copy());
        assert_eq!(*b.get().unwrap().record_batch(), rb);
        let close = b.fixed(5, Physical::F64).unwrap();
        assert_eq!(close.len, 2);
        assert!(b.fixed(1, Physical::F64).is_err());
        w.close().unwrap();
    }
}
