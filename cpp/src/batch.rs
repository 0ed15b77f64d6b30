//! `ringfeed::Batch`: one batch read from a ring, holding its slot's lease,
//! and its export through the C Data (and Stream) Interface.

use crate::c_data::write_out;
use crate::error::{guard, Error};
use crate::ffi::{self, ErrorKind};
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{Array, ArrayRef, RecordBatchIterator, StructArray};

/// A batch read from a ring (or nothing, after a timeout), owned by C++.
/// It holds the slot's lease through its buffers.
pub struct RustBatch {
    pub(crate) inner: Option<ringfeed_arrow::Batch>,
}

pub(crate) fn no_batch() -> Error {
    Error::new(ErrorKind::InvalidArgument, "no batch (moved-from or empty)")
}

impl RustBatch {
    pub(crate) fn get(&self) -> Result<&ringfeed_arrow::Batch, Error> {
        self.inner.as_ref().ok_or_else(no_batch)
    }

    fn column(&self, i: usize) -> Result<&ArrayRef, Error> {
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
        Ok(b.column(i))
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

    pub(crate) fn column_type(&self, i: usize) -> Result<String, Error> {
        // Arrow's own wording ("Timestamp(ns, \"UTC\")"); the header reads
        // everything else about a column from the exported arrays.
        guard(|| Ok(self.column(i)?.data_type().to_string()))
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
