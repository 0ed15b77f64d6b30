//! `ringfeed::Writer`: a ring writer owned by C++.
//!
//! Batches from C++ go through the policy every binding shares: an
//! `ArrowArray` is imported by `ringfeed_arrow::foreign::import_array` (full
//! validation), and `ringfeed_arrow::Writer::write` conforms any batch to the
//! ring's schema (`foreign::conform`): C++, Rust and Python accept and refuse
//! the same batches.

use crate::bar_batch::{with_bar_batch, BarColumns};
use crate::c_data::{borrow_schema, export_schema_to, take_array};
use crate::error::{guard, Error};
use crate::ffi::{self, ErrorKind};
use arrow_array::ffi::FFI_ArrowSchema;
use arrow_schema::{Schema, SchemaRef};
use ringfeed_arrow::{foreign, OnFull, RingOptions, StringLayout, WriteError};
use std::sync::Arc;
use std::time::Duration;

pub(crate) fn closed_writer() -> Error {
    Error::new(
        ErrorKind::Closed,
        "the writer is closed (Writer::close was called)",
    )
}

/// A ring writer owned by C++ (`ringfeed::Writer`).
pub struct RustWriter {
    inner: Option<ringfeed_arrow::Writer>,
    name: String,
    /// The schema the ring was created with (string columns as given, before
    /// the ring stored them as views): what a null `ArrowSchema` in
    /// `write_arrow` describes. Exported once, on first use.
    given: SchemaRef,
    given_c: Option<FFI_ArrowSchema>,
    /// `ohlcv_schema()`, made once: every `write_bars` batch shares this
    /// `Arc`, so the writer checks it against the ring's schema once.
    ohlcv: SchemaRef,
    /// Scratch for `write_bars`' symbol views, reused across calls.
    views: Vec<u128>,
}

pub(crate) fn ring_options(cfg: &ffi::RingConfig) -> RingOptions {
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
        strings: if cfg.strings_as_given {
            StringLayout::AsGiven
        } else {
            StringLayout::View
        },
    }
}

pub(crate) fn create(
    name: &str,
    schema: Schema,
    cfg: &ffi::RingConfig,
) -> Result<Box<RustWriter>, Error> {
    let w = ringfeed_arrow::Writer::create(name, &schema, ring_options(cfg))?;
    Ok(Box::new(RustWriter {
        inner: Some(w),
        name: name.to_string(),
        given: Arc::new(schema),
        given_c: None,
        ohlcv: Arc::new(ringfeed_arrow::ohlcv_schema()),
        views: Vec::new(),
    }))
}

pub(crate) fn writer_create_bars(
    name: &str,
    cfg: &ffi::RingConfig,
) -> Result<Box<RustWriter>, Error> {
    guard(|| create(name, ringfeed_arrow::ohlcv_schema(), cfg))
}

/// # Safety
/// `schema` is null or points to a valid `ArrowSchema`, borrowed for the call.
pub(crate) unsafe fn writer_create(
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
        create(name, schema, cfg)
    })
}

/// `write_bars` on a ring whose columns the bar columns do not conform to.
fn not_a_bar_ring(e: WriteError) -> Error {
    match e {
        WriteError::SchemaMismatch { detail } => Error::new(
            ErrorKind::SchemaMismatch,
            format!(
                "write_bars needs a ring of ohlcv_schema() (ts, symbol, open, high, low, close, volume); this ring differs: {detail}; create it with create_bars, or write this ring's batches with write(ArrowArray)"
            ),
        ),
        other => other.into(),
    }
}

