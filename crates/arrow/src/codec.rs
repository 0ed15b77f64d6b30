//! Arrow IPC in and out of slots.
//!
//! A slot holds a prefix of an Arrow IPC *stream*: an optional schema
//! message, the dictionary batches the record batch needs, then the record
//! batch, each message 64-byte aligned. Every slot is self-contained, so a
//! reader that joins late can decode any slot on its own, and any IPC stream
//! reader can read a slot's bytes.
//!
//! **Writing.** For schemas without dictionaries, unions, run-end encoded or
//! list-view columns, [`SlotEncoder`] writes the record-batch message itself
//! ([`SlotEncoder::prepare`]): one walk over the columns lists every buffer
//! and sizes the slot, the message flatbuffer of an earlier batch of the same
//! shape is patched with the new numbers (or a new one is built), then
//! [`Prepared::write_to`] copies the buffers straight into the slot in one
//! pass. No allocation per batch once warm, one copy of the data. Other
//! schemas go through arrow-ipc's `StreamEncoder`. Both produce arrow-ipc's
//! layout: every buffer 64-byte aligned and padded, a zero-length validity
//! buffer when a column has no nulls, sliced arrays truncated (offsets
//! rebased, bitmaps shifted).
//!
//! **Reading.** [`decode`] parses and verifies each message's flatbuffer
//! once, checks its structure, then builds the arrays itself over the slot
//! (zero-copy: every buffer is a slice of the slot).
//!
//! Trust model: readers check structure in O(columns) — message framing,
//! flatbuffer verification, metadata version, no compression, no delta
//! dictionaries, every buffer range inside the slot and 64-byte aligned,
//! every buffer and node consumed exactly, node/buffer sizes against lengths
//! and element alignment (for nested and other less common types through
//! `ArrayData::validate`, for flat primitive, boolean, string, binary and
//! view columns through the same checks done inline), column lengths equal
//! to the row count — and then skip arrow's O(rows) value validation (UTF-8,
//! offsets monotonicity, view and dictionary key bounds, null counts). Those
//! were validated by the writer on construction of its arrays; the arena is
//! mode 0600 and owned by the reading user, so only that user's own
//! processes can write it. Arrow panics on malformed input are caught and
//! reported as errors, never propagated.

use arrow_array::types::{
    BinaryType, BinaryViewType, ByteArrayType, ByteViewType, LargeBinaryType, LargeUtf8Type,
    StringViewType, Utf8Type,
};
use arrow_array::{
    downcast_primitive, downcast_primitive_array, make_array, new_empty_array, Array, ArrayRef,
    ArrowPrimitiveType, BooleanArray, FixedSizeBinaryArray, FixedSizeListArray, GenericByteArray,
    GenericByteViewArray, GenericListArray, MapArray, OffsetSizeTrait, PrimitiveArray, RecordBatch,
    StructArray,
};
use arrow_buffer::{BooleanBuffer, Buffer, NullBuffer, OffsetBuffer, ScalarBuffer};
use arrow_data::{ArrayData, ArrayDataBuilder};
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamEncoder};
use arrow_ipc::{
    Buffer as IpcBuffer, FieldNode, MessageBuilder, MessageHeader, MetadataVersion,
    RecordBatchBuilder,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, UnionMode};
use flatbuffers::FlatBufferBuilder;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// Alignment of every message and buffer inside a slot.
pub const SLOT_ALIGN: usize = 64;
const CONTINUATION: u32 = 0xFFFF_FFFF;
const ZEROS: [u8; SLOT_ALIGN] = [0; SLOT_ALIGN];

/// IPC write options used everywhere: 64-byte alignment, metadata V5.
pub fn write_options() -> IpcWriteOptions {
    IpcWriteOptions::try_new(SLOT_ALIGN, false, MetadataVersion::V5)
        .expect("64 is a valid IPC alignment")
}

/// Encodes `schema` as an encapsulated IPC schema message (for the meta block).
pub fn encode_schema(schema: &Schema) -> Vec<u8> {
    let opts = write_options();
    let mut tracker = DictionaryTracker::new(false);
    let encoded = IpcDataGenerator::default().schema_to_bytes_with_dictionary_tracker(
        schema,
        &mut tracker,
        &opts,
    );
    let mut out = Vec::with_capacity(encoded.ipc_message.len() + 8);
    arrow_ipc::writer::write_message(&mut out, encoded, &opts)
        .expect("writing to a Vec cannot fail");
    out
}

/// Decodes the meta block back into a schema.
pub fn decode_schema(bytes: &[u8]) -> Result<Schema, ArrowError> {
    arrow_ipc::convert::try_schema_from_ipc_buffer(bytes)
}

fn has_dictionary(dt: &DataType) -> bool {
    match dt {
        DataType::Dictionary(_, _) => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => has_dictionary(f.data_type()),
        DataType::ListView(f) | DataType::LargeListView(f) => has_dictionary(f.data_type()),
        DataType::Struct(fs) => fs.iter().any(|f| has_dictionary(f.data_type())),
        DataType::Union(fs, _) => fs.iter().any(|(_, f)| has_dictionary(f.data_type())),
        DataType::RunEndEncoded(_, v) => has_dictionary(v.data_type()),
        _ => false,
    }
}

/// Rounds `n` up to a multiple of [`SLOT_ALIGN`].
const fn pad(n: usize) -> usize {
    n.next_multiple_of(SLOT_ALIGN)
}

// ---------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------

/// Whether the direct encoder handles every column of this type.
fn direct_supported(dt: &DataType) -> bool {
    macro_rules! yes {
        ($t:ty) => {
            true
        };
    }
    downcast_primitive! {
        dt => (yes),
        DataType::Null
        | DataType::Boolean
        | DataType::FixedSizeBinary(_)
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Binary
        | DataType::LargeBinary
        | DataType::Utf8View
        | DataType::BinaryView => true,
        DataType::List(f)
        | DataType::LargeList(f)
        | DataType::FixedSizeList(f, _)
        | DataType::Map(f, _) => direct_supported(f.data_type()),
        DataType::Struct(fs) => fs.iter().all(|f| direct_supported(f.data_type())),
        _ => false,
    }
}

/// One body buffer as the walk finds it, before it is written.
#[derive(Clone, Copy)]
enum Src<'a> {
    /// Nothing (zero-length buffer).
    Empty,
    /// `len` bytes of `buf` from `start`, written verbatim.
    Bytes {
        buf: &'a Buffer,
        start: usize,
        len: usize,
    },
    /// `len` bits of `buf` from bit `offset` (not a multiple of 8), shifted
    /// down to bit 0.
    Bits {
        buf: &'a Buffer,
        offset: usize,
        len: usize,
    },
    /// Little-endian offsets of `width` (4 or 8) bytes each, written minus
    /// the first one (a sliced string/list column).
    Rebased { bytes: &'a [u8], width: usize },
}

impl<'a> Src<'a> {
    /// A bitmap window; byte-aligned windows are plain byte ranges.
    fn bits(buf: &'a Buffer, offset: usize, len: usize) -> Self {
        if offset.is_multiple_of(8) {
            Src::Bytes {
                buf,
                start: offset / 8,
                len: len.div_ceil(8),
            }
        } else {
            Src::Bits { buf, offset, len }
        }
    }

