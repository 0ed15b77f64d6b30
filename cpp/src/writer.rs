//! `ringfeed::Writer`: a ring writer owned by C++.

use crate::bar_batch::{with_bar_batch, BarColumns};
use crate::c_data::{
    batch_from_struct, borrow_schema, export_schema_to, import_checked, take_array,
};
use crate::error::{guard, Error};
use crate::ffi::{self, ErrorKind};
use arrow_array::ffi::FFI_ArrowSchema;
use arrow_schema::Schema;
use ringfeed_arrow::{OnFull, RingOptions, WriteError};
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
    /// Whether the ring's schema is the bar schema (`write_bars` checks it once).
    is_bars: Option<bool>,
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
        // Today's behaviour (`write_arrow` checks column types exactly);
        // views by default once it goes through `ringfeed_arrow::foreign`.
        strings: ringfeed_arrow::StringLayout::AsGiven,
    }
}

pub(crate) fn create(
    name: &str,
    schema: &Schema,
    cfg: &ffi::RingConfig,
) -> Result<Box<RustWriter>, Error> {
    let w = ringfeed_arrow::Writer::create(name, schema, ring_options(cfg))?;
    Ok(Box::new(RustWriter {
        inner: Some(w),
        name: name.to_string(),
        is_bars: None,
        views: Vec::new(),
    }))
}

pub(crate) fn writer_create_bars(
    name: &str,
    cfg: &ffi::RingConfig,
) -> Result<Box<RustWriter>, Error> {
    guard(|| create(name, &ringfeed_arrow::ohlcv_schema(), cfg))
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
        create(name, &schema, cfg)
    })
}

/// The first difference between the ring's columns and a batch's (names and types).
pub(crate) fn column_mismatch(ring: &Schema, batch: &Schema) -> Option<String> {
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

pub(crate) fn mismatch(detail: String) -> Error {
    Error::from(WriteError::SchemaMismatch { detail })
}

impl RustWriter {
    pub(crate) fn writer(&mut self) -> Result<&mut ringfeed_arrow::Writer, Error> {
        self.inner.as_mut().ok_or_else(closed_writer)
    }

    /// Whether the ring has the bar schema (checked once, then cached).
    pub(crate) fn check_bars(&mut self) -> Result<(), Error> {
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
    pub(crate) unsafe fn write_arrow(
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
    use crate::ffi::Physical;
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
