//! Calendar timeframes (`1M`, `3M`, `1Y`) and week starts, resampled on read, against
//! independent references: a naive group-by over (year, month) of Lean's daily equity
//! bars from ../shared/data (skipped with a message when absent), and a group-by over
//! New York local dates, computed with chrono-tz, of generated half-hour bars across both
//! 2024 DST changes.

mod common;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use arrow_array::RecordBatch;
use chrono::{Datelike, NaiveDate, TimeZone, Timelike, Weekday};
use common::{bars, Bar};
use ringfeed_store::schema::BarColumns;
use ringfeed_store::store::CreateDatasetError;
use ringfeed_store::timeframe::NANOS_PER_DAY;
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query, Symbols, Timeframe};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

fn data() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data");
    if p.join("lean/equity/usa/daily").is_dir() {
        Some(p)
    } else {
        eprintln!(
            "skipped: ../shared/data/lean/equity/usa/daily is absent (real market data lives beside the project)"
        );
        None
    }
}

fn tf(s: &str) -> Timeframe {
    s.parse().unwrap()
}

fn config(base: &str) -> DatasetConfig {
    let mut cfg = DatasetConfig::new(tf(base));
    cfg.rollups = Vec::new();
    cfg.fsync = FsyncPolicy::Never;
    cfg
}

/// Equal bars; volumes (sums) within a relative 1e-12.
fn assert_same(got: &[Bar], want: &[Bar], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: bar count");
    for (g, w) in got.iter().zip(want) {
        assert_eq!((&g.0, g.1, g.3), (&w.0, w.1, w.3), "{what}: {g:?} vs {w:?}");
        assert_eq!(g.2[..4], w.2[..4], "{what}: {g:?} vs {w:?}");
        let tol = 1e-12 * w.2[4].abs().max(1.0);
        assert!((g.2[4] - w.2[4]).abs() <= tol, "{what}: {g:?} vs {w:?}");
    }
}

fn utc_ns(d: NaiveDate) -> i64 {
    d.and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_nanos_opt()
        .unwrap()
}

/// A daily row: (symbol, UTC date, open, high, low, close, volume).
type Daily = (String, NaiveDate, [f64; 5]);

/// Every Lean daily equity file: `YYYYMMDD 00:00,open*10000,high,low,close,volume`.
fn lean_daily(d: &Path) -> Vec<Daily> {
    let dir = d.join("lean/equity/usa/daily");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "zip"))
        .collect();
    files.sort();
    let mut rows = Vec::new();
    for p in files {
        let sym = p.file_stem().unwrap().to_str().unwrap().to_uppercase();
        let mut z = zip::ZipArchive::new(std::fs::File::open(&p).unwrap()).unwrap();
        let mut text = String::new();
        z.by_index(0).unwrap().read_to_string(&mut text).unwrap();
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            let (date, rest) = line.split_once(',').unwrap();
            let day = NaiveDate::parse_from_str(&date[..8], "%Y%m%d").unwrap();
            let f: Vec<f64> = rest.split(',').map(|x| x.parse().unwrap()).collect();
            let v = [f[0] / 1e4, f[1] / 1e4, f[2] / 1e4, f[3] / 1e4, f[4]];
            rows.push((sym.clone(), day, v));
        }
    }
    rows.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    rows
}

