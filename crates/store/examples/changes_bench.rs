//! What the change log costs an upsert, all in one process: one-row appends in order (no
//! log write: only the check against each symbol's newest bar) beside one-row appends of
//! an older bar (one log line, synced unless the dataset's fsync policy is `never`), for
//! fsync `never` and `always`; and `changes_since` as a follower polls it.
//!
//! `cargo run --release -p ringfeed-store --example changes_bench [-- N]`
//! (N appends per case, default 2000; results in docs/benchmarks.md, "Change log").

use ringfeed_store::schema::BarColumns;
use ringfeed_store::{BarStore, DatasetConfig, DeleteRange, FsyncPolicy};
use std::time::Instant;

const MIN: i64 = 60_000_000_000;

fn one(t: i64) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    c.ts.push(t);
    c.symbol.push("BTCUSDT".into());
    for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
        v.push(100.0);
    }
    c.volume.push(1.0);
    c.into_batch().expect("a valid batch")
}

/// Median and p99 of `n` runs of `f(i)`, in µs.
fn time(n: usize, mut f: impl FnMut(i64)) -> (f64, f64) {
    let mut us: Vec<f64> = (0..n)
        .map(|i| {
            let t = Instant::now();
            f(i as i64);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    (us[n / 2], us[n * 99 / 100])
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(2000);
    println!("{n} one-row appends per case; median / p99 in µs");
    for fsync in [FsyncPolicy::Never, FsyncPolicy::Always] {
        let dir = tempfile::tempdir().expect("a temp dir");
        let mut st = BarStore::open(dir.path()).expect("open");
        let mut cfg = DatasetConfig::new("1m".parse().expect("1m"));
        cfg.rollups = vec!["1h".parse().expect("1h")];
        cfg.fsync = fsync;
        st.create_dataset("d", cfg).expect("create");
        // A day of history, so that an older bar lands in a day with rows.
        let start = 10_000 * MIN;
        st.upsert("d", &one(start)).expect("upsert");
        let (m, p) = time(n, |i| {
            st.upsert("d", &one(start + (i + 1) * MIN))
                .expect("in order");
        });
        println!("fsync {fsync:>6}: in order (no log write)        {m:8.1} / {p:8.1}");
        let newest = start + n as i64 * MIN;
        let (m2, p2) = time(n, |i| {
            st.upsert("d", &one(newest - (1 + i % 600) * MIN))
                .expect("older");
        });
        println!("fsync {fsync:>6}: older bar (one log line)       {m2:8.1} / {p2:8.1}");
        let (m3, p3) = time(n, |i| {
            st.upsert("d", &one(newest + (i + 1) * MIN))
                .expect("in order");
        });
        println!("fsync {fsync:>6}: in order again (log of {n:>5})  {m3:8.1} / {p3:8.1}");
        let logged = st.changes_since("d", 0, usize::MAX).expect("log");
        assert_eq!(logged.next_seq, n as u64, "one entry per older bar");
        let (m4, p4) = time(n, |i| {
            let page = st.changes_since("d", i as u64, 1000).expect("poll");
            assert!(!page.changes.is_empty());
        });
        println!("fsync {fsync:>6}: changes_since, 1000 entries    {m4:8.1} / {p4:8.1}");
        let ro = BarStore::open_read_only(dir.path()).expect("read-only");
        let (m5, p5) = time(n, |_| {
            let _ = ro.changes_since("d", n as u64, 1000).expect("poll");
        });
        println!("fsync {fsync:>6}: changes_since, reader, no news {m5:8.1} / {p5:8.1}");
        let range = DeleteRange {
            symbol: Some("BTCUSDT".into()),
            start: 0,
            end: 1,
        };
        let (m6, p6) = time(n.min(500), |_| {
            st.delete("d", range.clone()).expect("delete");
        });
        println!("fsync {fsync:>6}: delete of an empty range       {m6:8.1} / {p6:8.1}");
    }
}
