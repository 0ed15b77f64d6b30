//! A file's rows get the same verdicts, for the same reasons, as the same rows appended
//! as an Arrow batch (`BarStore::append`): both go through the store's row rules. CSV
//! and the columnar path (Feather) alike. Moved from the store's tests/append.rs with
//! the ingest code.

use arrow_array::{ArrayRef, Float64Array, RecordBatch, StringArray, TimestampNanosecondArray};
use ringfeed_ingest::IngestOptions;
use ringfeed_store::schema::Kind;
use ringfeed_store::validate::{InvalidPolicy, RowPolicy, RowReport, RowRules};
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy};
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
    st
}

/// One bar row: ts, open, high, low, close, volume.
type Row = (i64, f64, f64, f64, f64, f64);

/// A bar batch, symbol as plain Utf8 (as polars and pyarrow send it).
fn batch(rows: &[Row]) -> RecordBatch {
    let col = |f: fn(&Row) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(rows.iter().map(f).collect::<Vec<_>>()))
    };
    let ts: Vec<i64> = rows.iter().map(|r| r.0).collect();
    RecordBatch::try_from_iter([
        (
            "ts",
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")) as ArrayRef,
        ),
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
fn ingest_gives_the_same_rows_the_same_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path());
    let csv = dir.path().join("bars.csv");
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for r in mixed() {
        text += &format!("{},{},{},{},{},{}\n", r.0, r.1, r.2, r.3, r.4, r.5);
    }
    std::fs::write(&csv, text).unwrap();
    let cfg = st.dataset("m1").unwrap().config.clone();
    for keep in [false, true] {
        let opts = IngestOptions {
            symbol: Some("BTCUSDT".into()),
            rules: RowRules::for_dataset(&cfg),
            policy: RowPolicy {
                invalid: if keep {
                    InvalidPolicy::Keep
                } else {
                    InvalidPolicy::Reject
                },
                strict: false,
            },
            ..Default::default()
        };
        let mut rep = RowReport::default();
        let mut rows = 0;
        let mut sink = |b: RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            rows += b.num_rows();
            Ok(())
        };
        ringfeed_ingest::load(Some(&csv), Kind::Bars, &opts, &mut rep, &mut sink).unwrap();
        // CSV lines count the header: row k of the batch is line k + 1.
        assert_eq!(reasons(&rep, keep), want(1), "keep_invalid = {keep}");
        assert_eq!(rows, if keep { 9 } else { 3 });
        // The same rows through append: the same reasons.
        let policy = RowPolicy {
            invalid: opts.policy.invalid,
            strict: false,
        };
        let s = st.append("m1", &batch(&mixed()), &policy).unwrap();
        assert_eq!(reasons(&s.report, keep), want(0));
    }
    // The columnar path of ingest (Feather) too.
    let feather = dir.path().join("bars.feather");
    let b = batch(&mixed());
    let mut w = arrow_ipc::writer::FileWriter::try_new(
        std::fs::File::create(&feather).unwrap(),
        &b.schema(),
    )
    .unwrap();
    w.write(&b).unwrap();
    w.finish().unwrap();
    let opts = IngestOptions {
        rules: RowRules::for_dataset(&cfg),
        ..Default::default()
    };
    let mut rep = RowReport::default();
    let mut sink =
        |_b: RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> { Ok(()) };
    ringfeed_ingest::load(Some(&feather), Kind::Bars, &opts, &mut rep, &mut sink).unwrap();
    assert_eq!(reasons(&rep, false), want(0));
}
