//! Publishes one small bar batch at a fixed rate, for a reader in another
//! process to keep up with (scripts/bench_small.py `--throughput`, issue 17).
//!
//! `paced_publish NAME RATE COUNT [ROWS] [SLOTS]`: waits up to 30 s for one
//! reader, then writes COUNT batches of ROWS rows (default 1) at RATE batches
//! per second into an `OverwriteOldest` ring of SLOTS slots (default 1024), and
//! closes it. Pacing is absolute: every wake-up publishes the batches due by
//! then (sleeps are ~60-100 µs here, so a 20k/s feed comes in bursts of a few),
//! so the average rate is RATE whatever the sleep granularity. Prints one JSON
//! line: `{"batches": N, "seconds": S, "rate_per_s": R}`.
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use ringfeed_arrow::{ohlcv_schema, OnFull, RingOptions, Writer};
use std::{
    sync::Arc,
    time::{Duration, Instant},
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        return Err("usage: paced_publish NAME RATE COUNT [ROWS] [SLOTS]".into());
    }
    let name = &args[1];
    let rate: u64 = args[2].parse()?;
    let count: u64 = args[3].parse()?;
    let rows: usize = args.get(4).map_or(Ok(1), |s| s.parse())?;
    let slots: u32 = args.get(5).map_or(Ok(1024), |s| s.parse())?;
    let schema = Arc::new(ohlcv_schema());
    let opts = RingOptions {
        slots,
        slot_bytes: 4096,
        max_readers: 2,
        on_full: OnFull::OverwriteOldest,
        force: true,
        ..Default::default()
    };
    let mut w = Writer::create(name, &schema, opts)?;
    if !w.ring_mut().wait_for_readers(1, Duration::from_secs(30)) {
        return Err("no reader attached within 30 s".into());
    }
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < count {
        let due = (t0.elapsed().as_nanos() as u64).saturating_mul(rate) / 1_000_000_000;
        while sent < due.min(count) {
            let k = sent as i64;
            let f = |x: f64| Arc::new(Float64Array::from(vec![x; rows])) as ArrayRef;
            let batch = RecordBatch::try_new(
                schema.clone(),
                vec![
                    Arc::new(
                        TimestampNanosecondArray::from(vec![k * 1_000_000; rows])
                            .with_timezone("UTC"),
                    ),
                    Arc::new(StringViewArray::from(vec!["BTCUSDT"; rows])),
                    f(100.0 + k as f64),
                    f(101.0),
                    f(99.0),
                    f(100.5),
                    f(1.0),
                ],
            )?;
            w.write(&batch)?;
            sent += 1;
        }
        std::thread::sleep(Duration::from_micros(20));
    }
    let secs = t0.elapsed().as_secs_f64();
    // Let the reader drain before the close (it reads what is left, then Closed).
    w.close();
    println!(
        "{{\"batches\": {sent}, \"seconds\": {secs:.3}, \"rate_per_s\": {:.0}}}",
        sent as f64 / secs
    );
    Ok(())
}
