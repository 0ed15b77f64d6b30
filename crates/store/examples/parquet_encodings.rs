//! The cold tier's Parquet encodings, codec and file shape, measured (issue 13).
//!
//! ```text
//! cargo run --release -p ringfeed-store --example parquet_encodings -- [all] [--out DIR] [--repeat N] [--python PY] [--quick] [--only TEXT]
//! cargo run --release -p ringfeed-store --example parquet_encodings -- read DIR REPEAT
//! ```
//! `all` (the default) generates a seeded symbol-year of 1m bars with the 11 Binance columns
//! (the generator of `scripts/bench_store.py`: a random walk in 0.01 ticks, 5-decimal
//! volumes, `quote_volume = volume·open` to 4 decimals, integer `trades`) and a 10-symbol
//! month (volumes with 3–8 decimals), writes them under each variant of the writer
//! properties as 365 daily files, 12 monthly files and one file, and prints bytes per bar
//! (all 11 columns, and ts + symbol + OHLCV), write time and the time to read the year back
//! with `read_parquet_as`. It leaves the data as Arrow IPC and the crate's chosen layouts
//! under `DIR` and runs `scripts/bench_encodings.py` on them (DuckDB's Parquet of the same
//! rows; `pl.read_parquet` of the same files). `read` reads every Parquet file under `DIR`
//! `REPEAT` times (for `perf record`).

use arrow_array::{cast::AsArray, TimestampNanosecondArray};
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringViewArray};
use chrono::NaiveDate;
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use ringfeed_store::cold::parquet::{read_parquet_filtered, writer_props, PartShape};
use ringfeed_store::schema::bar_schema;
use ringfeed_store::store::read_parquet_as;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

type R<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const NS_PER_MIN: i64 = 60_000_000_000;
const NS_PER_DAY: i64 = 86_400_000_000_000;
/// 2023-01-01T00:00:00Z, as in scripts/bench_store.py.
const T0: i64 = 1_672_531_200_000_000_000;
const PRICES: [&str; 4] = ["open", "high", "low", "close"];
const VOLUMES: [&str; 4] = [
    "volume",
    "quote_volume",
    "taker_buy_base",
    "taker_buy_quote",
];

/// splitmix64: a seeded generator, so every run writes the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn gauss(&mut self, mu: f64, sigma: f64) -> f64 {
        let (u, v) = (1.0 - self.unit(), self.unit());
        mu + sigma * (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
    fn int(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo + 1) as u64) as i64
    }
}

/// `x` to `k` decimals, as the parse of its decimal text gives it (m / 10^k is exact for
/// |m| < 2^53, and one correctly rounded division then equals the parse).
fn dec(x: f64, k: i32) -> f64 {
    let p = 10f64.powi(k);
    (x * p).round() / p
}

/// One symbol's 1m bars from `t0`: bench_store.py's walk, with `step` as the price sigma
/// and volumes to `vdec` decimals.
fn gen_symbol(symbol: &str, seed: u64, t0: i64, rows: usize, p0: f64, vdec: i32) -> RecordBatch {
    let mut r = Rng(seed);
    let step = p0 * 4e-4;
    let mut p = p0;
    let mut c: [Vec<f64>; 8] = Default::default();
    let (mut ts, mut trades) = (Vec::with_capacity(rows), Vec::with_capacity(rows));
    for i in 0..rows {
        let o = p;
        let cl = dec((o + r.gauss(0.0, 2.0 * step)).max(0.01), 2);
        let h = dec(o.max(cl) + r.gauss(0.0, step).abs(), 2);
        let l = dec((o.min(cl) - r.gauss(0.0, step).abs()).max(0.01), 2);
        let v = dec(r.gauss(50.0, 20.0).abs(), vdec);
        ts.push(t0 + i as i64 * NS_PER_MIN);
        for (col, x) in c.iter_mut().zip([
            o,
            h,
            l,
            cl,
            v,
            dec(v * o, 4),
            dec(v / 2.0, vdec),
            dec(v * o / 2.0, 4),
        ]) {
            col.push(x);
        }
        trades.push(r.int(10, 900));
        p = cl;
    }
    let mut cols: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
        Arc::new(StringViewArray::from_iter_values(std::iter::repeat_n(
            symbol, rows,
        ))),
    ];
    let [o, h, l, cl, v, q, tb, tq] = c;
    for x in [o, h, l, cl, v, q] {
        cols.push(Arc::new(Float64Array::from(x)));
    }
    cols.push(Arc::new(Int64Array::from(trades)));
    cols.push(Arc::new(Float64Array::from(tb)));
    cols.push(Arc::new(Float64Array::from(tq)));
    RecordBatch::try_new(bar_schema(), cols).expect("generated columns match bar_schema")
}

