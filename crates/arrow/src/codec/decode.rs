//! Zero-copy decoding of a slot: [`decode`] and the structural checks of
//! every node and buffer it uses.

use super::message::{check_buffer, check_node, read_message, Msg};
use super::{bad, SlotError, R};
use arrow_array::types::{
    BinaryType, BinaryViewType, ByteArrayType, ByteViewType, LargeBinaryType, LargeUtf8Type,
    StringViewType, Utf8Type,
};
use arrow_array::{
    downcast_primitive, make_array, new_empty_array, ArrayRef, ArrowPrimitiveType, BooleanArray,
    GenericByteArray, GenericByteViewArray, OffsetSizeTrait, PrimitiveArray, RecordBatch,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::{ArrayData, ArrayDataBuilder};
use arrow_ipc::{Buffer as IpcBuffer, FieldNode, MessageHeader, MetadataVersion};
use arrow_schema::{DataType, Field, Schema, SchemaRef, UnionMode};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Consumes the nodes, buffers and variadic counts of one record batch (or
/// dictionary batch) message, in schema order. Checks each node and buffer
/// as it hands it out ([`check_node`], [`check_buffer`]); [`Body::finish`]
/// then checks that every one was used, so every one was checked.
struct Body<'a> {
    slot: &'a Buffer,
    /// Offset of the body in the slot.
    start: usize,
    body_len: usize,
    nodes: flatbuffers::Vector<'a, FieldNode>,
    buffers: flatbuffers::Vector<'a, IpcBuffer>,
    variadic: Option<flatbuffers::Vector<'a, i64>>,
    next_node: usize,
    next_buffer: usize,
    next_variadic: usize,
    dicts: &'a [(i64, ArrayData)],
}

fn too_small(what: &str, dt: &DataType, need: usize, got: usize) -> SlotError {
    bad(format!(
        "{what} of a {dt} column needs {need} bytes but has {got}"
    ))
}

fn misaligned(dt: &DataType) -> SlotError {
    bad(format!("misaligned buffer in a {dt} column"))
}

impl<'a> Body<'a> {
    fn new(
        slot: &'a Buffer,
        m: &Msg<'a>,
        rb: &arrow_ipc::RecordBatch<'a>,
        dicts: &'a [(i64, ArrayData)],
    ) -> R<Self> {
        Ok(Self {
            slot,
            start: m.frame.offset + m.frame.meta_len,
            body_len: m.frame.body_len,
            nodes: rb
                .nodes()
                .ok_or_else(|| bad("record batch without field nodes"))?,
            buffers: rb
                .buffers()
                .ok_or_else(|| bad("record batch without buffers"))?,
            variadic: rb.variadicBufferCounts(),
            next_node: 0,
            next_buffer: 0,
            next_variadic: 0,
            dicts,
        })
    }

    /// `(length, null_count)` of the next node, checked.
    fn node(&mut self) -> R<(usize, usize)> {
        if self.next_node >= self.nodes.len() {
            return Err(bad("fewer field nodes than the schema needs"));
        }
        let n = self.nodes.get(self.next_node);
        self.next_node += 1;
        check_node(n)
    }

    /// `(offset in the slot, length)` of the next buffer, checked.
    fn range(&mut self) -> R<(usize, usize)> {
        if self.next_buffer >= self.buffers.len() {
            return Err(bad("fewer buffers than the schema needs"));
        }
        let b = self.buffers.get(self.next_buffer);
        self.next_buffer += 1;
        let (o, l) = check_buffer(b, self.body_len)?;
        // `read_message` checked that the body lies inside the slot.
        Ok((self.start + o, l))
    }

    /// The next buffer, a zero-copy slice of the slot.
    fn buffer(&mut self) -> R<Buffer> {
        let (o, l) = self.range()?;
        Ok(self.slot.slice_with_length(o, l))
    }

    /// The next buffer as the validity bitmap of a node, sliced out of the
    /// slot only if the node has nulls; the bitmap must then cover `len`
    /// bits. The null count is taken from the node (trust model: not
    /// recounted).
    fn validity(&mut self, len: usize, null_count: usize) -> R<Option<NullBuffer>> {
        let (o, l) = self.range()?;
        if null_count == 0 {
            return Ok(None);
        }
        if l < len.div_ceil(8) {
            return Err(bad(format!(
                "validity bitmap of {l} bytes is too short for {len} rows"
            )));
        }
        let bits = BooleanBuffer::new(self.slot.slice_with_length(o, l), 0, len);
        // SAFETY: the bitmap covers `len` bits (checked above) and
        // `null_count <= len` (`check_node`); that the count matches the bits
        // is part of the documented trust model.
        Ok(Some(unsafe { NullBuffer::new_unchecked(bits, null_count) }))
    }

    /// Number of variadic (data) buffers of the next view column.
    fn variadic(&mut self, dt: &DataType) -> R<usize> {
        let count = self
            .variadic
            .filter(|v| self.next_variadic < v.len())
            .map(|v| v.get(self.next_variadic))
            .ok_or_else(|| bad(format!("missing variadic buffer count for a {dt} column")))?;
        self.next_variadic += 1;
        let remaining = self.buffers.len() - self.next_buffer;
        usize::try_from(count)
            .ok()
            .filter(|c| c.checked_add(2).is_some_and(|t| t <= remaining))
            .ok_or_else(|| {
                bad(format!(
                    "invalid variadic buffer count {count} for a {dt} column"
                ))
            })
    }

    /// Every node, buffer and variadic count was used.
    fn finish(&self) -> R<()> {
        let variadic = self.variadic.map_or(0, |v| v.len());
        if self.next_node != self.nodes.len()
            || self.next_buffer != self.buffers.len()
            || self.next_variadic != variadic
        {
            return Err(bad(format!(
                "message has {} field nodes, {} buffers and {} variadic counts; the schema uses {}, {} and {}",
                self.nodes.len(),
                self.buffers.len(),
                variadic,
                self.next_node,
                self.next_buffer,
                self.next_variadic
            )));
        }
        Ok(())
    }

    /// Checks a fixed-width buffer: at least `len * width` bytes, aligned to
    /// `align` (what `ArrayData::validate` checks for it).
    fn fixed(b: &Buffer, len: usize, width: usize, align: usize, dt: &DataType) -> R<()> {
        let need = len
            .checked_mul(width)
            .ok_or_else(|| bad(format!("{dt} column length overflows")))?;
        if b.len() < need {
            return Err(too_small("values buffer", dt, need, b.len()));
        }
        if b.as_ptr().align_offset(align) != 0 {
            return Err(misaligned(dt));
        }
        Ok(())
    }

    /// A top-level column. Flat primitive, boolean, string, binary and view
    /// columns are built directly; everything else through `ArrayData`,
    /// validated (recursively) with `ArrayData::validate`.
    fn column(&mut self, field: &Field) -> R<ArrayRef> {
        let dt = field.data_type();
        macro_rules! prim {
            ($t:ty) => {
                self.primitive::<$t>(dt)
            };
        }
        downcast_primitive! {
            dt => (prim),
            DataType::Boolean => self.boolean(),
            DataType::Utf8 => self.bytes::<Utf8Type>(),
            DataType::LargeUtf8 => self.bytes::<LargeUtf8Type>(),
            DataType::Binary => self.bytes::<BinaryType>(),
            DataType::LargeBinary => self.bytes::<LargeBinaryType>(),
            DataType::Utf8View => self.views::<StringViewType>(),
            DataType::BinaryView => self.views::<BinaryViewType>(),
            _ => {
                let data = self.data(field)?;
                data.validate()
                    .map_err(|e| bad(format!("column {:?}: {e}", field.name())))?;
                Ok(make_array(data))
            }
        }
    }

    fn primitive<T: ArrowPrimitiveType>(&mut self, dt: &DataType) -> R<ArrayRef> {
        let (len, null_count) = self.node()?;
        let nulls = self.validity(len, null_count)?;
        let values = self.buffer()?;
        let width = std::mem::size_of::<T::Native>();
        Self::fixed(&values, len, width, std::mem::align_of::<T::Native>(), dt)?;
        let values = ScalarBuffer::<T::Native>::new(values, 0, len);
        let a = PrimitiveArray::<T>::new(values, nulls);
        // Parameterised types (timestamp zone, decimal precision) only.
        let a = if *dt == T::DATA_TYPE {
            a
        } else {
            a.with_data_type(dt.clone())
        };
        Ok(Arc::new(a))
    }

    fn boolean(&mut self) -> R<ArrayRef> {
        let (len, null_count) = self.node()?;
        let nulls = self.validity(len, null_count)?;
        let values = self.buffer()?;
        if values.len() < len.div_ceil(8) {
            return Err(too_small(
                "values bitmap",
                &DataType::Boolean,
                len.div_ceil(8),
                values.len(),
            ));
        }
        let values = BooleanBuffer::new(values, 0, len);
        Ok(Arc::new(BooleanArray::new(values, nulls)))
    }

    fn bytes<T: ByteArrayType>(&mut self) -> R<ArrayRef> {
        let dt = T::DATA_TYPE;
        let (len, null_count) = self.node()?;
        let nulls = self.validity(len, null_count)?;
        let offsets = self.buffer()?;
        let values = self.buffer()?;
        let offsets = offset_buffer::<T::Offset>(offsets, len, values.len(), &dt)?;
        // SAFETY: the offsets buffer holds len + 1 aligned offsets whose first
        // and last lie inside `values`, first <= last (what
        // `ArrayData::validate` checks); monotonicity and UTF-8 are the
        // documented trust model, as with `skip_validation`.
        let a = unsafe { GenericByteArray::<T>::new_unchecked(offsets, values, nulls) };
        Ok(Arc::new(a))
    }

    fn views<T: ByteViewType + ?Sized>(&mut self) -> R<ArrayRef> {
        let dt = T::DATA_TYPE;
        let count = self.variadic(&dt)?;
        let (len, null_count) = self.node()?;
        let nulls = self.validity(len, null_count)?;
        let views = self.buffer()?;
        let data: Arc<[Buffer]> = if count == 0 {
            no_buffers()
        } else {
            (0..count).map(|_| self.buffer()).collect::<R<_>>()?
        };
        Self::fixed(&views, len, 16, std::mem::align_of::<u128>(), &dt)?;
        let views = ScalarBuffer::<u128>::new(views, 0, len);
        // SAFETY: the views buffer holds `len` aligned views (what
        // `ArrayData::validate` checks); that each view points inside its data
        // buffer, and UTF-8, are the documented trust model, as with
        // `skip_validation`.
        let a = unsafe { GenericByteViewArray::<T>::new_unchecked(views, data, nulls) };
        Ok(Arc::new(a))
    }

    /// Builds the `ArrayData` of a field (and its children) without
    /// validating it; the caller validates the whole tree once. Consumes
    /// nodes and buffers exactly like arrow-ipc's reader.
    fn data(&mut self, field: &Field) -> R<ArrayData> {
        let dt = field.data_type();
        let b = ArrayDataBuilder::new(dt.clone());
        let b = match dt {
            DataType::Null => {
                let (len, null_count) = self.node()?;
                if len != null_count {
                    return Err(bad(format!(
                        "null column {:?} has {null_count} nulls in {len} rows",
                        field.name()
                    )));
                }
                b.len(len)
            }
            DataType::Utf8 | DataType::Binary | DataType::LargeUtf8 | DataType::LargeBinary => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let (o, d) = (self.buffer()?, self.buffer()?);
                whole(&o, offset_width(dt), dt)?;
                b.len(len).nulls(nulls).buffers(vec![o, d])
            }
            DataType::BinaryView | DataType::Utf8View => {
                let count = self.variadic(dt)?;
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let mut bufs = Vec::with_capacity(count + 1);
                for _ in 0..=count {
                    bufs.push(self.buffer()?);
                }
                b.len(len).nulls(nulls).buffers(bufs)
            }
            DataType::List(f) | DataType::LargeList(f) | DataType::Map(f, _) => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let o = self.buffer()?;
                whole(&o, offset_width(dt), dt)?;
                let child = self.data(f)?;
                b.len(len).nulls(nulls).add_buffer(o).add_child_data(child)
            }
            DataType::ListView(f) | DataType::LargeListView(f) => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let (o, s) = (self.buffer()?, self.buffer()?);
                whole(&o, offset_width(dt), dt)?;
                whole(&s, offset_width(dt), dt)?;
                let child = self.data(f)?;
                b.len(len)
                    .nulls(nulls)
                    .buffers(vec![o, s])
                    .add_child_data(child)
            }
            DataType::FixedSizeList(f, size) => {
                let (len, nc) = self.node()?;
                if usize::try_from(*size)
                    .ok()
                    .and_then(|s| s.checked_mul(len))
                    .is_none()
                {
                    return Err(bad(format!("{dt} column length overflows")));
                }
                let nulls = self.validity(len, nc)?;
                let child = self.data(f)?;
                b.len(len).nulls(nulls).add_child_data(child)
            }
            DataType::Struct(fields) => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let children = fields.iter().map(|f| self.data(f)).collect::<R<Vec<_>>>()?;
                b.len(len).nulls(nulls).child_data(children)
            }
            DataType::RunEndEncoded(run_ends, values) => {
                let (len, _) = self.node()?;
                let r = self.data(run_ends)?;
                let v = self.data(values)?;
                b.len(len).add_child_data(r).add_child_data(v)
            }
            DataType::Dictionary(_, value_type) => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let keys = self.buffer()?;
                #[allow(deprecated)]
                let id = field.dict_id().unwrap_or_default();
                let values = match self.dicts.iter().rev().find(|(i, _)| *i == id) {
                    Some((_, d)) => d.clone(),
                    // Per the IPC spec a dictionary batch may be omitted when
                    // every value is null: use an empty dictionary.
                    None => new_empty_array(value_type).to_data(),
                };
                b.len(len)
                    .nulls(nulls)
                    .add_buffer(keys)
                    .add_child_data(values)
            }
            DataType::Union(fields, mode) => {
                // V5: unions have no validity buffer.
                let (len, _) = self.node()?;
                let mut b = b.len(len).add_buffer(self.buffer()?);
                if let UnionMode::Dense = mode {
                    b = b.add_buffer(self.buffer()?);
                }
                let children = fields
                    .iter()
                    .map(|(_, f)| self.data(f))
                    .collect::<R<Vec<_>>>()?;
                b.child_data(children)
            }
            // Fixed-width primitives, boolean, decimals, FixedSizeBinary.
            _ => {
                let (len, nc) = self.node()?;
                let nulls = self.validity(len, nc)?;
                let values = self.buffer()?;
                b.len(len).nulls(nulls).add_buffer(values)
            }
        };
        // SAFETY: nothing reads the data before the caller's
        // `ArrayData::validate` of the whole tree (sizes vs lengths,
        // alignment, child types and lengths); value-level validity is the
        // documented trust model.
        Ok(unsafe { b.build_unchecked() })
    }
}

