//! Shared pieces of ringfeed's multi-process tests: the bar formula every
//! `rf-xtest publish` writes and every checker verifies, and a walk over the
//! buffers of a batch for zero-copy checks.
//!
//! The formula (the contract the Python and C++ suites rely on too): the batch
//! published as seq `i` (1-based) has `R` rows; row `j` holds
//!
//! | column | value |
//! |---|---|
//! | `ts` | `i * 1_000_000_000 + j` ns, UTC |
//! | `symbol` | `format!("S{}", j % 4)` |
//! | `open` | `i as f64 + j as f64 * 0.5` |
//! | `high` | `open + 1.0` |
//! | `low` | `open - 1.0` |
//! | `close` | `open + 0.25` |
//! | `volume` | `j as f64` |
//!
//! ```
//! use ringfeed_xtest::{bar_batch, verify_bar_batch};
//! let schema = std::sync::Arc::new(ringfeed_arrow::ohlcv_schema());
//! let b = bar_batch(&schema, 7, 3);
//! assert_eq!(b.num_rows(), 3);
//! verify_bar_batch(&b, 7).unwrap();
//! assert!(verify_bar_batch(&b, 8).is_err());
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringViewArray, TimestampNanosecondArray};
use arrow_buffer::Buffer;
use arrow_data::ArrayData;
use arrow_schema::SchemaRef;
use std::sync::Arc;

const SYMBOLS: [&str; 4] = ["S0", "S1", "S2", "S3"];

/// `open` of row `j` in batch `seq`.
pub fn bar_open(seq: u64, j: usize) -> f64 {
    seq as f64 + j as f64 * 0.5
}

/// `ts` of row `j` in batch `seq`, ns since the Unix epoch.
pub fn bar_ts(seq: u64, j: usize) -> i64 {
    (seq as i64) * 1_000_000_000 + j as i64
}

/// The batch `rf-xtest publish` writes as seq `seq`, with `rows` rows, in
/// `schema` (which must be [`ringfeed_arrow::bar_schema`]; passing the
/// writer's own `Arc` lets it skip the schema comparison).
pub fn bar_batch(schema: &SchemaRef, seq: u64, rows: usize) -> RecordBatch {
    let ts = TimestampNanosecondArray::from_iter_values((0..rows).map(|j| bar_ts(seq, j)))
        .with_timezone("UTC");
    let symbol = StringViewArray::from_iter_values((0..rows).map(|j| SYMBOLS[j % 4]));
    let col = |f: fn(f64) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            (0..rows).map(|j| f(bar_open(seq, j))),
        ))
    };
    let volume = Float64Array::from_iter_values((0..rows).map(|j| j as f64));
    RecordBatch::try_new(
        schema.clone(),
        vec![
            Arc::new(ts),
            Arc::new(symbol),
            col(|o| o),
            col(|o| o + 1.0),
            col(|o| o - 1.0),
            col(|o| o + 0.25),
            Arc::new(volume),
        ],
    )
    .expect("bar columns match bar_schema")
}

/// Checks every value of every row of `batch` against the formula for `seq`.
/// The error names the first wrong cell.
pub fn verify_bar_batch(batch: &RecordBatch, seq: u64) -> Result<(), String> {
    let expected = ringfeed_arrow::ohlcv_schema();
    if batch.schema().fields() != expected.fields() {
        return Err(format!(
            "batch {seq}: schema is not ohlcv_schema(): {:?}",
            batch.schema()
        ));
    }
    if batch.num_rows() == 0 {
        return Err(format!("batch {seq}: no rows"));
    }
    for (i, c) in batch.columns().iter().enumerate() {
        if c.null_count() != 0 {
            return Err(format!(
                "batch {seq}: column {i} has {} nulls",
                c.null_count()
            ));
        }
    }
    let ts = batch
        .column(0)
        .as_primitive::<TimestampNanosecondType>()
        .values();
    let symbol = batch.column(1).as_string_view();
    let f = |i: usize| batch.column(i).as_primitive::<Float64Type>().values();
    let (open, high, low, close, volume) = (f(2), f(3), f(4), f(5), f(6));
    for j in 0..batch.num_rows() {
        let o = bar_open(seq, j);
        let cell = |name: &str, got: String, want: String| {
            Err(format!(
                "batch {seq} row {j} column {name}: got {got}, expected {want}"
            ))
        };
        if ts[j] != bar_ts(seq, j) {
            return cell("ts", ts[j].to_string(), bar_ts(seq, j).to_string());
        }
        if symbol.value(j) != SYMBOLS[j % 4] {
            return cell(
                "symbol",
                format!("{:?}", symbol.value(j)),
                format!("{:?}", SYMBOLS[j % 4]),
            );
        }
        // Every value is a small multiple of 0.25, exact in f64: compare bits.
        for (name, got, want) in [
            ("open", open[j], o),
            ("high", high[j], o + 1.0),
            ("low", low[j], o - 1.0),
            ("close", close[j], o + 0.25),
            ("volume", volume[j], j as f64),
        ] {
            if got.to_bits() != want.to_bits() {
                return cell(name, got.to_string(), want.to_string());
            }
        }
    }
    Ok(())
}

/// Calls `f` with every buffer of every column, recursively: values, offsets,
/// views, variadic data buffers, validity bitmaps, and children's buffers.
/// Independent of `ringfeed_arrow::codec::for_each_buffer`, so a test can
/// check that function's answer against its own.
pub fn each_buffer(columns: &[ArrayRef], mut f: impl FnMut(&Buffer)) {
    fn walk(d: &ArrayData, f: &mut dyn FnMut(&Buffer)) {
        d.buffers().iter().for_each(&mut *f);
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

/// Escapes `s` as a JSON string literal, quotes included.
pub fn json_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_round_trips_and_catches_a_wrong_cell() {
        let schema = Arc::new(ringfeed_arrow::ohlcv_schema());
        let b = bar_batch(&schema, 42, 9);
        verify_bar_batch(&b, 42).unwrap();
        let e = verify_bar_batch(&b, 41).unwrap_err();
        assert!(e.contains("row 0 column ts"), "{e}");

        // Same batch with one wrong `close` cell.
        let mut cols = b.columns().to_vec();
        let mut close: Vec<f64> = cols[5].as_primitive::<Float64Type>().values().to_vec();
        close[7] += 0.5;
        cols[5] = Arc::new(Float64Array::from(close));
        let bad = RecordBatch::try_new(schema, cols).unwrap();
        let e = verify_bar_batch(&bad, 42).unwrap_err();
        assert!(e.contains("row 7 column close"), "{e}");
    }

    #[test]
    fn json_strings_are_escaped() {
        assert_eq!(json_string("a\"b\\c\nd\u{1}"), r#""a\"b\\c\nd\u0001""#);
    }
}
