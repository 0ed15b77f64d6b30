//! In-process timings of the bar store for `scripts/bench_store.py`, which runs DuckDB on
//! the same files in the same run. Every subcommand prints one JSON object on stdout;
//! times are seconds, medians of `repeat` runs.
//!
//! ```text
//! store_bench parse    <file> <binance-kline|parquet> <symbol>
//! store_bench ingest   <data_dir> <file> <binance-kline|parquet> <none|default> <symbol>
//! store_bench query    <data_dir> <dataset> <symbol> <tf> <start_ns> <end_ns> <repeat>
//! store_bench resample <data_dir> <dataset> <symbol> <tf> <repeat>
//! store_bench live     <data_dir> <symbols> <minutes> <row|minute> <never|always> [max_secs] [query]
//!                      [rollups=5m,1h,1d,1M,1Y] [prefill_days=N]
//! ```
//! Built with `cargo build --release -p ringfeed-ingest --features bench-bin --bin store_bench`
//! (it lives in the ingest crate because it times `ingest::load`; everything else it
//! times is the store's public API).
//! `parse` times the loader alone (batches are dropped); it reports CPU seconds too.
//! `ingest` creates the dataset (fsync never) in a fresh directory and reports the time of
//! `ingest::load` + `BarStore::upsert` (process start and argument parsing excluded).
//! `query` times `BarStore::open_read_only` + `BarStore::query_batches` (catalog load, WAL
//! replay or Parquet decode, merge, filter), the batches a DataFrame takes without a copy.
//! `resample` loads the symbol's stored base bars once, then times the in-memory kernel
//! `resample::resample` to `tf` on them.
//! (The Parquet encodings experiment is `cargo run --release -p ringfeed-store --example
//! parquet_encodings`.)
//! `live` replays what the daemon does with a live feed: one UTC day, `minutes` minutes of 1m
//! bars for `symbols` symbols, appended through `BarStore::upsert` one row at a time (`row`)
//! or one batch of all symbols per minute (`minute`), default rollups (5m, 15m, 1h, 1d). It
//! reports the mean µs per append over each tenth of the run and the first and last 100,
//! then each timeframe's WAL (bytes, frames) and the time to read back the day's 5m bars.
//! `max_secs` stops early (the old, quadratic store needs it). With `query`, each append is
//! followed by what the daemon does to publish rollup updates: a query of each rollup
//! timeframe for the append's symbols, from one bucket before its rows to their end.
//! `rollups=` replaces the default rollups (e.g. with calendar ones: `5m,15m,1h,1d,1M,1Y`);
//! `prefill_days=N` first writes N earlier days of every symbol (one batch a day, not
//! timed), so that the timed day is not the first of its month.

use ringfeed_ingest::{self as ingest, Format, IngestOptions, RowReport};
use ringfeed_store::resample::{self, Bucketing};
use ringfeed_store::schema::Kind;
use ringfeed_store::validate::RowRules;
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query, Symbols, Timeframe};
use std::path::Path;
use std::time::Instant;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// CPU seconds (user + system, all threads) of this process so far, from /proc/self/stat.
fn cpu_secs() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 of stat (utime, stime) are 12 and 13 after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn main() -> R<()> {
    // As ringfeedd and the CLI do, so the figures are what they get.
    ringfeed_shm::malloc::retain_freed_memory(); // before any thread starts
    let a: Vec<String> = std::env::args().skip(1).collect();
    match a.first().map(String::as_str) {
        Some("parse") => parse(&a)?,
        Some("ingest") => ingest_file(&a)?,
        Some("query") => query(&a)?,
        Some("resample") => resample_bars(&a)?,
        Some("live") => live(&a[1..])?,
        _ => return Err("usage: store_bench parse|ingest|query|resample|live ...".into()),
    }
    Ok(())
}

/// `parse`: the loader alone, batches dropped; wall and CPU seconds.
fn parse(a: &[String]) -> R<()> {
    // The loader alone: parse into batches and drop them.
    let (file, fmt, sym) = (&a[1], &a[2], &a[3]);
    let opts = IngestOptions {
        format: Some(fmt.parse::<Format>()?),
        symbol: Some(sym.clone()),
        rules: RowRules::for_dataset(&DatasetConfig::new("1m".parse()?)),
        ..Default::default()
    };
    let (c0, t0) = (cpu_secs(), Instant::now());
    let mut report = RowReport::default();
    let mut sink = |_b| -> R<()> { Ok(()) };
    ingest::load(
        Some(Path::new(file)),
        Kind::Bars,
        &opts,
        &mut report,
        &mut sink,
    )?;
    println!(
        "{{\"secs\":{},\"cpu_secs\":{},\"rows\":{}}}",
        t0.elapsed().as_secs_f64(),
        cpu_secs() - c0,
        report.rows_ok
    );
    Ok(())
}

