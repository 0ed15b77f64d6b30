//! Average cost of the pieces of a small-batch publish and read, in one
//! process: `cargo run --release -p ringfeed-arrow --example probe_small`.
//!
//! `probe_small [N] [SECTION]`: N iterations (default 100000); SECTION is one
//! of `encode`, `frames`, `decode`, `write`, `wr` (write + read), `big`
//! (1M-row batch: decode hot, and read right after the write), or `all`
//! (everything but `big`).
//! Under callgrind, run one section at two N and subtract to get the
//! instructions per iteration.
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use arrow_schema::SchemaRef;
use ringfeed_arrow::{codec, ohlcv_schema, Reader, RingOptions, StartAt, Writer};
use std::{sync::Arc, time::Instant};

fn bars(schema: &SchemaRef, rows: usize) -> RecordBatch {
    let f = |k: f64| {
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| i as f64 + k),
        )) as ArrayRef
    };
    let syms = ["BTCUSDT", "ETHUSDT", "a symbol longer than twelve"];
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(
                TimestampNanosecondArray::from_iter_values((0..rows as i64).map(|i| i * 60))
                    .with_timezone("UTC"),
            ),
            Arc::new(StringViewArray::from_iter_values(
                (0..rows).map(|i| syms[i % syms.len()]),
            )),
            f(1.0),
            f(2.0),
            f(0.5),
            f(1.5),
            f(100.0),
        ],
    )
    .unwrap()
}

/// Minor page faults of this process so far (`/proc/self/stat` field 10).
fn minflt() -> u64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the `(comm)`: state is field 3, minflt field 10.
    s.rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(7))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// `codec::decode` of a slot this probe encoded itself.
