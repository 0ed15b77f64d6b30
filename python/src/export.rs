//! Arrow data out to Python through PyCapsules (the Arrow PyCapsule
//! interface), so that `pl.DataFrame(obj)`, `pa.record_batch(obj)`,
//! `pa.table(obj)`, DuckDB, ... import it without copies and without this
//! extension linking pyarrow or polars.
//!
//! Every exported buffer is re-owned by an `Arc<Guarded<Batch>>` (see
//! [`crate::fork`]): the consumer's `release` drops that Arc, and the last one
//! drops the batch, whose buffers hold the slot's lease.

use crate::errors::RingfeedError;
use crate::fork::Guarded;
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::{Array, RecordBatch, RecordBatchIterator, RecordBatchOptions, StructArray};
use arrow_buffer::{BooleanBuffer, Buffer, MutableBuffer, NullBuffer};
use arrow_data::ArrayData;
use arrow_schema::Schema;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyTuple};
use std::ptr::NonNull;
use std::sync::Arc;

/// The owner every exported buffer points back to: the batch (whose own
/// buffers hold the slot's lease, if it came from a ring).
pub(crate) type Owner = Arc<Guarded<RecordBatch>>;

fn rebuffer(b: &Buffer, owner: &Owner) -> Buffer {
    match NonNull::new(b.as_ptr().cast_mut()) {
        Some(p) if !b.is_empty() => {
            // SAFETY: p..p+len is a live buffer of the batch that `owner`
            // holds; the batch (and its lease, which keeps the arena bytes
            // unchanged) lives as long as any clone of `owner`, and the new
            // Buffer holds one.
            unsafe { Buffer::from_custom_allocation(p, b.len(), owner.clone()) }
        }
        // An empty buffer still holds its allocation's owner (the lease):
        // replace it with an empty, 64-byte-aligned one of our own.
        _ => Buffer::from(MutableBuffer::new(0)),
    }
}

/// A copy of `data` whose buffers (at every depth) are owned by `owner`.
fn reown(data: &ArrayData, owner: &Owner) -> ArrayData {
    let buffers = data.buffers().iter().map(|b| rebuffer(b, owner)).collect();
    let children = data.child_data().iter().map(|c| reown(c, owner)).collect();
    let nulls = data.nulls().map(|n| {
        let bits = n.inner();
        let bits = BooleanBuffer::new(rebuffer(bits.inner(), owner), bits.offset(), bits.len());
        // SAFETY: same bits, offset and length as `n`, so the same null count.
        unsafe { NullBuffer::new_unchecked(bits, n.null_count()) }
    });
    let builder = data
        .clone()
        .into_builder()
        .buffers(buffers)
        .child_data(children)
        .nulls(nulls);
    // SAFETY: only the owners changed: every buffer has the same address,
    // length, offset and contents as in `data`, which is valid.
    unsafe { builder.build_unchecked() }
}

/// The batch held by `owner`, as a struct array whose buffers are owned by `owner`.
fn export_data(owner: &Owner) -> ArrayData {
    let data = StructArray::from(owner.get().clone()).into_data();
    reown(&data, owner)
}

/// `(schema capsule, array capsule)` for `__arrow_c_array__`.
pub(crate) fn array_capsules<'py>(py: Python<'py>, owner: &Owner) -> PyResult<Bound<'py, PyTuple>> {
    let schema = schema_capsule(py, owner.get().schema_ref())?;
    let data = export_data(owner);
    let array = FFI_ArrowArray::new(&data);
    let array = PyCapsule::new_with_value(py, array, c"arrow_array")?;
    PyTuple::new(py, [schema.into_any(), array.into_any()])
}

/// A one-batch `arrow_array_stream` capsule for `__arrow_c_stream__`.
pub(crate) fn stream_capsule<'py>(
    py: Python<'py>,
    owner: &Owner,
) -> PyResult<Bound<'py, PyCapsule>> {
    let schema = owner.get().schema();
    let data = export_data(owner);
    let rows = data.len();
    let (_, columns, _) = StructArray::from(data).into_parts();
    let batch = RecordBatch::try_new_with_options(
        schema.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| RingfeedError::new_err(e.to_string()))?;
    let it = RecordBatchIterator::new([Ok(batch)], schema);
    PyCapsule::new_with_value(
        py,
        FFI_ArrowArrayStream::new(Box::new(it)),
        c"arrow_array_stream",
    )
}

/// An `arrow_schema` capsule (a struct type with one child per field).
pub(crate) fn schema_capsule<'py>(
    py: Python<'py>,
    schema: &Schema,
) -> PyResult<Bound<'py, PyCapsule>> {
    let ffi =
        FFI_ArrowSchema::try_from(schema).map_err(|e| RingfeedError::new_err(e.to_string()))?;
    PyCapsule::new_with_value(py, ffi, c"arrow_schema")
}

/// A deep copy of `batch` in private memory (an IPC round trip: no buffer of
/// the result refers to `batch`'s memory, dictionaries included).
pub(crate) fn deep_copy(batch: &RecordBatch) -> Result<RecordBatch, arrow_schema::ArrowError> {
    let mut w = arrow_ipc::writer::StreamWriter::try_new(Vec::new(), batch.schema_ref())?;
    w.write(batch)?;
    w.finish()?;
    let bytes = w.into_inner()?;
    let mut r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(bytes), None)?;
    r.next()
        .unwrap_or_else(|| Err(arrow_schema::ArrowError::IpcError("empty copy".into())))
}

/// Whether every non-empty buffer of `batch`, at every depth, lies in `range`.
pub(crate) fn all_in(batch: &RecordBatch, range: &std::ops::Range<usize>) -> bool {
    fn walk(d: &ArrayData, range: &std::ops::Range<usize>) -> bool {
        let inside = |b: &Buffer| {
            let p = b.as_ptr() as usize;
            b.is_empty() || (range.contains(&p) && p + b.len() <= range.end)
        };
        d.buffers().iter().all(inside)
            && d.nulls().is_none_or(|n| inside(n.inner().inner()))
            && d.child_data().iter().all(|c| walk(c, range))
    }
    batch.columns().iter().all(|c| walk(&c.to_data(), range))
}

/// Whether any buffer of `batch`, at any depth, starts in `range`: empty
/// ones too, since an empty slice of a leased buffer still holds the lease.
pub(crate) fn any_in(batch: &RecordBatch, range: &std::ops::Range<usize>) -> bool {
    fn walk(d: &ArrayData, range: &std::ops::Range<usize>) -> bool {
        let inside = |b: &Buffer| (range.start..=range.end).contains(&(b.as_ptr() as usize));
        d.buffers().iter().any(inside)
            || d.nulls().is_some_and(|n| inside(n.inner().inner()))
            || d.child_data().iter().any(|c| walk(c, range))
    }
    batch.columns().iter().any(|c| walk(&c.to_data(), range))
}

/// Holds a schema capsule for `pyarrow.schema(obj)`.
#[pyclass(frozen, module = "ringfeed._ringfeed")]
struct SchemaHolder(Schema);

#[pymethods]
impl SchemaHolder {
    #[pyo3(signature = (requested_schema=None))]
    fn __arrow_c_schema__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        let _ = requested_schema;
        schema_capsule(py, &self.0)
    }
}

/// `schema` as a `pyarrow.Schema` (needs pyarrow).
pub(crate) fn pyarrow_schema<'py>(py: Python<'py>, schema: &Schema) -> PyResult<Bound<'py, PyAny>> {
    let pa = py.import("pyarrow")?;
    pa.call_method1("schema", (SchemaHolder(schema.clone()),))
}
