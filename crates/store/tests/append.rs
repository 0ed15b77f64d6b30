//! `BarStore::append`, the road of every client batch: rows are checked by the same
//! rules as `ringfeed ingest` (same verdicts, same reasons: checked by
//! `crates/ingest/tests/same_verdicts.rs`), `ts` must be an Arrow
//! timestamp (converted exactly, zone-less read as UTC, integers refused), columns are
//! checked before anything is allocated, and only the rows that pass are stored.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::{
    ArrayRef, Float64Array, Int64Array, Int8Array, NullArray, RecordBatch, StringArray,
    TimestampMillisecondArray, TimestampNanosecondArray, TimestampSecondArray,
};
use arrow_schema::{DataType, Field, Schema};
use ringfeed_store::schema::InputError;
use ringfeed_store::store::AppendError;
use ringfeed_store::validate::{InvalidPolicy, RowPolicy, RowReport};
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query};
use std::path::Path;
use std::sync::Arc;

const MIN: i64 = 60_000_000_000;
/// 2022-01-01T00:00:00Z.
const T0: i64 = 1_640_995_200_000_000_000;

fn open(dir: &Path) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["5m".parse().unwrap(), "1d".parse().unwrap()];
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("m1", cfg).unwrap();
    let mut cfg = DatasetConfig::new("tick".parse().unwrap());
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("trades", cfg).unwrap();
    st
}

/// One bar row: ts, open, high, low, close, volume.
type Row = (i64, f64, f64, f64, f64, f64);

/// A bar batch with `ts` given as an arbitrary array, symbol as plain Utf8 (as polars and
/// pyarrow send it).
fn batch_with_ts(ts: ArrayRef, rows: &[Row]) -> RecordBatch {
    let col = |f: fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    RecordBatch::try_from_iter([
        ("ts", ts),
        (
            "symbol",
            Arc::new(StringArray::from(vec!["BTCUSDT"; rows.len()])) as ArrayRef,
        ),
        ("open", col(|r| r.1)),
        ("high", col(|r| r.2)),
        ("low", col(|r| r.3)),
        ("close", col(|r| r.4)),
        ("volume", col(|r| r.5)),
    ])
    .unwrap()
}

fn batch(rows: &[Row]) -> RecordBatch {
    let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    batch_with_ts(
        Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
        rows,
    )
}

/// Every bad-row class, between good rows (rows 1, 3, 9 are good).
fn mixed() -> Vec<Row> {
    vec![
        (T0, 10.0, 11.0, 9.0, 10.5, 1.0),
        (T0 + MIN, 10.0, 9.0, 11.0, 10.0, 1.0), // high < low
        (T0 + 2 * MIN, 10.0, 11.0, 9.0, 10.5, 1.0),
        (T0 + 3 * MIN, f64::NAN, 11.0, 9.0, 10.5, 1.0), // NaN
        (T0 + 4 * MIN, -10.0, 11.0, -11.0, 10.5, 1.0),  // negative price
        (T0 + 5 * MIN, 10.0, 11.0, 9.0, 10.5, -1.0),    // negative volume
        (
            T0 + 2 * 3_600_000_000_000 + 3 * MIN + 17_000_000_000,
            10.0,
            11.0,
            9.0,
            10.5,
            1.0,
        ), // 02:03:17
        (T0 + 6 * MIN, 12.0, 11.0, 9.0, 10.5, 1.0),     // open above high
        (T0 + 7 * MIN, 10.0, 11.0, 9.0, 10.5, 1.0),
    ]
}

const MIXED_REASONS: [(u64, &str); 6] = [
    (2, "high 9 < low 11"),
    (4, "open is NaN"),
    (5, "open is negative (-10)"),
    (6, "volume is negative (-1)"),
    (
        7,
        "ts 2022-01-01T02:03:17Z is not on the 1m grid (bars open at whole multiples of 1m from 00:00 UTC)",
    ),
    (8, "open 12 or close 10.5 outside [low 9, high 11]"),
];

fn stored_ts(st: &BarStore, ds: &str) -> Vec<i64> {
    let b = st.query(&Query::new(ds, "1m".parse().unwrap())).unwrap();
    b.column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>()
        .values()
        .to_vec()
}

fn reasons(r: &RowReport, flagged: bool) -> Vec<(u64, String)> {
    let rows = if flagged { &r.flags } else { &r.rejects };
    rows.iter().map(|b| (b.line, b.reason.clone())).collect()
}

fn want(offset: u64) -> Vec<(u64, String)> {
    MIXED_REASONS
        .iter()
        .map(|(l, r)| (l + offset, r.to_string()))
        .collect()
}

