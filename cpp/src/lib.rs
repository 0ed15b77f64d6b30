//! The C++ binding of ringfeed: a small [cxx] bridge, built as a static
//! library that CMake links.
//!
//! C++ code does not use these items directly: it includes the hand-written
//! header `include/ringfeed/ringfeed.hpp`, whose move-only RAII classes
//! (`ringfeed::Writer`, `ringfeed::Reader`, `ringfeed::Batch`) wrap the opaque
//! types below and turn errors into typed C++ exceptions.
//!
//! Rules this module keeps:
//! - Every bridge function runs inside `error::guard`: a panic becomes an error
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
//! This file is only the bridge. Each opaque type lives in its own module:
//! `writer`, `reader`, `batch`, `client` (with `Bars` and `Replay`),
//! `arena`; `error` holds the error type and the panic guard,
//! `c_data` the raw C Data Interface pointers, `bar_batch` the plain
//! columns of `write_bars`/`append_bars`.
//!
//! [cxx]: https://cxx.rs

mod arena;
mod bar_batch;
mod batch;
mod c_data;
mod client;
mod error;
mod reader;
mod writer;

// The bridge resolves every Rust item it names from this module.
use arena::{arena_remove, arena_status};
use batch::RustBatch;
use client::{client_connect, RustBars, RustClient, RustReplay};
use error::{last_error_daemon_kind, last_error_detail, last_error_kind, panic_for_test};
use reader::{reader_open, RustReader};
use writer::{export_bar_schema, writer_create, writer_create_bars, RustWriter};

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
        /// The handle was created before `fork()`; the parent process owns it.
        Forked,
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
        /// Store string columns as given instead of as `Utf8View` (the default).
        strings_as_given: bool,
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
        /// Check every value of every batch (offsets, string views,
        /// dictionary keys, UTF-8) instead of trusting the ring's writer.
        validate_full: bool,
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
        /// First day of the week of week timeframes ("sun", "mon", ...); empty: the
        /// dataset's.
        week_start: String,
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
        fn column_type(self: &RustBatch, i: usize) -> Result<String>;
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
        fn create_dataset(
            self: &mut RustClient,
            dataset: &str,
            base: &str,
            rollups: &str,
        ) -> Result<String>;
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
