//! Helpers shared by the store's integration tests.
#![allow(dead_code)] // each test binary uses some of them

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::RecordBatch;

/// A bar batch of (symbol, ts, [open, high, low, close, volume]) rows.
pub fn ohlcv_batch<S: AsRef<str>>(
    rows: impl IntoIterator<Item = (S, i64, [f64; 5])>,
) -> RecordBatch {
    let mut c = ringfeed_store::schema::BarColumns::default();
    for (s, t, v) in rows {
        c.ts.push(t);
        c.symbol.push(s.as_ref().to_string());
        c.open.push(v[0]);
        c.high.push(v[1]);
        c.low.push(v[2]);
        c.close.push(v[3]);
        c.volume.push(v[4]);
    }
    c.into_batch().unwrap()
}

/// A rollup or resampled bar: symbol, ts, [open, high, low, close, volume], complete.
pub type Bar = (String, i64, [f64; 5], bool);

/// The bars of a rollup-schema batch.
pub fn bars(b: &RecordBatch) -> Vec<Bar> {
    let ts = b.column_by_name("ts").unwrap();
    let ts = ts.as_primitive::<TimestampNanosecondType>();
    let sym = b.column_by_name("symbol").unwrap().as_string_view();
    let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>();
    let (o, h, l, c, v) = (f("open"), f("high"), f("low"), f("close"), f("volume"));
    let done = b.column_by_name("complete").unwrap().as_boolean();
    (0..b.num_rows())
        .map(|i| {
            let vals = [o.value(i), h.value(i), l.value(i), c.value(i), v.value(i)];
            (sym.value(i).to_string(), ts.value(i), vals, done.value(i))
        })
        .collect()
}

/// Rewrite the dataset-day WALs of `hot` (`_hot/<dataset>`) as a store written before
/// them had them: one file per timeframe and day (`<dir>/<YYYY-MM-DD>.wal`, frames with
/// stream 0) for each `(dir, timeframe)`, no rollup markers.
pub fn to_legacy_layout(hot: &std::path::Path, dirs: &[(&str, &str)]) {
    use ringfeed_store::wal;
    for e in std::fs::read_dir(hot).unwrap().flatten() {
        let path = e.path();
        if path.extension().is_none_or(|x| x != "wal") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        for (name, tf) in dirs {
            let (ops, _) =
                wal::scan_stream(&bytes, true, Some(wal::stream_of(tf.parse().unwrap())));
            let legacy = hot.join(name).join(path.file_name().unwrap());
            let mut w = wal::WalWriter::open(&legacy, wal::FsyncPolicy::Never).unwrap();
            w.append(&ops).unwrap();
            w.close().unwrap();
        }
        std::fs::remove_file(&path).unwrap();
    }
}
