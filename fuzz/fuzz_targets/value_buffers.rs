//! Valid slots with corrupted *value buffers* (the message bodies; the
//! metadata stays intact, so decoding gets past the structural checks and
//! reaches the values): decoding with full validation, what a
//! `Validate::Full` reader does, must return Ok or an error and never crash,
//! and what it accepts must be valid to the last value. Run with
//! scripts/fuzz.sh.
#![no_main]
use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, BinaryViewArray, DictionaryArray, Float64Array, Int64Array, ListArray,
    RecordBatch, StringArray, StringViewArray,
};
use arrow_buffer::Buffer;
use arrow_schema::SchemaRef;
use libfuzzer_sys::fuzz_target;
use ringfeed_arrow::codec::{self, SlotEncoder};
use std::sync::{Arc, OnceLock};

/// (schema, slot bytes, body ranges) of a few valid slots.
type Fixture = (SchemaRef, Vec<u8>, Vec<(usize, usize)>);

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        let long = |i: usize| format!("symbol number {i} with a long name");
        let views: ArrayRef = Arc::new(StringViewArray::from_iter_values(
            (0..16).map(|i| if i % 3 == 0 { "BTC".to_string() } else { long(i) }),
        ));
        let bin: ArrayRef = Arc::new(BinaryViewArray::from_iter_values(
            (0..16).map(|i| long(i).into_bytes()),
        ));
        let utf8: ArrayRef = Arc::new(StringArray::from_iter_values((0..16).map(long)));
        let dict: ArrayRef = Arc::new(
            (0..16)
                .map(|i| ["a", "bb", "ccc"][i % 3])
                .collect::<DictionaryArray<Int32Type>>(),
        );
        let list: ArrayRef = Arc::new(ListArray::from_iter_primitive::<Int32Type, _, _>(
            (0..16).map(|i| Some((0..i % 4).map(Some).collect::<Vec<_>>())),
        ));
        let f: ArrayRef = Arc::new(Float64Array::from_iter_values((0..16).map(|i| i as f64)));
        let n: ArrayRef = Arc::new(Int64Array::from_iter((0..16).map(|i| (i % 5 != 0).then_some(i))));
        let batches = [
            RecordBatch::try_from_iter([("v", views), ("b", bin), ("f", f.clone())]).unwrap(),
            RecordBatch::try_from_iter([("s", utf8), ("l", list), ("n", n)]).unwrap(),
            RecordBatch::try_from_iter([("d", dict), ("f", f)]).unwrap(),
        ];
        batches
            .iter()
            .map(|b| {
                // The schema as a reader gets it (through the meta block).
                let schema = Arc::new(
                    codec::decode_schema(&codec::encode_schema(&b.schema())).unwrap(),
                );
                let b = b.clone().with_schema(schema.clone()).unwrap();
                let bufs = SlotEncoder::new(&schema).unwrap().encode(&b).unwrap();
                let mut slot = vec![0u8; codec::encoded_len(&bufs)];
                codec::copy_into(&bufs, &mut slot);
                let bodies = codec::frames(&slot)
                    .unwrap()
                    .iter()
                    .filter(|f| f.body_len > 0)
                    .map(|f| (f.offset + f.meta_len, f.body_len))
                    .collect();
                (schema, slot, bodies)
            })
            .collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, muts)) = data.split_first() else {
        return;
    };
    let (schema, slot, bodies) = &fixtures()[pick as usize % fixtures().len()];
    let mut slot = slot.clone();
    // Each mutation: 2 bytes choose the body and the offset in it, 1 byte is the value.
    for m in muts.chunks_exact(4) {
        let (start, len) = bodies[m[0] as usize % bodies.len()];
        let at = start + (u16::from_le_bytes([m[1], m[2]]) as usize % len);
        slot[at] = m[3];
    }
    // Buffer::from copies into a 64-byte aligned allocation, as slots are.
    if let Ok(batch) = codec::decode_validated(schema, &Buffer::from(slot)) {
        for c in batch.columns() {
            assert!(c.to_data().validate_full().is_ok());
            // Reading every value must be safe now: Debug walks them all.
            let _ = format!("{c:?}");
        }
    }
});
