//! Checked decoding of an Arrow IPC *stream* from an untrusted peer (a
//! client's `append` payload).
//!
//! arrow-ipc's `StreamReader` trusts the framing of its input: a record batch
//! whose `bodyLength` is shorter than its buffers, or that lists fewer
//! buffers than its columns need, makes it panic (it slices and indexes
//! without checking). [`decode_stream`] therefore checks the whole stream's
//! structure first, in O(messages + buffers), and only then hands it to
//! arrow-ipc:
//!
//! - framing: every message's continuation marker (or the pre-0.15 bare
//!   length), its metadata inside the payload, its flatbuffer verified by
//!   the flatbuffers verifier, `bodyLength` non-negative and inside the
//!   payload, an end-of-stream marker or the payload's end after the last;
//! - the schema comes first and holds only *flat* columns (timestamps,
//!   numbers, booleans, strings, binary, a dictionary of those): every such
//!   column's length is bounded by the bytes its buffers hold, so nothing
//!   decoded from the stream can be much larger than the stream. Null-typed,
//!   nested, union and run-end encoded columns are refused (a Null or run-end
//!   column of 2^33 rows takes a few bytes and expands to gigabytes on cast);
//! - every record batch and dictionary batch: uncompressed, exactly one
//!   field node per column and exactly the buffers its columns need, every
//!   node `0 <= null_count <= length == rows`, every buffer inside the body,
//!   and rows within [`StreamLimits::max_rows`];
//! - after arrow-ipc decoded it (with its own validation, under
//!   `catch_unwind` as a last guard): `ArrayData::validate_full` on every
//!   column, and the size the batches expand to (dictionaries unpacked)
//!   within [`StreamLimits::max_expanded_bytes`].
//!
//! Every error says what is wrong and what to send instead.

use crate::codec::CONTINUATION;
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_ipc::MessageHeader;
use arrow_schema::{DataType, Schema, SchemaRef};
use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// Bounds on what one stream may decode to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StreamLimits {
    /// Rows over all record batches.
    pub max_rows: u64,
    /// Bytes the decoded batches may take once dictionaries are unpacked
    /// (what a cast to plain columns allocates, up to a constant factor).
    pub max_expanded_bytes: u64,
}

impl StreamLimits {
    /// Limits proportional to a payload of `len` bytes: 8 rows per byte (a
    /// boolean column holds 8 values per byte, nothing holds more), and
    /// 64 expanded bytes per byte plus 1 MiB (a dictionary of short strings).
    pub fn for_payload(len: usize) -> Self {
        let len = len as u64;
        Self {
            max_rows: len.saturating_mul(8),
            max_expanded_bytes: len.saturating_mul(64).saturating_add(1 << 20),
        }
    }
}

/// Why a stream was refused. Nothing of it was decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StreamError {
    /// The bytes are not a well-formed IPC stream.
    #[error("malformed Arrow IPC stream at byte {offset}: {detail}; send the bytes of an Arrow IPC stream writer (pyarrow.ipc.new_stream, arrow-rs StreamWriter), not a file or a fragment")]
    Framing {
        /// Offset of the message (or of the problem) in the payload.
        offset: usize,
        /// What is wrong.
        detail: String,
    },
    /// A column of a type an append cannot take.
    #[error("column {column:?} has type {data_type}: {hint}")]
    Unsupported {
        /// The column's name.
        column: String,
        /// Its type.
        data_type: String,
        /// What to send instead.
        hint: &'static str,
    },
    /// A batch is compressed.
    #[error("record batch {batch} is compressed (LZ4/ZSTD bodies are not accepted): write the stream without compression; the socket is local")]
    Compressed {
        /// Index of the batch (0-based).
        batch: usize,
    },
    /// A batch's structure does not match the schema or its own body.
    #[error("record batch {batch} is malformed: {detail}")]
    Batch {
        /// Index of the batch (0-based; dictionary batches counted separately).
        batch: usize,
        /// What is wrong.
        detail: String,
    },
    /// More rows, or more decoded bytes, than the limits allow.
    #[error("the stream is too large: {detail}; split the append into smaller ones")]
    TooLarge {
        /// Which limit, and by how much.
        detail: String,
    },
    /// arrow-ipc refused the (structurally sound) stream, or a column is not
    /// valid Arrow data (bad UTF-8, offsets out of bounds, wrong null count).
    #[error("the stream's data is invalid: {detail}; fix the producer (build its arrays with validation on)")]
    Invalid {
        /// What arrow reported.
        detail: String,
    },
}

