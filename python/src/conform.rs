//! Making an imported batch fit the ring's schema.
//!
//! Python producers spell the same logical type differently: polars exports
//! strings as `Utf8View` and lists as `LargeList` and marks every field
//! nullable; pyarrow defaults to `Utf8` and `List`. Requiring bit-identical
//! schemas would make a ring created from a `pyarrow.Schema` reject every
//! polars frame. So a column may differ from the ring's in
//! - nullability (the ring's wins; nulls in a non-nullable column are refused),
//! - field metadata (the ring's wins),
//! - the physical layout of one logical type: string ⇄ large string ⇄ string
//!   view, binary ⇄ large binary ⇄ binary view, list ⇄ large list, and
//!   dictionary ⇄ plain values; it is then cast (one O(rows) copy; a column
//!   that already matches is passed through untouched).
//!
//! Anything else (another name, another numeric type, another time unit or
//! zone) is a `SchemaMismatchError`: such casts can lose data.

use arrow_array::{ArrayRef, RecordBatch, RecordBatchOptions};
use arrow_schema::{DataType, SchemaRef};

fn is_string(t: &DataType) -> bool {
    matches!(t, DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View)
}

fn is_binary(t: &DataType) -> bool {
    matches!(
        t,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView
    )
}

/// Whether `from` is the same logical type as `to` in another layout.
pub(crate) fn same_logical(from: &DataType, to: &DataType) -> bool {
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

/// `batch` with `target`'s schema, casting columns as described above.
/// Returns the first difference that cannot be bridged.
pub(crate) fn conform(batch: &RecordBatch, target: &SchemaRef) -> Result<RecordBatch, String> {
    if std::sync::Arc::ptr_eq(batch.schema_ref(), target) {
        return Ok(batch.clone());
    }
    let want = target.fields();
    let have = batch.schema_ref().fields().clone();
    if want.len() != have.len() {
        return Err(format!(
            "{} columns expected ({}), frame has {} ({})",
            want.len(),
            names(want),
            have.len(),
            names(&have)
        ));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(want.len());
    for ((w, h), col) in want.iter().zip(have.iter()).zip(batch.columns()) {
        if w.name() != h.name() {
            return Err(format!(
                "column {:?} expected where the frame has {:?}",
                w.name(),
                h.name()
            ));
        }
        if w.data_type() == h.data_type() {
            columns.push(col.clone());
        } else if same_logical(h.data_type(), w.data_type()) {
            let cast = arrow_cast::cast(col, w.data_type()).map_err(|e| {
                format!(
                    "column {:?}: cannot cast {} to {}: {e}",
                    w.name(),
                    h.data_type(),
                    w.data_type()
                )
            })?;
            columns.push(cast);
        } else {
            return Err(format!(
                "column {:?}: expected {}, frame has {}",
                w.name(),
                w.data_type(),
                h.data_type()
            ));
        }
    }
    RecordBatch::try_new_with_options(
        target.clone(),
        columns,
        &RecordBatchOptions::new().with_row_count(Some(batch.num_rows())),
    )
    .map_err(|e| e.to_string())
}

fn names(fields: &arrow_schema::Fields) -> String {
    fields
        .iter()
        .map(|f| f.name().as_str())
        .collect::<Vec<_>>()
        .join(", ")
}
