//! Arrow IPC message framing inside a slot, and the schema block.

use super::{bad, write_options, SlotError, CONTINUATION, R, SLOT_ALIGN};
use arrow_ipc::writer::{DictionaryTracker, IpcDataGenerator};
use arrow_ipc::{Buffer as IpcBuffer, FieldNode, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, Schema};
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
pub(super) struct Msg<'a> {
    pub(super) frame: Frame,
    /// The record batch (of a dictionary batch, its values) and, for a
    /// dictionary batch, its id. `None` for a schema message.
    pub(super) batch: Option<(arrow_ipc::RecordBatch<'a>, i64)>,
    pub(super) version: MetadataVersion,
}

/// Parses the message at `pos` and checks its structure: framing, flatbuffer
/// verification, alignment, no compression, no delta dictionaries and, if
/// `all_buffers`, every buffer range inside the body and 64-byte aligned and
/// every field node sane. (`decode` checks each buffer and node as it uses
/// it instead, and that it uses all of them: see [`Body`].)
/// `Ok(None)` at the end of the slot or at an end-of-stream marker.
pub(super) fn read_message(
    slot: &[u8],
    pos: usize,
    all_buffers: bool,
) -> Result<Option<Msg<'_>>, SlotError> {
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
pub(super) fn check_buffer(b: &IpcBuffer, body_len: usize) -> R<(usize, usize)> {
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
pub(super) fn check_node(n: &FieldNode) -> R<(usize, usize)> {
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
