//! Shared helpers for the ringfeed benchmarks: batch builders, clocks and
//! run-length knobs.
//!
//! The benches themselves live next to this file: `decode.rs` and
//! `publish.rs` (criterion), `latency.rs` (the cross-process `rf-latency`
//! probe) and `summary.rs` (`rf-bench-summary`, the table `scripts/bench.sh`
//! prints). `docs/benchmarks.md` explains the method.

use arrow_array::{
    ArrayRef, Float64Array, RecordBatch, StringArray, StringViewArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema};
use std::sync::Arc;
use std::time::Duration;

/// Whether `BENCH_QUICK` asks for a short run (smoke test of the harness,
/// numbers not for publication).
pub fn quick() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|v| !v.is_empty() && v != "0")
}

/// Criterion warm-up and measurement times: `(warm_up, measurement)`.
pub fn times() -> (Duration, Duration) {
    if quick() {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(800), Duration::from_secs(2))
    }
}

/// `CLOCK_MONOTONIC` in ns: the clock both processes of the latency probe share.
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// An arena name unique to this process and `tag`.
pub fn arena_name(tag: &str) -> String {
    format!("bench-{tag}-{}", std::process::id())
}

/// A bar batch (`ringfeed_arrow::ohlcv_schema()`) of `rows` rows: one minute
/// apart, one symbol (inline in the `Utf8View` views), deterministic prices.
/// 64 bytes of column data per row.
pub fn bar_batch(rows: usize) -> RecordBatch {
    let schema = Arc::new(ringfeed_arrow::ohlcv_schema());
    let t0: i64 = 1_609_459_200_000_000_000; // 2021-01-01T00:00:00Z
    let ts = TimestampNanosecondArray::from_iter_values(
        (0..rows as i64).map(|i| t0 + i * 60_000_000_000),
    )
    .with_timezone("UTC");
    let symbol = StringViewArray::from_iter_values(std::iter::repeat_n("BTCUSDT", rows));
    let price = |k: f64| {
        Float64Array::from_iter_values(
            (0..rows).map(move |i| 29_000.0 + k + (i % 1000) as f64 * 0.5),
        )
    };
    let cols: Vec<ArrayRef> = vec![
        Arc::new(ts),
        Arc::new(symbol),
        Arc::new(price(0.0)),
        Arc::new(price(10.0)),
        Arc::new(price(-10.0)),
        Arc::new(price(1.0)),
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|i| (i % 97) as f64),
        )),
    ];
    RecordBatch::try_new(schema, cols).expect("bar columns match ohlcv_schema")
}

/// [`bar_batch`] with its `symbol` column as plain `Utf8` (what pyarrow
/// and most producers hand over), for a ring that stores `Utf8View`.
pub fn bar_batch_utf8(rows: usize) -> RecordBatch {
    let b = bar_batch(rows);
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[1] = Field::new("symbol", DataType::Utf8, false);
    let mut cols = b.columns().to_vec();
    cols[1] = Arc::new(StringArray::from_iter_values(std::iter::repeat_n(
        "BTCUSDT", rows,
    )));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).expect("bar columns, Utf8 symbol")
}

/// Schema of a single non-nullable `f64` column called `x`.
pub fn f64_schema() -> Schema {
    Schema::new(vec![Field::new("x", DataType::Float64, false)])
}

/// A one-column `f64` batch of `rows` rows (8 bytes each).
pub fn f64_batch(rows: usize) -> RecordBatch {
    let col = Float64Array::from_iter_values((0..rows).map(|i| i as f64));
    RecordBatch::try_new(Arc::new(f64_schema()), vec![Arc::new(col)]).expect("one f64 column")
}

/// `1k`, `100k`, `1m`, `10m`: the row counts used in ids like `decode/ringfeed/1m_rows`.
pub fn rows_label(rows: usize) -> String {
    match rows {
        r if r >= 1_000_000 && r % 1_000_000 == 0 => format!("{}m_rows", r / 1_000_000),
        r if r >= 1_000 && r % 1_000 == 0 => format!("{}k_rows", r / 1_000),
        r => format!("{r}_rows"),
    }
}

/// `64B`, `64KiB`, `4MiB`: the byte sizes used in ids like `publish/ring/64KiB`.
pub fn bytes_label(n: usize) -> String {
    match n {
        n if n >= 1 << 20 && n % (1 << 20) == 0 => format!("{}MiB", n >> 20),
        n if n >= 1 << 10 && n % (1 << 10) == 0 => format!("{}KiB", n >> 10),
        n => format!("{n}B"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels() {
        assert_eq!(rows_label(1_000), "1k_rows");
        assert_eq!(rows_label(10_000_000), "10m_rows");
        assert_eq!(bytes_label(64 << 10), "64KiB");
        assert_eq!(bytes_label(64 << 20), "64MiB");
        assert_eq!(bytes_label(64), "64B");
    }

    #[test]
    fn bar_batch_has_the_bar_schema() {
        let b = bar_batch(10);
        assert_eq!(b.num_rows(), 10);
        assert_eq!(b.schema().as_ref(), &ringfeed_arrow::ohlcv_schema());
    }
}