/// A shared empty list of view data buffers (all strings inline), so such
/// columns allocate nothing for it.
fn no_buffers() -> Arc<[Buffer]> {
    static EMPTY: std::sync::OnceLock<Arc<[Buffer]>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(|| Arc::from(Vec::new())).clone()
}

/// Width of the offsets (and sizes) of a variable-size type.
fn offset_width(dt: &DataType) -> usize {
    match dt {
        DataType::LargeUtf8
        | DataType::LargeBinary
        | DataType::LargeList(_)
        | DataType::LargeListView(_) => 8,
        _ => 4,
    }
}

/// An offsets or sizes buffer holds whole elements (`ArrayData::validate`
/// reads it as a typed slice, which panics otherwise).
fn whole(b: &Buffer, width: usize, dt: &DataType) -> R<()> {
    if !b.len().is_multiple_of(width) {
        return Err(bad(format!(
            "offsets buffer of a {dt} column is {} bytes, not a multiple of {width}",
            b.len()
        )));
    }
    Ok(())
}

/// The offsets of a `len`-row string/binary column: `len + 1` aligned
/// offsets, the first and the last inside `values_len` and in order (what
/// `ArrayData::validate` checks). An empty column may have no offsets.
fn offset_buffer<O: OffsetSizeTrait>(
    b: Buffer,
    len: usize,
    values_len: usize,
    dt: &DataType,
) -> R<OffsetBuffer<O>> {
    if len == 0 && b.is_empty() {
        return Ok(OffsetBuffer::new_empty());
    }
    let w = std::mem::size_of::<O>();
    let n = len
        .checked_add(1)
        .ok_or_else(|| bad(format!("{dt} column length overflows")))?;
    Body::fixed(&b, n, w, std::mem::align_of::<O>(), dt)
        .map_err(|_| too_small("offsets buffer", dt, n.saturating_mul(w), b.len()))?;
    let o = ScalarBuffer::<O>::new(b, 0, n);
    match (o[0].to_usize(), o[len].to_usize()) {
        (Some(first), Some(last)) if first <= last && last <= values_len => {}
        _ => {
            return Err(bad(format!(
                "offsets of a {dt} column run outside its {values_len}-byte values buffer"
            )))
        }
    }
    // SAFETY: len + 1 offsets; first <= last, both inside the values buffer.
    // Monotonicity is the documented trust model, as with `skip_validation`.
    Ok(unsafe { OffsetBuffer::new_unchecked(o) })
}

