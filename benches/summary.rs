//! `rf-bench-summary`: the key numbers of the last benchmark run, the
//! baselines beside them, and each DESIGN §6 target marked met or missed.
//!
//! Reads criterion's `<criterion>/<group>/<function>/<param>/new/estimates.json`
//! (the median point estimate, in ns per iteration) and the JSON written by
//! `rf-latency --json`. Missing results are shown as `-`, and so are results
//! older than the `--since` file (left over from an earlier run).
//!
//! Usage: `rf-bench-summary --criterion DIR [--latency FILE] [--since FILE]`.

use serde_json::Value;
use std::path::{Path, PathBuf};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const ROWS: [&str; 4] = ["1k_rows", "100k_rows", "1m_rows", "10m_rows"];
const DECODE: [(&str, &str); 7] = [
    ("ringfeed", "ringfeed Reader::try_read (+unpin)"),
    ("ringfeed_codec", "ringfeed codec::decode of a slot"),
    ("ringfeed_open", "ringfeed Reader::open + first read"),
    (
        "arrow_filedecoder_unchecked",
        "diagnostic: arrow FileDecoder, no checks",
    ),
    ("arrow_ipc_validated", "arrow-ipc FileReader (default)"),
    (
        "arrow_ipc_stream_validated",
        "arrow-ipc StreamReader (default)",
    ),
    (
        "arrow_ipc_zero_copy_validated",
        "arrow-ipc FileDecoder zero-copy, validated",
    ),
];
const SIZES: [(&str, f64); 3] = [
    ("64KiB", 65536.0),
    ("4MiB", 4194304.0),
    ("64MiB", 67108864.0),
];
const PUBLISH: [(&str, &str); 4] = [
    ("memcpy", "memcpy (baseline)"),
    ("ring", "RingWriter::publish (bytes)"),
    ("arrow_f64", "Writer::write, 1 f64 column"),
    ("arrow_bars", "Writer::write, 7 bar columns"),
];

/// Results older than this (the `--since` file's mtime) are stale: ignored.
static SINCE: std::sync::OnceLock<Option<std::time::SystemTime>> = std::sync::OnceLock::new();

/// Median ns per iteration of one criterion benchmark, if it ran (since `--since`).
fn median_ns(dir: &Path, id: &str) -> Option<f64> {
    let path = dir.join(id).join("new").join("estimates.json");
    if let Some(since) = SINCE.get().copied().flatten() {
        if std::fs::metadata(&path).and_then(|m| m.modified()).ok()? < since {
            return None;
        }
    }
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    v["median"]["point_estimate"].as_f64()
}

/// `1.23 µs`-style rendering of ns.
fn time(ns: Option<f64>) -> String {
    match ns {
        None => "-".into(),
        Some(n) if n < 1e3 => format!("{n:.0} ns"),
        Some(n) if n < 1e6 => format!("{:.2} µs", n / 1e3),
        Some(n) if n < 1e9 => format!("{:.2} ms", n / 1e6),
        Some(n) => format!("{:.2} s", n / 1e9),
    }
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "**met**"
    } else {
        "**missed**"
    }
}

fn main() {
    if let Err(e) = run() {
        eprintln!("rf-bench-summary: {e}");
        std::process::exit(1);
    }
}

