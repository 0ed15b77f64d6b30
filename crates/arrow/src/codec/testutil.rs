//! Fixtures shared by the codec's unit tests: batches of every type, a
//! reference decoder, and helpers to encode and re-read slots.

use super::*;
use arrow_array::builder::{
    FixedSizeBinaryBuilder, FixedSizeListBuilder, Int32Builder, Int64Builder, LargeListBuilder,
    ListBuilder, MapBuilder, StringBuilder, StringDictionaryBuilder,
};
use arrow_array::types::{Int16Type, Int32Type};
use arrow_array::*;
use arrow_buffer::{i256, MutableBuffer, NullBuffer};
use arrow_ipc::reader::{FileDecoder, StreamReader};
use arrow_ipc::{Block, MessageHeader, MetadataVersion};
use arrow_schema::{ArrowError, DataType, Field, Fields, Schema, SchemaRef, UnionFields};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

/// The decoder this module had before: `FileDecoder` with skip-validation
/// plus `ArrayData::validate` of every node. The new decoder must accept
/// nothing this one rejects.
pub(super) fn reference_decode(
    schema: &SchemaRef,
    slot: &Buffer,
) -> Result<RecordBatch, SlotError> {
    fn validate_tree(data: &ArrayData) -> Result<(), ArrowError> {
        data.validate()?;
        data.child_data().iter().try_for_each(validate_tree)
    }
    let frames = frames(slot.as_slice())?;
    let result = catch_unwind(AssertUnwindSafe(
        || -> Result<Option<RecordBatch>, ArrowError> {
            let decoder =
                FileDecoder::new(schema.clone(), MetadataVersion::V5).with_require_alignment(true);
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
pub(super) fn aligned(bytes: &[u8]) -> Buffer {
    let mut m = MutableBuffer::new(bytes.len());
    m.extend_from_slice(bytes);
    m.into()
}

/// Writes `b` the way `Writer::write` does, checks `encode` gives the
/// same bytes, and returns the slot.
pub(super) fn slot_of(enc: &mut SlotEncoder, b: &RecordBatch) -> Vec<u8> {
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
pub(super) fn read_with_arrow(schema: &Schema, slot: &[u8]) -> RecordBatch {
    let mut stream = encode_schema(schema);
    stream.extend_from_slice(slot);
    let mut r = StreamReader::try_new(std::io::Cursor::new(stream), None).unwrap();
    let b = r.next().expect("a batch").expect("arrow reads the slot");
    assert!(r.next().is_none());
    b
}

/// 11 rows of every type the direct encoder writes, with nulls.
pub(super) fn direct_batch() -> RecordBatch {
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
            Arc::new(TimestampNanosecondArray::from_iter_values(0..n as i64).with_timezone("UTC")),
        ),
        ("date", Arc::new(Date32Array::from_iter_values(0..n as i32))),
        (
            "dec",
            Arc::new(
                Decimal128Array::from_iter((0..n as i128).map(|i| opt(i as usize).then_some(i)))
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

/// Types the direct encoder leaves to arrow-ipc: dictionaries (also
/// nested), unions, run-end encoded, list views.
pub(super) fn fallback_batch() -> RecordBatch {
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
pub(super) fn through_meta(schema: &Schema) -> SchemaRef {
    Arc::new(decode_schema(&encode_schema(schema)).unwrap())
}

pub(super) fn slots() -> Vec<(SchemaRef, Vec<u8>)> {
    let mut out = Vec::new();
    for b in [direct_batch(), direct_batch().slice(3, 7), fallback_batch()] {
        let schema = through_meta(&b.schema());
        let b = b.with_schema(schema.clone()).unwrap();
        let slot = slot_of(&mut SlotEncoder::new(&schema).unwrap(), &b);
        out.push((schema, slot));
    }
    out
}

/// [`decode`] for test slots.
pub(super) fn trusted_decode(schema: &SchemaRef, slot: &Buffer) -> Result<RecordBatch, SlotError> {
    // SAFETY: test slots are encoded from batches built by arrow's safe
    // constructors (valid values); the corrupt ones are corrupt only in their
    // metadata (structure), and tests read only lengths and null counts of
    // what such slots decode to, never values.
    unsafe { decode(schema, slot) }
}
