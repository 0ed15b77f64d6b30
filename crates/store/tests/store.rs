//! Store behaviour: upsert idempotence, deletes, write-down, errors, and rollups on write
//! == resample on read == a naive group-by (property test).

use arrow_array::{Array, RecordBatch};
use proptest::prelude::*;
use ringfeed_store::schema;
use ringfeed_store::{BarStore, DatasetConfig, DeleteRange, Query, Symbols, Timeframe};
use std::collections::BTreeMap;

mod common;

const MIN: i64 = 60_000_000_000;

type Row = (String, i64, [f64; 5]);

fn batch(rows: &[Row]) -> RecordBatch {
    common::ohlcv_batch(rows.iter().map(|(s, t, v)| (s, *t, *v)))
}

fn rows(b: &RecordBatch) -> Vec<Row> {
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::TimestampNanosecondArray>()
        .unwrap();
    let sym = b
        .column_by_name("symbol")
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::StringViewArray>()
        .unwrap();
    let f = |n: &str| {
        b.column_by_name(n)
            .unwrap()
            .as_any()
            .downcast_ref::<arrow_array::Float64Array>()
            .unwrap()
            .clone()
    };
    let (o, h, l, c, v) = (f("open"), f("high"), f("low"), f("close"), f("volume"));
    (0..b.num_rows())
        .map(|i| {
            (
                sym.value(i).to_string(),
                ts.value(i),
                [o.value(i), h.value(i), l.value(i), c.value(i), v.value(i)],
            )
        })
        .collect()
}

/// The naive reference: group by (symbol, floor(ts / interval)) with a BTreeMap.
fn naive(input: &[Row], interval: i64, offset: i64) -> Vec<Row> {
    let mut sorted: Vec<Row> = input.to_vec();
    sorted.sort_by_key(|a| (a.0.clone(), a.1));
    let mut g: BTreeMap<(String, i64), [f64; 5]> = BTreeMap::new();
    for (s, t, v) in sorted {
        let label = (t - offset).div_euclid(interval) * interval + offset;
        g.entry((s, label))
            .and_modify(|a| {
                a[1] = a[1].max(v[1]);
                a[2] = a[2].min(v[2]);
                a[3] = v[3];
                a[4] += v[4];
            })
            .or_insert(v);
    }
    g.into_iter().map(|((s, t), v)| (s, t, v)).collect()
}

fn bar(s: &str, t: i64, p: f64) -> Row {
    (s.into(), t, [p, p + 1.0, p - 1.0, p + 0.5, 10.0])
}

fn open_with(dir: &std::path::Path, rollups: &[&str]) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = rollups.iter().map(|r| r.parse().unwrap()).collect();
    cfg.fsync = ringfeed_store::FsyncPolicy::Never;
    st.create_dataset("d", cfg).unwrap();
    st
}

fn q(tf: &str) -> Query {
    Query::new("d", tf.parse().unwrap())
}

#[test]
fn one_writer_per_data_directory_and_readers_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["5m"]);
    st.upsert("d", &batch(&[bar("A", 0, 1.0)])).unwrap();
    // A second writer is refused, and told who holds the store.
    let err = BarStore::open(dir.path()).err().expect("a second writer");
    let msg = err.to_string();
    assert!(
        matches!(err, ringfeed_store::store::OpenError::Locked { .. }),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("pid {}", std::process::id())),
        "{msg}"
    );
    // Readers open beside the writer and see what it wrote.
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(ro.query(&q("1m")).unwrap().num_rows(), 1);
    // Dropping the writer releases the lock; the lock file stays and is reused.
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert!(dir.path().join(ringfeed_store::WRITER_LOCK).exists());
    assert_eq!(st.query(&q("5m")).unwrap().num_rows(), 1);
}

