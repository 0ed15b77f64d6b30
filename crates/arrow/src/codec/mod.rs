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
//! (zero-copy: every buffer is a slice of the slot). It trusts the values,
//! so it is an `unsafe fn` (see its `# Safety`); [`decode_validated`] adds
//! arrow's full validation for bytes of unknown origin.
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
//!
//! The module is split by concern, like arrow-ipc's reader/writer/convert:
//! `encode` (slot contents from batches), `message` (IPC message framing and
//! the schema block) and `decode` (zero-copy arrays over a slot).

use arrow_array::ArrayRef;
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_ipc::writer::IpcWriteOptions;
use arrow_ipc::MetadataVersion;

mod decode;
mod encode;
mod message;
#[cfg(test)]
mod testutil;

pub use decode::{decode, decode_validated};
pub use encode::{copy_into, encoded_len, Prepared, SlotEncoder};
pub use message::{decode_schema, encode_schema, frames, Frame};

/// Alignment of every message and buffer inside a slot.
pub const SLOT_ALIGN: usize = 64;
pub(crate) const CONTINUATION: u32 = 0xFFFF_FFFF;
pub(crate) const ZEROS: [u8; SLOT_ALIGN] = [0; SLOT_ALIGN];

/// IPC write options used everywhere: 64-byte alignment, metadata V5.
pub fn write_options() -> IpcWriteOptions {
    IpcWriteOptions::try_new(SLOT_ALIGN, false, MetadataVersion::V5)
        .expect("64 is a valid IPC alignment")
}

/// Rounds `n` up to a multiple of [`SLOT_ALIGN`].
pub(crate) const fn pad(n: usize) -> usize {
    n.next_multiple_of(SLOT_ALIGN)
}

/// Why a slot could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotError(pub String);

impl std::fmt::Display for SlotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SlotError {}

impl SlotError {
    /// What kind of failure this is: always [`crate::ErrorKind::Corrupt`].
    pub fn kind(&self) -> crate::ErrorKind {
        crate::ErrorKind::Corrupt
    }
}

pub(crate) fn bad(msg: impl Into<String>) -> SlotError {
    SlotError(msg.into())
}

type R<T> = Result<T, SlotError>;

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