/// `ingest`: a fresh store, then `ingest::load` + `BarStore::upsert` of the file.
fn ingest_file(a: &[String]) -> R<()> {
    let (dir, file, fmt, rollups, sym) = (&a[1], &a[2], &a[3], &a[4], &a[5]);
    let _ = std::fs::remove_dir_all(dir);
    let c0 = cpu_secs();
    let t0 = Instant::now();
    let mut store = BarStore::open(Path::new(dir))?;
    let mut cfg = DatasetConfig::new("1m".parse()?);
    if rollups == "none" {
        cfg.rollups.clear();
    }
    cfg.fsync = FsyncPolicy::Never;
    let rules = RowRules::for_dataset(&cfg);
    store.create_dataset("b", cfg)?;
    let opts = IngestOptions {
        format: Some(fmt.parse::<Format>()?),
        symbol: Some(sym.clone()),
        rules,
        ..Default::default()
    };
    let mut report = RowReport::default();
    let mut upsert = 0.0;
    let mut sink = |b| -> R<()> {
        let t = Instant::now();
        store.upsert("b", &b)?;
        upsert += t.elapsed().as_secs_f64();
        Ok(())
    };
    ingest::load(
        Some(Path::new(file)),
        Kind::Bars,
        &opts,
        &mut report,
        &mut sink,
    )?;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "{{\"secs\":{secs},\"cpu_secs\":{},\"upsert_secs\":{upsert},\"rows\":{},\"rejected\":{}}}",
        cpu_secs() - c0,
        report.rows_ok,
        report.rejected
    );
    Ok(())
}

/// `query`: `open_read_only` + `query_batches` of one symbol's range (`*`: every symbol), `repeat` times.
fn query(a: &[String]) -> R<()> {
    let (dir, ds, sym, tf) = (&a[1], &a[2], &a[3], a[4].parse::<Timeframe>()?);
    let (start, end): (i64, i64) = (a[5].parse()?, a[6].parse()?);
    let repeat: usize = a[7].parse()?;
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let store = BarStore::open_read_only(Path::new(dir))?;
        let mut q = Query::new(ds, tf);
        if sym != "*" {
            q.symbols = Symbols::List(vec![sym.clone()]);
        }
        q.start = Some(start);
        q.end = Some(end);
        // The batches a DataFrame or an Arrow stream takes as they are (`query` would join
        // them into one batch: a copy).
        rows = store.query_batches(&q)?.iter().map(|b| b.num_rows()).sum();
        times.push(t.elapsed().as_secs_f64());
    }
    println!("{{\"secs\":{},\"rows\":{rows}}}", median(times));
    Ok(())
}

/// `resample`: the in-memory kernel on the symbol's stored base bars, `repeat` times.
fn resample_bars(a: &[String]) -> R<()> {
    let (dir, ds, sym, tf) = (&a[1], &a[2], &a[3], a[4].parse::<Timeframe>()?);
    let repeat: usize = a[5].parse()?;
    let store = BarStore::open_read_only(Path::new(dir))?;
    let base = store.dataset(ds).ok_or("no such dataset")?.config.base;
    let mut q = Query::new(ds, base);
    q.symbols = Symbols::List(vec![sym.clone()]);
    let input = store.query(&q)?;
    let mut times = Vec::new();
    let mut rows = 0;
    for _ in 0..repeat {
        let t = Instant::now();
        let mut b = Bucketing::new(tf, tf.default_offset(), None)?;
        rows = resample::resample(&input, Kind::Bars, base, &mut b, None)?.num_rows();
        times.push(t.elapsed().as_secs_f64());
    }
    println!(
        "{{\"secs\":{},\"rows\":{rows},\"input_rows\":{}}}",
        median(times),
        input.num_rows()
    );
    Ok(())
}