impl RustWriter {
    pub(crate) fn writer(&mut self) -> Result<&mut ringfeed_arrow::Writer, Error> {
        self.inner.as_mut().ok_or_else(closed_writer)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn write_bars(
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
            let RustWriter {
                inner,
                ohlcv,
                views,
                ..
            } = self;
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
            with_bar_batch(ohlcv.clone(), cols, views, |batch| {
                w.write(batch).map_err(not_a_bar_ring)
            })
        })
    }

    /// # Safety
    /// `array` is null or points to an `ArrowArray`, which this call moves
    /// (it is released, or marked released, whatever the outcome); if
    /// unreleased, it is an array of the type `schema` describes (or, when
    /// `schema` is null, the ring's given schema), meeting the `# Safety`
    /// conditions of `ringfeed_arrow::foreign::import_array`. `schema` is
    /// null or points to a valid `ArrowSchema`, borrowed.
    pub(crate) unsafe fn write_arrow(
        &mut self,
        array: *mut ffi::ArrowArray,
        schema: *const ffi::ArrowSchema,
    ) -> Result<u64, Error> {
        guard(|| {
            // Taken first, so it is released whatever happens below.
            // SAFETY: forwarded from this function's contract.
            let c_array = unsafe { take_array(array) }?;
            let RustWriter {
                inner,
                given,
                given_c,
                ..
            } = self;
            let w = inner.as_mut().ok_or_else(closed_writer)?;
            let c_schema =
                if schema.is_null() {
                    match given_c {
                        Some(c) => &*c,
                        None => given_c.insert(FFI_ArrowSchema::try_from(given.as_ref()).map_err(
                            |e| Error::new(ErrorKind::Other, format!("cannot export schema: {e}")),
                        )?),
                    }
                } else {
                    // SAFETY: forwarded from this function's contract.
                    unsafe { borrow_schema(schema) }?
                };
            // SAFETY: forwarded from this function's contract: `c_array` is
            // an array of the type `c_schema` describes. `import_array`
            // validates every value before anything reads one.
            let batch = unsafe { foreign::import_array(c_array, c_schema) }?;
            Ok(w.write(&batch)?)
        })
    }

    pub(crate) fn wait_for_readers(&mut self, n: usize, timeout_ms: u64) -> Result<bool, Error> {
        guard(|| {
            Ok(self
                .writer()?
                .ring_mut()
                .wait_for_readers(n, Duration::from_millis(timeout_ms)))
        })
    }

    pub(crate) fn sweep_dead_readers(&mut self) -> Result<u32, Error> {
        guard(|| Ok(self.writer()?.ring_mut().sweep_dead_readers(true)))
    }

    pub(crate) fn next_seq(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.ring().next_seq())
    }

    pub(crate) fn slot_bytes(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.slot_bytes())
    }

    pub(crate) fn name(&self) -> String {
        self.name.clone()
    }

    pub(crate) fn close(&mut self) -> Result<(), Error> {
        guard(|| {
            if let Some(w) = self.inner.take() {
                w.close();
            }
            Ok(())
        })
    }

    /// # Safety
    /// `out` points to writable memory for one `ArrowSchema`.
    pub(crate) unsafe fn export_schema(&self, out: *mut ffi::ArrowSchema) -> Result<(), Error> {
        guard(|| {
            let w = self.inner.as_ref().ok_or_else(closed_writer)?;
            export_schema_to(w.schema(), out)
        })
    }
}

/// # Safety
/// `out` points to writable memory for one `ArrowSchema`.
pub(crate) unsafe fn export_bar_schema(out: *mut ffi::ArrowSchema) -> Result<(), Error> {
    guard(|| export_schema_to(&ringfeed_arrow::ohlcv_schema(), out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reader::reader_open;
    use arrow_array::ffi::FFI_ArrowArray;
    use arrow_array::{
        Array, ArrayRef, Float64Array, RecordBatch, StringViewArray, StructArray,
        TimestampNanosecondArray,
    };
    use std::sync::Arc;

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
            strings_as_given: false,
        }
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
            validate_full: false,
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
        assert_eq!(b.column_type(5).unwrap(), "Float64");
        assert!(b.column_type(7).is_err());
        w.close().unwrap();
    }

    #[test]
    fn write_arrow_conforms_and_validates_like_every_binding() {
        use arrow_array::StringArray;
        use arrow_buffer::{Buffer, OffsetBuffer, ScalarBuffer};
        use arrow_schema::{DataType, Field};
        std::env::set_var("RINGFEED_SHM_DIR", std::env::temp_dir());
        let name = format!("rf-cpp-unit-conform-{}", std::process::id());
        let schema = Arc::new(Schema::new(vec![Field::new("s", DataType::Utf8, false)]));
        let mut w = create(&name, schema.as_ref().clone(), &cfg()).unwrap();
        // The ring stores views (the default); a Utf8 batch is conformed.
        let stored = w.inner.as_ref().unwrap().schema().clone();
        assert_eq!(stored.field(0).data_type(), &DataType::Utf8View);
        let write = |w: &mut RustWriter, col: StringArray| {
            let rb = RecordBatch::try_new(schema.clone(), vec![Arc::new(col)]).unwrap();
            let mut c = FFI_ArrowArray::new(&StructArray::from(rb).to_data());
            let p = (&mut c as *mut FFI_ArrowArray).cast::<ffi::ArrowArray>();
            // SAFETY: `c` is a valid array of the ring's given schema (null
            // schema pointer); the call moves it out.
            unsafe { w.write_arrow(p, std::ptr::null()) }
        };
        assert_eq!(
            write(&mut w, StringArray::from(vec!["a", "bc"])).unwrap(),
            1
        );
        // Decreasing offsets, built without validation: refused by name.
        // SAFETY: deliberately invalid (not monotonic), to be refused
        // before anything reads it; dropped without being read here.
        let bad = unsafe {
            let offsets = OffsetBuffer::new_unchecked(ScalarBuffer::from(vec![0i32, 2, 1, 3]));
            StringArray::new_unchecked(offsets, Buffer::from(b"abc"), None)
        };
        let e = write(&mut w, bad).unwrap_err();
        assert_eq!(e.kind, ErrorKind::InvalidArgument);
        assert!(e.message.contains("column \"s\""), "{e}");
        assert_eq!(w.next_seq(), 2);
        w.close().unwrap();
    }
}
