//! Batches from elsewhere: the one policy every language applies before a
//! batch reaches a ring.
//!
//! Ring readers trust the values in a slot (see [`crate::codec::decode`]):
//! so every batch must be valid before a [`crate::Writer`] encodes it.
//! Batches built by arrow-rs's safe constructors are; batches imported
//! through the Arrow C Data Interface (pyarrow, polars, Arrow C++) are not
//! checked by the import itself. This module is the one place that imports
//! and checks them, for Rust, Python and C++ alike:
//!
//! - [`import_array`] and [`import_stream`] import a record batch (a struct
//!   array) or a stream of them, and run arrow's full validation on every
//!   column: UTF-8, offsets monotonic and inside their values, views inside
//!   their data buffers, dictionary keys inside their dictionaries, null
//!   counts. A bad column is refused by name ([`ForeignError::InvalidColumn`]).
//! - [`conform`] makes a batch fit a ring's schema when it spells the same
//!   logical types differently (see its docs for the exact rule). It is what
//!   [`crate::Writer::write`] applies to a batch whose schema is not the
//!   ring's, so that every binding accepts and refuses the same batches.
//!
//! ```
//! use arrow_array::ffi::{FFI_ArrowArray, FFI_ArrowSchema};
//! use arrow_array::{record_batch, Array, StructArray};
//! use ringfeed_arrow::foreign;
//! let batch = record_batch!(("sym", Utf8, ["BTC", "ETH"]))?;
//! // What a producer hands over: a struct array and its schema, as C structs.
//! let data = StructArray::from(batch.clone()).into_data();
//! let (array, schema) = (FFI_ArrowArray::new(&data), FFI_ArrowSchema::try_from(data.data_type())?);
//! // SAFETY: both structs were just exported by arrow-rs from `data`.
//! let got = unsafe { foreign::import_array(array, &schema) }?;
//! assert_eq!(got, batch);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::error::ErrorKind;
use arrow_array::builder::make_view;
use arrow_array::ffi::{from_ffi_and_data_type, FFI_ArrowArray, FFI_ArrowSchema};
use arrow_array::ffi_stream::{FFI_ArrowArrayStream, RecordBatchStreamReader};
use arrow_array::types::{BinaryViewType, ByteViewType, StringViewType};
use arrow_array::{
    Array, ArrayRef, GenericByteViewArray, OffsetSizeTrait, RecordBatch, RecordBatchOptions,
    RecordBatchReader, StructArray,
};
use arrow_buffer::{Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::ArrayData;
use arrow_schema::{ArrowError, DataType, FieldRef, Fields, Schema, SchemaRef};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Why a foreign batch was refused. Nothing was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ForeignError {
    /// The C Data Interface structs could not be imported: released, an
    /// unknown format string, a type arrow-rs does not support.
    #[error("cannot import the Arrow data: {0}; the producer must hand over a valid, unreleased ArrowArray/ArrowSchema (or stream)")]
    Import(ArrowError),
    /// The data is not a record batch: not a struct array, null rows at the
    /// top level, or columns of different lengths.
    #[error("the Arrow data is not a record batch: {detail}; pass a struct array with one child per column and no null rows (a pyarrow.RecordBatch, a Table, a DataFrame)")]
    NotARecordBatch {
        /// What is wrong.
        detail: String,
    },
    /// A column breaks the Arrow format (invalid UTF-8, offsets out of
    /// order or out of bounds, a view or dictionary key out of bounds, a
    /// wrong null count). Writing it would hand readers broken data.
    #[error("column {column:?} is not valid Arrow data: {source}; fix the producer, or rebuild the column with validation on")]
    InvalidColumn {
        /// The column's name.
        column: String,
        /// Arrow's validation error.
        source: ArrowError,
    },
    /// The batch does not fit the ring's schema, even after [`conform`].
    #[error("batch schema does not match the ring's: {detail}; cast the batch, or create a ring with this schema")]
    SchemaMismatch {
        /// The names of the columns that differ (expected or found).
        columns: Vec<String>,
        /// Every difference found.
        detail: String,
    },
}

impl ForeignError {
    /// What kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Import(_) | Self::NotARecordBatch { .. } | Self::InvalidColumn { .. } => {
                ErrorKind::InvalidArgument
            }
            Self::SchemaMismatch { .. } => ErrorKind::SchemaMismatch,
        }
    }
}

fn not_a_batch(detail: impl Into<String>) -> ForeignError {
    ForeignError::NotARecordBatch {
        detail: detail.into(),
    }
}

