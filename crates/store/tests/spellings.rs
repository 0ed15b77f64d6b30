//! One timeframe, any spelling: `1h` = `60m` = `3600s`, `1d` = `24h` = `1440m`,
//! `2h` = `120m` return the same bars with the same `complete` flags, whether the store
//! keeps rollups (read as stored, or resampled from the coarsest rollup) or not (resampled
//! from the base bars), with the last base bar in the middle of a window, and with or
//! without a query range. The reference is a naive group-by: a bar is complete when its
//! window ends at or before the end of the symbol's last base bar.

mod common;
use common::{bars, Bar};
use proptest::prelude::*;
use ringfeed_store::timeframe::Unit;
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query, Timeframe};
use std::collections::BTreeMap;
use std::path::Path;

const MIN: i64 = 60_000_000_000;
/// 2022-01-31T00:00:00Z.
const T0: i64 = 1_643_587_200_000_000_000;

/// (symbol, ts) → open, high, low, close, volume.
type Model = BTreeMap<(String, i64), [f64; 5]>;

fn store(dir: &Path, rollups: &[&str]) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = rollups.iter().map(|r| r.parse().unwrap()).collect();
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("d", cfg).unwrap();
    st
}

fn write(st: &mut BarStore, model: &Model) {
    let rows = model.iter().map(|((s, t), v)| (s, *t, *v));
    st.upsert("d", &common::ohlcv_batch(rows)).unwrap();
}

fn naive(model: &Model, width: i64, start: i64, end: i64) -> Vec<Bar> {
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (s, t) in model.keys() {
        last.insert(s, *t + MIN);
    }
    let mut g: BTreeMap<(String, i64), [f64; 5]> = BTreeMap::new();
    for ((s, t), v) in model {
        g.entry((s.clone(), t.div_euclid(width) * width))
            .and_modify(|a| {
                a[1] = a[1].max(v[1]);
                a[2] = a[2].min(v[2]);
                a[3] = v[3];
                a[4] += v[4];
            })
            .or_insert(*v);
    }
    g.into_iter()
        .filter(|((_, t), _)| (start..end).contains(t))
        .map(|((s, t), v)| {
            let done = t + width <= last[s.as_str()];
            (s, t, v, done)
        })
        .collect()
}

/// Spellings of one timeframe: as parsed, and built by hand without normalization.
fn spellings() -> Vec<(i64, Vec<Timeframe>)> {
    let raw = |n, unit| Timeframe::Bars { n, unit };
    let p = |s: &str| s.parse::<Timeframe>().unwrap();
    vec![
        (
            60,
            vec![
                p("1h"),
                p("60m"),
                p("3600s"),
                raw(60, Unit::Minute),
                raw(3600, Unit::Second),
            ],
        ),
        (
            120,
            vec![p("2h"), p("120m"), p("7200s"), raw(120, Unit::Minute)],
        ),
        (
            1440,
            vec![
                p("1d"),
                p("24h"),
                p("1440m"),
                raw(24, Unit::Hour),
                raw(1440, Unit::Minute),
            ],
        ),
    ]
}

fn query(st: &BarStore, tf: Timeframe, start: Option<i64>, end: Option<i64>) -> Vec<Bar> {
    let mut q = Query::new("d", tf);
    q.start = start;
    q.end = end;
    bars(&st.query(&q).unwrap())
}