    fn len(&self) -> usize {
        match *self {
            Src::Empty => 0,
            Src::Bytes { len, .. } => len,
            Src::Bits { len, .. } => len.div_ceil(8),
            Src::Rebased { bytes, .. } => bytes.len(),
        }
    }

    /// Writes the buffer into `dst`, which is exactly `self.len()` long.
    fn write(&self, dst: &mut [u8]) {
        match *self {
            Src::Empty => {}
            Src::Bytes { buf, start, len } => {
                dst.copy_from_slice(&buf.as_slice()[start..start + len]);
            }
            Src::Bits { buf, offset, len } => {
                let chunks = buf.bit_chunks(offset, len);
                let mut i = 0;
                for c in chunks.iter() {
                    dst[i..i + 8].copy_from_slice(&c.to_le_bytes());
                    i += 8;
                }
                let rest = chunks.remainder_len().div_ceil(8);
                dst[i..i + rest].copy_from_slice(&chunks.remainder_bits().to_le_bytes()[..rest]);
            }
            Src::Rebased { bytes, width: 4 } => {
                let get = |c: &[u8]| i32::from_le_bytes([c[0], c[1], c[2], c[3]]);
                let base = get(bytes);
                for (d, c) in dst.chunks_exact_mut(4).zip(bytes.chunks_exact(4)) {
                    d.copy_from_slice(&(get(c) - base).to_le_bytes());
                }
            }
            Src::Rebased { bytes, .. } => {
                let get = |c: &[u8]| i64::from_le_bytes(c[..8].try_into().unwrap_or([0; 8]));
                let base = get(bytes);
                for (d, c) in dst.chunks_exact_mut(8).zip(bytes.chunks_exact(8)) {
                    d.copy_from_slice(&(get(c) - base).to_le_bytes());
                }
            }
        }
    }

    /// The buffer as an arrow `Buffer`: zero-copy for byte ranges.
    fn to_buffer(self) -> Buffer {
        match self {
            Src::Empty => Buffer::from_vec(Vec::<u8>::new()),
            Src::Bytes { buf, start, len } => buf.slice_with_length(start, len),
            Src::Bits { buf, offset, len } => buf.bit_slice(offset, len),
            _ => {
                let mut v = vec![0u8; self.len()];
                self.write(&mut v);
                Buffer::from_vec(v)
            }
        }
    }
}

fn unsupported(dt: &DataType) -> ArrowError {
    ArrowError::NotYetImplemented(format!("direct slot encoding of {dt}"))
}

/// The validity buffer and null count of rows `off..off + len` of `a`.
fn validity<'a>(a: &'a dyn Array, off: usize, len: usize) -> (Src<'a>, usize) {
    let Some(n) = a.nulls() else {
        return (Src::Empty, 0);
    };
    let nulls = if off == 0 && len == a.len() {
        n.null_count()
    } else {
        len - n.inner().slice(off, len).count_set_bits()
    };
    if nulls == 0 {
        (Src::Empty, 0)
    } else {
        (Src::bits(n.inner().inner(), n.offset() + off, len), nulls)
    }
}

/// The offsets of rows `off..off + len` (len + 1 of them), rebased to 0 if
/// needed, and the child range they cover.
fn offsets<'a, O: OffsetSizeTrait>(
    o: &'a OffsetBuffer<O>,
    off: usize,
    len: usize,
) -> (Src<'a>, usize, usize) {
    let w = &o[off..off + len + 1];
    let (first, last) = (w[0].as_usize(), w[len].as_usize());
    let width = O::get_byte_width();
    let buf = o.inner().inner();
    let src = if first == 0 {
        Src::Bytes {
            buf,
            start: off * width,
            len: (len + 1) * width,
        }
    } else {
        Src::Rebased {
            bytes: &buf.as_slice()[off * width..(off + len + 1) * width],
            width,
        }
    };
    (src, first, last - first)
}

/// Walks rows `off..off + len` of `a` in IPC order (node, then buffers, then
/// children, depth first), the way arrow-ipc's writer lays them out.
fn walk<'a>(
    a: &'a dyn Array,
    off: usize,
    len: usize,
    s: &mut Plan<'_, 'a>,
) -> Result<(), ArrowError> {
    if off + len > a.len() {
        return Err(ArrowError::InvalidArgumentError(
            "child array shorter than its parent".into(),
        ));
    }
    let dt = a.data_type();
    if let DataType::Null = dt {
        s.node(len, len);
        return Ok(());
    }
    let (nulls, null_count) = validity(a, off, len);
    s.node(len, null_count);
    s.buffer(nulls);
    downcast_primitive_array! {
        a => {
            let w = elem_width(a);
            s.buffer(Src::Bytes { buf: a.values().inner(), start: off * w, len: len * w });
        }
        DataType::Boolean => {
            let v = a.as_any().downcast_ref::<BooleanArray>().ok_or_else(|| unsupported(dt))?.values();
            s.buffer(Src::bits(v.inner(), v.offset() + off, len));
        }
        DataType::FixedSizeBinary(_) => {
            let a = a.as_any().downcast_ref::<FixedSizeBinaryArray>().ok_or_else(|| unsupported(dt))?;
            let w = a.value_length() as usize;
            s.buffer(Src::Bytes { buf: a.values(), start: off * w, len: len * w });
        }
        DataType::Utf8 => bytes::<Utf8Type>(a, off, len, s)?,
        DataType::LargeUtf8 => bytes::<LargeUtf8Type>(a, off, len, s)?,
        DataType::Binary => bytes::<BinaryType>(a, off, len, s)?,
        DataType::LargeBinary => bytes::<LargeBinaryType>(a, off, len, s)?,
        DataType::Utf8View => views::<StringViewType>(a, off, len, s)?,
        DataType::BinaryView => views::<BinaryViewType>(a, off, len, s)?,
        DataType::List(_) => list::<i32>(a, off, len, s)?,
        DataType::LargeList(_) => list::<i64>(a, off, len, s)?,
        DataType::Map(_, _) => {
            let m = a.as_any().downcast_ref::<MapArray>().ok_or_else(|| unsupported(dt))?;
            let (o, first, n) = offsets(m.offsets(), off, len);
            s.buffer(o);
            walk(m.entries(), first, n, s)?;
        }
        DataType::FixedSizeList(_, size) => {
            let l = a.as_any().downcast_ref::<FixedSizeListArray>().ok_or_else(|| unsupported(dt))?;
            let size = usize::try_from(*size).map_err(|_| unsupported(dt))?;
            walk(l.values().as_ref(), off * size, len * size, s)?;
        }
        DataType::Struct(_) => {
            let st = a.as_any().downcast_ref::<StructArray>().ok_or_else(|| unsupported(dt))?;
            for c in st.columns() {
                walk(c.as_ref(), off, len, s)?;
            }
        }
        _ => return Err(unsupported(dt)),
    }
    Ok(())
}