fn framing(offset: usize, detail: impl Into<String>) -> StreamError {
    StreamError::Framing {
        offset,
        detail: detail.into(),
    }
}

/// One message: its flatbuffer and where its body lies.
struct RawMessage<'a> {
    offset: usize,
    msg: arrow_ipc::Message<'a>,
    body_len: usize,
}

/// Splits `payload` into messages, checking framing and verifying each
/// flatbuffer. Stops at an end-of-stream marker or at the payload's end.
fn messages(payload: &[u8]) -> Result<Vec<RawMessage<'_>>, StreamError> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < payload.len() {
        let word = |at: usize| -> Result<u32, StreamError> {
            payload
                .get(at..at.saturating_add(4))
                .and_then(|b| b.try_into().ok())
                .map(u32::from_le_bytes)
                .ok_or_else(|| framing(at, "truncated message length"))
        };
        let first = word(pos)?;
        let (len, meta_start) = if first == CONTINUATION {
            (word(pos + 4)?, pos + 8)
        } else {
            // Before format 0.15 a message began with its length alone.
            (first, pos + 4)
        };
        let len = i32::from_le_bytes(len.to_le_bytes());
        if len == 0 {
            break; // end-of-stream marker
        }
        let len = usize::try_from(len).map_err(|_| framing(pos, "negative metadata length"))?;
        let meta_end = meta_start
            .checked_add(len)
            .filter(|&e| e <= payload.len())
            .ok_or_else(|| {
                framing(
                    pos,
                    format!(
                        "metadata of {len} bytes runs past the payload ({} bytes)",
                        payload.len()
                    ),
                )
            })?;
        let msg = arrow_ipc::root_as_message(&payload[meta_start..meta_end])
            .map_err(|e| framing(pos, format!("invalid message flatbuffer: {e}")))?;
        let body_len =
            usize::try_from(msg.bodyLength()).map_err(|_| framing(pos, "negative bodyLength"))?;
        let end = meta_end
            .checked_add(body_len)
            .filter(|&e| e <= payload.len())
            .ok_or_else(|| {
                framing(
                    pos,
                    format!(
                        "bodyLength {body_len} runs past the payload ({} bytes after the metadata)",
                        payload.len() - meta_end
                    ),
                )
            })?;
        out.push(RawMessage {
            offset: pos,
            msg,
            body_len,
        });
        pos = end;
    }
    Ok(out)
}

/// Buffers an IPC batch carries for one flat column of type `t` (variadic
/// data buffers of view columns not included); `None` for a type an append
/// does not take.
fn flat_buffers(t: &DataType) -> Option<usize> {
    use DataType as D;
    match t {
        D::Boolean
        | D::Int8
        | D::Int16
        | D::Int32
        | D::Int64
        | D::UInt8
        | D::UInt16
        | D::UInt32
        | D::UInt64
        | D::Float16
        | D::Float32
        | D::Float64
        | D::Timestamp(..)
        | D::Date32
        | D::Date64
        | D::Time32(_)
        | D::Time64(_)
        | D::Duration(_)
        | D::Decimal32(..)
        | D::Decimal64(..)
        | D::Decimal128(..)
        | D::Decimal256(..)
        | D::FixedSizeBinary(_) => Some(2),
        D::Utf8 | D::LargeUtf8 | D::Binary | D::LargeBinary => Some(3),
        D::Utf8View | D::BinaryView => Some(2),
        _ => None,
    }
}

fn is_view(t: &DataType) -> bool {
    matches!(t, DataType::Utf8View | DataType::BinaryView)
}

/// The element width arrow reads each buffer of a flat column of type `t`
/// as (1: bytes or bits, any length), after its validity buffer; view
/// columns' variadic data buffers come after these (width 1).
fn buffer_widths(t: &DataType) -> Vec<usize> {
    use DataType as D;
    match t {
        D::Utf8 | D::Binary => vec![4, 1],
        D::LargeUtf8 | D::LargeBinary => vec![8, 1],
        D::Utf8View | D::BinaryView => vec![16],
        D::Dictionary(k, _) => vec![k.primitive_width().unwrap_or(1)],
        t => vec![t.primitive_width().unwrap_or(1)],
    }
}