#[test]
fn upsert_is_idempotent_and_later_values_win() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["5m"]);
    let a: Vec<Row> = (0..10)
        .map(|i| bar("A", i * MIN, 100.0 + i as f64))
        .collect();
    st.upsert("d", &batch(&a)).unwrap();
    st.upsert("d", &batch(&a)).unwrap();
    assert_eq!(rows(&st.query(&q("1m")).unwrap()), a);
    // Correct one bar: the 1m series and the 5m rollup both follow.
    let fix = vec![bar("A", 3 * MIN, 500.0)];
    st.upsert("d", &batch(&fix)).unwrap();
    let mut want = a.clone();
    want[3] = fix[0].clone();
    assert_eq!(rows(&st.query(&q("1m")).unwrap()), want);
    assert_eq!(rows(&st.query(&q("5m")).unwrap()), naive(&want, 5 * MIN, 0));
}

#[test]
fn delete_keeps_rollups_consistent_and_gaps_stay_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["5m", "1h"]);
    let a: Vec<Row> = (0..30)
        .flat_map(|i| [bar("A", i * MIN, 10.0 + i as f64), bar("B", i * MIN, 50.0)])
        .collect();
    st.upsert("d", &batch(&a)).unwrap();
    st.delete(
        "d",
        DeleteRange {
            symbol: Some("A".into()),
            start: 5 * MIN,
            end: 10 * MIN,
        },
    )
    .unwrap();
    let kept: Vec<Row> = a
        .iter()
        .filter(|r| !(r.0 == "A" && (5 * MIN..10 * MIN).contains(&r.1)))
        .cloned()
        .collect();
    let stored5 = rows(&st.query(&q("5m")).unwrap());
    assert_eq!(stored5, naive(&kept, 5 * MIN, 0));
    // The deleted 5-minute window has no bar at all: nothing is invented.
    assert!(!stored5.iter().any(|r| r.0 == "A" && r.1 == 5 * MIN));
    assert_eq!(
        rows(&st.query(&q("1h")).unwrap()),
        naive(&kept, 60 * MIN, 0)
    );
}

#[test]
fn write_down_moves_days_to_parquet_and_queries_do_not_change() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["1h"]);
    let day = 1440 * MIN;
    let a: Vec<Row> = (0..3 * 1440)
        .step_by(7)
        .map(|i| bar("A", i * MIN, 1.0 + i as f64))
        .collect();
    st.upsert("d", &batch(&a)).unwrap();
    let before_1m = rows(&st.query(&q("1m")).unwrap());
    let before_1h = rows(&st.query(&q("1h")).unwrap());
    let s = st.write_down(None, 2).unwrap(); // days 0 and 1, for 1m and 1h
    assert_eq!(s.partitions, 4);
    assert!(dir
        .path()
        .join("dataset=d/tf=1m/month=1970-01/date-1970-01-01-part-0.parquet")
        .exists());
    assert_eq!(st.hot_days("d", "1m".parse().unwrap()), vec![2]);
    assert_eq!(rows(&st.query(&q("1m")).unwrap()), before_1m);
    assert_eq!(rows(&st.query(&q("1h")).unwrap()), before_1h);
    // A correction after write-down lands in the hot tier and overrides the cold part.
    st.upsert("d", &batch(&[bar("A", 7 * MIN, 999.0)])).unwrap();
    st.write_down(None, 3).unwrap();
    let after = rows(&st.query(&q("1m")).unwrap());
    assert_eq!(after.iter().find(|r| r.1 == 7 * MIN).unwrap().2[0], 999.0);
    assert_eq!(after.len(), before_1m.len());
    assert!(dir
        .path()
        .join("dataset=d/tf=1m/month=1970-01/date-1970-01-01-part-1.parquet")
        .exists());
    assert!(!dir
        .path()
        .join("dataset=d/tf=1m/month=1970-01/date-1970-01-01-part-0.parquet")
        .exists());
    // Reopen read-only: same answers from the catalog alone.
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(rows(&ro.query(&q("1m")).unwrap()), after);
    let mut one = q("1m");
    one.start = Some(day);
    one.end = Some(day + 60 * MIN);
    assert!(rows(&ro.query(&one).unwrap())
        .iter()
        .all(|r| r.1 >= day && r.1 < day + 60 * MIN));
    // Cold parts carry no embedded Arrow schema; the store reads them straight into its own
    // types (Utf8View symbols, UTC timestamps), other readers get Parquet's logical types.
    let part = dir
        .path()
        .join("dataset=d/tf=1m/month=1970-01/date-1970-01-01-part-1.parquet");
    let hinted =
        ringfeed_store::store::read_parquet_as(&part, Some(&schema::bar_schema())).unwrap();
    assert_eq!(hinted[0].schema(), schema::bar_schema());
    let plain = ringfeed_store::store::read_parquet(&part).unwrap();
    assert!(plain[0].schema().metadata().is_empty());
    assert_eq!(
        plain[0].schema().field(1).data_type(),
        &arrow_schema::DataType::Utf8
    );
}

