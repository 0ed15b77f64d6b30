//! `ringfeed::Batch`: one batch read from a ring, holding its slot's lease,
//! and its export through the C Data (and Stream) Interface.

use crate::c_data::write_out;
use crate::error::{guard, Error};
use crate::ffi::{self, ErrorKind, Physical};
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{Array, ArrayRef, RecordBatchIterator, StructArray};
use arrow_data::ArrayData;
use arrow_schema::DataType;

/// A batch read from a ring (or nothing, after a timeout), owned by C++.
/// It holds the slot's lease through its buffers.
pub struct RustBatch {
    pub(crate) inner: Option<ringfeed_arrow::Batch>,
}

pub(crate) fn no_batch() -> Error {
    Error::new(ErrorKind::InvalidArgument, "no batch (moved-from or empty)")
}

pub(crate) fn bitmap(data: &ArrayData) -> (usize, usize, usize) {
    match data.nulls() {
        Some(n) if n.null_count() > 0 => (n.buffer().as_ptr() as usize, n.offset(), n.null_count()),
        _ => (0, 0, 0),
    }
}

impl RustBatch {
    pub(crate) fn get(&self) -> Result<&ringfeed_arrow::Batch, Error> {
        self.inner.as_ref().ok_or_else(no_batch)
    }

    pub(crate) fn column(&self, i: usize) -> Result<(&str, &ArrayRef), Error> {
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

    pub(crate) fn present(&self) -> bool {
        self.inner.is_some()
    }

    pub(crate) fn duplicate(&self) -> Box<RustBatch> {
        Box::new(RustBatch {
            inner: self.inner.clone(),
        })
    }

    pub(crate) fn seq(&self) -> u64 {
        self.inner.as_ref().map_or(0, |b| b.seq())
    }

    pub(crate) fn ts_ns(&self) -> u64 {
        self.inner.as_ref().map_or(0, |b| b.ts_ns())
    }

    pub(crate) fn num_rows(&self) -> usize {
        self.inner.as_ref().map_or(0, |b| b.num_rows())
    }

    pub(crate) fn num_columns(&self) -> usize {
        self.inner.as_ref().map_or(0, |b| b.num_columns())
    }

    pub(crate) fn column_name(&self, i: usize) -> Result<String, Error> {
        guard(|| Ok(self.column(i)?.0.to_string()))
    }

    pub(crate) fn column_type(&self, i: usize) -> Result<String, Error> {
        guard(|| Ok(self.column(i)?.1.data_type().to_string()))
    }

    pub(crate) fn column_index(&self, name: &str) -> Result<usize, Error> {
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

    pub(crate) fn fixed(&self, i: usize, want: Physical) -> Result<ffi::FixedView, Error> {
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

    pub(crate) fn strings(&self, i: usize) -> Result<ffi::StringsView, Error> {
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

    pub(crate) fn arena_range(&self) -> ffi::AddressRange {
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

    pub(crate) fn is_zero_copy(&self) -> bool {
        self.inner.as_ref().is_some_and(|b| b.is_zero_copy())
    }

    /// # Safety
    /// `array` and `schema` point to writable memory for one struct each.
    pub(crate) unsafe fn export_array(
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
    pub(crate) unsafe fn export_stream(
        &self,
        out: *mut ffi::ArrowArrayStream,
    ) -> Result<(), Error> {
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