/// Runs `f`, turning an arrow panic on malformed input into an error.
fn no_panic<T>(what: &str, f: impl FnOnce() -> Result<T, ForeignError>) -> Result<T, ForeignError> {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(ForeignError::Import(ArrowError::CDataInterface(format!(
            "arrow panicked while {what} (malformed input; the panic was caught)"
        ))))
    })
}

/// Imports one record batch through the C Data Interface and validates it
/// fully: `array` must be a struct array (one child per column) described
/// by `schema`. The batch's buffers stay the producer's (no copy); they are
/// released when the last array referring to them is dropped.
///
/// # Safety
/// - `array` and `schema` follow the Arrow C Data Interface, and `array` is
///   an array of the type `schema` describes (as when both come from one
///   `__arrow_c_array__` call or one `ExportRecordBatch`);
/// - every buffer of `array` is readable for the length the specification
///   implies from the array's length, offset and type, a values buffer up to
///   the last offset (no import can check that an allocation is as large as
///   its producer claims; everything *inside* those lengths is checked
///   here, before any value is read);
/// - the memory stays valid and unchanged until `array`'s release callback
///   is called.
pub unsafe fn import_array(
    array: FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
) -> Result<RecordBatch, ForeignError> {
    check_struct(&array, schema)?;
    let schema = Arc::new(Schema::try_from(schema).map_err(ForeignError::Import)?);
    // SAFETY: forwarded from this function's contract; `schema` was parsed
    // from the ArrowSchema that describes `array`.
    unsafe { import_struct(array, schema) }
}

/// [`import_array`] for a producer that sends batches of one schema again and
/// again (a writer's `write` loop): the ArrowSchema is compared with the one
/// `cache` saw last ([`SchemaCache`]) and parsed only when it differs. Every
/// value is still validated.
///
/// # Safety
/// As for [`import_array`].
pub unsafe fn import_array_cached(
    array: FFI_ArrowArray,
    schema: &FFI_ArrowSchema,
    cache: &mut SchemaCache,
) -> Result<RecordBatch, ForeignError> {
    check_struct(&array, schema)?;
    let schema = cache.schema(schema)?;
    // SAFETY: forwarded from this function's contract; `schema` is parsed
    // from, or spelled exactly as, the ArrowSchema that describes `array`.
    unsafe { import_struct(array, schema) }
}

/// The checks on a batch's ArrowArray and ArrowSchema before either is read.
fn check_struct(array: &FFI_ArrowArray, schema: &FFI_ArrowSchema) -> Result<(), ForeignError> {
    if array.is_released() || schema.release().is_none() {
        return Err(ForeignError::Import(ArrowError::CDataInterface(
            "the ArrowArray or its ArrowSchema is released (its release callback is null)".into(),
        )));
    }
    if schema.format() != "+s" {
        return Err(not_a_batch(format!(
            "the ArrowSchema has format {:?}, not a struct (\"+s\")",
            schema.format()
        )));
    }
    Ok(())
}

/// Imports `array`, a struct array of `schema`'s fields, and validates it.
///
/// # Safety
/// As for [`import_array`], with `schema` the parsed ArrowSchema of `array`.
unsafe fn import_struct(
    array: FFI_ArrowArray,
    schema: SchemaRef,
) -> Result<RecordBatch, ForeignError> {
    let data_type = DataType::Struct(schema.fields().clone());
    no_panic("importing an ArrowArray", || {
        // SAFETY: forwarded from this function's contract (`schema` was
        // parsed from the ArrowSchema that describes `array`). The import
        // builds the `ArrayData` without reading values; nothing reads one
        // before `struct_to_batch` validated every column.
        let data =
            unsafe { from_ffi_and_data_type(array, data_type) }.map_err(ForeignError::Import)?;
        struct_to_batch(schema, data)
    })
}

/// The last schema a producer's ArrowSchema described, kept so that a batch
/// of the same schema is imported without parsing its ArrowSchema again
/// ([`import_array_cached`]). "The same" is decided by spelling, not by
/// pointer: format, name, flags and metadata at every depth (children and
/// dictionaries), compared byte for byte with the one parsed last, an
/// O(fields) walk with no allocation once the buffers have grown.
///
/// ```
/// use arrow_array::ffi::FFI_ArrowSchema;
/// use arrow_schema::{DataType, Field, Schema};
/// use ringfeed_arrow::foreign::SchemaCache;
/// let s = Schema::new(vec![Field::new("x", DataType::Int64, false)]);
/// let mut cache = SchemaCache::default();
/// let a = cache.schema(&FFI_ArrowSchema::try_from(&s)?)?;
/// let b = cache.schema(&FFI_ArrowSchema::try_from(&s)?)?;
/// assert!(std::sync::Arc::ptr_eq(&a, &b)); // parsed once
/// assert_eq!(*a, s);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct SchemaCache {
    key: Vec<u8>,
    scratch: Vec<u8>,
    schema: Option<SchemaRef>,
}