#[test]
fn query_errors_list_what_exists_and_limits_apply_per_symbol() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &[]);
    let a: Vec<Row> = (0..5)
        .flat_map(|i| [bar("A", i * MIN, 1.0), bar("B", i * MIN, 2.0)])
        .collect();
    st.upsert("d", &batch(&a)).unwrap();
    let e = st
        .query(&Query::new("x", Timeframe::minutes(1)))
        .unwrap_err();
    assert!(e.to_string().contains("datasets: d"), "{e}");
    let mut bad = q("1m");
    bad.symbols = Symbols::List(vec!["C".into()]);
    let e = st.query(&bad).unwrap_err().to_string();
    assert!(e.contains("symbols: A, B"), "{e}");
    let mut f = q("1m");
    f.fields = Some(vec!["nope".into()]);
    assert!(st
        .query(&f)
        .unwrap_err()
        .to_string()
        .contains("fields: ts, symbol"));
    let e = st.query(&q("90s")).unwrap_err().to_string();
    assert!(e.contains("stored timeframes are 1m"), "{e}");
    let mut l = q("1m");
    l.limit = Some(2);
    l.from_end = true;
    let got = rows(&st.query(&l).unwrap());
    assert_eq!(
        got.iter()
            .map(|r| (r.0.as_str(), r.1 / MIN))
            .collect::<Vec<_>>(),
        vec![("A", 3), ("A", 4), ("B", 3), ("B", 4)]
    );
    let mut p = q("1m");
    p.fields = Some(vec!["close".into()]);
    assert_eq!(st.query(&p).unwrap().num_columns(), 3);
}

#[test]
fn sessions_shape_daily_bars() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["1d".parse().unwrap()];
    cfg.session = Some("09:30-16:00 America/New_York".parse().unwrap());
    st.create_dataset("eq", cfg).unwrap();
    // 2024-01-02 (EST, UTC-5): session 14:30..21:00 UTC. Minutes from 13:00 to 22:00 UTC.
    let day = 19_724 * 1440 * MIN;
    let a: Vec<Row> = (13 * 60..22 * 60)
        .map(|m| bar("SPY", day + m * MIN, 100.0 + m as f64))
        .collect();
    st.upsert("eq", &batch(&a)).unwrap();
    let d = rows(&st.query(&Query::new("eq", "1d".parse().unwrap())).unwrap());
    let inside: Vec<Row> = a
        .iter()
        .filter(|r| r.1 >= day + 870 * MIN && r.1 < day + 1260 * MIN)
        .cloned()
        .collect();
    assert_eq!(d.len(), 1);
    assert_eq!(d[0].1, day + 870 * MIN, "labelled at the session open");
    assert_eq!(d[0].2[0], inside[0].2[0]);
    assert_eq!(d[0].2[3], inside.last().unwrap().2[3]);
    assert_eq!(d[0].2[4], 10.0 * inside.len() as f64);
}

