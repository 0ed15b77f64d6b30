//! `ringfeed datasets`: what a store holds (datasets, timeframes, symbols, span), read
//! from a data directory or asked of a running daemon. Both give the same answer, the
//! daemon's `ready` report.

use anyhow::{Context, Result};
use clap::Args;
use ringfeed_client::protocol::DatasetReady;
use ringfeed_store::BarStore;
use std::io::Write;
use std::path::PathBuf;

/// `ringfeed datasets`.
#[derive(Args, Debug)]
pub struct DatasetsArgs {
    #[command(flatten)]
    store: crate::store_cmd::Store,
    /// Ask the running daemon instead of reading the data directory.
    #[arg(long)]
    daemon: bool,
    /// The daemon's socket (implies --daemon; default $RINGFEED_SOCKET, else the daemon's
    /// default path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// One JSON document on stdout instead of the table: datasets with their base
    /// timeframe, symbols, and per stored timeframe first/last bar (ns and ISO-8601),
    /// hot days and cold days.
    #[arg(long)]
    json: bool,
}

/// Run `ringfeed datasets`.
pub fn run(a: DatasetsArgs) -> Result<()> {
    let (list, source) = if a.daemon || a.socket.is_some() {
        let mut c = ringfeed_client::Client::connect(a.socket.as_deref())?;
        let r = c.ready(None)?;
        let source = format!("ringfeedd at {}", c.path().display());
        (r.datasets, source)
    } else {
        let dir = &a.store.data_dir;
        (
            from_store(dir)?,
            format!("data directory {}", dir.display()),
        )
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    if a.json {
        writeln!(out, "{}", json(&list))?;
    } else if list.is_empty() {
        writeln!(out, "no datasets in {source}")?;
    } else {
        table(&mut out, &list)?;
    }
    out.flush()?;
    Ok(())
}

/// The daemon's answer, computed from a store opened read-only (beside a running daemon
/// too).
fn from_store(dir: &std::path::Path) -> Result<Vec<DatasetReady>> {
    if !dir.is_dir() {
        anyhow::bail!(
            "no store at {}: pass --data-dir <DIR> (the directory `ringfeed ingest` or `ringfeed serve` uses), or --daemon to ask the running daemon",
            dir.display()
        );
    }
    let store = BarStore::open_read_only(dir)
        .with_context(|| format!("cannot open store {}", dir.display()))?;
    let mut out = Vec::new();
    for name in store.catalog().datasets.keys() {
        if let Some(d) = ringfeed_daemon::service::dataset_ready(&store, name)
            .with_context(|| format!("cannot read dataset {name}"))?
        {
            out.push(d);
        }
    }
    Ok(out)
}

fn iso(ts: Option<i64>) -> String {
    ts.map(crate::output::iso).unwrap_or_else(|| "-".into())
}

/// The report with ISO-8601 `first` and `last` beside the ns fields.
fn json(list: &[DatasetReady]) -> serde_json::Value {
    let mut v = serde_json::json!({ "datasets": list });
    for d in v["datasets"].as_array_mut().into_iter().flatten() {
        for t in d["timeframes"].as_array_mut().into_iter().flatten() {
            for (ns, text) in [("first_ts", "first"), ("last_ts", "last")] {
                let s = t[ns].as_i64().map(crate::output::iso);
                t[text] = s.map_or(serde_json::Value::Null, serde_json::Value::String);
            }
        }
    }
    v
}

/// One line per dataset; the span is the base timeframe's (rollups cover the same bars).
fn table(out: &mut impl Write, list: &[DatasetReady]) -> std::io::Result<()> {
    let head = [
        "DATASET",
        "BASE",
        "TIMEFRAMES",
        "SYMBOLS",
        "FIRST BAR",
        "LAST BAR",
        "DAYS HOT/COLD",
    ];
    let rows: Vec<[String; 7]> = list
        .iter()
        .map(|d| {
            let base = d.timeframes.iter().find(|t| t.timeframe == d.base);
            let tfs: Vec<&str> = d.timeframes.iter().map(|t| t.timeframe.as_str()).collect();
            [
                d.dataset.clone(),
                d.base.clone(),
                tfs.join(","),
                symbols(&d.symbols),
                iso(base.and_then(|t| t.first_ts)),
                iso(base.and_then(|t| t.last_ts)),
                base.map_or("-".into(), |t| {
                    format!("{}/{}", t.hot_days.len(), t.cold_days)
                }),
            ]
        })
        .collect();
    let widths: Vec<usize> = (0..head.len())
        .map(|j| {
            rows.iter()
                .map(|r| r[j].chars().count())
                .chain([head[j].len()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |out: &mut dyn Write, cells: &[&str]| -> std::io::Result<()> {
        let s: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        writeln!(out, "{}", s.join("  ").trim_end())
    };
    line(out, &head)?;
    for r in &rows {
        line(out, &r.each_ref().map(String::as_str))?;
    }
    Ok(())
}

/// `3: A,B,C`, or the first five and how many more.
fn symbols(s: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut text = format!("{}: {}", s.len(), s[..s.len().min(SHOWN)].join(","));
    if s.len() > SHOWN {
        text += &format!(",… (+{})", s.len() - SHOWN);
    }
    text
}