/// A variant of the writer properties; each differs from `current` in one setting.
#[derive(Clone, Copy)]
struct Spec {
    codec: Compression,
    ts: Encoding,
    prices: Encoding,
    volumes: Encoding,
    float_dict: bool,
    symbol_dict: bool,
    trades: Encoding,
    row_group: usize,
    page_rows: usize,
    stats: EnabledStatistics,
}

fn zstd(level: i32) -> Compression {
    Compression::ZSTD(ZstdLevel::try_new(level).expect("valid zstd level"))
}

/// The cold tier's properties before this change (cold/parquet.rs at 895f55c).
const fn current() -> Spec {
    Spec {
        codec: Compression::UNCOMPRESSED, // set by `variants` (ZstdLevel is not const)
        ts: Encoding::DELTA_BINARY_PACKED,
        prices: Encoding::PLAIN,
        volumes: Encoding::PLAIN,
        float_dict: false,
        symbol_dict: true,
        trades: Encoding::DELTA_BINARY_PACKED,
        row_group: 1 << 20,
        page_rows: 20_000,
        stats: EnabledStatistics::Page,
    }
}

fn props(s: &Spec) -> WriterProperties {
    let mut p = WriterProperties::builder()
        .set_compression(s.codec)
        .set_max_row_group_row_count(Some(s.row_group))
        .set_data_page_row_count_limit(s.page_rows)
        .set_statistics_enabled(s.stats)
        .set_column_dictionary_enabled(ColumnPath::from("symbol"), s.symbol_dict);
    for (c, e) in [("ts", s.ts), ("trades", s.trades)] {
        p = p
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), e);
    }
    for (cols, e) in [(PRICES, s.prices), (VOLUMES, s.volumes)] {
        for c in cols {
            p = p
                .set_column_dictionary_enabled(ColumnPath::from(c), s.float_dict)
                .set_column_encoding(ColumnPath::from(c), e)
                .set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
        }
    }
    p.build()
}

fn variants() -> Vec<(String, WriterProperties, WriterProperties)> {
    let cur = Spec {
        codec: zstd(6),
        ..current()
    };
    let mut v: Vec<(String, Spec)> = vec![(
        "current (zstd 6, ts/trades delta, floats plain)".into(),
        cur,
    )];
    let mut one = |name: &str, f: &dyn Fn(&mut Spec)| {
        let mut s = cur;
        f(&mut s);
        v.push((name.into(), s));
    };
    one("ts PLAIN", &|s| s.ts = Encoding::PLAIN);
    one("prices BYTE_STREAM_SPLIT", &|s| {
        s.prices = Encoding::BYTE_STREAM_SPLIT
    });
    one("volumes BYTE_STREAM_SPLIT", &|s| {
        s.volumes = Encoding::BYTE_STREAM_SPLIT
    });
    one("all floats BYTE_STREAM_SPLIT", &|s| {
        s.prices = Encoding::BYTE_STREAM_SPLIT;
        s.volumes = Encoding::BYTE_STREAM_SPLIT;
    });
    one("floats dictionary (parquet-rs default)", &|s| {
        s.float_dict = true
    });
    one("symbol PLAIN (no dictionary)", &|s| s.symbol_dict = false);
    one("trades PLAIN", &|s| s.trades = Encoding::PLAIN);
    for level in [1, 3, 9, 12] {
        one(&format!("zstd {level}"), &|s| s.codec = zstd(level));
    }
    one("lz4_raw", &|s| s.codec = Compression::LZ4_RAW);
    one("snappy", &|s| s.codec = Compression::SNAPPY);
    one("uncompressed", &|s| s.codec = Compression::UNCOMPRESSED);
    one("row groups of 128k rows", &|s| s.row_group = 128 * 1024);
    one("pages of ≤ 100k rows", &|s| s.page_rows = 100_000);
    one("pages of ≤ 50k rows", &|s| s.page_rows = 50_000);
    one("pages of ≤ 1M rows", &|s| s.page_rows = 1 << 20);
    one("zstd 9, pages of ≤ 50k rows", &|s| {
        s.codec = zstd(9);
        s.page_rows = 50_000;
    });
    one("zstd 9, pages of ≤ 100k rows", &|s| {
        s.codec = zstd(9);
        s.page_rows = 100_000;
    });
    one("chunk statistics only", &|s| {
        s.stats = EnabledStatistics::Chunk
    });
    let mut out: Vec<_> = v
        .into_iter()
        .map(|(n, s)| {
            let p = props(&s);
            (n, p.clone(), p)
        })
        .collect();
    out.push((
        "**chosen** (writer_props: Day for daily, Sorted otherwise)".into(),
        writer_props(PartShape::Day),
        writer_props(PartShape::Sorted),
    ));
    out
}