fn stream() -> impl Strategy<Value = Vec<Row>> {
    // Random minutes over ~3 days for 2 symbols, with gaps and random OHLCV.
    proptest::collection::vec(
        (
            0usize..2,
            0i64..3 * 1440,
            1.0f64..100.0,
            0.0f64..5.0,
            0.0f64..5.0,
            0.0f64..50.0,
        ),
        0..400,
    )
    .prop_map(|v| {
        let mut m: BTreeMap<(String, i64), [f64; 5]> = BTreeMap::new();
        for (s, t, o, up, dn, vol) in v {
            let sym = ["A", "B"][s].to_string();
            m.insert(
                (sym, t * MIN),
                [o, o + up, o - dn, o + (up - dn) / 2.0, vol],
            );
        }
        m.into_iter().map(|((s, t), v)| (s, t, v)).collect()
    })
}

fn approx(a: &[Row], b: &[Row]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && x.1 == y.1
                && x.2
                    .iter()
                    .zip(&y.2)
                    .all(|(p, q)| (p - q).abs() <= 1e-9 * p.abs().max(1.0))
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn rollup_on_write_equals_resample_on_read_equals_naive(
        input in stream(),
        chunks in 1usize..4,
        offset_min in 0i64..15,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut st = open_with(dir.path(), &["5m", "15m", "1h", "1d"]);
        // Ingest in a few chunks, in shuffled-ish order (reverse), to exercise merging.
        let n = input.len();
        let mut parts: Vec<Vec<Row>> = input.chunks(n.div_ceil(chunks).max(1)).map(|c| c.to_vec()).collect();
        parts.reverse();
        for p in &parts {
            st.upsert("d", &batch(p)).unwrap();
        }
        for (tf, len) in [("5m", 5), ("15m", 15), ("1h", 60), ("1d", 1440)] {
            let stored = rows(&st.query(&q(tf)).unwrap());
            let want = naive(&input, len * MIN, 0);
            prop_assert!(approx(&stored, &want), "rollup {tf}: {stored:?} != {want:?}");
            // Resample on read from 1m (offset 0 equals the stored one; others are fresh).
            let off = (offset_min % len) * MIN;
            let mut rq = q(&format!("{}m", len));
            rq.offset = Some(off);
            let got = rows(&st.query(&rq).unwrap());
            let want = naive(&input, len * MIN, off);
            prop_assert!(approx(&got, &want), "resample {tf}+{off}: {got:?} != {want:?}");
        }
        // Write-down changes nothing visible.
        let before = rows(&st.query(&q("15m")).unwrap());
        st.write_down(None, i64::MAX).unwrap();
        prop_assert!(approx(&rows(&st.query(&q("15m")).unwrap()), &before));
    }
}

#[test]
fn complete_flag_marks_only_the_open_bar() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["5m"]);
    let a: Vec<Row> = (0..12).map(|i| bar("A", i * MIN, 1.0)).collect();
    st.upsert("d", &batch(&a)).unwrap();
    let b = st.query(&q("5m")).unwrap();
    let c = b
        .column_by_name(schema::COMPLETE)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::BooleanArray>()
        .unwrap();
    assert_eq!(
        (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>(),
        vec![true, true, false]
    );
    st.upsert("d", &batch(&[bar("A", 14 * MIN, 1.0)])).unwrap();
    let b = st.query(&q("5m")).unwrap();
    let c = b
        .column_by_name(schema::COMPLETE)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::BooleanArray>()
        .unwrap();
    assert!(c.value(2));
}