fn decode(schema: &SchemaRef, slot: &arrow_buffer::Buffer) -> RecordBatch {
    // SAFETY: every slot here was encoded by `SlotEncoder` from batches that
    // arrow's safe constructors built (valid values).
    unsafe { codec::decode(schema, slot) }.unwrap()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args.next().map_or(100_000, |s| s.parse().expect("N"));
    let section = args.next().unwrap_or_else(|| "all".into());
    let on = |s: &str| (section == "all" && s != "big") || section == s;
    let schema = Arc::new(ohlcv_schema());
    let b = bars(&schema, 1);
    let per = |t: Instant, n: usize| t.elapsed().as_secs_f64() * 1e6 / n as f64;

    let mut enc = codec::SlotEncoder::new(&schema).unwrap();
    if on("encode") {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(enc.encode(&b).unwrap());
        }
        println!("encode        {:>8.2} us", per(t, n));
    }
    let bufs = enc.encode(&b).unwrap();
    let mut slot = vec![0u8; codec::encoded_len(&bufs)];
    codec::copy_into(&bufs, &mut slot);
    let buf = arrow_buffer::Buffer::from(slot);
    if on("frames") {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(codec::frames(buf.as_slice()).unwrap());
        }
        println!("frames        {:>8.2} us", per(t, n));
    }
    if on("decode") {
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(decode(&schema, &buf));
        }
        println!("decode        {:>8.2} us", per(t, n));
    }
    let name = format!("probe-{}", std::process::id());
    let opts = RingOptions {
        slots: 64,
        ..Default::default()
    };
    if on("write") || on("wr") {
        let mut w = Writer::create(&name, &schema, opts.clone()).unwrap();
        if on("write") {
            let t = Instant::now();
            for _ in 0..n {
                w.write(&b).unwrap();
            }
            println!("write         {:>8.2} us", per(t, n));
        }
        if on("wr") {
            let mut r = Reader::open(&name, StartAt::Next).unwrap();
            let t = Instant::now();
            for _ in 0..n {
                w.write(&b).unwrap();
                std::hint::black_box(r.try_read().unwrap().unwrap());
            }
            println!("write+read    {:>8.2} us", per(t, n));
        }
        w.close();
    }
    if on("big") {
        // 1M rows x 7 columns (~36 MB): decode of a slot in the ring right
        // after it was written (cold: fresh slot, reader's pages not yet
        // faulted in) vs the same decode again (hot).
        let big = bars(&schema, 1_000_000);
        let opts = RingOptions {
            slots: 4,
            slot_bytes: 80 << 20,
            max_readers: 1,
            leases_per_reader: 1,
            ..Default::default()
        };
        let mut w = Writer::create(&name, &schema, opts).unwrap();
        let mut r = Reader::open(&name, StartAt::Next).unwrap();
        let rounds = n.clamp(1, 20);
        let (mut cold, mut write, mut faults) = (Vec::new(), Vec::new(), Vec::new());
        let mut control = Vec::new();
        let mut sums = Vec::new();
        for i in 0..rounds * 2 {
            let t = Instant::now();
            w.write(&big).unwrap();
            write.push(per(t, 1));
            if i % 2 == 1 {
                // Control: the 1-row slot (not in the ring) decoded with the
                // caches just as cold; the difference is what the big slot adds.
                let t = Instant::now();
                std::hint::black_box(decode(&schema, &buf));
                control.push(per(t, 1));
                std::hint::black_box(r.try_read().unwrap().unwrap());
                continue;
            }
            let f0 = minflt();
            let t = Instant::now();
            let got = r.try_read().unwrap().unwrap();
            cold.push(per(t, 1));
            faults.push((minflt() - f0) as f64);
            // What a consumer pays to read one 8 MB column: the first time
            // this reader sees a pool buffer its pages fault in (the pool is
            // mapped without MAP_POPULATE), later only the reads.
            let close = got
                .column(5)
                .as_any()
                .downcast_ref::<Float64Array>()
                .unwrap();
            let f0 = minflt();
            let t = Instant::now();
            std::hint::black_box(close.values().iter().sum::<f64>());
            sums.push((per(t, 1), (minflt() - f0) as f64));
        }
        let med = |v: &mut Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "big write     {:>8.2} us (median of {})",
            med(&mut write),
            rounds * 2
        );
        let first = faults[0];
        // Reads 0..3 (rounds 0, 2, 4) each hit a buffer this reader never
        // mapped before; the last ones reuse buffers.
        let (t0, f0) = sums[0];
        let (tn, fn_) = sums[sums.len() - 1];
        println!(
            "big sum(close) {:>7.0} us first touch of a buffer ({f0} faults), {tn:.0} us once mapped ({fn_} faults)",
            t0
        );
        println!(
            "big read      {:>8.2} us (right after its write; page faults: {} median, {} on the first read)",
            med(&mut cold),
            med(&mut faults),
            first
        );
        w.close();
        // The same slot decoded again and again (hot).
        let bufs = codec::SlotEncoder::new(&schema)
            .unwrap()
            .encode(&big)
            .unwrap();
        let mut slot = vec![0u8; codec::encoded_len(&bufs)];
        codec::copy_into(&bufs, &mut slot);
        let buf = arrow_buffer::Buffer::from(slot);
        let t = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(decode(&schema, &buf));
        }
        println!("big decode    {:>8.2} us (hot)", per(t, rounds));
        // The writer's copy vs a plain memcpy of as many bytes, both into
        // the same (already faulted-in) private buffer.
        let mut enc = codec::SlotEncoder::new(&schema).unwrap();
        let src = buf.as_slice();
        let mut dst = vec![1u8; src.len()];
        let (mut enc_t, mut cpy_t) = (Vec::new(), Vec::new());
        for _ in 0..rounds {
            let t = Instant::now();
            let p = enc.prepare(&big).unwrap();
            std::hint::black_box(p.write_to(&mut dst));
            drop(p);
            enc_t.push(per(t, 1));
            let t = Instant::now();
            dst.copy_from_slice(src);
            std::hint::black_box(&dst);
            cpy_t.push(per(t, 1));
        }
        let (e, c) = (med(&mut enc_t), med(&mut cpy_t));
        println!(
            "big encode    {:>8.2} us into private memory ({:.1} GB/s; memcpy of the same {:.1} MB: {:.2} us, {:.1} GB/s)",
            e,
            src.len() as f64 / e / 1e3,
            src.len() as f64 / 1e6,
            c,
            src.len() as f64 / c / 1e3
        );
        println!(
            "1-row decode  {:>8.2} us (right after a big write: cold caches)",
            med(&mut control)
        );
    }
}