/// Byte width of a primitive array's values.
fn elem_width<T: ArrowPrimitiveType>(_: &PrimitiveArray<T>) -> usize {
    std::mem::size_of::<T::Native>()
}

fn bytes<'a, T: ByteArrayType>(
    a: &'a dyn Array,
    off: usize,
    len: usize,
    s: &mut Plan<'_, 'a>,
) -> Result<(), ArrowError> {
    let a = a
        .as_any()
        .downcast_ref::<GenericByteArray<T>>()
        .ok_or_else(|| unsupported(a.data_type()))?;
    let (o, first, n) = offsets(a.offsets(), off, len);
    s.buffer(o);
    s.buffer(Src::Bytes {
        buf: a.values(),
        start: first,
        len: n,
    });
    Ok(())
}

fn views<'a, T: ByteViewType + ?Sized>(
    a: &'a dyn Array,
    off: usize,
    len: usize,
    s: &mut Plan<'_, 'a>,
) -> Result<(), ArrowError> {
    let a = a
        .as_any()
        .downcast_ref::<GenericByteViewArray<T>>()
        .ok_or_else(|| unsupported(a.data_type()))?;
    s.buffer(Src::Bytes {
        buf: a.views().inner(),
        start: off * 16,
        len: len * 16,
    });
    for b in a.data_buffers().iter() {
        s.buffer(Src::Bytes {
            buf: b,
            start: 0,
            len: b.len(),
        });
    }
    s.variadic(a.data_buffers().len());
    Ok(())
}

fn list<'a, O: OffsetSizeTrait>(
    a: &'a dyn Array,
    off: usize,
    len: usize,
    s: &mut Plan<'_, 'a>,
) -> Result<(), ArrowError> {
    let l = a
        .as_any()
        .downcast_ref::<GenericListArray<O>>()
        .ok_or_else(|| unsupported(a.data_type()))?;
    let (o, first, n) = offsets(l.offsets(), off, len);
    s.buffer(o);
    walk(l.values().as_ref(), first, n, s)
}

/// What a walk collects, in IPC order: nodes, buffer positions and variadic
/// counts for the flatbuffer, and the buffers themselves for the copy.
struct Plan<'p, 'a> {
    nodes: &'p mut Vec<FieldNode>,
    buffers: &'p mut Vec<IpcBuffer>,
    variadic: &'p mut Vec<i64>,
    srcs: &'p mut Vec<Src<'a>>,
    body: usize,
}

impl<'a> Plan<'_, 'a> {
    fn node(&mut self, len: usize, null_count: usize) {
        self.nodes
            .push(FieldNode::new(len as i64, null_count as i64));
    }
    fn buffer(&mut self, src: Src<'a>) {
        let len = src.len();
        self.buffers
            .push(IpcBuffer::new(self.body as i64, len as i64));
        self.srcs.push(src);
        self.body += pad(len);
    }
    fn variadic(&mut self, count: usize) {
        self.variadic.push(count as i64);
    }
}

/// An empty vector of another lifetime that keeps `v`'s allocation (the
/// in-place `collect` of a same-layout `IntoIter`), so the per-batch list of
/// buffers allocates nothing after the first batch.
fn recycle<'y>(mut v: Vec<Src<'_>>) -> Vec<Src<'y>> {
    v.clear();
    v.into_iter().map(|_| Src::Empty).collect()
}

/// A message flatbuffer built for one shape (numbers of nodes, buffers and
/// variadic counts), and where its numbers are: a later batch of the same
/// shape (every batch of a schema without view columns, and most with) gets
/// its message by patching these bytes instead of building a new
/// flatbuffer. Built with `force_defaults`, so the layout depends only on
/// the shape, never on the values.
struct Template {
    fb: Vec<u8>,
    /// Byte positions of `RecordBatch.length` and `Message.bodyLength`.
    length_at: usize,
    body_len_at: usize,
    /// Byte positions of the vectors' first elements, and their lengths.
    nodes_at: usize,
    buffers_at: usize,
    variadic_at: usize,
    counts: (usize, usize, usize),
}

impl Template {
    /// Finds the patchable positions in a message flatbuffer we just built;
    /// `None` if something is not where a patch could reach it.
    fn new(fb: &[u8]) -> Option<Self> {
        let msg = arrow_ipc::root_as_message(fb).ok()?;
        let rb = msg.header_as_record_batch()?;
        let base = fb.as_ptr() as usize;
        let field = |t: &flatbuffers::Table<'_>, vt: flatbuffers::VOffsetT| {
            let o = t.vtable().get(vt) as usize;
            (o != 0).then_some(t.loc() + o)
        };
        let at = |v: Option<&[u8]>| v.map_or(0, |b| b.as_ptr() as usize - base);
        let nodes = rb.nodes()?;
        let buffers = rb.buffers()?;
        let variadic = rb.variadicBufferCounts();
        Some(Self {
            fb: fb.to_vec(),
            length_at: field(&rb._tab, arrow_ipc::RecordBatch::VT_LENGTH)?,
            body_len_at: field(&msg._tab, arrow_ipc::Message::VT_BODYLENGTH)?,
            nodes_at: at(Some(nodes.bytes())),
            buffers_at: at(Some(buffers.bytes())),
            variadic_at: at(variadic.map(|v| v.bytes())),
            counts: (nodes.len(), buffers.len(), variadic.map_or(0, |v| v.len())),
        })
    }
}

fn put_i64(fb: &mut [u8], at: usize, v: i64) {
    fb[at..at + 8].copy_from_slice(&v.to_le_bytes());
}

/// The direct encoder's reusable state.
struct Direct {
    fbb: FlatBufferBuilder<'static>,
    /// Templates for the last few (node, buffer, variadic) counts seen: view
    /// columns change the buffer count with their number of data buffers.
    templates: Vec<Template>,
    /// The template holding the current batch's message, if any (else the
    /// builder's finished data).
    current: Option<usize>,
    /// The template to replace next when all slots are taken.
    victim: usize,
    nodes: Vec<FieldNode>,
    buffers: Vec<IpcBuffer>,
    variadic: Vec<i64>,
    /// The allocation of the last batch's buffer list, for the next one.
    spare: Vec<Src<'static>>,
    body_len: usize,
    zeros: Buffer,
}

impl Direct {
    fn new() -> Self {
        Self {
            fbb: FlatBufferBuilder::with_capacity(1024),
            templates: Vec::new(),
            current: None,
            victim: 0,
            nodes: Vec::new(),
            buffers: Vec::new(),
            variadic: Vec::new(),
            spare: Vec::new(),
            body_len: 0,
            zeros: Buffer::from(&ZEROS[..]),
        }
    }