/// Checks that every column is flat (see the module docs).
fn check_schema(schema: &Schema) -> Result<(), StreamError> {
    if schema.fields().is_empty() {
        return Err(framing(0, "the schema has no columns"));
    }
    for f in schema.fields() {
        let unsupported = |hint| StreamError::Unsupported {
            column: f.name().clone(),
            data_type: f.data_type().to_string(),
            hint,
        };
        match f.data_type() {
            DataType::Null => return Err(unsupported(
                "a Null-typed column has no values and no type; cast it to the column's type (ts: timestamp, symbol: string, prices: float64), or leave it out",
            )),
            DataType::Dictionary(k, v) => {
                if !k.is_dictionary_key_type() || flat_buffers(v).is_none() {
                    return Err(unsupported(
                        "a dictionary column must have integer keys and flat values (strings, numbers); cast it to its plain type",
                    ));
                }
            }
            t if flat_buffers(t).is_some() => {}
            _ => return Err(unsupported(
                "append columns must be flat (timestamps, numbers, booleans, strings, or a dictionary of them); nested, union, run-end encoded and Null-typed columns are refused",
            )),
        }
    }
    Ok(())
}

/// Checks one record batch (or dictionary batch) header against the columns
/// `types` it must hold: no compression, one node per column with
/// `0 <= nulls <= length == rows`, exactly the buffers the columns need, each
/// inside the `body_len`-byte body. Returns the batch's row count.
fn check_batch(
    rb: &arrow_ipc::RecordBatch<'_>,
    types: &[&DataType],
    body_len: usize,
    batch: usize,
) -> Result<u64, StreamError> {
    let bad = |detail: String| StreamError::Batch { batch, detail };
    if rb.compression().is_some() {
        return Err(StreamError::Compressed { batch });
    }
    let rows = u64::try_from(rb.length()).map_err(|_| bad("negative row count".into()))?;
    let nodes = rb.nodes().ok_or_else(|| bad("no field nodes".into()))?;
    if nodes.len() != types.len() {
        return Err(bad(format!(
            "{} field nodes for {} columns",
            nodes.len(),
            types.len()
        )));
    }
    for (i, n) in nodes.iter().enumerate() {
        let (len, nulls) = (n.length(), n.null_count());
        if len < 0 || nulls < 0 || nulls > len || len as u64 != rows {
            return Err(bad(format!(
                "column {i} declares {len} values ({nulls} null) in a batch of {rows} rows"
            )));
        }
    }
    let views = types.iter().filter(|t| is_view(t)).count();
    let variadic: Vec<i64> = rb
        .variadicBufferCounts()
        .map(|v| v.iter().collect())
        .unwrap_or_default();
    if variadic.len() != views || variadic.iter().any(|&c| c < 0) {
        return Err(bad(format!(
            "{} variadic buffer counts for {views} view columns",
            variadic.len()
        )));
    }
    let need = variadic
        .iter()
        .try_fold(
            types
                .iter()
                .map(|t| flat_buffers(t).unwrap_or(2))
                .sum::<usize>(),
            |n, &c| n.checked_add(usize::try_from(c).ok()?),
        )
        .ok_or_else(|| bad("variadic buffer counts overflow".into()))?;
    let buffers = rb.buffers().ok_or_else(|| bad("no buffer list".into()))?;
    if buffers.len() != need {
        return Err(bad(format!(
            "{} buffers where its columns need {need}",
            buffers.len()
        )));
    }
    // What arrow reads each buffer as: validity, then the column's own
    // buffers, then (views) its variadic data buffers. Arrow asserts (panics)
    // that a typed buffer is aligned and a whole number of elements.
    let mut variadic = variadic.iter();
    let widths = types.iter().flat_map(|t| {
        let data = if is_view(t) {
            variadic.next().map_or(0, |&c| c as usize)
        } else {
            0
        };
        std::iter::once(1)
            .chain(buffer_widths(t))
            .chain(std::iter::repeat_n(1, data))
    });
    for (b, width) in buffers.iter().zip(widths) {
        let (o, l) = (b.offset(), b.length());
        let inside = o >= 0
            && l >= 0
            && (o as u64)
                .checked_add(l as u64)
                .is_some_and(|e| e <= body_len as u64);
        if !inside {
            return Err(bad(format!(
                "buffer [{o}, +{l}) runs past the body of {body_len} bytes (bodyLength too short for its buffers)"
            )));
        }
        // The format aligns every buffer to 8 bytes.
        if o % 8 != 0 || !(l as usize).is_multiple_of(width) {
            return Err(bad(format!(
                "buffer [{o}, +{l}) is not 8-byte aligned or not a whole number of {width}-byte values"
            )));
        }
    }
    Ok(rows)
}

