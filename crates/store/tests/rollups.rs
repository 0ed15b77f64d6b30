//! Incremental rollups on write: random sequences of small upserts (live appends, gaps,
//! corrections of earlier bars, batches across midnight), deletes and write-downs leave
//! every rollup, `complete` flags included, equal to a recompute from scratch: a naive
//! group-by of the base bars, and the same bars ingested in one batch into a new store.
//! Also: a live append adds one small frame to each rollup WAL, not the day so far.

mod common;
use arrow_array::RecordBatch;
use common::{bars, Bar};
use proptest::prelude::*;
use ringfeed_store::schema::TickColumns;
use ringfeed_store::{BarStore, DatasetConfig, DeleteRange, FsyncPolicy, Query, Timeframe};
use std::collections::BTreeMap;
use std::path::Path;

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 1440 * MIN;
const ROLLUPS: [(&str, i64); 4] = [("5m", 5), ("15m", 15), ("1h", 60), ("1d", 1440)];
const SYMS: [&str; 3] = ["A", "BBBBBBBBBBBBBBBB", "C"];

/// Base bars: (symbol, ts) → open, high, low, close, volume.
type Model = BTreeMap<(String, i64), [f64; 5]>;

fn open(dir: &Path, base: &str, rollups: &[&str]) -> BarStore {
    let mut st = BarStore::open(dir).unwrap();
    let mut cfg = DatasetConfig::new(base.parse().unwrap());
    cfg.rollups = rollups.iter().map(|r| r.parse().unwrap()).collect();
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("d", cfg).unwrap();
    st
}

fn batch(rows: &[(String, i64, [f64; 5])]) -> RecordBatch {
    common::ohlcv_batch(rows.iter().map(|(s, t, v)| (s, *t, *v)))
}

/// The reference: group the base bars by (symbol, bucket); a bar is complete when its
/// bucket ends at or before the end of the symbol's last base bar.
fn naive(model: &Model, width: i64) -> Vec<Bar> {
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
        .map(|((s, t), v)| {
            let done = t + width <= last[s.as_str()];
            (s, t, v, done)
        })
        .collect()
}

fn same(a: &[Bar], b: &[Bar]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            x.0 == y.0
                && x.1 == y.1
                && x.3 == y.3
                && x.2
                    .iter()
                    .zip(&y.2)
                    .all(|(p, q)| (p - q).abs() <= 1e-9 * p.abs().max(1.0))
        })
}

fn query(st: &BarStore, tf: &str) -> RecordBatch {
    st.query(&Query::new("d", tf.parse().unwrap())).unwrap()
}

/// One step of a random history.
#[derive(Clone, Debug)]
enum Step {
    Upsert(Vec<(String, i64, [f64; 5])>),
    Delete(DeleteRange),
    WriteDown(i64),
}

fn values(p: f64, d: f64) -> [f64; 5] {
    [p, p + d, p - d, p + d / 2.0, d]
}

