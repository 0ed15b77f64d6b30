//! Arrow data in from Python through the PyCapsule interface
//! (`__arrow_c_schema__`, `__arrow_c_array__`, `__arrow_c_stream__`).
//! No copy: the imported arrays point at the producer's memory and keep it
//! alive through its release callback. Every imported value is validated by
//! `ringfeed_arrow::foreign` (UTF-8, offsets, views, dictionary keys), as in
//! the C++ binding: readers of a ring trust what its writer wrote.

use crate::errors::{argument_type, invalid_argument};
use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::FFI_ArrowArrayStream;
use arrow_array::RecordBatch;
use arrow_schema::{Schema, SchemaRef};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyCapsule, PyString, PyTuple};
use ringfeed_arrow::foreign;

/// A frame imported from Python: its schema and its record batches (one per chunk).
pub(crate) struct Frame {
    pub(crate) schema: SchemaRef,
    pub(crate) batches: Vec<RecordBatch>,
}

fn capsule<'py>(obj: Bound<'py, PyAny>, method: &str) -> PyResult<Bound<'py, PyCapsule>> {
    obj.cast_into::<PyCapsule>()
        .map_err(|_| argument_type(format!("{method}() did not return a PyCapsule")))
}

/// A foreign batch refused by ringfeed-arrow's checks (the same in every binding).
pub(crate) fn foreign_err(e: foreign::ForeignError) -> PyErr {
    match e {
        foreign::ForeignError::NotARecordBatch { .. } => argument_type(e.to_string()),
        _ => invalid_argument(e.to_string()),
    }
}

fn arrow_err(what: &str, e: arrow_schema::ArrowError) -> PyErr {
    invalid_argument(format!("{what}: {e}"))
}

/// Moves the `ArrowSchema` out of a capsule named "arrow_schema".
fn take_schema(cap: &Bound<'_, PyCapsule>) -> PyResult<FFI_ArrowSchema> {
    let ptr = cap.pointer_checked(Some(c"arrow_schema"))?;
    // SAFETY: a capsule named "arrow_schema" holds a valid, initialised
    // ArrowSchema (PyCapsule interface). `from_raw` moves it out and leaves a
    // released one behind, so the capsule's destructor does not release it again.
    Ok(unsafe { FFI_ArrowSchema::from_raw(ptr.as_ptr().cast()) })
}

fn take_array(cap: &Bound<'_, PyCapsule>) -> PyResult<FFI_ArrowArray> {
    let ptr = cap.pointer_checked(Some(c"arrow_array"))?;
    // SAFETY: as in `take_schema`, for a capsule named "arrow_array".
    Ok(unsafe { FFI_ArrowArray::from_raw(ptr.as_ptr().cast()) })
}

fn take_stream(cap: &Bound<'_, PyCapsule>) -> PyResult<FFI_ArrowArrayStream> {
    let ptr = cap.pointer_checked(Some(c"arrow_array_stream"))?;
    // SAFETY: as in `take_schema`, for a capsule named "arrow_array_stream".
    Ok(unsafe { FFI_ArrowArrayStream::from_raw(ptr.as_ptr().cast()) })
}

fn has(obj: &Bound<'_, PyAny>, name: &Bound<'_, PyString>) -> PyResult<bool> {
    obj.hasattr(name)
}

/// A schema from a `pyarrow.Schema` or anything with `__arrow_c_schema__`; a
/// frame (anything with `__arrow_c_stream__` / `__arrow_c_array__`) lends its schema.
pub(crate) fn schema(obj: &Bound<'_, PyAny>) -> PyResult<Schema> {
    let py = obj.py();
    if has(obj, intern!(py, "__arrow_c_schema__"))? {
        let cap = capsule(
            obj.call_method0("__arrow_c_schema__")?,
            "__arrow_c_schema__",
        )?;
        let ffi = take_schema(&cap)?;
        return Schema::try_from(&ffi).map_err(|e| arrow_err("unsupported schema", e));
    }
    if has(obj, intern!(py, "__arrow_c_stream__"))? || has(obj, intern!(py, "__arrow_c_array__"))? {
        return Ok(frame(obj)?.schema.as_ref().clone());
    }
    Err(argument_type(format!(
        "schema must be a pyarrow.Schema or have __arrow_c_schema__ (got {})",
        obj.get_type().name()?
    )))
}

/// Imports a frame: pyarrow RecordBatch (`__arrow_c_array__`, preferred since it
/// is one batch), Table / polars DataFrame / any stream (`__arrow_c_stream__`).
pub(crate) fn frame(obj: &Bound<'_, PyAny>) -> PyResult<Frame> {
    frame_with(obj, None)
}

/// [`frame`] for a writer that imports frames of one schema again and again:
/// a one-batch frame's ArrowSchema is parsed only when it differs from the last
/// one `cache` saw (`foreign::SchemaCache`); every value is still validated.
pub(crate) fn frame_cached(
    obj: &Bound<'_, PyAny>,
    cache: &mut foreign::SchemaCache,
) -> PyResult<Frame> {
    frame_with(obj, Some(cache))
}

fn frame_with(obj: &Bound<'_, PyAny>, cache: Option<&mut foreign::SchemaCache>) -> PyResult<Frame> {
    // Interned: a writer loop looks these up on every frame.
    let py = obj.py();
    let array_attr = intern!(py, "__arrow_c_array__");
    if has(obj, array_attr)? {
        let t = obj.call_method0(array_attr)?;
        let t = t.cast_into::<PyTuple>().map_err(|_| {
            argument_type("__arrow_c_array__() must return a (schema, array) tuple")
        })?;
        if t.len() != 2 {
            return Err(argument_type(
                "__arrow_c_array__() must return a (schema, array) tuple",
            ));
        }
        let s = take_schema(&capsule(t.get_item(0)?, "__arrow_c_array__")?)?;
        let a = take_array(&capsule(t.get_item(1)?, "__arrow_c_array__")?)?;
        // SAFETY: `a` and `s` came from one __arrow_c_array__ call, so `a` is an
        // array of the type `s` describes (PyCapsule interface contract); the
        // import validates every value before anything reads it.
        let batch = match cache {
            // SAFETY: as above.
            Some(c) => unsafe { foreign::import_array_cached(a, &s, c) },
            // SAFETY: as above.
            None => unsafe { foreign::import_array(a, &s) },
        }
        .map_err(foreign_err)?;
        return Ok(Frame {
            schema: batch.schema(),
            batches: vec![batch],
        });
    }
    if has(obj, intern!(py, "__arrow_c_stream__"))? {
        let cap = capsule(
            obj.call_method0("__arrow_c_stream__")?,
            "__arrow_c_stream__",
        )?;
        let stream = take_stream(&cap)?;
        // SAFETY: a capsule named "arrow_array_stream" holds a valid stream
        // (PyCapsule interface contract); every batch is validated on import.
        let (schema, batches) = unsafe { foreign::import_stream(stream) }.map_err(foreign_err)?;
        return Ok(Frame { schema, batches });
    }
    Err(argument_type(format!(
        "cannot write a {}: pass a polars.DataFrame, a pyarrow.Table or RecordBatch, or an object with __arrow_c_stream__ / __arrow_c_array__",
        obj.get_type().name()?
    )))
}