/// Bytes `batch` takes with its dictionaries unpacked: each dictionary
/// column counts its keys times its longest value.
fn expanded_bytes(batch: &RecordBatch) -> u64 {
    batch
        .columns()
        .iter()
        .map(|c| match c.as_any_dictionary_opt() {
            Some(d) => {
                let values = d.values();
                let longest = if values.is_empty() {
                    0
                } else {
                    // The largest value's size, bounded by the whole buffer.
                    (values.get_buffer_memory_size() as u64).min(max_value_bytes(values.as_ref()))
                };
                (d.keys().len() as u64).saturating_mul(longest.saturating_add(16))
            }
            None => c.get_buffer_memory_size() as u64,
        })
        .fold(0u64, u64::saturating_add)
}

/// The largest value of a flat array, in bytes (fixed-width: its width).
fn max_value_bytes(a: &dyn Array) -> u64 {
    use arrow_array::cast::AsArray;
    match a.data_type() {
        DataType::Utf8 => a.as_string::<i32>().iter().flatten().map(str::len).max(),
        DataType::LargeUtf8 => a.as_string::<i64>().iter().flatten().map(str::len).max(),
        DataType::Utf8View => a.as_string_view().iter().flatten().map(str::len).max(),
        DataType::Binary => a.as_binary::<i32>().iter().flatten().map(<[u8]>::len).max(),
        DataType::LargeBinary => a.as_binary::<i64>().iter().flatten().map(<[u8]>::len).max(),
        DataType::BinaryView => a.as_binary_view().iter().flatten().map(<[u8]>::len).max(),
        t => t.primitive_width().or(match t {
            DataType::FixedSizeBinary(n) => usize::try_from(*n).ok(),
            _ => None,
        }),
    }
    .unwrap_or(0) as u64
}