/// `live`: the daemon's append pattern, timed per append (see the module doc).
fn live(a: &[String]) -> R<()> {
    use ringfeed_store::schema::BarColumns;
    let dir = Path::new(&a[0]);
    let (syms, minutes): (usize, i64) = (a[1].parse()?, a[2].parse()?);
    let per_row = match a[3].as_str() {
        "row" => true,
        "minute" => false,
        o => return Err(format!("batching {o:?}: use row or minute").into()),
    };
    let fsync: FsyncPolicy = a[4].parse()?;
    let max_secs: f64 = a
        .get(5)
        .filter(|s| !s.contains('='))
        .map_or(Ok(f64::INFINITY), |s| s.parse())?;
    let daemon_queries = a.get(6).is_some_and(|s| s == "query");
    let opt = |key: &str| a.iter().find_map(|s| s.strip_prefix(key));
    let prefill: i64 = opt("prefill_days=").map_or(Ok(0), str::parse)?;
    let _ = std::fs::remove_dir_all(dir);
    let mut store = BarStore::open(dir)?;
    let mut cfg = DatasetConfig::new("1m".parse()?);
    cfg.fsync = fsync;
    if let Some(r) = opt("rollups=") {
        cfg.rollups = r.split(',').map(str::parse).collect::<Result<_, _>>()?;
    }
    store.create_dataset("live", cfg.clone())?;
    const MIN: i64 = 60_000_000_000;
    let day0 = (19_000 + prefill) * 1440 * MIN; // 2022-01-08 + prefill days
    let names: Vec<String> = (0..syms).map(|k| format!("SYM{k:04}")).collect();
    let bar = |c: &mut BarColumns, s: &str, m: i64| {
        let p = 100.0 + (m % 97) as f64;
        c.ts.push(day0 + m * MIN);
        c.symbol.push(s.to_string());
        c.open.push(p);
        c.high.push(p + 1.0);
        c.low.push(p - 1.0);
        c.close.push(p + 0.5);
        c.volume.push(1.0);
    };
    // Earlier days of the month, one batch a day, not timed.
    for d in 0..prefill {
        let mut c = BarColumns::default();
        for s in &names {
            for m in 0..1440 {
                bar(&mut c, s, m - (prefill - d) * 1440);
            }
        }
        store.upsert("live", &c.into_batch()?)?;
    }
    let mut times: Vec<f64> = Vec::new();
    let t_all = Instant::now();
    'feed: for m in 0..minutes {
        let groups: Vec<Vec<&String>> = if per_row {
            names.iter().map(|s| vec![s]).collect()
        } else {
            vec![names.iter().collect()]
        };
        for g in groups {
            let mut c = BarColumns::default();
            for s in &g {
                bar(&mut c, s, m);
            }
            let b = c.into_batch()?;
            let t = Instant::now();
            store.upsert("live", &b)?;
            if daemon_queries {
                for tf in &cfg.rollups {
                    let mut q = Query::new("live", *tf);
                    q.symbols = Symbols::List(g.iter().map(|s| s.to_string()).collect());
                    q.start = Some(day0 + m * MIN - tf.nanos().unwrap_or(0));
                    q.end = Some(day0 + m * MIN + 1);
                    store.query(&q)?;
                }
            }
            times.push(t.elapsed().as_secs_f64() * 1e6);
            if t_all.elapsed().as_secs_f64() > max_secs {
                break 'feed;
            }
        }
    }
    let n = times.len();
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len().max(1) as f64;
    let tenths: Vec<String> = (0..10)
        .map(|k| format!("{:.0}", mean(&times[k * n / 10..(k + 1) * n / 10])))
        .collect();
    let mut wals = Vec::new();
    let mut tfs = vec![cfg.base];
    tfs.extend(cfg.rollups.iter().copied());
    // One WAL per dataset-day holds every timeframe: frames per stream, bytes of the file.
    let p = store.wal_path("live", cfg.base, day0 / (1440 * MIN));
    for tf in &tfs {
        let stream = ringfeed_store::wal::stream_of(*tf);
        let (ops, rep) = ringfeed_store::wal::replay_stream(&p, Some(stream))?;
        wals.push(format!(
            "\"{tf}\":{{\"bytes\":{},\"frames\":{}}}",
            rep.valid_len,
            ops.len()
        ));
    }
    let t = Instant::now();
    let five = store.query(&Query::new("live", "5m".parse()?))?.num_rows();
    let q5 = t.elapsed().as_secs_f64() * 1e3;
    println!(
        "{{\"appends\":{n},\"rows_per_append\":{},\"us_per_append_by_tenth\":[{}],\"first100_us\":{:.0},\"last100_us\":{:.0},\"total_secs\":{:.3},\"wal\":{{{}}},\"query_5m_ms\":{q5:.2},\"rows_5m\":{five}}}",
        if per_row { 1 } else { syms },
        tenths.join(","),
        mean(&times[..n.min(100)]),
        mean(&times[n.saturating_sub(100)..]),
        t_all.elapsed().as_secs_f64(),
        wals.join(","),
    );
    Ok(())
}