/// The reference: group the daily rows by (symbol, bucket of the date), open = first,
/// high = max, low = min, close = last, volume = sum; a bucket is complete when it ends
/// at or before the end of the symbol's last daily bar.
fn group(
    rows: &[Daily],
    bucket: impl Fn(NaiveDate) -> (NaiveDate, NaiveDate),
    range: (i64, i64),
) -> Vec<Bar> {
    let mut last_end: BTreeMap<&str, i64> = BTreeMap::new();
    for (s, d, _) in rows {
        last_end.insert(s, utc_ns(*d) + NANOS_PER_DAY);
    }
    let mut g: BTreeMap<(String, i64), ([f64; 5], i64)> = BTreeMap::new();
    for (s, d, v) in rows {
        let (first, next) = bucket(*d);
        g.entry((s.clone(), utc_ns(first)))
            .and_modify(|(a, _)| {
                a[1] = a[1].max(v[1]);
                a[2] = a[2].min(v[2]);
                a[3] = v[3];
                a[4] += v[4];
            })
            .or_insert((*v, utc_ns(next)));
    }
    g.into_iter()
        .filter(|((_, t), _)| (range.0..range.1).contains(t))
        .map(|((s, t), (v, end))| {
            let done = end <= last_end[s.as_str()];
            (s, t, v, done)
        })
        .collect()
}

fn month_of(d: NaiveDate, months: u32) -> (NaiveDate, NaiveDate) {
    let k = (d.year() * 12 + d.month0() as i32) / months as i32 * months as i32;
    let first = |k: i32| NaiveDate::from_ymd_opt(k / 12, (k % 12) as u32 + 1, 1).unwrap();
    (first(k), first(k + months as i32))
}

fn query(st: &BarStore, ds: &str, t: &str, range: (Option<i64>, Option<i64>)) -> Vec<Bar> {
    let mut q = Query::new(ds, tf(t));
    (q.start, q.end) = range;
    bars(&st.query(&q).unwrap())
}

#[test]
fn lean_daily_bars_make_months_quarters_and_years() {
    let Some(d) = data() else { return };
    let rows = lean_daily(&d);
    assert!(rows.len() > 60_000, "{} daily rows", rows.len());
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    st.create_dataset("lean", config("1d")).unwrap();
    // One batch (sorted by symbol, then day): each day's files are written once.
    let batch = common::ohlcv_batch(rows.iter().map(|(s, day, v)| (s, utc_ns(*day), *v)));
    st.upsert("lean", &batch).unwrap();
    let all = (i64::MIN, i64::MAX);
    for (t, months) in [("1M", 1), ("3M", 3), ("1Y", 12)] {
        let got = query(&st, "lean", t, (None, None));
        let want = group(&rows, |d| month_of(d, months), all);
        assert_same(&got, &want, t);
        eprintln!("{t}: {} bars match the reference", got.len());
    }
    // A range inside the data: only the buckets labelled in it, each built whole (from
    // rows before the range's start too).
    let (s, e) = (
        utc_ns(NaiveDate::from_ymd_opt(2020, 2, 15).unwrap()),
        utc_ns(NaiveDate::from_ymd_opt(2020, 5, 1).unwrap()),
    );
    let got = query(&st, "lean", "1M", (Some(s), Some(e)));
    let want = group(&rows, |d| month_of(d, 1), (s, e));
    assert_same(&got, &want, "1M over 2020-02-15..2020-05-01");
    assert_eq!(
        got.len(),
        2 * 14,
        "March and April of the 14 symbols trading then"
    );
    // `complete` at the end of the data: SPY's last bar is 31 March 2021 (its month is
    // closed, its year is not); GOOAV's is Wednesday 2 April 2014 (neither is).
    let last = |t: &str, sym: &str| {
        let mut q = Query::new("lean", tf(t));
        q.symbols = Symbols::List(vec![sym.into()]);
        q.limit = Some(1);
        q.from_end = true;
        bars(&st.query(&q).unwrap()).pop().unwrap()
    };
    let march = utc_ns(NaiveDate::from_ymd_opt(2021, 3, 1).unwrap());
    assert_eq!((last("1M", "SPY").1, last("1M", "SPY").3), (march, true));
    assert!(!last("1Y", "SPY").3);
    let april = utc_ns(NaiveDate::from_ymd_opt(2014, 4, 1).unwrap());
    assert_eq!(
        (last("1M", "GOOAV").1, last("1M", "GOOAV").3),
        (april, false)
    );
    // Weeks from Sunday, as the dataset's setting or a query's.
    let sunday = |d: NaiveDate| {
        let first = d - chrono::Duration::days(d.weekday().num_days_from_sunday().into());
        (first, first + chrono::Duration::days(7))
    };
    let want = group(&rows, sunday, all);
    let mut q = Query::new("lean", tf("1w"));
    q.week_start = Some(Weekday::Sun);
    let got = bars(&st.query(&q).unwrap());
    assert!(got
        .iter()
        .all(|b| (b.1 / NANOS_PER_DAY + 4).rem_euclid(7) == 0));
    assert_same(&got, &want, "1w from Sunday");
    let monday = group(&rows, |d| sunday(d + chrono::Duration::days(-1)), all);
    let monday: Vec<Bar> = monday
        .into_iter()
        .map(|(s, t, v, _)| (s, t + NANOS_PER_DAY, v, false))
        .collect();
    let got = query(&st, "lean", "1w", (None, None));
    assert_eq!(got.len(), monday.len(), "Monday weeks by default");
    assert!(got.iter().zip(&monday).all(|(g, m)| g.1 == m.1));
}