fn run() -> Res<()> {
    let mut crit: Option<PathBuf> = None;
    let mut lat: Option<PathBuf> = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--criterion" => {
                crit = Some(args.next().ok_or("--criterion needs a directory")?.into())
            }
            "--latency" => lat = Some(args.next().ok_or("--latency needs a file")?.into()),
            "--since" => {
                let f = args.next().ok_or("--since needs a file")?;
                let t = std::fs::metadata(&f)?.modified()?;
                SINCE.set(Some(t)).map_err(|_| "--since given twice")?;
            }
            other => return Err(format!("unknown argument {other:?}").into()),
        }
    }
    let crit =
        crit.ok_or("usage: rf-bench-summary --criterion DIR [--latency FILE] [--since FILE]")?;
    let mut targets: Vec<(String, String, &'static str)> = Vec::new();

    // Decode.
    println!("### Reader: committed bar batch (7 columns) -> RecordBatch, median per call\n");
    println!("| what | {} |", ROWS.join(" | "));
    println!("|---|{}", "---:|".repeat(ROWS.len()));
    for (f, label) in DECODE {
        let cells: Vec<String> = ROWS
            .iter()
            .map(|r| time(median_ns(&crit, &format!("decode/{f}/{r}"))))
            .collect();
        println!("| {label} (`decode/{f}`) | {} |", cells.join(" | "));
    }
    let rf = |r: &str| median_ns(&crit, &format!("decode/ringfeed/{r}"));
    if let (Some(a), Some(b)) = (rf("1k_rows"), rf("10m_rows")) {
        println!(
            "\nringfeed read 10M rows / 1k rows: {:.2}x (1.0 = flat)",
            b / a
        );
    }
    if let (Some(a), Some(b)) = (
        rf("1m_rows"),
        median_ns(&crit, "decode/arrow_ipc_validated/1m_rows"),
    ) {
        println!("arrow-ipc FileReader / ringfeed at 1M rows: {:.0}x", b / a);
    }
    if let Some(t) = rf("1m_rows") {
        targets.push((
            "reader open of a committed batch, 1M rows x 7 cols < 5 µs".into(),
            format!("{} (`decode/ringfeed/1m_rows`)", time(Some(t))),
            verdict(t < 5_000.0),
        ));
    }
    if let Some(t) = rf("1m_rows") {
        // 1M bar rows are 64 MB of column data, handed over without a copy.
        targets.push((
            "vs qadataswap reader, 7 GB/s at 1M rows".into(),
            format!(
                "64 MB in {} = {:.0} GB/s effective",
                time(Some(t)),
                64e6 / t
            ),
            verdict(64e6 / t > 7.0),
        ));
    }
    if let (Some(a), Some(b)) = (rf("1k_rows"), rf("10m_rows")) {
        // Flat within the noise of this VM (runs differ by up to 2x), while
        // an O(rows) reader grows 10,000x over the same range.
        let base = |r: &str| median_ns(&crit, &format!("decode/arrow_ipc_validated/{r}"));
        let growth = match (base("1k_rows"), base("10m_rows")) {
            (Some(x), Some(y)) => format!("; arrow-ipc FileReader: {:.0}x", y / x),
            _ => String::new(),
        };
        targets.push((
            "O(1) in rows (10M vs 1k rows, < 2x)".into(),
            format!("ringfeed: {:.2}x{growth}", b / a),
            verdict(b / a < 2.0),
        ));
    }

    // Publish.
    println!("\n### Writer throughput, GB/s (median)\n");
    println!("| what | {} |", SIZES.map(|s| s.0).join(" | "));
    println!("|---|{}", "---:|".repeat(SIZES.len()));
    let gbs = |f: &str, s: &str, bytes: f64| {
        median_ns(&crit, &format!("publish/{f}/{s}")).map(|ns| bytes / ns)
    };
    for (f, label) in PUBLISH {
        let cells: Vec<String> = SIZES
            .iter()
            .map(|(s, b)| match (gbs(f, s, *b), gbs("memcpy", s, *b)) {
                (Some(g), Some(m)) if f != "memcpy" => format!("{g:.2} ({:.0} %)", 100.0 * g / m),
                (Some(g), _) => format!("{g:.2}"),
                _ => "-".into(),
            })
            .collect();
        println!("| {label} (`publish/{f}`) | {} |", cells.join(" | "));
    }
    println!(
        "\nsmall publish, nobody waiting: `publish_small/ring/64B` {}, `publish_small/arrow_bars/1_row` {}",
        time(median_ns(&crit, "publish_small/ring/64B")),
        time(median_ns(&crit, "publish_small/arrow_bars/1_row"))
    );
    for (f, what) in [("ring", "byte ring"), ("arrow_f64", "Arrow writer, f64")] {
        if let (Some(g), Some(m)) = (
            gbs(f, "64MiB", 67108864.0),
            gbs("memcpy", "64MiB", 67108864.0),
        ) {
            targets.push((
                format!("writer throughput, large batches >= 70 % of memcpy ({what}, 64 MiB)"),
                format!("{g:.2} GB/s = {:.0} % of {m:.2} GB/s", 100.0 * g / m),
                verdict(g / m >= 0.70),
            ));
        }
    }

    // Latency.
    if let Some(path) = lat {
        match std::fs::read_to_string(&path) {
            Err(e) => println!("\n(no latency results at {}: {e})", path.display()),
            Ok(text) => {
                let v: Value = serde_json::from_str(&text)?;
                latency(&v, &mut targets);
            }
        }
    }

    println!("\n### Targets (DESIGN §6)\n");
    println!("| target | measured | verdict |");
    println!("|---|---|---|");
    for (t, m, v) in &targets {
        println!("| {t} | {m} | {v} |");
    }
    Ok(())
}