/// Compaction merges a finished month's day parts into one part per timeframe; queries do
/// not change, a write-down inside the compacted month rewrites the month's part (a delete
/// included), and a later compaction has nothing to do.
#[test]
fn compaction_merges_a_month_and_late_writes_rewrite_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["1h"]);
    // Two symbols over 40 days (January and part of February 1970).
    let a: Vec<Row> = (0..40 * 1440)
        .step_by(97)
        .flat_map(|i| [bar("A", i * MIN, 1.0 + i as f64), bar("B", i * MIN, 2.0)])
        .collect();
    st.upsert("d", &batch(&a)).unwrap();
    let (before_1m, before_1h) = (
        rows(&st.query(&q("1m")).unwrap()),
        rows(&st.query(&q("1h")).unwrap()),
    );
    // Write down everything before 1970-02-05: January's 31 days are then a finished month.
    let s = st.write_down(None, 35).unwrap();
    assert_eq!((s.compacted_months, s.compacted_parts), (2, 62), "{s:?}");
    let month = dir.path().join("dataset=d/tf=1m/month=1970-01");
    let files: Vec<String> = std::fs::read_dir(&month)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(files, vec!["part-0.parquet".to_string()]);
    let feb = dir.path().join("dataset=d/tf=1m/month=1970-02");
    assert_eq!(
        std::fs::read_dir(&feb).unwrap().count(),
        4,
        "February's days stay day parts"
    );
    assert_eq!(rows(&st.query(&q("1m")).unwrap()), before_1m);
    assert_eq!(rows(&st.query(&q("1h")).unwrap()), before_1h);
    let mut one = q("1m");
    one.symbols = Symbols::List(vec!["B".into()]);
    one.start = Some(10 * 1440 * MIN);
    one.end = Some(12 * 1440 * MIN);
    let b: Vec<Row> = before_1m
        .iter()
        .filter(|r| r.0 == "B" && (10 * 1440 * MIN..12 * 1440 * MIN).contains(&r.1))
        .cloned()
        .collect();
    assert_eq!(rows(&st.query(&one).unwrap()), b);
    // A late correction and a delete inside January, then a write-down: the month's part is
    // rewritten (part-1), the day's rows replaced, nothing else changed.
    st.upsert("d", &batch(&[bar("A", 97 * MIN, 999.0)]))
        .unwrap();
    st.delete(
        "d",
        DeleteRange {
            symbol: Some("B".into()),
            start: 20 * 1440 * MIN,
            end: 21 * 1440 * MIN,
        },
    )
    .unwrap();
    let s = st.write_down(None, 35).unwrap();
    assert_eq!(s.compacted_months, 0);
    assert!(month.join("part-1.parquet").exists() && !month.join("part-0.parquet").exists());
    let mut want = before_1m.clone();
    want.retain(|r| !(r.0 == "B" && (20 * 1440 * MIN..21 * 1440 * MIN).contains(&r.1)));
    want.iter_mut()
        .filter(|r| r.0 == "A" && r.1 == 97 * MIN)
        .for_each(|r| r.2 = bar("A", 0, 999.0).2);
    assert_eq!(rows(&st.query(&q("1m")).unwrap()), want);
    drop(st);
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(rows(&ro.query(&q("1m")).unwrap()), want);
    let parts = &ro.dataset("d").unwrap().cold["1m"];
    assert_eq!(parts.iter().filter(|p| p.is_compacted()).count(), 1);
}