#[test]
fn new_york_session_months_across_both_dst_changes() {
    // Half-hour bars around the clock, 2024-02-20 .. 2024-11-10 UTC: New York moves to
    // EDT on 10 March and back to EST on 3 November.
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    let half = 30 * 60 * 1_000_000_000i64;
    let t0 = utc_ns(NaiveDate::from_ymd_opt(2024, 2, 20).unwrap());
    let t1 = utc_ns(NaiveDate::from_ymd_opt(2024, 11, 10).unwrap());
    let mut c = BarColumns::default();
    let mut k = 0u64;
    let mut t = t0;
    while t < t1 {
        let p = 100.0 + (k % 97) as f64 / 8.0;
        c.ts.push(t);
        c.symbol.push("SPY".into());
        c.open.push(p);
        c.high.push(p + 1.0 + (k % 5) as f64);
        c.low.push(p - 1.0 - (k % 3) as f64);
        c.close.push(p + 0.25);
        c.volume.push((k % 11) as f64 + 1.0);
        k += 1;
        t += half;
    }
    let input = c.into_batch().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    let mut cfg = config("30m");
    cfg.session = Some("09:30-16:00 America/New_York".parse().unwrap());
    st.create_dataset("us", cfg).unwrap();
    st.upsert("us", &input).unwrap();
    // The reference: bars whose New York local time is in 09:30-16:00, grouped by local
    // (year, month), labelled at 09:30 local on the first of the month.
    let open_of = |y: i32, m: u32| {
        let (y, m) = if m == 13 { (y + 1, 1) } else { (y, m) };
        ny.with_ymd_and_hms(y, m, 1, 9, 30, 0)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    };
    let last_end = t1; // the end of the last half-hour bar
    let want = |months: u32| -> Vec<Bar> {
        let mut g: BTreeMap<i64, ([f64; 5], i64)> = BTreeMap::new();
        let v = bars_of(&input);
        for (ts, vals) in v {
            let local = ny.timestamp_nanos(ts);
            let minute = local.hour() * 60 + local.minute();
            if !(9 * 60 + 30..16 * 60).contains(&minute) {
                continue;
            }
            let k = (local.month0() / months) * months;
            let (label, end) = (
                open_of(local.year(), k + 1),
                open_of(local.year(), k + months + 1),
            );
            g.entry(label)
                .and_modify(|(a, _)| {
                    a[1] = a[1].max(vals[1]);
                    a[2] = a[2].min(vals[2]);
                    a[3] = vals[3];
                    a[4] += vals[4];
                })
                .or_insert((vals, end));
        }
        g.into_iter()
            .map(|(t, (v, end))| ("SPY".to_string(), t, v, end <= last_end))
            .collect()
    };
    let got = query(&st, "us", "1M", (None, None));
    assert_same(&got, &want(1), "1M with a session");
    assert_eq!(got.len(), 10, "February to November");
    // Labels: 09:30 EST (14:30Z) in winter months, 09:30 EDT (13:30Z) in summer ones.
    let hours: Vec<i64> = got
        .iter()
        .map(|b| b.1.rem_euclid(NANOS_PER_DAY) / (half * 2))
        .collect();
    assert_eq!(hours, [14, 14, 13, 13, 13, 13, 13, 13, 13, 13]);
    // Only November, which the data leaves unfinished, is incomplete.
    assert_eq!(got.iter().filter(|b| !b.3).count(), 1);
    assert!(!got.last().unwrap().3);
    let q = query(&st, "us", "3M", (None, None));
    assert_same(&q, &want(3), "3M with a session");
}

