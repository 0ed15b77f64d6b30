//! Arbitrary bytes as a client's `append` payload, through the path the
//! daemon runs before its store lock: the checked IPC stream decode
//! (`ringfeed_arrow::ipc_stream::decode_stream` with the limits the daemon's
//! `decode_append_payload` uses) and the store's conform to bar and trade
//! columns. Must return Ok or Err, never crash, and never allocate beyond a
//! small multiple of the payload (libFuzzer's -malloc_limit_mb catches a
//! runaway allocation; the assert below bounds what conform produced).
//! Each input is tried twice: as a payload, and as edits to one of a few
//! valid streams (so mutations of real streams are explored from the first
//! run, with no corpus to keep).
#![no_main]
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use libfuzzer_sys::fuzz_target;
use ringfeed_arrow::ipc_stream::{decode_stream, StreamLimits};
use ringfeed_store::schema::{conform_input, Kind};
use std::sync::{Arc, OnceLock};

/// Valid streams to mutate: bars, several batches, a dictionary column.
fn seeds() -> Vec<Vec<u8>> {
    let n = 5;
    let ts: ArrayRef = Arc::new(
        TimestampNanosecondArray::from_iter_values((0..n).map(|i| i * 60_000_000_000))
            .with_timezone("UTC"),
    );
    let sym: ArrayRef = Arc::new(StringArray::from_iter_values((0..n).map(|_| "BTC")));
    let px: ArrayRef = Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64)));
    let bars = RecordBatch::try_from_iter([
        ("ts", ts.clone()),
        ("symbol", sym),
        ("open", px.clone()),
        ("high", px.clone()),
        ("low", px.clone()),
        ("close", px.clone()),
        ("volume", px.clone()),
    ])
    .unwrap();
    let dict: ArrayRef = Arc::new(
        arrow_array::DictionaryArray::<arrow_array::types::Int8Type>::from_iter(
            (0..n).map(|i| if i % 2 == 0 { "A" } else { "B" }),
        ),
    );
    let ticks = RecordBatch::try_from_iter([
        ("ts", ts),
        ("symbol", dict),
        ("price", px.clone()),
        ("size", px),
    ])
    .unwrap();
    let stream = |bs: &[RecordBatch]| {
        let mut out = Vec::new();
        let mut w =
            arrow_ipc::writer::StreamWriter::try_new(&mut out, bs[0].schema_ref()).unwrap();
        for b in bs {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    };
    vec![
        stream(&[bars.clone()]),
        stream(&[bars.clone(), bars.slice(1, 3)]),
        stream(&[ticks]),
    ]
}

/// The decode and conform the daemon runs on a payload; the bound checked.
fn run(payload: &[u8]) {
    let limits = StreamLimits::for_payload(payload.len());
    let Ok((_, batches)) = decode_stream(payload, &limits) else {
        return;
    };
    for b in &batches {
        for kind in [Kind::Bars, Kind::Ticks] {
            if let Ok(c) = conform_input(b, kind) {
                let bytes = c.get_array_memory_size() as u64;
                assert!(
                    bytes <= 16 * limits.max_expanded_bytes + (1 << 20),
                    "{} payload bytes conformed to {bytes} bytes",
                    payload.len()
                );
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    // The input as a payload...
    run(data);
    // ...and as mutations of a valid stream: a seed selector, then
    // (u16 LE position, byte) triples written over the seed.
    let seeds = SEEDS.get_or_init(seeds);
    if let Some((&pick, edits)) = data.split_first() {
        let mut m = seeds[pick as usize % seeds.len()].clone();
        for e in edits.chunks_exact(3) {
            let at = u16::from_le_bytes([e[0], e[1]]) as usize % m.len();
            m[at] = e[2];
        }
        run(&m);
    }
});