/// Random histories over three days and three symbols. Most steps are live appends: a
/// symbol's next minute, or the one after a gap (sometimes past a midnight or a whole
/// day); the rest are corrections at random minutes (alone, or with a row a day or two
/// later), batches across a midnight, deletes and write-downs.
fn history() -> impl Strategy<Value = Vec<Step>> {
    let raw = (
        0u8..20,
        0usize..3,
        0i64..3 * 1440,
        1usize..4,
        1.0f64..100.0,
        0.0f64..5.0,
    );
    (
        proptest::collection::vec(0i64..1440, 3),
        proptest::collection::vec(raw, 1..40),
    )
        .prop_map(|(starts, raw)| {
            let mut cursor: Vec<i64> = starts;
            let mut steps = Vec::new();
            for (k, s, m, n, p, d) in raw {
                let sym = SYMS[s].to_string();
                let step = match k {
                    // Live: the next minutes of a symbol, one batch.
                    0..=8 => {
                        let rows = (0..n as i64)
                            .map(|i| (sym.clone(), (cursor[s] + i) * MIN, values(p, d)))
                            .collect();
                        cursor[s] += n as i64;
                        Step::Upsert(rows)
                    }
                    // A gap: a few minutes, to the next day, or past a whole day.
                    9..=11 => {
                        cursor[s] += [
                            1 + m % 20,
                            1440 - cursor[s].rem_euclid(1440),
                            1441 + m % 1440,
                        ][k as usize - 9];
                        Step::Upsert(vec![(sym, cursor[s] * MIN, values(p, d))])
                    }
                    // Corrections (or out-of-order rows) at random minutes.
                    12..=14 => Step::Upsert(
                        (0..n as i64)
                            .map(|i| {
                                (
                                    SYMS[(s + i as usize) % 3].to_string(),
                                    m * MIN,
                                    values(p, d),
                                )
                            })
                            .collect(),
                    ),
                    // A correction and a row a day or two later, in one batch.
                    16 => Step::Upsert(vec![
                        (sym.clone(), m * MIN, values(p, d)),
                        (sym, (m + 1440 * n as i64 - 500) * MIN, values(p, d)),
                    ]),
                    // Across a midnight, for every symbol.
                    15 => {
                        let mid = (1 + m % 2) * 1440;
                        Step::Upsert(
                            (0..3)
                                .flat_map(|i| {
                                    (mid - 2..mid + n as i64).map(move |t| {
                                        (SYMS[i].to_string(), t * MIN, values(p + i as f64, d))
                                    })
                                })
                                .collect(),
                        )
                    }
                    17..=18 => Step::Delete(DeleteRange {
                        symbol: (k == 17).then_some(sym),
                        start: m * MIN,
                        end: (m + 1 + n as i64 * 7) * MIN,
                    }),
                    _ => Step::WriteDown(1 + m % 3),
                };
                steps.push(step);
            }
            steps
        })
}