impl SchemaCache {
    /// The schema `ffi` describes: the one parsed last if `ffi` spells it
    /// the same way, otherwise `ffi` parsed (and remembered).
    pub fn schema(&mut self, ffi: &FFI_ArrowSchema) -> Result<SchemaRef, ForeignError> {
        self.scratch.clear();
        spell(ffi, &mut self.scratch, 0)?;
        if let Some(s) = &self.schema {
            if self.scratch == self.key {
                return Ok(s.clone());
            }
        }
        let s = Arc::new(Schema::try_from(ffi).map_err(ForeignError::Import)?);
        std::mem::swap(&mut self.key, &mut self.scratch);
        self.schema = Some(s.clone());
        Ok(s)
    }
}

/// Appends everything that makes `ffi` the type it is to `out`, each part
/// length-prefixed so that no two different schemas spell the same bytes.
fn spell(ffi: &FFI_ArrowSchema, out: &mut Vec<u8>, depth: usize) -> Result<(), ForeignError> {
    // Deeper than any real schema; a cycle in a malformed producer's tree.
    if depth > 64 {
        return Err(not_a_batch(
            "the ArrowSchema is nested more than 64 levels deep",
        ));
    }
    let mut part = |b: &[u8]| {
        out.extend_from_slice(&(b.len() as u64).to_le_bytes());
        out.extend_from_slice(b);
    };
    part(ffi.format().as_bytes());
    part(ffi.name().unwrap_or("").as_bytes());
    part(&ffi.flags().map_or(0, |f| f.bits()).to_le_bytes());
    let meta = ffi.metadata().map_err(ForeignError::Import)?;
    if !meta.is_empty() {
        let mut kv: Vec<_> = meta.iter().collect();
        kv.sort();
        for (k, v) in kv {
            part(k.as_bytes());
            part(v.as_bytes());
        }
    }
    part(&(meta.len() as u64).to_le_bytes());
    part(&(ffi.children().count() as u64).to_le_bytes());
    for c in ffi.children() {
        spell(c, out, depth + 1)?;
    }
    match ffi.dictionary() {
        Some(d) => {
            out.push(1);
            spell(d, out, depth + 1)
        }
        None => {
            out.push(0);
            Ok(())
        }
    }
}

/// Imports every record batch of a C stream and validates each fully, as
/// [`import_array`] does. Returns the stream's schema and its batches; the
/// stream is released when this returns.
///
/// # Safety
/// `stream` follows the Arrow C Stream Interface: its callbacks may be
/// called, and every array it yields satisfies the `# Safety` conditions of
/// [`import_array`] for the stream's schema.
pub unsafe fn import_stream(
    stream: FFI_ArrowArrayStream,
) -> Result<(SchemaRef, Vec<RecordBatch>), ForeignError> {
    no_panic("importing an ArrowArrayStream", || {
        let reader = RecordBatchStreamReader::try_new(stream).map_err(ForeignError::Import)?;
        let schema = reader.schema();
        let mut batches = Vec::new();
        for batch in reader {
            // The reader builds arrays without reading values; each batch is
            // validated below before anything reads it.
            let batch = batch.map_err(ForeignError::Import)?;
            validate_columns(&schema, batch.columns())?;
            batches.push(batch);
        }
        Ok((schema, batches))
    })
}

/// A struct array's `ArrayData` as a record batch of `schema`, validated.
fn struct_to_batch(schema: SchemaRef, data: ArrayData) -> Result<RecordBatch, ForeignError> {
    // Structure first (children's types and lengths), so that building the
    // `StructArray` cannot panic; then every column's values.
    data.validate().map_err(|e| not_a_batch(e.to_string()))?;
    let array = StructArray::from(data);
    if array.null_count() != 0 {
        return Err(not_a_batch(format!(
            "the struct array has {} null rows",
            array.null_count()
        )));
    }
    let rows = array.len();
    let (_, columns, _) = array.into_parts();
    validate_columns(&schema, &columns)?;
    RecordBatch::try_new_with_options(
        schema,
        columns,
        &RecordBatchOptions::new().with_row_count(Some(rows)),
    )
    .map_err(|e| not_a_batch(e.to_string()))
}