/// The value type of the dictionary with id `id`.
fn dictionary_value_type(schema: &Schema, id: i64) -> R<DataType> {
    #[allow(deprecated)]
    let fields = schema.fields_with_dict_id(id);
    match fields.first().map(|f| f.data_type()) {
        Some(DataType::Dictionary(_, v)) => Ok(v.as_ref().clone()),
        _ => Err(bad(format!("dictionary id {id} not found in the schema"))),
    }
}

fn decode_inner(schema: &SchemaRef, slot: &Buffer) -> R<RecordBatch> {
    let bytes = slot.as_slice();
    let mut dicts: Vec<(i64, ArrayData)> = Vec::new();
    let mut batch = None;
    let mut pos = 0;
    while let Some(m) = read_message(bytes, pos, false)? {
        pos = m.frame.offset + m.frame.meta_len + m.frame.body_len;
        let Some((rb, id)) = m.batch else {
            continue; // a schema message: the reader's schema is authoritative
        };
        if m.version != MetadataVersion::V5 {
            return Err(bad(format!(
                "message at offset {} has metadata version {:?}, expected V5",
                m.frame.offset, m.version
            )));
        }
        let mut body = Body::new(slot, &m, &rb, &dicts)?;
        match m.frame.header {
            MessageHeader::DictionaryBatch => {
                let value = Field::new("", dictionary_value_type(schema, id)?, true);
                let data = body.data(&value)?;
                body.finish()?;
                if usize::try_from(rb.length()).ok() != Some(data.len()) {
                    return Err(bad(format!("dictionary {id}: length mismatch")));
                }
                data.validate()
                    .map_err(|e| bad(format!("dictionary {id}: {e}")))?;
                dicts.retain(|(i, _)| *i != id);
                dicts.push((id, data));
            }
            _ => {
                if batch.is_some() {
                    return Err(bad("two record batches in one slot"));
                }
                let rows = usize::try_from(rb.length()).map_err(|_| bad("negative row count"))?;
                let mut columns = Vec::with_capacity(schema.fields().len());
                for f in schema.fields() {
                    columns.push(body.column(f)?);
                }
                body.finish()?;
                if let Some((f, c)) = schema
                    .fields()
                    .iter()
                    .zip(&columns)
                    .find(|(_, c)| c.len() != rows)
                {
                    return Err(bad(format!(
                        "column {:?} has {} rows, the batch {rows}",
                        f.name(),
                        c.len()
                    )));
                }
                // SAFETY: one column per field, each built from that field's
                // data type, each `rows` long (checked above).
                batch = Some(unsafe { RecordBatch::new_unchecked(schema.clone(), columns, rows) });
            }
        }
    }
    batch.ok_or_else(|| bad("slot holds no record batch"))
}