/// (ts, OHLCV) of the rows of a base batch.
fn bars_of(b: &RecordBatch) -> Vec<(i64, [f64; 5])> {
    let ts = b.column_by_name("ts").unwrap();
    let ts = ts.as_primitive::<TimestampNanosecondType>();
    let f = |n: &str| b.column_by_name(n).unwrap().as_primitive::<Float64Type>();
    let (o, h, l, c, v) = (f("open"), f("high"), f("low"), f("close"), f("volume"));
    (0..b.num_rows())
        .map(|i| {
            let vals = [o.value(i), h.value(i), l.value(i), c.value(i), v.value(i)];
            (ts.value(i), vals)
        })
        .collect()
}

#[test]
fn calendar_bases_are_refused_and_week_start_persists() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = BarStore::open(dir.path()).unwrap();
    let e = st.create_dataset("d", config("1Y")).unwrap_err();
    assert!(matches!(e, CreateDatasetError::Calendar(_)), "{e:?}");
    assert!(e.to_string().contains("base 1Y"), "{e}");
    let mut weekly = config("1w");
    weekly.week_start = Weekday::Sun;
    let e = st.create_dataset("d", weekly).unwrap_err();
    assert!(e.to_string().contains("weekly base"), "{e}");
    // Nothing was created; a dataset with a Sunday week start keeps it across a reopen.
    assert!(st.dataset("d").is_none());
    let mut cfg = config("1d");
    cfg.week_start = Weekday::Sun;
    st.create_dataset("d", cfg.clone()).unwrap();
    // Saturday 6 .. Tuesday 9 January 2024.
    let days = (0..4).map(|k| {
        (
            "A",
            utc_ns(NaiveDate::from_ymd_opt(2024, 1, 6 + k).unwrap()),
            [1.0; 5],
        )
    });
    st.upsert("d", &common::ohlcv_batch(days)).unwrap();
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.dataset("d").unwrap().config, cfg);
    let labels = |ws: Option<Weekday>| {
        let mut q = Query::new("d", tf("1w"));
        q.week_start = ws;
        bars(&st.query(&q).unwrap())
            .iter()
            .map(|b| (b.1, b.2[4]))
            .collect::<Vec<_>>()
    };
    let day = |d| utc_ns(NaiveDate::from_ymd_opt(2024, 1, d).unwrap());
    let dec31 = utc_ns(NaiveDate::from_ymd_opt(2023, 12, 31).unwrap());
    assert_eq!(labels(None), [(dec31, 1.0), (day(7), 3.0)]);
    assert_eq!(labels(Some(Weekday::Mon)), [(day(1), 2.0), (day(8), 2.0)]);
    // Months with an offset of a day start on the 2nd; an offset of half a day would
    // split the daily bars, so nothing stored can build it.
    let mut q = Query::new("d", tf("1M"));
    q.offset = Some(NANOS_PER_DAY);
    let got = bars(&st.query(&q).unwrap());
    assert_eq!(
        got.iter().map(|b| (b.1, b.2[4])).collect::<Vec<_>>(),
        [(day(2), 4.0)]
    );
    q.offset = Some(NANOS_PER_DAY / 2);
    let e = st.query(&q).unwrap_err();
    assert!(e.to_string().contains("1M"), "{e}");
}