#[test]
fn bad_rows_are_rejected_with_row_numbers_and_good_rows_stored() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let s = st
        .append("m1", &batch(&mixed()), &RowPolicy::default())
        .unwrap();
    assert_eq!(reasons(&s.report, false), want(0));
    assert!(s.report.rejects.iter().all(|r| r.file == "append"));
    assert_eq!(
        (s.report.rows_read, s.report.rows_ok, s.report.rejected),
        (9, 3, 6)
    );
    assert_eq!(s.write.rows, 3);
    assert_eq!(s.accepted.num_rows(), 3);
    assert_eq!(stored_ts(&st, "m1"), vec![T0, T0 + 2 * MIN, T0 + 7 * MIN]);
    // The rollups follow the stored rows only: one 5m bar from two rows, one from one.
    let five = st.query(&Query::new("m1", "5m".parse().unwrap())).unwrap();
    assert_eq!(five.num_rows(), 2);
    assert_eq!(s.write.rollups.len(), 2, "5m and 1d rewritten");
    assert_eq!(
        (s.report.min_ts, s.report.max_ts),
        (Some(T0), Some(T0 + 7 * MIN))
    );
    assert_eq!(s.report.symbols.iter().collect::<Vec<_>>(), vec!["BTCUSDT"]);
}

#[test]
fn keep_invalid_flags_and_stores_and_strict_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let keep = RowPolicy {
        invalid: InvalidPolicy::Keep,
        strict: false,
    };
    let s = st.append("m1", &batch(&mixed()), &keep).unwrap();
    assert_eq!(reasons(&s.report, true), want(0));
    assert_eq!((s.report.rejected, s.report.flagged), (0, 6));
    assert_eq!(s.write.rows, 9);
    assert_eq!(stored_ts(&st, "m1").len(), 9);

    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let strict = RowPolicy {
        strict: true,
        ..RowPolicy::default()
    };
    let err = st.append("m1", &batch(&mixed()), &strict).unwrap_err();
    match &err {
        AppendError::Strict { row } => {
            assert_eq!((row.line, row.reason.as_str()), (2, "high 9 < low 11"))
        }
        e => panic!("{e}"),
    }
    assert!(err
        .to_string()
        .contains("nothing from this batch was written"));
    assert!(stored_ts(&st, "m1").is_empty());
    // Strict with keep: the invalid rows are kept, so nothing fails.
    let both = RowPolicy {
        invalid: InvalidPolicy::Keep,
        strict: true,
    };
    assert_eq!(
        st.append("m1", &batch(&mixed()), &both).unwrap().write.rows,
        9
    );
}

#[test]
fn every_row_rejected_writes_nothing_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let rows = vec![(T0 + 17_000_000_000, 1.0, 1.0, 1.0, 1.0, 1.0)];
    let s = st
        .append("m1", &batch(&rows), &RowPolicy::default())
        .unwrap();
    assert_eq!((s.write.rows, s.report.rejected), (0, 1));
    assert!(s.report.rejects[0].reason.contains("not on the 1m grid"));
    assert!(st.hot_days("m1", "1m".parse().unwrap()).is_empty());
}

#[test]
fn a_non_timestamp_ts_is_refused_and_never_reinterpreted() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let rows = vec![(0, 1.0, 1.0, 1.0, 1.0, 1.0)];
    let ms = 1_638_000_000_000i64;
    for ts in [
        Arc::new(Int64Array::from(vec![ms])) as ArrayRef,
        Arc::new(Float64Array::from(vec![ms as f64])),
        Arc::new(StringArray::from(vec!["2021-11-27T08:00:00Z"])),
    ] {
        let t = ts.data_type().clone();
        let err = st
            .append("m1", &batch_with_ts(ts, &rows), &RowPolicy::default())
            .unwrap_err();
        assert!(
            matches!(&err, AppendError::Input { source: InputError::TsType { found }, .. } if *found == t),
            "{err}"
        );
        let msg = err.to_string();
        assert!(msg.contains("ts must be timestamp[ns, UTC]"), "{msg}");
        assert!(msg.contains("from_epoch"), "says how to convert: {msg}");
    }
    assert!(
        stored_ts(&st, "m1").is_empty(),
        "no 1970 bar, no bar at all"
    );
    // `upsert` (the road for trusted batches) refuses it too instead of casting.
    let int_ts = batch_with_ts(Arc::new(Int64Array::from(vec![ms])), &rows);
    let err = st.upsert("m1", &int_ts).unwrap_err().to_string();
    assert!(err.contains("ts must be timestamp[ns, UTC]"), "{err}");
}