    /// Walks `batch` once: builds its message flatbuffer and returns its
    /// body buffers in order.
    fn plan<'a>(&mut self, batch: &'a RecordBatch) -> Result<Vec<Src<'a>>, ArrowError> {
        self.nodes.clear();
        self.buffers.clear();
        self.variadic.clear();
        let mut srcs = recycle(std::mem::take(&mut self.spare));
        let mut plan = Plan {
            nodes: &mut self.nodes,
            buffers: &mut self.buffers,
            variadic: &mut self.variadic,
            srcs: &mut srcs,
            body: 0,
        };
        for c in batch.columns() {
            walk(c.as_ref(), 0, c.len(), &mut plan)?;
        }
        self.body_len = plan.body;
        let rows = batch.num_rows() as i64;
        let counts = (self.nodes.len(), self.buffers.len(), self.variadic.len());
        self.current = self.templates.iter().position(|t| t.counts == counts);
        if let Some(t) = self.current.map(|i| &mut self.templates[i]) {
            put_i64(&mut t.fb, t.length_at, rows);
            put_i64(&mut t.fb, t.body_len_at, self.body_len as i64);
            for (i, n) in self.nodes.iter().enumerate() {
                put_i64(&mut t.fb, t.nodes_at + 16 * i, n.length());
                put_i64(&mut t.fb, t.nodes_at + 16 * i + 8, n.null_count());
            }
            for (i, b) in self.buffers.iter().enumerate() {
                put_i64(&mut t.fb, t.buffers_at + 16 * i, b.offset());
                put_i64(&mut t.fb, t.buffers_at + 16 * i + 8, b.length());
            }
            for (i, v) in self.variadic.iter().enumerate() {
                put_i64(&mut t.fb, t.variadic_at + 8 * i, *v);
            }
            return Ok(srcs);
        }
        let fbb = &mut self.fbb;
        fbb.reset();
        fbb.force_defaults(true);
        let buffers = fbb.create_vector(&self.buffers);
        let nodes = fbb.create_vector(&self.nodes);
        let variadic = (!self.variadic.is_empty()).then(|| fbb.create_vector(&self.variadic));
        let mut rb = RecordBatchBuilder::new(fbb);
        rb.add_length(rows);
        rb.add_nodes(nodes);
        rb.add_buffers(buffers);
        if let Some(v) = variadic {
            rb.add_variadicBufferCounts(v);
        }
        let rb = rb.finish();
        let mut msg = MessageBuilder::new(fbb);
        msg.add_version(MetadataVersion::V5);
        msg.add_header_type(MessageHeader::RecordBatch);
        msg.add_bodyLength(self.body_len as i64);
        msg.add_header(rb.as_union_value());
        let root = msg.finish();
        fbb.finish(root, None);
        if let Some(t) = Template::new(fbb.finished_data()) {
            const KEEP: usize = 4;
            if self.templates.len() < KEEP {
                self.templates.push(t);
                self.current = Some(self.templates.len() - 1);
            } else {
                self.templates[self.victim] = t;
                self.current = Some(self.victim);
                self.victim = (self.victim + 1) % KEEP;
            }
        }
        Ok(srcs)
    }

    /// The current message flatbuffer.
    fn fb(&self) -> &[u8] {
        match self.current {
            Some(i) => &self.templates[i].fb,
            None => self.fbb.finished_data(),
        }
    }

    /// Prefix + flatbuffer + padding.
    fn meta_len(&self) -> usize {
        pad(8 + self.fb().len())
    }

    fn len(&self) -> usize {
        self.meta_len() + self.body_len
    }

    fn write_meta(&self, dst: &mut [u8]) {
        let fb = self.fb();
        let meta_len = self.meta_len();
        dst[..4].copy_from_slice(&CONTINUATION.to_le_bytes());
        dst[4..8].copy_from_slice(&((meta_len - 8) as i32).to_le_bytes());
        dst[8..8 + fb.len()].copy_from_slice(fb);
        dst[8 + fb.len()..meta_len].fill(0);
    }
}

enum Kind {
    /// Our own one-pass record-batch writer.
    Direct(Box<Direct>),
    /// arrow-ipc's encoder: reused when the schema has no dictionaries (it
    /// then only ever emits the schema once, and we emit it before the first
    /// batch), fresh per batch otherwise.
    Arrow(Option<Box<StreamEncoder>>),
}

/// Turns record batches into slot contents: see the module docs.
pub struct SlotEncoder {
    schema: Schema,
    kind: Kind,
}

impl SlotEncoder {
    /// An encoder for batches of `schema`.
    pub fn new(schema: &Schema) -> Result<Self, ArrowError> {
        let kind = if schema
            .fields()
            .iter()
            .all(|f| direct_supported(f.data_type()))
        {
            Kind::Direct(Box::new(Direct::new()))
        } else if schema
            .fields()
            .iter()
            .any(|f| has_dictionary(f.data_type()))
        {
            Kind::Arrow(None)
        } else {
            let mut enc = StreamEncoder::try_new_with_options(schema, write_options())?;
            // Consume the one-time schema message now, so later calls only
            // emit record batches.
            let empty = RecordBatch::new_empty(Arc::new(schema.clone()));
            enc.encode(&empty)?;
            Kind::Arrow(Some(Box::new(enc)))
        };
        Ok(Self {
            schema: schema.clone(),
            kind,
        })
    }

    /// The buffers to copy, in order, into a slot; their concatenation is
    /// exactly what [`Self::prepare`] + [`Prepared::write_to`] writes.
    /// Array buffers are handed back without copying where possible.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Buffer>, ArrowError> {
        match &mut self.kind {
            Kind::Direct(d) => {
                let srcs = d.plan(batch)?;
                let mut meta = vec![0u8; d.meta_len()];
                d.write_meta(&mut meta);
                let mut out = Vec::with_capacity(1 + 2 * srcs.len());
                out.push(Buffer::from_vec(meta));
                for src in &srcs {
                    let len = src.len();
                    if len > 0 {
                        out.push(src.to_buffer());
                    }
                    if pad(len) > len {
                        out.push(d.zeros.slice_with_length(0, pad(len) - len));
                    }
                }
                d.spare = recycle(srcs);
                Ok(out)
            }
            Kind::Arrow(Some(enc)) => enc.encode(batch),
            // Dictionaries must travel with every slot: a fresh encoder sends
            // them (and the schema message, which the reader skips).
            Kind::Arrow(None) => {
                StreamEncoder::try_new_with_options(&self.schema, write_options())?.encode(batch)
            }
        }
    }

    /// Encodes `batch` up to the point where its size is known; write it
    /// with [`Prepared::write_to`].
    pub fn prepare<'e>(&'e mut self, batch: &'e RecordBatch) -> Result<Prepared<'e>, ArrowError> {
        if !matches!(self.kind, Kind::Direct(_)) {
            let inner = PreparedInner::Buffers(self.encode(batch)?);
            return Ok(Prepared { inner });
        }
        let Kind::Direct(d) = &mut self.kind else {
            unreachable!("checked above")
        };
        let srcs = d.plan(batch)?;
        let inner = PreparedInner::Direct { enc: d, srcs };
        Ok(Prepared { inner })
    }
}

/// A batch encoded by [`SlotEncoder::prepare`], ready to be written.
pub struct Prepared<'e> {
    inner: PreparedInner<'e>,
}

enum PreparedInner<'e> {
    Direct {
        enc: &'e mut Direct,
        srcs: Vec<Src<'e>>,
    },
    Buffers(Vec<Buffer>),
}

