//! Slot contents from record batches: [`SlotEncoder`] (the direct one-pass
//! writer and the arrow-ipc fallback) and [`Prepared`].

use super::{pad, write_options, CONTINUATION, SLOT_ALIGN, ZEROS};
use arrow_array::types::{
    BinaryType, BinaryViewType, ByteArrayType, ByteViewType, LargeBinaryType, LargeUtf8Type,
    StringViewType, Utf8Type,
};
use arrow_array::{
    downcast_primitive, downcast_primitive_array, Array, ArrowPrimitiveType, BooleanArray,
    FixedSizeBinaryArray, FixedSizeListArray, GenericByteArray, GenericByteViewArray,
    GenericListArray, MapArray, OffsetSizeTrait, PrimitiveArray, RecordBatch, StructArray,
};
use arrow_buffer::{Buffer, OffsetBuffer};
use arrow_ipc::writer::StreamEncoder;
use arrow_ipc::{
    Buffer as IpcBuffer, FieldNode, MessageBuilder, MessageHeader, MetadataVersion,
    RecordBatchBuilder,
};
use arrow_schema::{ArrowError, DataType, Schema};
use flatbuffers::FlatBufferBuilder;
use std::sync::Arc;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::testutil::*;
    use crate::codec::{decode_validated, for_each_buffer};
    use arrow_array::*;
    use std::sync::Arc;

    fn check_round_trip(b: &RecordBatch, direct: bool) {
        let schema = b.schema();
        let mut enc = SlotEncoder::new(&schema).unwrap();
        assert_eq!(matches!(enc.kind, Kind::Direct(_)), direct);
        let slot = slot_of(&mut enc, b);
        assert_eq!(&read_with_arrow(&schema, &slot), b, "arrow's reader");
        let buf = aligned(&slot);
        let got = trusted_decode(&schema, &buf).unwrap();
        assert_eq!(&got, b, "decode");
        assert_eq!(&decode_validated(&schema, &buf).unwrap(), b, "validated");
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
        assert_eq!(
            &trusted_decode(&schema, &aligned(&v)).unwrap(),
            b,
            "arrow-encoded"
        );
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
        let b = crate::schema::ohlcv_schema();
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
        let schema = Arc::new(crate::schema::ohlcv_schema());
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
            assert_eq!(trusted_decode(&schema, &aligned(&slot)).unwrap(), b);
        }
    }

    #[test]
    fn fallback_types_round_trip() {
        let b = fallback_batch();
        let schema = through_meta(&b.schema());
        let b = b.with_schema(schema.clone()).unwrap();
        let mut enc = SlotEncoder::new(&schema).unwrap();
        assert!(matches!(enc.kind, Kind::Arrow(None)));
        let slot = aligned(&slot_of(&mut enc, &b));
        assert_eq!(trusted_decode(&schema, &slot).unwrap(), b);
        assert_eq!(reference_decode(&schema, &slot).unwrap(), b);
        // Without dictionaries: the persistent arrow encoder.
        let cols = [3, 4, 5, 6, 7];
        let nd = b.project(&cols).unwrap();
        let mut enc = SlotEncoder::new(&nd.schema()).unwrap();
        assert!(matches!(enc.kind, Kind::Arrow(Some(_))));
        let slot = aligned(&slot_of(&mut enc, &nd));
        assert_eq!(trusted_decode(&nd.schema(), &slot).unwrap(), nd);
    }
}
