//! What `extent` (the daemon's `ready`) costs on a primary holding a year of 1m bars hot
//! (3 symbols) and a live last day of 1000 symbols, rollups 5m and 1h, fsync `never`:
//! the writer's `extent`, its parts (`read_day` of the first and the last hot day of each
//! timeframe), and `extent` of a read-only opener, all in one process.
//!
//! `cargo run --release -p ringfeed-store --example extent_bench [-- DAYS]`
//! (DAYS of history, default 365; results in docs/benchmarks.md, "Extent (ready)").

use ringfeed_store::schema::{BarColumns, Kind};
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Timeframe};
use std::time::Instant;

const MIN: i64 = 60_000_000_000;
const DAY: i64 = 1440 * MIN;

fn bars(rows: impl IntoIterator<Item = (String, i64)>) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    for (s, t) in rows {
        c.ts.push(t);
        c.symbol.push(s);
        for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
            v.push(100.0);
        }
        c.volume.push(1.0);
    }
    c.into_batch().expect("a valid batch")
}

/// Median and max of `n` runs of `f`, in ms.
fn time(n: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..n)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[n / 2], ms[n - 1])
}

fn main() {
    let days: i64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(365);
    let dir = tempfile::tempdir().expect("a temp dir");
    let mut st = BarStore::open(dir.path()).expect("open");
    let mut cfg = DatasetConfig::new("1m".parse().expect("1m"));
    cfg.rollups = vec!["5m".parse().expect("5m"), "1h".parse().expect("1h")];
    cfg.fsync = FsyncPolicy::Never;
    st.create_dataset("d", cfg).expect("create");
    let few = ["AAA", "BBB", "CCC"];
    let t0 = Instant::now();
    // History: a week of 3 symbols per upsert.
    let start = 19_000 * DAY;
    for week in (0..days).step_by(7) {
        let mut rows = Vec::new();
        for d in week..(week + 7).min(days) {
            for m in 0..1440 {
                rows.extend(
                    few.iter()
                        .map(|s| (s.to_string(), start + d * DAY + m * MIN)),
                );
            }
        }
        st.upsert("d", &bars(rows)).expect("history");
    }
    // The live day: 60 appends of a minute of 1000 symbols, then 1000 appends of 3 rows.
    let live = start + days * DAY;
    let many: Vec<String> = (0..1000).map(|i| format!("S{i:04}")).collect();
    for m in 0..60 {
        st.upsert("d", &bars(many.iter().map(|s| (s.clone(), live + m * MIN))))
            .expect("live, wide");
    }
    for m in 60..1060 {
        st.upsert(
            "d",
            &bars(few.iter().map(|s| (s.to_string(), live + m * MIN))),
        )
        .expect("live, narrow");
    }
    println!(
        "built {} days of history + a live day in {:.1} s",
        days,
        t0.elapsed().as_secs_f64()
    );
    let want = st.extent("d").expect("extent").expect("dataset");
    let (m, mx) = time(20, || {
        let e = st.extent("d").expect("extent").expect("dataset");
        assert_eq!(e, want);
    });
    println!("writer extent, warm:                       median {m:9.3} ms, max {mx:9.3} ms");
    // After one more append (the live day's WAL grew by a frame per stream).
    let mut next = live + 1060 * MIN;
    let (m, mx) = time(20, || {
        st.upsert("d", &bars(few.iter().map(|s| (s.to_string(), next))))
            .expect("append");
        next += MIN;
        st.extent("d").expect("extent");
    });
    println!("writer append + extent:                    median {m:9.3} ms, max {mx:9.3} ms");
    let (m, mx) = time(20, || {
        st.upsert("d", &bars(few.iter().map(|s| (s.to_string(), next))))
            .expect("append");
        next += MIN;
    });
    println!("writer append alone:                       median {m:9.3} ms, max {mx:9.3} ms");
    for tf in st.stored_timeframes("d") {
        let kind = if tf == "1m".parse::<Timeframe>().expect("1m") {
            Kind::Bars
        } else {
            Kind::Rollup
        };
        let hot = st.hot_days("d", tf);
        for (which, day) in [("first", hot[0]), ("last", *hot.last().expect("a day"))] {
            let (m, mx) = time(5, || {
                st.read_day("d", tf, kind, day, None).expect("read");
            });
            println!("writer read_day {tf:>3} {which:>5} day:            median {m:9.3} ms, max {mx:9.3} ms");
        }
    }
    let ro = BarStore::open_read_only(dir.path()).expect("read-only");
    let want = st.extent("d").expect("extent").expect("dataset");
    let (m, mx) = time(5, || {
        assert_eq!(ro.extent("d").expect("extent").expect("dataset"), want);
    });
    println!("read-only extent:                          median {m:9.3} ms, max {mx:9.3} ms");
    drop(ro);
    drop(st);
    // A writer just (re)started: its first extent reads both ends of every timeframe.
    let t = Instant::now();
    let mut st = BarStore::open(dir.path()).expect("reopen");
    let opened = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    assert_eq!(st.extent("d").expect("extent").expect("dataset"), want);
    let first = t.elapsed().as_secs_f64() * 1e3;
    println!("writer reopened ({opened:.0} ms), first extent:     {first:9.3} ms");
    let (m, mx) = time(20, || {
        st.upsert("d", &bars(few.iter().map(|s| (s.to_string(), next))))
            .expect("append");
        next += MIN;
        st.extent("d").expect("extent");
    });
    println!("reopened writer, append + extent:          median {m:9.3} ms, max {mx:9.3} ms");
}