/// Base bars for two symbols over two days and a bit: runs with gaps, ending anywhere
/// (mid-hour, mid-day, on a boundary).
fn model() -> impl Strategy<Value = Model> {
    (
        proptest::collection::vec((0u8..2, 0i64..(2 * 1440 + 400), 1i64..90), 1..12),
        1.0f64..100.0,
    )
        .prop_map(|(runs, p)| {
            let mut m = Model::new();
            for (s, from, len) in runs {
                for k in from..from + len {
                    let x = p + (k % 7) as f64;
                    m.insert(
                        (["A", "B"][s as usize].to_string(), T0 + k * MIN),
                        [x, x + 1.0, x - 1.0, x + 0.5, (k % 5) as f64],
                    );
                }
            }
            m
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn every_spelling_gives_the_same_bars_and_complete_flags(
        m in model(),
        window in proptest::option::of((0i64..(3 * 1440), 1i64..1440)),
    ) {
        let (start, end) = match window {
            Some((a, len)) => (Some(T0 + a * MIN), Some(T0 + (a + len) * MIN)),
            None => (None, None),
        };
        for rollups in [&["5m", "15m", "1h", "1d"][..], &[][..]] {
            let dir = tempfile::tempdir().unwrap();
            let mut st = store(dir.path(), rollups);
            write(&mut st, &m);
            for (minutes, tfs) in spellings() {
                let want = naive(&m, minutes * MIN, start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
                for tf in tfs {
                    let got = query(&st, tf, start, end);
                    prop_assert_eq!(&got, &want, "{:?} ({}), rollups {:?}", tf, tf, rollups);
                }
            }
        }
    }
}

/// The report's case: the last base bar at 05:31. Only windows that ended by 05:32 are
/// complete, however the timeframe is spelt and wherever it is read from.
#[test]
fn a_forming_hour_is_not_complete_in_any_spelling() {
    let mut m = Model::new();
    for k in 0..=(5 * 60 + 31) {
        m.insert(("A".into(), T0 + k * MIN), [1.0, 2.0, 0.5, 1.5, 1.0]);
    }
    for rollups in [&["5m", "15m", "1h", "1d"][..], &["1h"][..], &[][..]] {
        let dir = tempfile::tempdir().unwrap();
        let mut st = store(dir.path(), rollups);
        write(&mut st, &m);
        for (minutes, tfs) in spellings() {
            for tf in tfs {
                let got = query(&st, tf, None, None);
                let last = got.last().unwrap();
                assert!(!last.3, "{tf:?} with rollups {rollups:?}: {last:?}");
                assert!(got[..got.len() - 1].iter().all(|b| b.3), "{tf:?}");
                let open = T0 + (5 * 60 / minutes) * minutes * MIN;
                assert_eq!(last.1, open, "{tf:?}");
                // A query that ends before the last bar still knows the later bars: the
                // same flags as the whole answer.
                let end = T0 + 60 * MIN;
                let early = query(&st, tf, None, Some(end));
                let prefix: Vec<Bar> = got.iter().filter(|b| b.1 < end).cloned().collect();
                assert_eq!(early, prefix, "{tf:?}");
            }
        }
    }
}

#[test]
fn a_rollup_given_in_two_spellings_is_kept_once() {
    let dir = tempfile::tempdir().unwrap();
    let st = store(dir.path(), &["60m", "5m", "1h", "3600s"]);
    let rollups: Vec<String> = st
        .dataset("d")
        .unwrap()
        .config
        .rollups
        .iter()
        .map(|t| t.to_string())
        .collect();
    assert_eq!(rollups, ["1h", "5m"]);
}

/// The naive group-by into UTC calendar spans of `months` months (from 1970-01).
fn naive_months(model: &Model, months: i32, start: i64, end: i64) -> Vec<Bar> {
    use chrono::{DateTime, Datelike, NaiveDate};
    let span = |t: i64| {
        let d = DateTime::from_timestamp_nanos(t).date_naive();
        let k = ((d.year() - 1970) * 12 + d.month0() as i32).div_euclid(months) * months;
        let first = |k: i32| {
            let d =
                NaiveDate::from_ymd_opt(1970 + k.div_euclid(12), k.rem_euclid(12) as u32 + 1, 1);
            d.unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_nanos_opt()
                .unwrap()
        };
        (first(k), first(k + months))
    };
    let mut last: BTreeMap<&str, i64> = BTreeMap::new();
    for (s, t) in model.keys() {
        last.insert(s, *t + MIN);
    }
    let mut g: BTreeMap<(String, i64), ([f64; 5], i64)> = BTreeMap::new();
    for ((s, t), v) in model {
        let (label, e) = span(*t);
        g.entry((s.clone(), label))
            .and_modify(|(a, _)| {
                a[1] = a[1].max(v[1]);
                a[2] = a[2].min(v[2]);
                a[3] = v[3];
                a[4] += v[4];
            })
            .or_insert((*v, e));
    }
    g.into_iter()
        .filter(|((_, t), _)| (start..end).contains(t))
        .map(|((s, t), (v, e))| {
            let done = e <= last[s.as_str()];
            (s, t, v, done)
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Months and years in every spelling, across the 1 February boundary of the model,
    /// from the base or from rollups, with or without a range: the naive calendar group-by.
    #[test]
    fn every_calendar_spelling_gives_the_same_bars(
        m in model(),
        window in proptest::option::of((0i64..(3 * 1440), 1i64..1440)),
    ) {
        let (start, end) = match window {
            Some((a, len)) => (Some(T0 + a * MIN), Some(T0 + (a + len) * MIN)),
            None => (None, None),
        };
        let raw = |n, unit| Timeframe::Bars { n, unit };
        let p = |s: &str| s.parse::<Timeframe>().unwrap();
        let calendar = [
            (1, vec![p("1M"), p("1mo"), p("1mon"), raw(1, Unit::Month)]),
            (3, vec![p("3M"), p("3mo"), raw(3, Unit::Month)]),
            (12, vec![p("1Y"), p("1y"), p("12M"), raw(12, Unit::Month), raw(1, Unit::Year)]),
        ];
        for rollups in [&["5m", "1h", "1d"][..], &[][..]] {
            let dir = tempfile::tempdir().unwrap();
            let mut st = store(dir.path(), rollups);
            write(&mut st, &m);
            for (months, tfs) in &calendar {
                let want = naive_months(&m, *months, start.unwrap_or(i64::MIN), end.unwrap_or(i64::MAX));
                for tf in tfs {
                    let got = query(&st, *tf, start, end);
                    prop_assert_eq!(&got, &want, "{:?} ({}), rollups {:?}", tf, tf, rollups);
                }
            }
        }
    }
}