/// A store written when timeframes kept their spelling (`60m` rollup: catalog entries and
/// hot directory named `60m`), and WALs were one file per timeframe and day, opens with
/// every path in the normalized name: the hot directory is renamed and its WALs moved into
/// the dataset-day WALs, cold files are found under `1h`, and `1h` and `60m` both read
/// them.
#[test]
fn a_store_with_an_old_timeframe_spelling_is_read_under_the_normalized_one() {
    let dir = tempfile::tempdir().unwrap();
    let day = 86_400 * 1_000_000_000i64;
    let input: Vec<Row> = (0..3)
        .flat_map(|d| (0..90).map(move |m| ("A".to_string(), d * day + m * MIN, [1.0; 5])))
        .collect();
    let hour =
        |st: &BarStore, tf: &str| rows(&st.query(&Query::new("d", tf.parse().unwrap())).unwrap());
    let before = {
        let mut st = BarStore::open(dir.path()).unwrap();
        let mut cfg = DatasetConfig::new("1m".parse().unwrap());
        cfg.rollups = vec!["1h".parse().unwrap()];
        st.create_dataset("d", cfg).unwrap();
        st.upsert("d", &batch(&input)).unwrap();
        st.write_down(Some("d"), 1).unwrap(); // day 0 cold, days 1 and 2 hot
        hour(&st, "1h")
    };
    assert_eq!(before.len(), 6);
    // Rewrite the store as the old code would have written it for `--rollups 60m`.
    let cat = dir.path().join("_catalog");
    let current = std::fs::read_to_string(cat.join("CURRENT")).unwrap();
    let json = std::fs::read_to_string(cat.join(current.trim())).unwrap();
    assert!(json.contains("\"1h\""));
    std::fs::write(cat.join(current.trim()), json.replace("\"1h\"", "\"60m\"")).unwrap();
    let hot = dir.path().join("_hot/d");
    common::to_legacy_layout(&hot, &[("1m", "1m"), ("60m", "1h")]);
    assert!(hot.join("60m").is_dir() && !hot.join("1970-01-02.wal").exists());
    // A reader before the writer has moved anything reads the old layout (of the
    // timeframes whose directories have their normalized names: the writer renames).
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(
        ro.query(&Query::new("d", "1m".parse().unwrap()))
            .unwrap()
            .num_rows(),
        270
    );
    drop(ro);

    let st = BarStore::open(dir.path()).unwrap();
    assert!(st.unrenamed.is_empty() && !hot.join("1h").exists() && !hot.join("60m").exists());
    assert!(hot.join("1970-01-02.wal").is_file() && hot.join("1970-01-03.wal").is_file());
    assert_eq!(st.dataset("d").unwrap().config.rollups[0].to_string(), "1h");
    assert_eq!(hour(&st, "1h"), before);
    assert_eq!(hour(&st, "60m"), before);
    assert_eq!(
        st.query(&Query::new("d", "1m".parse().unwrap()))
            .unwrap()
            .num_rows(),
        270
    );
}

/// `query_batches` gives the rows of `query`, in order: the pieces as read when they follow
/// each other (one symbol over month files, day parts and hot days: several batches, no
/// copy), one sorted batch otherwise (several symbols; a hot day between cold ones; a
/// corrected day), and `limit`, `fields` and resampling apply as in `query`.
#[test]
fn query_batches_are_the_query_in_order_with_or_without_the_join() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["1h"]);
    let day = 1440 * MIN;
    let input: Vec<Row> = (0..70 * 1440)
        .step_by(53)
        .flat_map(|i| [bar("A", i * MIN, 1.0 + i as f64), bar("B", i * MIN, 2.0)])
        .collect();
    st.upsert("d", &batch(&input)).unwrap();
    // January compacted, February's days as day parts, March hot.
    st.write_down(None, 59).unwrap();
    let joined = |st: &BarStore, q: &Query| {
        let parts = st.query_batches(q).unwrap();
        assert!(!parts.is_empty());
        let all = arrow_select::concat::concat_batches(&parts[0].schema(), &parts).unwrap();
        assert_eq!(all, st.query(q).unwrap(), "{q:?}");
        (parts.len(), all)
    };
    let mut one = q("1m");
    one.symbols = Symbols::List(vec!["A".into()]);
    let (n, a) = joined(&st, &one);
    assert!(
        n > 2,
        "one symbol over a month file, day parts and hot days: {n} batches"
    );
    let want: Vec<Row> = input.iter().filter(|r| r.0 == "A").cloned().collect();
    assert_eq!(rows(&a), want);
    // Both symbols: month by month they interleave, so one sorted batch.
    let (n, all) = joined(&st, &q("1m"));
    assert_eq!(n, 1);
    assert_eq!(rows(&all), {
        let mut w = input.clone();
        w.sort_by(|x, y| (&x.0, x.1).cmp(&(&y.0, y.1)));
        w
    });
    // A range inside one part, fields, a limit, a resampled timeframe, nothing at all.
    let mut r = one.clone();
    r.start = Some(10 * day + 7 * MIN);
    r.end = Some(40 * day);
    r.fields = Some(vec!["close".into()]);
    let (_, rr) = joined(&st, &r);
    assert_eq!(rr.num_columns(), 3);
    let ts: Vec<i64> = arrow_cast::cast(rr.column(0), &arrow_schema::DataType::Int64)
        .unwrap()
        .as_any()
        .downcast_ref::<arrow_array::Int64Array>()
        .unwrap()
        .values()
        .to_vec();
    assert!(
        !ts.is_empty()
            && ts
                .iter()
                .all(|t| (10 * day + 7 * MIN..40 * day).contains(t))
    );
    let mut l = one.clone();
    l.limit = Some(5);
    l.from_end = true;
    assert_eq!(joined(&st, &l).1.num_rows(), 5);
    joined(&st, &q("1h"));
    joined(&st, &q("7m"));
    let mut none = one.clone();
    none.start = Some(500 * day);
    let (n, e) = joined(&st, &none);
    assert_eq!((n, e.num_rows()), (1, 0));
    // A correction inside the compacted January, still hot: a hot day between cold ones.
    st.upsert("d", &batch(&[bar("A", 5 * day, 777.0)])).unwrap();
    let (_, a2) = joined(&st, &one);
    let a2 = rows(&a2);
    assert_eq!(a2.len(), want.len() + 1);
    assert!(a2.windows(2).all(|w| w[0].1 < w[1].1));
}

