//! Arbitrary bytes as a ring slot: decoding must return Ok or Err, never
//! crash. Run with scripts/fuzz.sh.
#![no_main]
use arrow_buffer::Buffer;
use libfuzzer_sys::fuzz_target;
use std::sync::{Arc, OnceLock};

fuzz_target!(|data: &[u8]| {
    static SCHEMA: OnceLock<arrow_schema::SchemaRef> = OnceLock::new();
    let schema = SCHEMA.get_or_init(|| Arc::new(ringfeed_arrow::ohlcv_schema()));
    // Buffer::from copies into a 64-byte aligned allocation, as slots are.
    // Fuzz bytes come from no validating writer: the safe, fully validating
    // decoder (it runs the structural `decode` first, so both are fuzzed).
    let _ = ringfeed_arrow::codec::decode_validated(schema, &Buffer::from(data.to_vec()));
    let _ = ringfeed_arrow::codec::decode_schema(data);
});