#[test]
fn timestamps_in_other_units_and_zones_convert_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let row = |t: i64| (t, 1.0, 1.0, 1.0, 1.0, 1.0);
    let ms = T0 / 1_000_000;
    // Zone-less (polars' default Datetime, naive): read as UTC, the value unchanged.
    let naive = TimestampNanosecondArray::from(vec![T0]);
    // Milliseconds, UTC.
    let in_ms = TimestampMillisecondArray::from(vec![ms + 60_000]).with_timezone("UTC");
    // Seconds, another zone: Arrow stores the instant, the zone only labels it.
    let ny = TimestampSecondArray::from(vec![T0 / 1_000_000_000 + 120])
        .with_timezone("America/New_York");
    // An offset zone, milliseconds, zone-less.
    let off = TimestampMillisecondArray::from(vec![ms + 180_000]).with_timezone("+05:30");
    let naive_ms = TimestampMillisecondArray::from(vec![ms + 240_000]);
    for (ts, want) in [
        (Arc::new(naive) as ArrayRef, T0),
        (Arc::new(in_ms), T0 + MIN),
        (Arc::new(ny), T0 + 2 * MIN),
        (Arc::new(off), T0 + 3 * MIN),
        (Arc::new(naive_ms), T0 + 4 * MIN),
    ] {
        let s = st
            .append("m1", &batch_with_ts(ts, &[row(0)]), &RowPolicy::default())
            .map_err(|e| e.to_string())
            .unwrap();
        assert_eq!(s.report.rejected, 0, "{:?}", s.report.rejects);
        let got = s
            .accepted
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>();
        assert_eq!(got.value(0), want);
        assert_eq!(got.timezone(), Some("UTC"));
    }
    assert_eq!(
        stored_ts(&st, "m1"),
        (0..5).map(|k| T0 + k * MIN).collect::<Vec<_>>()
    );
    // A value that does not fit nanoseconds is refused, not wrapped.
    let far = TimestampSecondArray::from(vec![i64::MAX / 10]).with_timezone("UTC");
    let err = st
        .append(
            "m1",
            &batch_with_ts(Arc::new(far), &[row(0)]),
            &RowPolicy::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            &err,
            AppendError::Input {
                source: InputError::TsRange { row: 1, .. },
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn missing_columns_list_required_and_optional_apart() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let b = batch(&[(T0, 1.0, 1.0, 1.0, 1.0, 1.0)]);
    let no_volume = b.project(&[0, 1, 2, 3, 4, 5]).unwrap();
    let err = st
        .append("m1", &no_volume, &RowPolicy::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "missing column volume; required: ts, symbol, open, high, low, close, volume; optional: quote_volume, trades, taker_buy_base, taker_buy_quote; the batch has: ts, symbol, open, high, low, close"
        ),
        "{err}"
    );
    let trades = st
        .append("trades", &b, &RowPolicy::default())
        .unwrap_err()
        .to_string();
    assert!(
        trades.contains("(tick trades)")
            && trades.contains("missing columns price, size, trade_id; required: ts, symbol, price, size, trade_id; optional: side"),
        "{trades}"
    );
    let unknown = st.append("nope", &b, &RowPolicy::default()).unwrap_err();
    assert!(
        matches!(&unknown, AppendError::UnknownDataset { known, .. } if known == "m1, trades"),
        "{unknown}"
    );
}