fn latency(v: &Value, targets: &mut Vec<(String, String, &'static str)>) {
    let q = |mode: &str, k: &str| v["latency"][mode][k].as_f64();
    println!(
        "\n### One-way latency between two processes, µs ({} samples/mode; load {} -> {})\n",
        v["samples"], v["load_before"], v["load_after"]
    );
    println!("| mode | p50 | p99 | p99.9 | max |");
    println!("|---|---:|---:|---:|---:|");
    for m in [
        "raw_futex",
        "ring_futex",
        "arrow_futex",
        "raw_spin",
        "ring_spin",
    ] {
        if v["latency"][m].is_null() {
            continue;
        }
        let c = |k| q(m, k).map_or("-".into(), |x| format!("{:.2}", x / 1e3));
        println!(
            "| `{m}` | {} | {} | {} | {} |",
            c("p50_ns"),
            c("p99_ns"),
            c("p999_ns"),
            c("max_ns")
        );
    }
    println!("\nwriter-side cost of one send, p50 / p99 µs:");
    if let Some(s) = v["send_cost"].as_object() {
        for (k, h) in s {
            println!(
                "- `{k}`: {:.2} / {:.2}",
                h["p50_ns"].as_f64().unwrap_or(f64::NAN) / 1e3,
                h["p99_ns"].as_f64().unwrap_or(f64::NAN) / 1e3
            );
        }
    }
    for (num, label) in [
        ("ring_futex", "byte ring"),
        ("arrow_futex", "Arrow ring, 1-row bars"),
    ] {
        if let (Some(a), Some(b)) = (q(num, "p50_ns"), q("raw_futex", "p50_ns")) {
            targets.push((
                format!("futex mode p50 within 1.2x of a raw futex wake ({label})"),
                format!(
                    "{:.2} µs vs {:.2} µs = {:.2}x (p99 {:.2} µs)",
                    a / 1e3,
                    b / 1e3,
                    a / b,
                    q(num, "p99_ns").unwrap_or(f64::NAN) / 1e3
                ),
                verdict(a / b <= 1.2),
            ));
        }
    }
    if let Some(a) = q("ring_spin", "p50_ns") {
        targets.push((
            "with a spin budget, p50 < 1 µs".into(),
            format!(
                "{:.2} µs (p99 {:.2} µs)",
                a / 1e3,
                q("ring_spin", "p99_ns").unwrap_or(f64::NAN) / 1e3
            ),
            verdict(a < 1_000.0),
        ));
    }
    if let Some(a) = q("arrow_futex", "p50_ns") {
        targets.push((
            "faster than qadataswap, 1-row p50 (23.9 µs)".into(),
            format!("{:.2} µs", a / 1e3),
            verdict(a < 23_900.0),
        ));
    }
}