/// Decodes a slot whose bytes are owned by `slot` (a buffer over shared
/// memory, whose allocation owner is the lease). Every array buffer of the
/// result points into `slot`.
///
/// Only the structure is checked, in O(columns) (see the [module
/// docs](super)); the values are trusted. Use [`decode_validated`] for
/// bytes that no validating writer produced.
///
/// ```
/// use ringfeed_arrow::codec::{self, SlotEncoder};
/// use arrow_array::record_batch;
/// use arrow_buffer::Buffer;
/// let batch = record_batch!(("close", Float64, [1.0, 2.5]))?;
/// let mut enc = SlotEncoder::new(&batch.schema())?;
/// let bufs = enc.encode(&batch)?;
/// let mut slot = vec![0u8; codec::encoded_len(&bufs)];
/// codec::copy_into(&bufs, &mut slot);
/// let slot = Buffer::from(slot); // a 64-byte aligned copy
/// // SAFETY: the slot was just encoded from `batch`, whose arrays were
/// // validated when `record_batch!` built them.
/// let got = unsafe { codec::decode(&batch.schema(), &slot) }?;
/// assert_eq!(got, batch);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Safety
/// The caller promises that the *values* in `slot` are valid for `schema`,
/// because a writer that validated them wrote them (the trust model in
/// `docs/layout.md`: a [`crate::Writer`] encodes only arrays that were
/// validated when they were built or imported, into an arena of mode 0600
/// owned by the reading user):
/// - string columns (`Utf8`, `LargeUtf8`, `Utf8View`) hold valid UTF-8;
/// - offsets are monotonic and every one lies inside its values buffer
///   (only the first and the last are checked here);
/// - every view of a view column lies inside its data buffer;
/// - every dictionary key is inside its dictionary;
/// - every null count matches its validity bitmap.
///
/// Reading a value of an array that breaks one of these is undefined
/// behaviour. A caller that cannot promise this may still call `decode` if
/// it reads no value before running `ArrayData::validate_full` on every
/// column, which is what [`decode_validated`] does.
pub unsafe fn decode(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
    match catch_unwind(AssertUnwindSafe(|| decode_inner(schema, slot))) {
        Ok(r) => r.map_err(|e| bad(format!("decode failed: {e}"))),
        Err(_) => Err(bad("decode failed: arrow rejected the slot (panic caught)")),
    }
}