/// The first/last `n` rows of each symbol of a full read, in (symbol, ts) order.
fn naive_limit(all: &[Row], n: usize, from_end: bool) -> Vec<Row> {
    let mut by: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    for r in all {
        by.entry(r.0.clone()).or_default().push(r.clone());
    }
    by.into_values()
        .flat_map(|v| {
            let k = v.len().min(n);
            if from_end {
                v[v.len() - k..].to_vec()
            } else {
                v[..k].to_vec()
            }
        })
        .collect()
}

#[test]
fn a_per_symbol_limit_reads_from_the_ends_and_equals_a_full_read_for_writer_and_reader() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open_with(dir.path(), &["1h"]);
    // Ten days: A every day, B only the first two (a symbol that stopped), C only the
    // last one; days 0..6 written down (cold), the rest hot.
    let mut input = Vec::new();
    for d in 0..10i64 {
        for m in (0..1440).step_by(97) {
            input.push(bar("A", (d * 1440 + m) * MIN, 1.0 + m as f64));
            if d < 2 {
                input.push(bar("B", (d * 1440 + m) * MIN, 2.0));
            }
            if d == 9 {
                input.push(bar("C", (d * 1440 + m) * MIN, 3.0));
            }
        }
    }
    st.upsert("d", &batch(&input)).unwrap();
    st.write_down(None, 6).unwrap();
    let all = rows(&st.query(&q("1m")).unwrap());
    let reader = BarStore::open_read_only(dir.path()).unwrap();
    for n in [1usize, 3, 20, 100_000] {
        for from_end in [true, false] {
            for (range, symbols) in [
                ((None, None), Symbols::All),
                ((Some(2 * 1440 * MIN), Some(8 * 1440 * MIN)), Symbols::All),
                ((None, None), Symbols::List(vec!["B".into(), "C".into()])),
            ] {
                let mut query = q("1m");
                query.limit = Some(n);
                query.from_end = from_end;
                (query.start, query.end) = range;
                query.symbols = symbols.clone();
                let want: Vec<Row> = naive_limit(
                    &all.iter()
                        .filter(|r| range.0.is_none_or(|s| r.1 >= s))
                        .filter(|r| range.1.is_none_or(|e| r.1 < e))
                        .filter(|r| match &symbols {
                            Symbols::All => true,
                            Symbols::List(l) => l.contains(&r.0),
                        })
                        .cloned()
                        .collect::<Vec<_>>(),
                    n,
                    from_end,
                );
                let what = format!("n {n}, from_end {from_end}, range {range:?}, {symbols:?}");
                assert_eq!(rows(&st.query(&query).unwrap()), want, "writer: {what}");
                assert_eq!(rows(&reader.query(&query).unwrap()), want, "reader: {what}");
            }
        }
    }
}