#[test]
fn null_typed_columns_are_refused_before_anything_is_allocated() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    // 2^33 rows that take no memory: filling or casting any column would ask for 64 GiB.
    let rows = 1usize << 33;
    let null = |n| Arc::new(NullArray::new(n)) as ArrayRef;
    let names = ["ts", "symbol", "open", "high", "low", "close", "volume"];
    let huge = RecordBatch::try_from_iter(names.iter().map(|n| (*n, null(rows)))).unwrap();
    // The way the daemon gets it: a few hundred bytes of Arrow IPC.
    let mut ipc = Vec::new();
    let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut ipc, &huge.schema()).unwrap();
    w.write(&huge).unwrap();
    w.finish().unwrap();
    drop(w);
    assert!(ipc.len() < 1024, "{} bytes", ipc.len());
    let decoded = arrow_ipc::reader::StreamReader::try_new(std::io::Cursor::new(ipc), None)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    assert_eq!(decoded.num_rows(), rows);
    let err = st
        .append("m1", &decoded, &RowPolicy::default())
        .unwrap_err();
    assert!(
        matches!(
            &err,
            AppendError::Input {
                source: InputError::TsType {
                    found: DataType::Null
                },
                ..
            }
        ),
        "{err}"
    );
    // A real ts but a null-typed required column: refused by name.
    let mut b = batch(&[(T0, 1.0, 1.0, 1.0, 1.0, 1.0)]);
    let mut cols = b.columns().to_vec();
    cols[3] = null(1);
    let mut fields: Vec<Field> = b
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields[3] = Field::new("high", DataType::Null, true);
    let bad = RecordBatch::try_new(Arc::new(Schema::new(fields.clone())), cols.clone()).unwrap();
    let err = st.append("m1", &bad, &RowPolicy::default()).unwrap_err();
    assert!(
        matches!(&err, AppendError::Input { source: InputError::NullColumn { column }, .. } if column == "high"),
        "{err}"
    );
    // A null-typed optional column is as good as absent.
    fields[3] = b.schema().field(3).clone();
    cols[3] = b.column(3).clone();
    fields.push(Field::new("quote_volume", DataType::Null, true));
    cols.push(null(1));
    b = RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).unwrap();
    let s = st.append("m1", &b, &RowPolicy::default()).unwrap();
    assert_eq!(s.write.rows, 1);
    assert_eq!(
        s.accepted
            .column_by_name("quote_volume")
            .unwrap()
            .null_count(),
        1
    );
}

#[test]
fn nulls_in_required_values_are_rejected_even_when_keeping_invalid_rows() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let b = batch(&[
        (T0, 1.0, 1.0, 1.0, 1.0, 1.0),
        (T0 + MIN, 1.0, 1.0, 1.0, 1.0, 1.0),
    ]);
    let mut cols = b.columns().to_vec();
    cols[3] = Arc::new(Float64Array::from(vec![Some(1.0), None]));
    let schema = b.schema();
    let names = schema.fields().iter().map(|f| f.name().as_str());
    let b = RecordBatch::try_from_iter(names.zip(cols)).unwrap();
    let keep = RowPolicy {
        invalid: InvalidPolicy::Keep,
        strict: false,
    };
    let s = st.append("m1", &b, &keep).unwrap();
    assert_eq!(reasons(&s.report, false), vec![(2, "missing high".into())]);
    assert_eq!(s.write.rows, 1);
}

#[test]
fn trades_have_no_grid_and_a_checked_side() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let b = RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(
                TimestampNanosecondArray::from(vec![T0 + 17, T0 + 17, T0 + 99])
                    .with_timezone("UTC"),
            ) as ArrayRef,
        ),
        ("symbol", Arc::new(StringArray::from(vec!["X"; 3]))),
        ("price", Arc::new(Float64Array::from(vec![1.0, 2.0, -3.0]))),
        ("size", Arc::new(Float64Array::from(vec![1.0, 1.0, 1.0]))),
        (
            "side",
            Arc::new(Int8Array::from(vec![Some(1), Some(3), None])),
        ),
        ("trade_id", Arc::new(Int64Array::from(vec![1, 2, 3]))),
    ])
    .unwrap();
    let s = st.append("trades", &b, &RowPolicy::default()).unwrap();
    assert_eq!(
        reasons(&s.report, false),
        vec![
            (2, "side is 3: use 1 (buy), -1 (sell) or null".into()),
            (3, "price is negative (-3)".into())
        ]
    );
    let stored = st
        .query(&Query::new("trades", "tick".parse().unwrap()))
        .unwrap();
    assert_eq!(stored.num_rows(), 1);
    let price = stored
        .column_by_name("price")
        .unwrap()
        .as_primitive::<Float64Type>();
    assert_eq!(price.value(0), 1.0);
}

#[test]
fn stored_schema_names_base_and_rollup_schemas() {
    let dir = tempfile::tempdir().unwrap();
    let st = open(dir.path());
    let tf = |s: &str| s.parse().unwrap();
    use ringfeed_store::schema::{bar_schema, rollup_schema, tick_schema};
    assert_eq!(st.stored_schema("m1", tf("1m")).unwrap(), bar_schema());
    assert_eq!(st.stored_schema("m1", tf("300s")).unwrap(), rollup_schema());
    assert_eq!(st.stored_schema("m1", tf("24h")).unwrap(), rollup_schema());
    assert_eq!(
        st.stored_schema("trades", tf("tick")).unwrap(),
        tick_schema()
    );
    let err = st.stored_schema("m1", tf("1h")).unwrap_err().to_string();
    assert!(err.contains("stored timeframes: 1m, 5m, 1d"), "{err}");
    assert!(st.stored_schema("nope", tf("1m")).is_err());
}