impl Drop for Prepared<'_> {
    fn drop(&mut self) {
        if let PreparedInner::Direct { enc, srcs } = &mut self.inner {
            enc.spare = recycle(std::mem::take(srcs));
        }
    }
}

impl Prepared<'_> {
    /// Bytes the slot needs.
    pub fn len(&self) -> usize {
        match &self.inner {
            PreparedInner::Direct { enc, .. } => enc.len(),
            PreparedInner::Buffers(b) => encoded_len(b),
        }
    }

    /// Whether the encoding is empty (never: a slot always has a message).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Writes the slot into `dst` (at least [`Self::len`] bytes); returns the
    /// bytes written.
    ///
    /// # Panics
    /// If `dst` is shorter than [`Self::len`].
    pub fn write_to(&self, dst: &mut [u8]) -> usize {
        match &self.inner {
            PreparedInner::Direct { enc, srcs } => {
                let len = enc.len();
                let dst = &mut dst[..len];
                let mut pos = enc.meta_len();
                enc.write_meta(&mut dst[..pos]);
                // One pass over the body: each buffer, then zeros up to the
                // next 64-byte boundary.
                for src in srcs {
                    let n = src.len();
                    let end = pos + pad(n);
                    if end > pos {
                        // Zero the last 64 bytes (a fixed-size store, no
                        // memset call), then the data overwrites its part.
                        dst[end - SLOT_ALIGN..end].copy_from_slice(&ZEROS);
                    }
                    src.write(&mut dst[pos..pos + n]);
                    pos = end;
                }
                debug_assert_eq!(pos, len);
                len
            }
            PreparedInner::Buffers(b) => copy_into(b, dst),
        }
    }
}

/// Total bytes of an encoded slot.
pub fn encoded_len(buffers: &[Buffer]) -> usize {
    buffers.iter().map(|b| b.len()).sum()
}

/// Copies encoded buffers into `dst` back to back. `dst` must be long enough.
pub fn copy_into(buffers: &[Buffer], dst: &mut [u8]) -> usize {
    let mut pos = 0;
    for b in buffers {
        dst[pos..pos + b.len()].copy_from_slice(b.as_slice());
        pos += b.len();
    }
    pos
}

// ---------------------------------------------------------------------------
// Structure checks
// ---------------------------------------------------------------------------

/// Why a slot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotError(pub String);

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(msg: impl Into<String>) -> SlotError {
    SlotError(msg.into())
}

/// One framed message found in a slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame {
    /// Offset of the continuation marker.
    pub offset: usize,
    /// Prefix + flatbuffer + padding.
    pub meta_len: usize,
    /// Body bytes that follow.
    pub body_len: usize,
    /// The message kind.
    pub header: MessageHeader,
}

/// A message whose structure has been checked.
struct Msg<'a> {
    frame: Frame,
    /// The record batch (of a dictionary batch, its values) and, for a
    /// dictionary batch, its id. `None` for a schema message.
    batch: Option<(arrow_ipc::RecordBatch<'a>, i64)>,
    version: MetadataVersion,
}

/// Parses the message at `pos` and checks its structure: framing, flatbuffer
/// verification, alignment, no compression, no delta dictionaries and, if
/// `all_buffers`, every buffer range inside the body and 64-byte aligned and
/// every field node sane. (`decode` checks each buffer and node as it uses
/// it instead, and that it uses all of them: see [`Body`].)
/// `Ok(None)` at the end of the slot or at an end-of-stream marker.
fn read_message(slot: &[u8], pos: usize, all_buffers: bool) -> Result<Option<Msg<'_>>, SlotError> {
    if pos >= slot.len() {
        return Ok(None);
    }
    if !pos.is_multiple_of(SLOT_ALIGN) {
        return Err(bad(format!(
            "message at offset {pos} is not 64-byte aligned"
        )));
    }
    let head = slot
        .get(pos..pos + 8)
        .ok_or_else(|| bad(format!("truncated message prefix at offset {pos}")))?;
    let cont = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
    let len = i32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if cont != CONTINUATION {
        return Err(bad(format!("missing continuation marker at offset {pos}")));
    }
    if len <= 0 {
        return Ok(None); // end-of-stream marker
    }
    let meta_end = pos
        .checked_add(8 + len as usize)
        .filter(|&e| e <= slot.len())
        .ok_or_else(|| {
            bad(format!(
                "message metadata at offset {pos} runs past the slot"
            ))
        })?;
    let msg = arrow_ipc::root_as_message(&slot[pos + 8..meta_end])
        .map_err(|e| bad(format!("invalid message flatbuffer at offset {pos}: {e}")))?;
    let body_len = usize::try_from(msg.bodyLength())
        .map_err(|_| bad(format!("negative body length at offset {pos}")))?;
    meta_end
        .checked_add(body_len)
        .filter(|&e| e <= slot.len())
        .ok_or_else(|| {
            bad(format!(
                "message body at offset {pos} runs past the slot ({body_len} bytes)"
            ))
        })?;
    if meta_end % SLOT_ALIGN != 0 {
        return Err(bad(format!(
            "message body at offset {meta_end} is not 64-byte aligned"
        )));
    }
    let header = msg.header_type();
    let batch = match header {
        MessageHeader::Schema => None,
        MessageHeader::RecordBatch => Some((
            msg.header_as_record_batch()
                .ok_or_else(|| bad("record batch message without header"))?,
            0,
        )),
        MessageHeader::DictionaryBatch => {
            let d = msg
                .header_as_dictionary_batch()
                .ok_or_else(|| bad("dictionary batch without header"))?;
            if d.isDelta() {
                return Err(bad("delta dictionaries are not used in slots"));
            }
            Some((
                d.data()
                    .ok_or_else(|| bad("dictionary batch without data"))?,
                d.id(),
            ))
        }
        other => return Err(bad(format!("unexpected message type {other:?} in a slot"))),
    };
    if let Some((rb, _)) = &batch {
        if rb.compression().is_some() {
            return Err(bad("compressed batches are not used in slots"));
        }
        if rb.length() < 0 {
            return Err(bad("negative row count"));
        }
        if all_buffers {
            if let Some(buffers) = rb.buffers() {
                for b in buffers.iter() {
                    check_buffer(b, body_len)?;
                }
            }
            if let Some(nodes) = rb.nodes() {
                for n in nodes.iter() {
                    check_node(n)?;
                }
            }
        }
    }
    Ok(Some(Msg {
        frame: Frame {
            offset: pos,
            meta_len: meta_end - pos,
            body_len,
            header,
        },
        batch,
        version: msg.version(),
    }))
}

/// A buffer of a `body_len`-byte body: non-negative offset and length, inside
/// the body, 64-byte aligned. Returns `(offset, length)`.
#[inline]
fn check_buffer(b: &IpcBuffer, body_len: usize) -> R<(usize, usize)> {
    let (o, l) = (b.offset(), b.length());
    if o < 0 || l < 0 {
        return Err(bad("negative buffer offset or length"));
    }
    let (o, l) = (o as u64, l as u64);
    if o.checked_add(l).is_none_or(|e| e > body_len as u64) {
        return Err(bad(format!(
            "buffer [{o}, +{l}) runs past the {body_len}-byte body"
        )));
    }
    if o % SLOT_ALIGN as u64 != 0 {
        return Err(bad(format!(
            "buffer at body offset {o} is not 64-byte aligned"
        )));
    }
    Ok((o as usize, l as usize))
}