/// [`decode`], then arrow's full O(rows) validation of every column (UTF-8,
/// offsets, views, dictionary keys, null counts, non-nullable fields): safe
/// for bytes of any origin, such as a fuzzer's or another user's. The error
/// names the first invalid column.
pub fn decode_validated(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
    // SAFETY: nothing reads a value of the result before every column passed
    // `validate_full` below; an invalid batch is dropped unread (the escape
    // clause of `decode`'s contract).
    let batch = unsafe { decode(schema, slot) }?;
    let checked = catch_unwind(AssertUnwindSafe(|| {
        for (field, column) in schema.fields().iter().zip(batch.columns()) {
            if !field.is_nullable() && column.null_count() > 0 {
                return Err(bad(format!(
                    "column {:?} is not nullable but has {} nulls",
                    field.name(),
                    column.null_count()
                )));
            }
            column
                .to_data()
                .validate_full()
                .map_err(|e| bad(format!("column {:?} is invalid: {e}", field.name())))?;
        }
        Ok(())
    }));
    match checked {
        Ok(Ok(())) => Ok(batch),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(bad(
            "validation failed: arrow panicked on the slot (caught)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::encode::SlotEncoder;
    use crate::codec::message::frames;
    use crate::codec::testutil::*;
    use proptest::prelude::*;

    #[test]
    fn structural_errors_are_reported() {
        let b = direct_batch();
        let schema = b.schema();
        let slot = slot_of(&mut SlotEncoder::new(&schema).unwrap(), &b);
        let meta_len = frames(&slot).unwrap()[0].meta_len;
        let msg = arrow_ipc::root_as_message(&slot[8..meta_len]).unwrap();
        let rb = msg.header_as_record_batch().unwrap();
        let bufs = rb.buffers().unwrap();
        let last = bufs.get(bufs.len() - 1);
        assert!(last.offset() > 0);
        // Find the flatbuffer bytes of the last buffer entry (a unique
        // offset) and move it off the 64-byte grid, then past the body.
        let needle: Vec<u8> = [last.offset(), last.length()]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        let at = slot[..meta_len]
            .windows(16)
            .position(|w| w == needle.as_slice())
            .unwrap();
        let mut bad_align = slot.clone();
        bad_align[at] += 8;
        let err = trusted_decode(&schema, &aligned(&bad_align)).unwrap_err();
        assert!(err.0.contains("not 64-byte aligned"), "{err}");
        assert!(frames(&bad_align).is_err());
        let mut past = slot.clone();
        past[at + 8..at + 16].copy_from_slice(&(1i64 << 40).to_le_bytes());
        let err = trusted_decode(&schema, &aligned(&past)).unwrap_err();
        assert!(err.0.contains("runs past"), "{err}");
        // A truncated slot, a schema with a column too many / too few.
        assert!(trusted_decode(&schema, &aligned(&slot[..slot.len() - 64])).is_err());
        let fewer = Arc::new(schema.project(&[0, 1]).unwrap());
        let err = trusted_decode(&fewer, &aligned(&slot)).unwrap_err();
        assert!(err.0.contains("schema uses"), "{err}");
        let mut more: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        more.push(Field::new("extra", DataType::Int32, true));
        let err = trusted_decode(&Arc::new(Schema::new(more)), &aligned(&slot)).unwrap_err();
        assert!(err.0.contains("fewer"), "{err}");
    }

    #[test]
    fn decode_validated_refuses_values_that_decode_trusts() {
        use arrow_array::{ArrayRef, StringArray};
        let names: ArrayRef = Arc::new(StringArray::from(vec!["abc", "defgh"]));
        let b = RecordBatch::try_from_iter([("name", names)]).unwrap();
        let schema = b.schema();
        let slot = slot_of(&mut SlotEncoder::new(&schema).unwrap(), &b);
        let find = |needle: &[u8]| {
            slot.windows(needle.len())
                .position(|w| w == needle)
                .unwrap()
        };
        // Invalid UTF-8 in the values.
        let mut utf8 = slot.clone();
        utf8[find(b"defgh")] = 0xFF;
        // Offsets [0, 3, 8] made [0, 9, 8]: not monotonic, one past the values.
        let mut offsets = slot.clone();
        let at = find(&[0, 0, 0, 0, 3, 0, 0, 0, 8, 0, 0, 0]) + 4;
        offsets[at] = 9;
        for broken in [utf8, offsets] {
            let buf = aligned(&broken);
            // Structure only: accepted (its values are never read here).
            assert_eq!(trusted_decode(&schema, &buf).unwrap().num_rows(), 2);
            let err = decode_validated(&schema, &buf).unwrap_err();
            assert!(err.0.contains("column \"name\" is invalid"), "{err}");
            assert_eq!(err.kind(), crate::ErrorKind::Corrupt);
        }
        assert_eq!(decode_validated(&schema, &aligned(&slot)).unwrap(), b);
    }

    /// Views, offsets and dictionary keys that the structural decoder trusts
    /// (reading them would be out of bounds) are refused by full validation.
    #[test]
    fn full_validation_refuses_bad_views_and_dictionary_keys() {
        use arrow_array::types::Int32Type;
        use arrow_array::{ArrayRef, DictionaryArray, StringViewArray};
        let long = "a string longer than twelve bytes";
        let views: ArrayRef = Arc::new(StringViewArray::from_iter_values([long, "short", long]));
        let dict: ArrayRef = Arc::new(
            vec!["x", "y", "x"]
                .into_iter()
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let b = RecordBatch::try_from_iter([("v", views), ("d", dict)]).unwrap();
        let schema = through_meta(&b.schema());
        let b = b.with_schema(schema.clone()).unwrap();
        let slot = slot_of(&mut SlotEncoder::new(&schema).unwrap(), &b);
        assert_eq!(decode_validated(&schema, &aligned(&slot)).unwrap(), b);
        let find = |needle: &[u8]| {
            let at: Vec<usize> = slot
                .windows(needle.len())
                .enumerate()
                .filter(|(_, w)| *w == needle)
                .map(|(i, _)| i)
                .collect();
            assert!(!at.is_empty(), "needle not in slot");
            at
        };
        // A long view: {len u32, prefix [u8;4], buffer_index u32, offset u32}.
        let len = (long.len() as u32).to_le_bytes();
        let view_at = find(&[&len[..], &long.as_bytes()[..4]].concat())[0];
        let mut cases = Vec::new();
        let mut bad_index = slot.clone();
        bad_index[view_at + 8] = 7; // no data buffer 7
        cases.push(("view buffer index", bad_index));
        let mut bad_offset = slot.clone();
        bad_offset[view_at + 12..view_at + 16].copy_from_slice(&10_000u32.to_le_bytes());
        cases.push(("view offset", bad_offset));
        let mut bad_len = slot.clone();
        bad_len[view_at..view_at + 4].copy_from_slice(&5_000u32.to_le_bytes());
        cases.push(("view length", bad_len));
        // Dictionary keys [0, 1, 0]: make the second one 9 (2 values).
        let keys_at = *find(&[0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]).last().unwrap();
        let mut bad_key = slot.clone();
        bad_key[keys_at + 4] = 9;
        cases.push(("dictionary key", bad_key));
        for (what, broken) in cases {
            let buf = aligned(&broken);
            // Structure only: accepted (its values are never read here).
            assert!(trusted_decode(&schema, &buf).is_ok(), "{what}: structure");
            let err = decode_validated(&schema, &buf).unwrap_err();
            assert!(err.0.contains("is invalid"), "{what}: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("CODEC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
            ..ProptestConfig::default()
        })]

        /// Corrupt *value* buffers (message bodies, metadata intact): full
        /// validation returns Ok or an error, never crashes, and what it
        /// accepts is valid to the last value.
        #[test]
        fn corrupt_value_buffers_never_crash_full_validation(
            which in 0usize..3,
            mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        ) {
            let (schema, mut slot) = slots().swap_remove(which);
            let bodies: Vec<(usize, usize)> = frames(&slot)
                .unwrap()
                .iter()
                .filter(|f| f.body_len > 0)
                .map(|f| (f.offset + f.meta_len, f.offset + f.meta_len + f.body_len))
                .collect();
            for (idx, val) in mutations {
                let (a, b) = bodies[idx.index(bodies.len())];
                slot[a + idx.index(b - a)] = val;
            }
            if let Ok(batch) = decode_validated(&schema, &aligned(&slot)) {
                for c in batch.columns() {
                    prop_assert!(c.to_data().validate_full().is_ok());
                    // Reading every value is safe now: format them all.
                    let _ = arrow_cast_free_render(c.as_ref());
                }
            }
        }
    }

    /// Touches every value of `a` (Debug formatting walks them all).
    fn arrow_cast_free_render(a: &dyn arrow_array::Array) -> usize {
        format!("{a:?}").len()
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: std::env::var("CODEC_FUZZ_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(300),
            ..ProptestConfig::default()
        })]

        /// Corrupt metadata gives errors, never a panic that reaches the
        /// caller; and the decoder accepts nothing the previous one rejected.
        #[test]
        fn corrupt_metadata_is_rejected_at_least_as_strictly(
            which in 0usize..3,
            mutations in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(),
        ) {
            let (schema, mut slot) = slots().swap_remove(which);
            let spans: Vec<(usize, usize)> = frames(&slot).unwrap().iter().map(|f| (f.offset, f.offset + f.meta_len)).collect();
            for (idx, val) in mutations {
                let (a, b) = spans[idx.index(spans.len())];
                slot[a + idx.index(b - a)] = val;
            }
            for bytes in [&slot[..], &slot[..cut.index(slot.len() + 1)]] {
                let buf = aligned(bytes);
                let new = trusted_decode(&schema, &buf);
                if let Ok(got) = &new {
                    let old = reference_decode(&schema, &buf);
                    prop_assert!(old.is_ok(), "accepted what the reference rejects: {:?}", old.err());
                    let old = old.unwrap();
                    prop_assert_eq!(got.num_rows(), old.num_rows());
                    for (a, b) in got.columns().iter().zip(old.columns()) {
                        prop_assert_eq!(a.len(), b.len());
                        prop_assert_eq!(a.null_count(), b.null_count());
                    }
                }
            }
        }
    }
}