/// Arrow's full validation of every column, naming the first bad one; and
/// no nulls in a column whose field says it has none.
fn validate_columns(schema: &Schema, columns: &[ArrayRef]) -> Result<(), ForeignError> {
    for (field, column) in schema.fields().iter().zip(columns) {
        let invalid = |source| ForeignError::InvalidColumn {
            column: field.name().clone(),
            source,
        };
        column.to_data().validate_full().map_err(invalid)?;
        if !field.is_nullable() && column.null_count() > 0 {
            return Err(invalid(ArrowError::InvalidArgumentError(format!(
                "the field is not nullable but the column has {} nulls",
                column.null_count()
            ))));
        }
    }
    Ok(())
}

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Whether `from` is the same logical type as `to` in another physical
/// layout, so that [`conform`] may cast it.
pub fn same_logical(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    if from == to {
        return true;
    }
    match (from, to) {
        (a, b) if is_string(a) && is_string(b) => true,
        (a, b) if is_binary(a) && is_binary(b) => true,
        (List(a) | LargeList(a), List(b) | LargeList(b)) => {
            same_logical(a.data_type(), b.data_type())
        }
        (FixedSizeList(a, n), FixedSizeList(b, m)) => {
            n == m && same_logical(a.data_type(), b.data_type())
        }
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(x, y)| {
                    x.name() == y.name() && same_logical(x.data_type(), y.data_type())
                })
        }
        (Dictionary(ka, va), Dictionary(kb, vb)) => {
            ka.is_integer() && kb.is_integer() && same_logical(va, vb)
        }
        (Dictionary(_, v), b) => same_logical(v, b),
        (a, Dictionary(_, v)) => same_logical(a, v),
        _ => false,
    }
}

/// `batch` with `target`'s schema. Columns are matched by position and
/// name; a column may differ from the target's in
/// - nullability (the target's wins; nulls in a non-nullable column are refused),
/// - field metadata (the target's wins),
/// - the physical layout of one logical type ([`same_logical`]): string ⇄
///   large string ⇄ string view, binary ⇄ large binary ⇄ binary view,
///   list ⇄ large list, dictionary ⇄ plain values, recursively through
///   lists, fixed-size lists and structs. Such a column is cast, in one
///   O(rows) pass (string/binary to views reuses the values buffer); a column
///   that already matches is passed through untouched.
///
/// Anything else (another name, another numeric type, another time unit or
/// zone) is a [`ForeignError::SchemaMismatch`] naming every column that
/// differs: such casts can lose data or change meaning.
///
/// ```
/// use arrow_array::record_batch;
/// use arrow_schema::{DataType, Field, Schema};
/// use std::sync::Arc;
/// let batch = record_batch!(("sym", Utf8, ["BTC", "a symbol longer than 12"]))?;
/// let ring = Arc::new(Schema::new(vec![Field::new("sym", DataType::Utf8View, false)]));
/// let got = ringfeed_arrow::foreign::conform(&batch, &ring)?;
/// assert_eq!(got.schema(), ring);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, ForeignError> {
    if Arc::ptr_eq(batch.schema_ref(), target) {
        return Ok(batch.clone());
    }
    let want = target.fields();
    let have = batch.schema_ref().fields();
    if want.len() != have.len() {
        let mut columns: Vec<String> = want
            .iter()
            .chain(have.iter())
            .map(|f| f.name().clone())
            .filter(|n| !(want.find(n).is_some() && have.find(n).is_some()))
            .collect();
        columns.dedup();
        return Err(ForeignError::SchemaMismatch {
            columns,
            detail: format!(
                "{} columns expected ({}), batch has {} ({})",
                want.len(),
                names(want),
                have.len(),
                names(have)
            ),
        });
    }
    let mut out: Vec<ArrayRef> = Vec::with_capacity(want.len());
    let mut bad: Vec<(String, String)> = Vec::new();
    for ((w, h), col) in want.iter().zip(have.iter()).zip(batch.columns()) {
        match conform_column(w, h, col) {
            Ok(c) => out.push(c),
            Err(why) => bad.push((w.name().clone(), why)),
        }
    }
    if !bad.is_empty() {
        let detail = bad
            .iter()
            .map(|(_, why)| why.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ForeignError::SchemaMismatch {
            columns: bad.into_iter().map(|(n, _)| n).collect(),
            detail,
        });
    }
    RecordBatch::try_new_with_options(
        target.clone(),
        out,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| ForeignError::SchemaMismatch {
        columns: Vec::new(),
        detail: e.to_string(),
    })
}