/// Decodes a client's IPC stream, checked as the module docs describe.
/// Returns the schema and the record batches (none for a schema-only stream).
pub fn decode_stream(
    payload: &[u8],
    limits: &StreamLimits,
) -> Result<(SchemaRef, Vec<RecordBatch>), StreamError> {
    let msgs = messages(payload)?;
    let first = msgs
        .first()
        .ok_or_else(|| framing(0, "no schema message"))?;
    let fb_schema = first
        .msg
        .header_as_schema()
        .ok_or_else(|| framing(first.offset, "the first message is not a schema"))?;
    if first.body_len != 0 {
        // arrow-ipc does not skip a schema's body: it would read it as the
        // next message, not the one checked here.
        return Err(framing(first.offset, "a schema message with a body"));
    }
    let schema = catch_unwind(AssertUnwindSafe(|| {
        arrow_ipc::convert::try_fb_to_schema(fb_schema)
    }))
    .map_err(|_| framing(first.offset, "unreadable schema"))?
    .map_err(|e| framing(first.offset, format!("unreadable schema: {e}")))?;
    check_schema(&schema)?;
    let types: Vec<&DataType> = schema.fields().iter().map(|f| f.data_type()).collect();
    // Dictionary id -> the type of its values.
    #[allow(deprecated)] // arrow-ipc still keys dictionaries by the schema's ids
    let dict_types: HashMap<i64, &DataType> = schema
        .fields()
        .iter()
        .filter_map(|f| match f.data_type() {
            DataType::Dictionary(_, v) => f.dict_id().map(|id| (id, v.as_ref())),
            _ => None,
        })
        .collect();
    let (mut rows, mut batches, mut dicts) = (0u64, 0usize, 0usize);
    for m in &msgs[1..] {
        match m.msg.header_type() {
            MessageHeader::RecordBatch => {
                let rb = m
                    .msg
                    .header_as_record_batch()
                    .ok_or_else(|| framing(m.offset, "record batch message without a header"))?;
                rows = rows.saturating_add(check_batch(&rb, &types, m.body_len, batches)?);
                batches += 1;
                if rows > limits.max_rows {
                    return Err(StreamError::TooLarge {
                        detail: format!(
                            "over {} rows declared in {} bytes (at most {} rows for a payload this size)",
                            rows,
                            payload.len(),
                            limits.max_rows
                        ),
                    });
                }
            }
            MessageHeader::DictionaryBatch => {
                let d = m
                    .msg
                    .header_as_dictionary_batch()
                    .ok_or_else(|| framing(m.offset, "dictionary message without a header"))?;
                let t = dict_types.get(&d.id()).ok_or_else(|| StreamError::Batch {
                    batch: dicts,
                    detail: format!("dictionary batch for unknown dictionary id {}", d.id()),
                })?;
                let data = d.data().ok_or_else(|| StreamError::Batch {
                    batch: dicts,
                    detail: "dictionary batch without data".into(),
                })?;
                let n = check_batch(&data, &[t], m.body_len, dicts)?;
                if n > limits.max_rows {
                    return Err(StreamError::TooLarge {
                        detail: format!("a dictionary of {n} values (at most {})", limits.max_rows),
                    });
                }
                dicts += 1;
            }
            other => {
                return Err(framing(
                    m.offset,
                    format!("unexpected {other:?} message after the schema"),
                ))
            }
        }
    }
    // Structure checked: arrow-ipc reads only inside the payload and indexes
    // only buffers and nodes that exist. It still runs under catch_unwind.
    let decoded = catch_unwind(AssertUnwindSafe(|| {
        let r = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(payload), None)?;
        r.collect::<Result<Vec<_>, _>>()
    }));
    let batches = match decoded {
        Ok(Ok(b)) => b,
        Ok(Err(e)) => {
            return Err(StreamError::Invalid {
                detail: e.to_string(),
            })
        }
        Err(_) => {
            return Err(StreamError::Invalid {
                detail: "arrow-ipc rejected the stream (panic caught)".into(),
            })
        }
    };
    let mut expanded = 0u64;
    for b in &batches {
        for (f, c) in b.schema().fields().iter().zip(b.columns()) {
            c.to_data()
                .validate_full()
                .map_err(|e| StreamError::Invalid {
                    detail: format!("column {:?}: {e}", f.name()),
                })?;
        }
        expanded = expanded.saturating_add(expanded_bytes(b));
        if expanded > limits.max_expanded_bytes {
            return Err(StreamError::TooLarge {
                detail: format!(
                    "the batches expand to over {expanded} bytes with dictionaries unpacked (at most {} for a payload of {} bytes)",
                    limits.max_expanded_bytes,
                    payload.len()
                ),
            });
        }
    }
    Ok((std::sync::Arc::new(schema), batches))
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow_array::{
        ArrayRef, DictionaryArray, Float64Array, NullArray, StringArray, TimestampNanosecondArray,
    };
    use std::sync::Arc;

    fn stream(batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(&mut out, batches[0].schema_ref()).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    fn bars(n: usize) -> RecordBatch {
        let ts: ArrayRef = Arc::new(TimestampNanosecondArray::from_iter_values(
            (0..n as i64).map(|i| i * 60_000_000_000),
        ));
        let sym: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|_| "BTC")));
        let px: ArrayRef = Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)));
        RecordBatch::try_from_iter([("ts", ts), ("symbol", sym), ("close", px)]).unwrap()
    }

    fn decode(p: &[u8]) -> Result<(SchemaRef, Vec<RecordBatch>), StreamError> {
        decode_stream(p, &StreamLimits::for_payload(p.len()))
    }

    #[test]
    fn a_valid_stream_decodes_to_its_batches() {
        let b = [bars(3), bars(5)];
        let (schema, got) = decode(&stream(&b)).unwrap();
        assert_eq!(schema.as_ref(), b[0].schema().as_ref());
        assert_eq!(got, b);
    }

    #[test]
    fn null_typed_columns_are_refused_by_name() {
        let n: ArrayRef = Arc::new(NullArray::new(4));
        let b = RecordBatch::try_from_iter([("ts", n.clone()), ("symbol", n)]).unwrap();
        let e = decode(&stream(&[b])).unwrap_err();
        assert!(
            matches!(&e, StreamError::Unsupported { column, .. } if column == "ts"),
            "{e}"
        );
        assert!(e.to_string().contains("cast it"), "{e}");
    }

    #[test]
    fn a_body_too_short_for_its_buffers_is_refused() {
        let p = stream(&[bars(4)]);
        let msgs = messages(&p).unwrap();
        let rb = &msgs[1];
        // Rewrite bodyLength (an i64 in the flatbuffer) to 8 bytes.
        let body = rb.body_len as i64;
        let meta_start = rb.offset + 8;
        let at = p[meta_start..]
            .windows(8)
            .position(|w| w == body.to_le_bytes())
            .unwrap()
            + meta_start;
        let mut bad = p.clone();
        bad[at..at + 8].copy_from_slice(&8i64.to_le_bytes());
        // The stream ends after the 8 bytes now declared (arrow-ipc would
        // slice the buffers past them and panic).
        let meta_len = u32::from_le_bytes(p[rb.offset + 4..rb.offset + 8].try_into().unwrap());
        bad.truncate(rb.offset + 8 + meta_len as usize + 8);
        let e = decode(&bad).unwrap_err();
        assert!(matches!(e, StreamError::Batch { .. }), "{e}");
        assert!(e.to_string().contains("bodyLength too short"), "{e}");
        // Without the check, arrow-ipc panics on these bytes.
        let raw = catch_unwind(|| {
            arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(&bad), None)
                .map(|r| r.collect::<Vec<_>>())
        });
        assert!(raw.is_err() || raw.unwrap().is_err());
    }

    #[test]
    fn rows_beyond_what_the_payload_can_hold_are_refused() {
        let p = stream(&[bars(4)]);
        let e = decode_stream(
            &p,
            &StreamLimits {
                max_rows: 3,
                max_expanded_bytes: u64::MAX,
            },
        )
        .unwrap_err();
        assert!(matches!(e, StreamError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn a_dictionary_that_expands_far_beyond_the_payload_is_refused() {
        let long = "x".repeat(100_000);
        let keys = arrow_array::Int8Array::from(vec![0i8; 2000]);
        let d: ArrayRef = Arc::new(
            DictionaryArray::try_new(keys, Arc::new(StringArray::from(vec![long.as_str()])))
                .unwrap(),
        );
        let b = RecordBatch::try_from_iter([("symbol", d)]).unwrap();
        let e = decode(&stream(&[b])).unwrap_err();
        assert!(matches!(e, StreamError::TooLarge { .. }), "{e}");
    }

    #[test]
    fn every_single_byte_change_of_the_metadata_is_answered_without_panic() {
        let p = stream(&[bars(3)]);
        let msgs = messages(&p).unwrap();
        let body = msgs[1].body_len;
        let meta_end = p.len() - body - 8; // the end-of-stream marker is last
                                           // Panics caught inside decode_stream count too: the checks must
                                           // refuse everything arrow would panic on (a fuzzer aborts on them).
        thread_local!(static PANICS: std::cell::Cell<u32> = const { std::cell::Cell::new(0) });
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.with(|p| p.set(p.get() + 1));
            prev(info)
        }));
        let mut panicked = vec![];
        for at in 0..meta_end {
            for v in [0x00, 0x01, 0x2e, 0x7f, 0x80, 0xff, p[at] ^ 1, p[at] ^ 0x10] {
                let mut m = p.clone();
                m[at] = v;
                let before = PANICS.with(|p| p.get());
                let _ = decode(&m);
                if PANICS.with(|p| p.get()) != before {
                    panicked.push((at, v));
                }
            }
        }
        assert!(panicked.is_empty(), "arrow panicked on {panicked:?}");
    }

    #[test]
    fn mutations_of_a_valid_stream_never_panic() {
        let p = stream(&[bars(7), bars(2)]);
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..2000 {
            let mut m = p.clone();
            for _ in 0..1 + next() % 4 {
                let i = (next() % m.len() as u64) as usize;
                m[i] = next() as u8;
            }
            let _ = decode(&m);
        }
        for cut in 0..p.len() {
            let _ = decode(&p[..cut]);
        }
    }
}