fn apply(model: &mut Model, step: &Step) {
    match step {
        Step::Upsert(rows) => {
            for (s, t, v) in rows {
                model.insert((s.clone(), *t), *v);
            }
        }
        Step::Delete(d) => model.retain(|(s, t), _| {
            !(*t >= d.start && *t < d.end && d.symbol.as_ref().is_none_or(|x| x == s))
        }),
        Step::WriteDown(_) => {}
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn incremental_rollups_equal_a_recompute_from_scratch(steps in history(), cache in any::<bool>()) {
        let dir = tempfile::tempdir().unwrap();
        let tfs: Vec<&str> = ROLLUPS.iter().map(|r| r.0).collect();
        let mut st = open(dir.path(), "1m", &tfs);
        if !cache {
            st.set_day_cache_bytes(0); // every read from disk
        }
        let mut model = Model::new();
        for (i, step) in steps.iter().enumerate() {
            let before: Vec<Vec<Bar>> = ROLLUPS.iter().map(|(_, w)| naive(&model, w * MIN)).collect();
            let mut sent = None;
            match step {
                Step::Upsert(rows) => {
                    sent = Some(st.upsert("d", &batch(rows)).unwrap().rollups);
                }
                Step::Delete(d) => {
                    st.delete("d", d.clone()).unwrap();
                }
                Step::WriteDown(day) => {
                    st.write_down(None, *day).unwrap();
                }
            }
            apply(&mut model, step);
            // What a subscriber would see after each step: every bar and flag.
            for (k, (tf, width)) in ROLLUPS.into_iter().enumerate() {
                let got = bars(&query(&st, tf));
                let want = naive(&model, width * MIN);
                prop_assert!(same(&got, &want), "after step {i} {step:?}, {tf}:\n got {got:?}\nwant {want:?}");
                // What a live publisher sends: every bar the upsert changed (values or
                // flag), each in its new state, and nothing that is not stored.
                if let Some(sent) = &sent {
                    let t: Timeframe = tf.parse().unwrap();
                    let sent: Vec<Bar> =
                        sent.iter().filter(|(x, _)| *x == t).flat_map(|(_, b)| bars(b)).collect();
                    let at = |v: &[Bar], b: &Bar| v.iter().find(|x| x.0 == b.0 && x.1 == b.1).cloned();
                    for b in &sent {
                        let w = at(&want, b);
                        prop_assert!(w.is_some_and(|w| same(&[w], std::slice::from_ref(b))),
                            "step {i} {step:?}, {tf}: sent {b:?}, stored {:?}", at(&want, b));
                    }
                    for w in &want {
                        let unchanged = at(&before[k], w).is_some_and(|p| same(&[p], std::slice::from_ref(w)));
                        prop_assert!(unchanged || at(&sent, w).is_some(),
                            "step {i} {step:?}, {tf}: {w:?} changed but was not sent");
                    }
                }
            }
        }
        // The same base bars in one batch into a new store (all days fresh: the whole-day
        // path): bit-identical rollups.
        let rows: Vec<(String, i64, [f64; 5])> =
            model.iter().map(|((s, t), v)| (s.clone(), *t, *v)).collect();
        let other = tempfile::tempdir().unwrap();
        let mut bulk = open(other.path(), "1m", &tfs);
        if !rows.is_empty() {
            bulk.upsert("d", &batch(&rows)).unwrap();
        }
        for tf in &tfs {
            prop_assert_eq!(query(&st, tf), query(&bulk, tf), "{}", tf);
        }
        // A reopened (read-only) store reads the same from disk, without the writer's cache.
        let ro = BarStore::open_read_only(dir.path()).unwrap();
        for tf in &tfs {
            prop_assert_eq!(query(&ro, tf), query(&st, tf), "{}", tf);
        }
    }
}

/// Ticks as the base, one at a time in random order with repeats, against the same
/// ticks ingested in one batch.
#[test]
fn tick_rollups_follow_single_tick_upserts() {
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let mut ticks: Vec<(usize, i64, i64, f64)> = Vec::new();
    for id in 0..400 {
        // Mostly forward in time, some late or repeated ticks, across a midnight.
        let t = DAY - 20 * MIN + (id * 7 + next(90) as i64 - 60) * 1_000_000_000 * 6;
        ticks.push((next(2) as usize, t, id % 50, 10.0 + next(100) as f64 / 10.0));
    }
    let tick_batch = |rows: &[(usize, i64, i64, f64)]| {
        let mut c = TickColumns::default();
        for &(s, t, id, p) in rows {
            c.ts.push(t);
            c.symbol.push(SYMS[s].into());
            c.price.push(p);
            c.size.push(1.0 + p / 100.0);
            c.side.push(Some(if id % 3 == 0 { -1 } else { 1 }));
            c.trade_id.push(Some(id));
        }
        c.into_batch().unwrap()
    };
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path(), "tick", &["1m", "5m", "1h", "1d"]);
    for t in &ticks {
        st.upsert("d", &tick_batch(std::slice::from_ref(t)))
            .unwrap();
    }
    let other = tempfile::tempdir().unwrap();
    let mut bulk = open(other.path(), "tick", &["1m", "5m", "1h", "1d"]);
    // Later rows win on equal keys in both: upsert in the same order, one batch.
    bulk.upsert("d", &tick_batch(&ticks)).unwrap();
    for tf in ["1m", "5m", "1h", "1d"] {
        let (a, b) = (query(&st, tf), query(&bulk, tf));
        assert!(a.num_rows() > 0);
        assert_eq!(a, b, "{tf}");
    }
}

/// Frames and bytes per stream of a day's WAL (frame headers: stream in bytes 5..8,
/// payload length in 8..12, frames padded to 64 bytes).
fn streams(st: &BarStore, day: i64) -> std::collections::BTreeMap<u32, (u64, u64)> {
    let bytes = std::fs::read(st.wal_path("d", "1m".parse().unwrap(), day)).unwrap_or_default();
    let mut out = std::collections::BTreeMap::new();
    let mut off = 0;
    while off + 16 <= bytes.len() {
        let stream = u32::from_le_bytes([bytes[off + 5], bytes[off + 6], bytes[off + 7], 0]);
        let len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let size = (16 + len).div_ceil(64) * 64;
        let e = out.entry(stream).or_insert((0, 0));
        *e = (e.0 + 1, e.1 + size as u64);
        off += size;
    }
    out
}

/// Bytes of every timeframe's frames in one day's WAL.
fn wal_bytes(st: &BarStore, tfs: &[&str], day: i64) -> Vec<u64> {
    let per = streams(st, day);
    tfs.iter()
        .map(|tf| {
            let s = ringfeed_store::wal::stream_of(tf.parse::<Timeframe>().unwrap());
            per.get(&s).map_or(0, |(_, b)| *b)
        })
        .collect()
}