/// One column in the target's layout, or why it cannot be.
fn conform_column(w: &FieldRef, h: &FieldRef, col: &ArrayRef) -> Result<ArrayRef, String> {
    let nullable = |f: &FieldRef| if f.is_nullable() { "" } else { "non-" };
    if w.name() != h.name() {
        return Err(format!(
            "column {:?} expected where the batch has {:?}",
            w.name(),
            h.name()
        ));
    }
    if !w.is_nullable() && col.null_count() > 0 {
        return Err(format!(
            "column {:?} is not nullable in the ring but has {} nulls",
            w.name(),
            col.null_count()
        ));
    }
    if w.data_type() == h.data_type() {
        return Ok(col.clone());
    }
    if !same_logical(h.data_type(), w.data_type()) {
        return Err(format!(
            "column {:?}: expected {} {}nullable, batch has {} {}nullable",
            w.name(),
            w.data_type(),
            nullable(w),
            h.data_type(),
            nullable(h),
        ));
    }
    let cast = catch_unwind(AssertUnwindSafe(|| to_layout(col, w.data_type())));
    match cast {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!(
            "column {:?}: cannot cast {} to {}: {e}",
            w.name(),
            h.data_type(),
            w.data_type()
        )),
        Err(_) => Err(format!(
            "column {:?}: cannot cast {} to {} (arrow panicked; caught)",
            w.name(),
            h.data_type(),
            w.data_type()
        )),
    }
}

/// `col` cast to `to`: strings and binary to views by hand (reusing the
/// values buffer), everything else through arrow-cast.
pub(crate) fn to_layout(col: &ArrayRef, to: &DataType) -> Result<ArrayRef, ArrowError> {
    use arrow_array::cast::AsArray;
    let views = match (col.data_type(), to) {
        (DataType::Utf8, DataType::Utf8View) => {
            let a = col.as_string::<i32>();
            to_views::<i32, StringViewType>(a.offsets(), a.values(), a.nulls())
        }
        (DataType::LargeUtf8, DataType::Utf8View) => {
            let a = col.as_string::<i64>();
            to_views::<i64, StringViewType>(a.offsets(), a.values(), a.nulls())
        }
        (DataType::Binary, DataType::BinaryView) => {
            let a = col.as_binary::<i32>();
            to_views::<i32, BinaryViewType>(a.offsets(), a.values(), a.nulls())
        }
        (DataType::LargeBinary, DataType::BinaryView) => {
            let a = col.as_binary::<i64>();
            to_views::<i64, BinaryViewType>(a.offsets(), a.values(), a.nulls())
        }
        _ => None,
    };
    match views {
        Some(v) => Ok(v),
        None => arrow_cast::cast(col, to),
    }
}

/// Views over the values of a string or binary column: strings of up to 12
/// bytes inline, longer ones pointing into the (sliced, not copied) values
/// buffer. `None` if the values span more than a view can address (4 GiB).
fn to_views<O: OffsetSizeTrait, V: ByteViewType + ?Sized>(
    offsets: &OffsetBuffer<O>,
    values: &Buffer,
    nulls: Option<&NullBuffer>,
) -> Option<ArrayRef> {
    let first = offsets.first().as_usize();
    let last = offsets.last().as_usize();
    let span = u32::try_from(last - first).ok()?;
    let bytes = &values.as_slice()[first..last];
    let mut long = false;
    let views: Vec<u128> = offsets
        .windows(2)
        .map(|w| {
            let (s, e) = (w[0].as_usize() - first, w[1].as_usize() - first);
            long |= e - s > 12;
            // `s <= span` fits a u32 (checked above).
            make_view(&bytes[s..e], 0, s as u32)
        })
        .collect();
    let data: Vec<Buffer> = if long {
        vec![values.slice_with_length(first, span as usize)]
    } else {
        Vec::new()
    };
    // SAFETY: each view was made from one value of a valid string/binary
    // array (valid UTF-8 for strings, by that array's invariant), pointing at
    // its bytes in data buffer 0 (the values from `first`), or inline; one
    // view per row, and `nulls` is that array's validity of the same rows.
    let a = unsafe {
        GenericByteViewArray::<V>::new_unchecked(
            ScalarBuffer::from(views),
            Arc::<[Buffer]>::from(data),
            nulls.cloned(),
        )
    };
    Some(Arc::new(a))
}

fn names(fields: &Fields) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
