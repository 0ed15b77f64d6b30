//! `ringfeed::Client`, `Bars` and `Replay`: the daemon client owned by C++.

use crate::bar_batch::{with_bar_batch, BarColumns};
use crate::batch::RustBatch;
use crate::c_data::{borrow_schema, take_array, write_out};
use crate::error::{guard, Error};
use crate::ffi::{self, ErrorKind};
use crate::reader::RustReader;
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::RecordBatchIterator;
use arrow_schema::Schema;
use ringfeed_arrow::{foreign, StartAt};
use ringfeed_client::protocol::{QuerySpec, TimeSpec};
use ringfeed_client::{Client, Replay};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// A connection to `ringfeedd` owned by C++ (`ringfeed::Client`).
pub struct RustClient {
    inner: Client,
    /// Scratch for `append_bars`' symbol views, reused across calls.
    views: Vec<u128>,
}

pub(crate) fn client_connect(socket: &str) -> Result<Box<RustClient>, Error> {
    guard(|| {
        let path = (!socket.is_empty()).then(|| Path::new(socket));
        Ok(Box::new(RustClient {
            inner: Client::connect(path)?,
            views: Vec::new(),
        }))
    })
}

pub(crate) fn time_spec(t: &ffi::TimeArg) -> Option<TimeSpec> {
    match t.kind {
        ffi::TimeKind::Nanos => Some(TimeSpec::Nanos(t.ns)),
        ffi::TimeKind::Text => Some(TimeSpec::Text(t.text.clone())),
        _ => None,
    }
}

pub(crate) fn query_spec(q: &ffi::QueryArgs) -> QuerySpec {
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

pub(crate) fn start_at(s: ffi::Start) -> StartAt {
    match s {
        ffi::Start::Oldest => StartAt::Oldest,
        ffi::Start::Latest => StartAt::Latest,
        _ => StartAt::Next,
    }
}

impl RustClient {
    pub(crate) fn ping(&mut self) -> Result<(), Error> {
        guard(|| Ok(self.inner.ping()?))
    }

    pub(crate) fn stat(&mut self) -> Result<String, Error> {
        guard(|| Ok(self.inner.stat()?))
    }

    pub(crate) fn datasets(&mut self) -> Result<String, Error> {
        guard(|| Ok(self.inner.datasets()?.to_string()))
    }

    pub(crate) fn ready(&mut self, dataset: &str) -> Result<String, Error> {
        guard(|| {
            Ok(
                serde_json::to_string(&self.inner.ready((!dataset.is_empty()).then_some(dataset))?)
                    .expect("serialisable"),
            )
        })
    }

    /// `rollups`: comma-separated; empty for the default ladder, "none" for none.
    pub(crate) fn create_dataset(
        &mut self,
        dataset: &str,
        base: &str,
        rollups: &str,
    ) -> Result<String, Error> {
        let rollups = match rollups {
            "" => None,
            "none" => Some(vec![]),
            r => Some(r.split(',').map(|s| s.trim().to_string()).collect()),
        };
        let spec = ringfeed_client::DatasetSpec {
            dataset: dataset.into(),
            base: base.into(),
            rollups,
            ..Default::default()
        };
        guard(|| Ok(self.inner.create_dataset(&spec)?))
    }

    pub(crate) fn write_down(
        &mut self,
        dataset: &str,
        before: &str,
        all: bool,
    ) -> Result<String, Error> {
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
        guard(|| {
            Ok(self
                .inner
                .write_down(opt(dataset).as_deref(), opt(before).as_deref(), all)?)
        })
    }

    pub(crate) fn delete_range(
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

    pub(crate) fn bars(&mut self, q: &ffi::QueryArgs) -> Result<Box<RustBars>, Error> {
        guard(|| {
            Ok(Box::new(RustBars {
                inner: self.inner.bars(&query_spec(q))?,
            }))
        })
    }

    pub(crate) fn subscribe(
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
    pub(crate) fn replay(
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
    /// `array` is null or points to an `ArrowArray`, which this call moves
    /// (it is released whatever the outcome); if unreleased, it is an array
    /// of the type `schema` describes, meeting the `# Safety` conditions of
    /// `ringfeed_arrow::foreign::import_array`. `schema` is null or points
    /// to a valid `ArrowSchema`, borrowed.
    pub(crate) unsafe fn append_arrow(
        &mut self,
        dataset: &str,
        array: *mut ffi::ArrowArray,
        schema: *const ffi::ArrowSchema,
    ) -> Result<u64, Error> {
        guard(|| {
            // Taken first, so it is released whatever happens below.
            // SAFETY: forwarded from this function's contract.
            let c_array = unsafe { take_array(array) }?;
            // SAFETY: forwarded from this function's contract.
            let c_schema = unsafe { borrow_schema(schema) }?;
            // SAFETY: forwarded from this function's contract: `c_array` is
            // an array of the type `c_schema` describes. `import_array`
            // validates every value before anything reads one.
            let batch = unsafe { foreign::import_array(c_array, c_schema) }?;
            Ok(self.inner.append(dataset, &batch)?)
        })
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn append_bars(
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
    pub(crate) fn num_batches(&self) -> usize {
        self.inner.batches.len()
    }

    pub(crate) fn batch(&self, i: usize) -> Result<Box<RustBatch>, Error> {
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

    pub(crate) fn rows(&self) -> u64 {
        self.inner.rows
    }

    pub(crate) fn cached(&self) -> bool {
        self.inner.cached
    }

    pub(crate) fn arena(&self) -> String {
        self.inner.arena.clone()
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowArrayStream`.
    pub(crate) unsafe fn export_stream(
        &self,
        out: *mut ffi::ArrowArrayStream,
    ) -> Result<(), Error> {
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
    pub(crate) fn read(&mut self, timeout_ms: u64) -> Result<Box<RustBatch>, Error> {
        guard(|| {
            let b = self.inner.read(Duration::from_millis(timeout_ms))?;
            Ok(Box::new(RustBatch { inner: b }))
        })
    }

    pub(crate) fn seam(&self) -> u64 {
        self.inner.seam()
    }

    pub(crate) fn history_rows(&self) -> u64 {
        self.inner.history_rows()
    }

    pub(crate) fn in_history(&self) -> bool {
        self.inner.in_history()
    }

    pub(crate) fn live_name(&self) -> String {
        self.live_name.clone()
    }
}