#[test]
fn a_live_append_adds_one_small_frame_per_rollup() {
    let dir = tempfile::tempdir().unwrap();
    let tfs = ["5m", "15m", "1h", "1d"];
    let mut st = open(dir.path(), "1m", &tfs);
    let one = |m: i64| batch(&[("A".into(), m * MIN, values(100.0 + m as f64, 1.0))]);
    st.upsert("d", &one(0)).unwrap();
    let first = wal_bytes(&st, &tfs, 0);
    let mut prev = first.clone();
    for m in 1..300 {
        st.upsert("d", &one(m)).unwrap();
        let now = wal_bytes(&st, &tfs, 0);
        for ((tf, a), b) in tfs.iter().zip(&prev).zip(&now) {
            // The bars of the buckets the row touches (at most two): the same size as the
            // first append's; rewriting the day so far would grow with it.
            assert!(
                b - a <= first[0] + 64,
                "{tf}: append {m} added {} bytes, the first one {}",
                b - a,
                first[0]
            );
        }
        prev = now;
    }
    // One frame per append; bytes linear in 300 (the whole-day rewrite this replaced wrote
    // 1.57 MB in 599 frames to the 5m WAL here, and quadratically more over a day).
    let per = streams(&st, 0);
    for (tf, bytes) in tfs.iter().zip(&prev) {
        let s = ringfeed_store::wal::stream_of(tf.parse::<Timeframe>().unwrap());
        assert_eq!(per[&s].0, 300, "{tf}");
        assert!(*bytes <= 300 * (first[0] + 64), "{tf}: {bytes} bytes");
    }
    // And the base frames and one rollup marker per append, in the same file.
    assert_eq!(per[&60].0, 300);
    assert_eq!(per[&0].0, 300, "markers");
    let five = bars(&query(&st, "5m"));
    assert_eq!(five.len(), 60);
    assert!(
        five.iter().all(|b| b.3),
        "minute 299 closes the last bucket"
    );
    st.upsert("d", &one(300)).unwrap();
    let five = bars(&query(&st, "5m"));
    assert!(five[..60].iter().all(|b| b.3) && !five[60].3);
    // Bars and flags as a recompute from scratch gives them.
    let model: Model = (0..=300)
        .map(|m| (("A".to_string(), m * MIN), values(100.0 + m as f64, 1.0)))
        .collect();
    for (tf, width) in ROLLUPS {
        assert!(
            same(&bars(&query(&st, tf)), &naive(&model, width * MIN)),
            "{tf}"
        );
    }
}

#[test]
fn a_bar_closes_when_the_next_row_comes_after_a_gap_or_days_later() {
    let dir = tempfile::tempdir().unwrap();
    let mut st = open(dir.path(), "1m", &["5m", "1h", "1d"]);
    let row = |t: i64| batch(&[("A".into(), t, values(1.0, 1.0))]);
    let flags = |st: &BarStore, tf: &str| -> Vec<(i64, bool)> {
        bars(&query(st, tf))
            .iter()
            .map(|b| (b.1 / MIN, b.3))
            .collect()
    };
    st.upsert("d", &row(10 * 60 * MIN + 2 * MIN)).unwrap(); // 10:02
    assert_eq!(flags(&st, "5m"), vec![(600, false)]);
    // 10:31: the 10:00 bar closes though the bucket just before 10:30 is empty.
    st.upsert("d", &row(10 * 60 * MIN + 31 * MIN)).unwrap();
    assert_eq!(flags(&st, "5m"), vec![(600, true), (630, false)]);
    // Two days later: day 0's last 5m, 1h and 1d bars all close.
    st.upsert("d", &row(2 * DAY + 5 * MIN)).unwrap();
    assert_eq!(
        flags(&st, "5m"),
        vec![(600, true), (630, true), (2 * 1440 + 5, false)]
    );
    assert_eq!(flags(&st, "1h"), vec![(600, true), (2 * 1440, false)]);
    assert_eq!(flags(&st, "1d"), vec![(0, true), (2 * 1440, false)]);
    // Deleting the later day reopens them.
    st.delete(
        "d",
        DeleteRange {
            symbol: Some("A".into()),
            start: 2 * DAY,
            end: 3 * DAY,
        },
    )
    .unwrap();
    assert_eq!(flags(&st, "5m"), vec![(600, true), (630, false)]);
    assert_eq!(flags(&st, "1d"), vec![(0, false)]);
}
