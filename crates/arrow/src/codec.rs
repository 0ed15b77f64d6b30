//! Arrow IPC in and out of slots.
//!
//! A slot holds a prefix of an Arrow IPC *stream*: an optional schema
//! message, the dictionary batches the record batch needs, then the record
//! batch, each message 64-byte aligned. Every slot is self-contained, so a
//! reader that joins late can decode any slot on its own.
//!
//! Trust model: readers check structure in O(columns) — message framing,
//! every buffer range inside the slot, 64-byte alignment, no compression,
//! node/buffer sizes via `ArrayData::validate` — and then skip arrow's O(rows)
//! value validation (UTF-8, offsets monotonicity, dictionary key bounds). Those
//! were validated by the writer on construction of its arrays; the arena is
//! mode 0600 and owned by the reading user, so only that user's own processes
//! can write it. Arrow panics on malformed input are caught and reported as
//! errors, never propagated.

use arrow_array::{ArrayRef, RecordBatch};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_ipc::reader::FileDecoder;
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator, IpcWriteOptions, StreamEncoder};
use arrow_ipc::{Block, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, DataType, Schema, SchemaRef};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Alignment of every message and buffer inside a slot.
pub const SLOT_ALIGN: usize = 64;
const CONTINUATION: u32 = 0xFFFF_FFFF;

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

/// Turns record batches into the buffer lists that make up a slot, without
/// copying array data (the encoder hands back the arrays' own buffers).
pub struct SlotEncoder {
    schema: Schema,
    /// Reused across batches when the schema has no dictionaries (it then only
    /// ever emits the schema once, and we emit it before the first batch).
    persistent: Option<StreamEncoder>,
}

impl SlotEncoder {
    /// An encoder for batches of `schema`.
    pub fn new(schema: &Schema) -> Result<Self, ArrowError> {
        let persistent = if schema
            .fields()
            .iter()
            .any(|f| has_dictionary(f.data_type()))
        {
            None
        } else {
            let mut enc = StreamEncoder::try_new_with_options(schema, write_options())?;
            // Consume the one-time schema message now, so later calls only
            // emit record batches.
            let empty = RecordBatch::new_empty(std::sync::Arc::new(schema.clone()));
            enc.encode(&empty)?;
            Some(enc)
        };
        Ok(Self {
            schema: schema.clone(),
            persistent,
        })
    }

    /// The buffers to copy, in order, into a slot.
    pub fn encode(&mut self, batch: &RecordBatch) -> Result<Vec<Buffer>, ArrowError> {
        match &mut self.persistent {
            Some(enc) => enc.encode(batch),
            // Dictionaries must travel with every slot: a fresh encoder sends
            // them (and the schema message, which the reader skips).
            None => {
                StreamEncoder::try_new_with_options(&self.schema, write_options())?.encode(batch)
            }
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

/// Splits a slot into messages and checks each one's structure: framing,
/// flatbuffer verification, alignment, no compression, every buffer range
/// inside the body. O(messages + buffers), independent of rows.
pub fn frames(slot: &[u8]) -> Result<Vec<Frame>, SlotError> {
    let mut out = Vec::with_capacity(2);
    let mut pos = 0usize;
    while pos < slot.len() {
        if !pos.is_multiple_of(SLOT_ALIGN) {
            return Err(bad(format!(
                "message at offset {pos} is not 64-byte aligned"
            )));
        }
        let head = slot
            .get(pos..pos + 8)
            .ok_or_else(|| bad(format!("truncated message prefix at offset {pos}")))?;
        let cont = u32::from_le_bytes(head[..4].try_into().expect("4 bytes"));
        let len = i32::from_le_bytes(head[4..].try_into().expect("4 bytes"));
        if cont != CONTINUATION {
            return Err(bad(format!("missing continuation marker at offset {pos}")));
        }
        if len <= 0 {
            break; // end-of-stream marker
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
        let body_end = meta_end
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
        let rb = match header {
            MessageHeader::Schema => None,
            MessageHeader::RecordBatch => msg.header_as_record_batch(),
            MessageHeader::DictionaryBatch => {
                let d = msg
                    .header_as_dictionary_batch()
                    .ok_or_else(|| bad("dictionary batch without header"))?;
                if d.isDelta() {
                    return Err(bad("delta dictionaries are not used in slots"));
                }
                Some(
                    d.data()
                        .ok_or_else(|| bad("dictionary batch without data"))?,
                )
            }
            other => return Err(bad(format!("unexpected message type {other:?} in a slot"))),
        };
        if let Some(rb) = rb {
            if rb.compression().is_some() {
                return Err(bad("compressed batches are not used in slots"));
            }
            if rb.length() < 0 {
                return Err(bad("negative row count"));
            }
            for b in rb.buffers().into_iter().flatten() {
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
            }
            for n in rb.nodes().into_iter().flatten() {
                if n.length() < 0 || n.null_count() < 0 || n.null_count() > n.length() {
                    return Err(bad("invalid field node length or null count"));
                }
            }
        }
        out.push(Frame {
            offset: pos,
            meta_len: meta_end - pos,
            body_len,
            header,
        });
        pos = body_end;
    }
    Ok(out)
}

fn validate_tree(data: &ArrayData) -> Result<(), ArrowError> {
    data.validate()?;
    data.child_data().iter().try_for_each(validate_tree)?;
    if let DataType::Dictionary(_, _) = data.data_type() {
        // Dictionary values live in child_data[0]; covered above.
    }
    Ok(())
}

/// Decodes a slot whose bytes are owned by `slot` (a buffer over shared
/// memory, whose allocation owner is the lease). Every array buffer of the
/// result points into `slot`.
pub fn decode(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
    let frames = frames(slot.as_slice())?;
    let result = catch_unwind(AssertUnwindSafe(
        || -> Result<Option<RecordBatch>, ArrowError> {
            let decoder =
                FileDecoder::new(schema.clone(), MetadataVersion::V5).with_require_alignment(true);
            // SAFETY: `frames` checked message framing, flatbuffers, alignment and
            // buffer bounds; node/buffer sizes are checked by `validate_tree`
            // below. Value-level validity (UTF-8, offsets, dictionary keys) is the
            // documented trust model: the arena is 0600 and owned by this user.
            let mut decoder = unsafe { decoder.with_skip_validation(true) };
            let mut batch = None;
            for f in &frames {
                let block = Block::new(f.offset as i64, f.meta_len as i32, f.body_len as i64);
                let data = slot.slice_with_length(f.offset, f.meta_len + f.body_len);
                match f.header {
                    MessageHeader::Schema => {}
                    MessageHeader::DictionaryBatch => decoder.read_dictionary(&block, &data)?,
                    MessageHeader::RecordBatch => {
                        if batch.is_some() {
                            return Err(ArrowError::IpcError(
                                "two record batches in one slot".into(),
                            ));
                        }
                        batch = decoder.read_record_batch(&block, &data)?;
                    }
                    _ => unreachable!(
                        "frames() admits only schema, dictionary and record batch messages"
                    ),
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
        Ok(Ok(None)) => Err(bad("slot holds no record batch")),
        Ok(Err(e)) => Err(bad(format!("decode failed: {e}"))),
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