/// Write `batch` to `path` as the store does (no embedded Arrow schema). Returns bytes.
fn write(path: &Path, batch: &RecordBatch, props: &WriterProperties) -> R<u64> {
    let f = std::fs::File::create(path)?;
    let opts = ArrowWriterOptions::new()
        .with_properties(props.clone())
        .with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(f, batch.schema(), opts)?;
    w.write(batch)?;
    let f = w.into_inner()?;
    Ok(f.metadata()?.len())
}

/// `batch` (sorted by ts) cut at each of `bounds`.
fn split(batch: &RecordBatch, bounds: &[i64]) -> Vec<RecordBatch> {
    let ts = batch
        .column(0)
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let mut out = Vec::new();
    let mut from = 0;
    for w in bounds.windows(2) {
        let to = from
            + ts.values()[from..]
                .iter()
                .take_while(|&&t| t < w[1])
                .count();
        if to > from {
            out.push(batch.slice(from, to - from));
        }
        from = to;
    }
    out
}

fn month_bounds(year: i32) -> Vec<i64> {
    (1..=13)
        .map(|m| {
            let (y, m) = if m == 13 { (year + 1, 1) } else { (year, m) };
            let d = NaiveDate::from_ymd_opt(y, m, 1).expect("valid date");
            d.and_hms_opt(0, 0, 0)
                .expect("midnight")
                .and_utc()
                .timestamp()
                * 1_000_000_000
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Read every file with the store's reader; returns rows.
fn read_files(files: &[PathBuf]) -> R<usize> {
    let schema = bar_schema();
    let mut rows = 0;
    for f in files {
        rows += read_parquet_as(f, Some(&schema))?
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>();
    }
    Ok(rows)
}

/// [`read_files`] on two threads (the store reads the days of a query on 2 threads).
fn read_files_2(files: &[PathBuf]) -> R<usize> {
    let (a, b) = files.split_at(files.len().div_ceil(2));
    std::thread::scope(|s| {
        let h = s.spawn(|| read_files(b).map_err(|e| e.to_string()));
        let ra = read_files(a)?;
        let rb = h.join().expect("reader thread")?;
        Ok(ra + rb)
    })
}

fn time_ms(repeat: usize, mut f: impl FnMut() -> R<usize>) -> R<(f64, usize)> {
    let mut t = Vec::new();
    let mut rows = 0;
    for _ in 0..repeat {
        let s = Instant::now();
        rows = f()?;
        t.push(s.elapsed().as_secs_f64() * 1e3);
    }
    Ok((median(t), rows))
}

/// The files of each layout of the year, written under `props` into `dir/<layout>/`.
struct Written {
    files: Vec<PathBuf>,
    bytes: u64,
    ohlcv_bytes: u64,
    write_ms: f64,
}

fn write_layout(
    dir: &Path,
    parts: &[RecordBatch],
    props: &WriterProperties,
    ohlcv: bool,
) -> R<Written> {
    std::fs::create_dir_all(dir)?;
    let (mut files, mut bytes, mut ohlcv_bytes) = (Vec::new(), 0, 0);
    let t = Instant::now();
    for (i, p) in parts.iter().enumerate() {
        let f = dir.join(format!("part-{i:03}.parquet"));
        bytes += write(&f, p, props)?;
        files.push(f);
    }
    let write_ms = t.elapsed().as_secs_f64() * 1e3;
    if ohlcv {
        let tmp = dir.join("ohlcv.tmp");
        for p in parts {
            ohlcv_bytes += write(&tmp, &p.project(&[0, 1, 2, 3, 4, 5, 6])?, props)?;
        }
        std::fs::remove_file(tmp)?;
    }
    Ok(Written {
        files,
        bytes,
        ohlcv_bytes,
        write_ms,
    })
}

fn write_ipc(path: &Path, batch: &RecordBatch) -> R<()> {
    let f = std::fs::File::create(path)?;
    let mut w = arrow_ipc::writer::FileWriter::try_new(f, &batch.schema())?;
    w.write(batch)?;
    w.finish()?;
    Ok(())
}

fn parquet_files(dir: &Path) -> R<Vec<PathBuf>> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let p = e?.path();
        if p.is_dir() {
            v.extend(parquet_files(&p)?);
        } else if p.extension().is_some_and(|x| x == "parquet") {
            v.push(p);
        }
    }
    v.sort();
    Ok(v)
}

/// The median ms of `pl.read_parquet` of `dir/*.parquet`, from scripts/bench_encodings.py.
fn polars_ms(python: &str, root: &Path, dir: &Path) -> Option<f64> {
    let out = std::process::Command::new(python)
        .arg(root.join("scripts/bench_encodings.py"))
        .args(["--polars-only", "--repeat", "5", "--dir"])
        .arg(dir)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn main() -> R<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("read") {
        // For `perf record -g`: nothing but reads of the files under DIR.
        let dir = Path::new(args.get(1).ok_or("usage: read DIR REPEAT")?);
        let repeat: usize = args.get(2).map_or(Ok(20), |r| r.parse())?;
        let files = parquet_files(dir)?;
        let (ms, rows) = time_ms(repeat, || read_files(&files))?;
        println!(
            "{} files, {rows} rows: {ms:.1} ms a read (median of {repeat})",
            files.len()
        );
        return Ok(());
    }
    let flag = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    let out = PathBuf::from(flag("--out").map_or("/tmp/rf-encodings", String::as_str));
    let repeat: usize = flag("--repeat").map_or(Ok(3), |r| r.parse())?;
    let quick = args.iter().any(|a| a == "--quick");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let python = flag("--python").cloned().unwrap_or_else(|| {
        ["/work/main/.venv/bin/python", ".venv/bin/python"]
            .into_iter()
            .map(|p| root.join(p))
            .find(|p| p.exists())
            .map_or("python3".into(), |p| p.display().to_string())
    });
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(out.join("data"))?;

    let t = Instant::now();
    let year = gen_symbol("BTCUSDT", 7, T0, 525_600, 20_000.0, 5);
    let march = month_bounds(2023)[2];
    let syms = [
        ("ADAUSDT", 0.35, 3),
        ("BNBUSDT", 310.0, 4),
        ("BTCUSDT", 20_000.0, 5),
        ("DOGEUSDT", 1.05, 6),
        ("DOTUSDT", 7.2, 7),
        ("ETHUSDT", 1_600.0, 8),
        ("LINKUSDT", 27.5, 3),
        ("LTCUSDT", 95.0, 5),
        ("SOLUSDT", 2.35, 6),
        ("XRPUSDT", 0.62, 8),
    ];
    let month_parts: Vec<RecordBatch> = syms
        .iter()
        .enumerate()
        .map(|(i, &(s, p0, vdec))| gen_symbol(s, 100 + i as u64, march, 44_640, p0, vdec))
        .collect();
    let month10 = arrow_select::concat::concat_batches(&bar_schema(), &month_parts)?;
    write_ipc(&out.join("data/year.arrow"), &year)?;
    write_ipc(&out.join("data/month10.arrow"), &month10)?;
    println!(
        "generated {} + {} rows in {:.0} ms; out {}",
        year.num_rows(),
        month10.num_rows(),
        t.elapsed().as_secs_f64() * 1e3,
        out.display()
    );

    let day_bounds: Vec<i64> = (0..=365).map(|d| T0 + d * NS_PER_DAY).collect();
    let layouts = [
        ("daily", split(&year, &day_bounds)),
        ("monthly", split(&year, &month_bounds(2023))),
        ("one", vec![year.clone()]),
    ];
    let n = year.num_rows() as f64;
    println!(
        "\n### A symbol-year of 1m bars ({} rows), per variant\n",
        year.num_rows()
    );
    println!(
        "| variant | B/bar 11 cols: daily / monthly / one | B/bar OHLCV: daily / monthly / one | write ms: daily / monthly / one | read ms (`read_parquet_as`, 1 thread): daily / monthly / one |"
    );
    println!("|---|---|---|---|---|");
    let mut vs = variants();
    if quick {
        vs.retain(|(n, ..)| n.starts_with("current") || n.starts_with("**chosen"));
    }
    if let Some(only) = flag("--only") {
        vs.retain(|(n, ..)| n.starts_with("**chosen") || n.contains(only.as_str()));
    }
    for (name, day_props, sorted_props) in &vs {
        let chosen = name.starts_with("**chosen");
        let mut cells = [String::new(), String::new(), String::new(), String::new()];
        for (layout, parts) in &layouts {
            let dir = if chosen {
                out.join("chosen").join(layout)
            } else {
                out.join("variant").join(layout)
            };
            let p = if *layout == "daily" {
                day_props
            } else {
                sorted_props
            };
            let w = write_layout(&dir, parts, p, true)?;
            let (ms, rows) = time_ms(repeat, || read_files(&w.files))?;
            assert_eq!(rows, year.num_rows());
            for (c, x) in cells.iter_mut().zip([
                format!("{:.2}", w.bytes as f64 / n),
                format!("{:.2}", w.ohlcv_bytes as f64 / n),
                format!("{:.0}", w.write_ms),
                format!("{ms:.1}"),
            ]) {
                if !c.is_empty() {
                    c.push_str(" / ");
                }
                c.push_str(&x);
            }
            if !chosen {
                std::fs::remove_dir_all(&dir)?;
            }
        }
        println!(
            "| {name} | {} | {} | {} | {} |",
            cells[0], cells[1], cells[2], cells[3]
        );
    }

    // The store's reader on the chosen layouts, 1 and 2 threads, in turns with polars
    // reading the same files (a separate process, started before its clock starts).
    println!("\n### A symbol-year read with the chosen settings (median of {repeat} rounds, each a median of 5)\n");
    println!("| files | `read_parquet_as`, 1 thread ms | 2 threads ms | `pl.read_parquet` ms | ratio 2 threads / polars |");
    println!("|---|---|---|---|---|");
    for layout in ["daily", "monthly", "one"] {
        let dir = out.join("chosen").join(layout);
        let files = parquet_files(&dir)?;
        let (mut one, mut two, mut pol) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..repeat {
            one.push(time_ms(5, || read_files(&files))?.0);
            two.push(time_ms(5, || read_files_2(&files))?.0);
            if let Some(ms) = polars_ms(&python, &root, &dir) {
                pol.push(ms);
            }
        }
        let (one, two) = (median(one), median(two));
        let pol = (!pol.is_empty()).then(|| median(pol));
        println!(
            "| {layout} ({} files) | {one:.1} | {two:.1} | {} | {} |",
            files.len(),
            pol.map_or("–".into(), |p| format!("{p:.1}")),
            pol.map_or("–".into(), |p| format!("{:.2}", two / p)),
        );
    }

    // A 10-symbol month: one file sorted by (symbol, ts) vs 31 day files; one-symbol reads.
    println!(
        "\n### A 10-symbol month ({} rows, sorted by symbol, ts)\n",
        month10.num_rows()
    );
    println!(
        "| variant | B/bar 11 cols: daily / month file | B/bar OHLCV: month file | read all ms | one symbol: full read + filter ms | one symbol: `read_parquet_filtered` ms | one symbol, one day: filtered ms |"
    );
    println!("|---|---|---|---|---|---|---|");
    let nm = month10.num_rows() as f64;
    // The day files of a month sorted by (symbol, ts): each day, still sorted so.
    let days: Vec<RecordBatch> = (0..31)
        .map(|d| {
            let (a, b) = (march + d * NS_PER_DAY, march + (d + 1) * NS_PER_DAY);
            let ts = month10
                .column(0)
                .as_primitive::<arrow_array::types::TimestampNanosecondType>();
            let keep: arrow_array::BooleanArray =
                ts.values().iter().map(|&t| Some(t >= a && t < b)).collect();
            arrow_select::filter::filter_record_batch(&month10, &keep).expect("filter")
        })
        .collect();
    let sym = "ETHUSDT";
    let (d0, d1) = (march + 14 * NS_PER_DAY, march + 15 * NS_PER_DAY);
    for (name, day_props, sorted_props) in &vs {
        let keep = name.starts_with("current")
            || name.starts_with("zstd 9")
            || name.starts_with("**chosen")
            || name.starts_with("symbol PLAIN")
            || name.starts_with("row groups")
            || name.starts_with("pages")
            || name.starts_with("chunk statistics")
            || name.contains("BYTE_STREAM");
        if !keep {
            continue;
        }
        let dir = out.join("month10");
        let daily = write_layout(&dir.join("daily"), &days, day_props, false)?;
        let m = write_layout(
            &dir.join("month"),
            std::slice::from_ref(&month10),
            sorted_props,
            true,
        )?;
        let file = &m.files[0];
        let (all_ms, rows) = time_ms(repeat.max(5), || read_files(&m.files))?;
        assert_eq!(rows, month10.num_rows());
        let (full_ms, full_rows) = time_ms(repeat.max(5), || {
            let b = read_parquet_as(file, Some(&bar_schema()))?;
            let mut rows = 0;
            for b in b {
                let s = b.column(1).as_string_view();
                let k: arrow_array::BooleanArray = s.iter().map(|x| Some(x == Some(sym))).collect();
                rows += arrow_select::filter::filter_record_batch(&b, &k)?.num_rows();
            }
            Ok(rows)
        })?;
        let (filt_ms, filt_rows) = time_ms(repeat.max(5), || {
            Ok(
                read_parquet_filtered(file, Some(&bar_schema()), Some(&[sym]), i64::MIN, i64::MAX)?
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum(),
            )
        })?;
        let (day_ms, day_rows) = time_ms(repeat.max(5), || {
            Ok(
                read_parquet_filtered(file, Some(&bar_schema()), Some(&[sym]), d0, d1)?
                    .iter()
                    .map(RecordBatch::num_rows)
                    .sum(),
            )
        })?;
        assert_eq!((full_rows, filt_rows, day_rows), (44_640, 44_640, 1_440));
        println!(
            "| {name} | {:.2} / {:.2} | {:.2} | {all_ms:.1} | {full_ms:.1} | {filt_ms:.1} | {day_ms:.1} |",
            daily.bytes as f64 / nm,
            m.bytes as f64 / nm,
            m.ohlcv_bytes as f64 / nm,
        );
        if name.starts_with("**chosen") {
            std::fs::rename(dir.join("month"), out.join("chosen/month10"))?;
        }
        std::fs::remove_dir_all(&dir)?;
    }

    // DuckDB and polars on the same rows and files, in the same run.
    let script = root.join("scripts/bench_encodings.py");
    println!("\n### DuckDB and polars, same data, same run ({python})\n");
    let st = std::process::Command::new(&python)
        .arg(&script)
        .arg("--dir")
        .arg(&out)
        .arg("--repeat")
        .arg(repeat.max(5).to_string())
        .status();
    match st {
        Ok(s) if s.success() => {}
        Ok(s) => println!("(bench_encodings.py failed: {s})"),
        Err(e) => println!("(cannot run {python}: {e}; pass --python)"),
    }
    Ok(())
}