/// A field node: non-negative length, `0 <= null_count <= length`.
/// Returns `(length, null_count)`.
#[inline]
fn check_node(n: &FieldNode) -> R<(usize, usize)> {
    let (len, nulls) = (n.length(), n.null_count());
    if len < 0 || nulls < 0 || nulls > len {
        return Err(bad("invalid field node length or null count"));
    }
    match (usize::try_from(len), usize::try_from(nulls)) {
        (Ok(len), Ok(nulls)) => Ok((len, nulls)),
        _ => Err(bad("field node length does not fit this platform")),
    }
}

/// Splits a slot into messages and checks each one's structure: framing,
/// flatbuffer verification, alignment, no compression, every buffer range
/// inside the body. O(messages + buffers), independent of rows.
pub fn frames(slot: &[u8]) -> Result<Vec<Frame>, SlotError> {
    let mut out = Vec::with_capacity(2);
    let mut pos = 0;
    while let Some(m) = read_message(slot, pos, true)? {
        pos = m.frame.offset + m.frame.meta_len + m.frame.body_len;
        out.push(m.frame);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------

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

type R<T> = Result<T, SlotError>;

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
pub fn decode(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
    match catch_unwind(AssertUnwindSafe(|| decode_inner(schema, slot))) {
        Ok(r) => r.map_err(|e| bad(format!("decode failed: {e}"))),
        Err(_) => Err(bad("decode failed: arrow rejected the slot (panic caught)")),
    }
}

/// Calls `f` with every buffer (values, offsets, validity, views, variadic
/// data) of every column, recursively, including dictionary values.
pub fn for_each_buffer(columns: &[ArrayRef], mut f: impl FnMut(&Buffer)) {
    fn walk(d: &ArrayData, f: &mut dyn FnMut(&Buffer)) {
        for b in d.buffers() {
            f(b);
        }
        if let Some(n) = d.nulls() {
            f(n.buffer());
        }
        for c in d.child_data() {
            walk(c, f);
        }
    }
    for c in columns {
        walk(&c.to_data(), &mut f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::builder::{
        FixedSizeBinaryBuilder, FixedSizeListBuilder, Int32Builder, Int64Builder, LargeListBuilder,
        ListBuilder, MapBuilder, StringBuilder, StringDictionaryBuilder,
    };
    use arrow_array::types::{Int16Type, Int32Type};
    use arrow_array::*;
    use arrow_buffer::{i256, MutableBuffer};
    use arrow_ipc::reader::{FileDecoder, StreamReader};
    use arrow_ipc::Block;
    use arrow_schema::{Fields, UnionFields};
    use proptest::prelude::*;

    /// The decoder this module had before: `FileDecoder` with skip-validation
    /// plus `ArrayData::validate` of every node. The new decoder must accept
    /// nothing this one rejects.
    fn reference_decode(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
        fn validate_tree(data: &ArrayData) -> Result<(), ArrowError> {
            data.validate()?;
            data.child_data().iter().try_for_each(validate_tree)
        }
        let frames = frames(slot.as_slice())?;
        let result = catch_unwind(AssertUnwindSafe(
            || -> Result<Option<RecordBatch>, ArrowError> {
                let decoder = FileDecoder::new(schema.clone(), MetadataVersion::V5)
                    .with_require_alignment(true);
                // SAFETY: test reference, same reasoning as the old `decode`.
                let mut decoder = unsafe { decoder.with_skip_validation(true) };
                let mut batch = None;
                for f in &frames {
                    let block = Block::new(f.offset as i64, f.meta_len as i32, f.body_len as i64);
                    let data = slot.slice_with_length(f.offset, f.meta_len + f.body_len);
                    match f.header {
                        MessageHeader::DictionaryBatch => decoder.read_dictionary(&block, &data)?,
                        MessageHeader::RecordBatch => {
                            if batch.is_some() {
                                return Err(ArrowError::IpcError("two batches".into()));
                            }
                            batch = decoder.read_record_batch(&block, &data)?;
                        }
                        _ => {}
                    }
                }
                if let Some(b) = &batch {
                    for c in b.columns() {
                        validate_tree(&c.to_data())?;
                    }
                }
                Ok(batch)
            },
        ));
        match result {
            Ok(Ok(Some(b))) => Ok(b),
            Ok(Ok(None)) => Err(bad("no batch")),
            Ok(Err(e)) => Err(bad(e.to_string())),
            Err(_) => Err(bad("panic")),
        }
    }

    /// A 64-byte aligned copy.
    fn aligned(bytes: &[u8]) -> Buffer {
        let mut m = MutableBuffer::new(bytes.len());
        m.extend_from_slice(bytes);
        m.into()
    }

    /// Writes `b` the way `Writer::write` does, checks `encode` gives the
    /// same bytes, and returns the slot.
    fn slot_of(enc: &mut SlotEncoder, b: &RecordBatch) -> Vec<u8> {
        let p = enc.prepare(b).unwrap();
        let len = p.len();
        // Dirty destination: padding must be zeroed by the writer.
        let mut slot = vec![0xAAu8; len + 64];
        assert_eq!(p.write_to(&mut slot), len);
        drop(p);
        slot.truncate(len);
        let bufs = enc.encode(b).unwrap();
        assert_eq!(encoded_len(&bufs), len);
        let mut again = vec![0u8; len];
        copy_into(&bufs, &mut again);
        assert_eq!(again, slot, "encode and prepare/write_to differ");
        slot
    }

    /// arrow-ipc's own reader, with full validation, reads the slot as a stream.
    fn read_with_arrow(schema: &Schema, slot: &[u8]) -> RecordBatch {
        let mut stream = encode_schema(schema);
        stream.extend_from_slice(slot);
        let mut r = StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
        let b = r.next().expect("a batch").expect("arrow reads the slot");
        assert!(r.next().is_none());
        b
    }

    fn check_round_trip(b: &RecordBatch, direct: bool) {
        let schema = b.schema();
        let mut enc = SlotEncoder::new(&schema).unwrap();
        assert_eq!(matches!(enc.kind, Kind::Direct(_)), direct);
        let slot = slot_of(&mut enc, b);
        assert_eq!(&read_with_arrow(&schema, &slot), b, "arrow's reader");
        let buf = aligned(&slot);
        let got = decode(&schema, &buf).unwrap();
        assert_eq!(&got, b, "decode");
        assert_eq!(&reference_decode(&schema, &buf).unwrap(), b, "reference");
        // Every buffer of the result lies inside the slot.
        let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
        for_each_buffer(got.columns(), |x| {
            let p = x.as_ptr() as usize;
            assert!(
                x.is_empty() || (range.contains(&p) && p + x.len() <= range.end),
                "buffer outside the slot"
            );
        });
        // Slots written by arrow-ipc's own encoder decode too.
        let bufs = StreamEncoder::try_new_with_options(&schema, write_options())
            .unwrap()
            .encode(b)
            .unwrap();
        let mut v = vec![0u8; encoded_len(&bufs)];
        copy_into(&bufs, &mut v);
        assert_eq!(&decode(&schema, &aligned(&v)).unwrap(), b, "arrow-encoded");
    }

    /// 11 rows of every type the direct encoder writes, with nulls.
    fn direct_batch() -> RecordBatch {
        let n = 11;
        let opt = |i: usize| i % 3 != 1;
        let mut list = ListBuilder::new(Int64Builder::new());
        let mut large_list = LargeListBuilder::new(StringBuilder::new());
        let mut fsl = FixedSizeListBuilder::new(Int32Builder::new(), 2);
        let mut fsb = FixedSizeBinaryBuilder::new(3);
        let mut map = MapBuilder::new(None, StringBuilder::new(), Int64Builder::new());
        let mut deep = ListBuilder::new(ListBuilder::new(StringBuilder::new()));
        for i in 0..n {
            if opt(i) {
                list.append_value((0..i as i64 % 4).map(|v| (v != 2).then_some(v * 10)));
                large_list.append_value([Some(format!("s{i}")), None]);
                fsl.values().append_value(i as i32);
                fsl.values().append_null();
                fsl.append(true);
                fsb.append_value([i as u8, 1, 2]).unwrap();
                map.keys().append_value(format!("k{i}"));
                map.values().append_value(i as i64);
                map.append(true).unwrap();
                for _ in 0..i % 3 {
                    deep.values()
                        .append_value([Some("a long string, not inline"), None]);
                }
                deep.append(true);
            } else {
                list.append_null();
                large_list.append_null();
                fsl.values().append_null();
                fsl.values().append_null();
                fsl.append(false);
                fsb.append_null();
                map.append(false).unwrap();
                deep.append_null();
            }
        }
        let strs: Vec<Option<String>> = (0..n).map(|i| opt(i).then(|| "x".repeat(i * 3))).collect();
        let strukt = StructArray::try_new(
            Fields::from(vec![
                Field::new("a", DataType::Int32, true),
                Field::new("b", DataType::Utf8View, true),
            ]),
            vec![
                Arc::new(Int32Array::from_iter(
                    (0..n as i32).map(|i| (i % 2 == 0).then_some(i)),
                )),
                Arc::new(StringViewArray::from_iter(strs.clone())),
            ],
            Some(NullBuffer::from_iter((0..n).map(|i| i % 4 != 3))),
        )
        .unwrap();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("i8", Arc::new(Int8Array::from_iter((0..n as i8).map(Some)))),
            (
                "u64",
                Arc::new(UInt64Array::from_iter(
                    (0..n as u64).map(|i| opt(i as usize).then_some(i)),
                )),
            ),
            (
                "f64",
                Arc::new(Float64Array::from_iter(
                    (0..n).map(|i| opt(i).then_some(i as f64 / 3.0)),
                )),
            ),
            (
                "ts",
                Arc::new(
                    TimestampNanosecondArray::from_iter_values(0..n as i64).with_timezone("UTC"),
                ),
            ),
            ("date", Arc::new(Date32Array::from_iter_values(0..n as i32))),
            (
                "dec",
                Arc::new(
                    Decimal128Array::from_iter(
                        (0..n as i128).map(|i| opt(i as usize).then_some(i)),
                    )
                    .with_precision_and_scale(20, 4)
                    .unwrap(),
                ),
            ),
            (
                "dec256",
                Arc::new(Decimal256Array::from_iter_values(
                    (0..n as i128).map(i256::from_i128),
                )),
            ),
            (
                "dur",
                Arc::new(DurationSecondArray::from_iter_values(0..n as i64)),
            ),
            (
                "bool",
                Arc::new(BooleanArray::from_iter(
                    (0..n).map(|i| opt(i).then_some(i % 2 == 0)),
                )),
            ),
            ("utf8", Arc::new(StringArray::from_iter(strs.clone()))),
            (
                "large_utf8",
                Arc::new(LargeStringArray::from_iter(strs.clone())),
            ),
            (
                "binary",
                Arc::new(BinaryArray::from_iter(
                    strs.iter().map(|s| s.as_deref().map(str::as_bytes)),
                )),
            ),
            (
                "large_binary",
                Arc::new(LargeBinaryArray::from_iter(
                    strs.iter().map(|s| s.as_deref().map(str::as_bytes)),
                )),
            ),
            ("view", Arc::new(StringViewArray::from_iter(strs.clone()))),
            (
                "bin_view",
                Arc::new(BinaryViewArray::from_iter(
                    strs.iter().map(|s| s.as_deref().map(str::as_bytes)),
                )),
            ),
            ("fsb", Arc::new(fsb.finish())),
            ("null", Arc::new(NullArray::new(n))),
            ("list", Arc::new(list.finish())),
            ("large_list", Arc::new(large_list.finish())),
            ("fsl", Arc::new(fsl.finish())),
            ("struct", Arc::new(strukt)),
            ("map", Arc::new(map.finish())),
            ("deep", Arc::new(deep.finish())),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    }

    #[test]
    fn direct_encoder_round_trips_every_type_and_slice() {
        let b = direct_batch();
        check_round_trip(&b, true);
        for (off, len) in [(0, 0), (3, 5), (1, 10), (7, 4), (9, 2), (11, 0), (5, 1)] {
            check_round_trip(&b.slice(off, len), true);
        }
        check_round_trip(&RecordBatch::new_empty(b.schema()), true);
        // A slice of a slice (offsets into offsets).
        check_round_trip(&b.slice(2, 8).slice(3, 4), true);
        // No columns at all, only a row count.
        let none = RecordBatch::try_new_with_options(
            Arc::new(Schema::empty()),
            vec![],
            &RecordBatchOptions::new().with_row_count(Some(3)),
        )
        .unwrap();
        check_round_trip(&none, true);
    }

    #[test]
    fn bars_are_written_directly() {
        let b = crate::schema::bar_schema();
        let batch = RecordBatch::try_new(
            Arc::new(b),
            vec![
                Arc::new(TimestampNanosecondArray::from(vec![1, 2]).with_timezone("UTC")),
                Arc::new(StringViewArray::from(vec![
                    "BTCUSDT",
                    "a symbol longer than 12",
                ])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
                Arc::new(Float64Array::from(vec![1.0, 2.0])),
            ],
        )
        .unwrap();
        check_round_trip(&batch, true);
        check_round_trip(&batch.slice(1, 1), true);
    }

    #[test]
    fn one_encoder_many_shapes() {
        // Batches whose view columns have 0..=6 data buffers, in an order
        // that cycles through more shapes than the encoder keeps templates.
        let schema = Arc::new(crate::schema::bar_schema());
        let mut enc = SlotEncoder::new(&schema).unwrap();
        for i in 0..60usize {
            let rows = i % 7;
            let mut sym = arrow_array::builder::StringViewBuilder::new().with_fixed_block_size(32);
            for r in 0..rows {
                if (i + r) % 3 == 0 {
                    sym.append_value("BTC");
                } else {
                    sym.append_value(format!("a long symbol name #{i}-{r}"));
                }
            }
            let f = |k: f64| {
                Arc::new(Float64Array::from_iter_values(
                    (0..rows).map(|r| r as f64 + k),
                )) as ArrayRef
            };
            let b = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(
                        TimestampNanosecondArray::from_iter_values(0..rows as i64)
                            .with_timezone("UTC"),
                    ),
                    Arc::new(sym.finish()),
                    f(0.0),
                    f(1.0),
                    f(2.0),
                    f(3.0),
                    f(i as f64),
                ],
            )
            .unwrap();
            let b = if i % 5 == 4 && rows >= 2 {
                b.slice(1, rows - 2)
            } else {
                b
            };
            let slot = slot_of(&mut enc, &b);
            assert_eq!(read_with_arrow(&schema, &slot), b);
            assert_eq!(decode(&schema, &aligned(&slot)).unwrap(), b);
        }
    }

    /// Types the direct encoder leaves to arrow-ipc: dictionaries (also
    /// nested), unions, run-end encoded, list views.
    fn fallback_batch() -> RecordBatch {
        let n = 6;
        let mut dict = StringDictionaryBuilder::<Int32Type>::new();
        let mut dict_list = ListBuilder::new(StringDictionaryBuilder::<Int16Type>::new());
        for i in 0..n {
            if i == 2 {
                dict.append_null();
            } else {
                dict.append_value(["BTC", "ETH", "SOL"][i % 3]);
            }
            dict_list.values().append_value(["a", "b"][i % 2]);
            dict_list.append(i != 4);
        }
        let sparse = UnionArray::try_new(
            UnionFields::try_new(
                [0, 1],
                [
                    Field::new("i", DataType::Int32, true),
                    Field::new("s", DataType::Utf8, true),
                ],
            )
            .unwrap(),
            vec![0i8, 1, 0, 1, 0, 1].into(),
            None,
            vec![
                Arc::new(Int32Array::from_iter_values(0..n as i32)),
                Arc::new(StringArray::from_iter_values(
                    (0..n).map(|i| format!("u{i}")),
                )),
            ],
        )
        .unwrap();
        let dense = UnionArray::try_new(
            UnionFields::try_new(
                [3, 5],
                [
                    Field::new("f", DataType::Float64, true),
                    Field::new("b", DataType::Boolean, true),
                ],
            )
            .unwrap(),
            vec![3i8, 5, 5, 3, 3, 5].into(),
            Some(vec![0i32, 0, 1, 1, 2, 2].into()),
            vec![
                Arc::new(Float64Array::from(vec![1.5, 2.5, 3.5])),
                Arc::new(BooleanArray::from(vec![true, false, true])),
            ],
        )
        .unwrap();
        let ree = RunArray::<Int32Type>::try_new(
            &Int32Array::from(vec![2, 5, 6]),
            &StringArray::from(vec![Some("r"), None, Some("s")]),
        )
        .unwrap();
        let list_view = ListViewArray::new(
            Arc::new(Field::new_list_field(DataType::Int64, true)),
            vec![0i32, 2, 1, 0, 3, 0].into(),
            vec![2i32, 1, 2, 0, 1, 3].into(),
            Arc::new(Int64Array::from(vec![Some(1), None, Some(3), Some(4)])),
            Some(NullBuffer::from(vec![true, true, false, true, true, true])),
        );
        let strukt_dict = StructArray::from(vec![(
            Arc::new(Field::new_dictionary(
                "d",
                DataType::Int32,
                DataType::Utf8,
                true,
            )),
            Arc::new(dict.finish()) as ArrayRef,
        )]);
        let mut dict2 = StringDictionaryBuilder::<Int32Type>::new();
        for i in 0..n {
            dict2.append_value(format!("v{}", i % 2));
        }
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("dict", Arc::new(dict2.finish())),
            ("dict_list", Arc::new(dict_list.finish())),
            ("struct_dict", Arc::new(strukt_dict)),
            ("sparse", Arc::new(sparse)),
            ("dense", Arc::new(dense)),
            ("ree", Arc::new(ree)),
            ("list_view", Arc::new(list_view)),
            ("i64", Arc::new(Int64Array::from_iter_values(0..n as i64))),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    }

    /// The schema as a reader gets it: through the meta block (dictionary
    /// ids assigned there).
    fn through_meta(schema: &Schema) -> SchemaRef {
        Arc::new(decode_schema(&encode_schema(schema)).unwrap())
    }

    #[test]
    fn fallback_types_round_trip() {
        let b = fallback_batch();
        let schema = through_meta(&b.schema());
        let b = b.with_schema(schema.clone()).unwrap();
        let mut enc = SlotEncoder::new(&schema).unwrap();
        assert!(matches!(enc.kind, Kind::Arrow(None)));
        let slot = aligned(&slot_of(&mut enc, &b));
        assert_eq!(decode(&schema, &slot).unwrap(), b);
        assert_eq!(reference_decode(&schema, &slot).unwrap(), b);
        // Without dictionaries: the persistent arrow encoder.
        let cols = [3, 4, 5, 6, 7];
        let nd = b.project(&cols).unwrap();
        let mut enc = SlotEncoder::new(&nd.schema()).unwrap();
        assert!(matches!(enc.kind, Kind::Arrow(Some(_))));
        let slot = aligned(&slot_of(&mut enc, &nd));
        assert_eq!(decode(&nd.schema(), &slot).unwrap(), nd);
    }

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
        let err = decode(&schema, &aligned(&bad_align)).unwrap_err();
        assert!(err.0.contains("not 64-byte aligned"), "{err}");
        assert!(frames(&bad_align).is_err());
        let mut past = slot.clone();
        past[at + 8..at + 16].copy_from_slice(&(1i64 << 40).to_le_bytes());
        let err = decode(&schema, &aligned(&past)).unwrap_err();
        assert!(err.0.contains("runs past"), "{err}");
        // A truncated slot, a schema with a column too many / too few.
        assert!(decode(&schema, &aligned(&slot[..slot.len() - 64])).is_err());
        let fewer = Arc::new(schema.project(&[0, 1]).unwrap());
        let err = decode(&fewer, &aligned(&slot)).unwrap_err();
        assert!(err.0.contains("schema uses"), "{err}");
        let mut more: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        more.push(Field::new("extra", DataType::Int32, true));
        let err = decode(&Arc::new(Schema::new(more)), &aligned(&slot)).unwrap_err();
        assert!(err.0.contains("fewer"), "{err}");
    }

    fn slots() -> Vec<(SchemaRef, Vec<u8>)> {
        let mut out = Vec::new();
        for b in [direct_batch(), direct_batch().slice(3, 7), fallback_batch()] {
            let schema = through_meta(&b.schema());
            let b = b.with_schema(schema.clone()).unwrap();
            let slot = slot_of(&mut SlotEncoder::new(&schema).unwrap(), &b);
            out.push((schema, slot));
        }
        out
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
                let new = decode(&schema, &buf);
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
