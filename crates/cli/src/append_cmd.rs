//! `ringfeed append`: files parsed as `ringfeed ingest` parses them, sent to a
//! running daemon (which checks, stores, rolls up and publishes them); `--create`
//! makes the dataset through the daemon first.

use crate::store_cmd::{
    exit_codes, exit_if_rejected, ingest_timeframe, print_bad_rows, span, warn_timeframe, Input,
    Parse,
};
use anyhow::{bail, Result};
use arrow_array::RecordBatch;
use clap::Args;
use ringfeed_ingest as ingest;
use ringfeed_store::schema::Kind;
use ringfeed_store::validate::{Grid, RowReport, RowRules};
use ringfeed_store::Timeframe;
use std::path::PathBuf;
use std::time::Instant;

/// `ringfeed append`.
#[derive(Args, Debug)]
#[command(after_help = concat!(
    "Example:
  ringfeed append --dataset crypto ADABTC-1m-2021-11-28.csv

",
    exit_codes!()
))]
pub struct Append {
    /// Daemon socket (default: $RINGFEED_SOCKET, else the daemon's default path).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Dataset to append to (it must exist in the daemon's store, or pass --create).
    #[arg(long)]
    dataset: String,
    /// Create the dataset through the daemon if it does not exist, with --timeframe
    /// (default: what Binance file names say, else 1m) and --rollups.
    #[arg(long)]
    create: bool,
    /// Base timeframe of a dataset made by --create, e.g. 1m or tick.
    #[arg(long, requires = "create")]
    timeframe: Option<Timeframe>,
    /// Rollups of a dataset made by --create, e.g. 5m,1h,1d, or `none`
    /// (default: the ladder 5m,15m,1h,1d above the timeframe).
    #[arg(long, value_delimiter = ',', requires = "create")]
    rollups: Option<Vec<String>>,
    #[command(flatten)]
    parse: Parse,
    /// Rows per append request; each is durable and published before the next is sent.
    #[arg(long, default_value_t = 65_536)]
    batch_rows: usize,
    /// Input files; `-` reads stdin; a .zip holding one CSV file (as Binance ships
    /// them) is read in place.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Run `ringfeed append`: parse like `ingest`, send to the running daemon.
pub fn append(a: Append) -> Result<()> {
    let mut client = ringfeed_client::Client::connect(a.socket.as_deref())?;
    let mut datasets = client.datasets()?;
    if a.create && datasets.get(&a.dataset).is_none() {
        let probe = Input::all(&a.files, Kind::Bars, &a.parse.options(false)?)?;
        let base = ingest_timeframe(a.timeframe, &probe)?
            .unwrap_or_else(|| "1m".parse().expect("a timeframe"));
        let rollups = a.rollups.as_ref().map(|r| {
            if r.len() == 1 && r[0] == "none" {
                Vec::new()
            } else {
                r.clone()
            }
        });
        let text = client.create_dataset(&ringfeed_client::DatasetSpec {
            dataset: a.dataset.clone(),
            base: base.to_string(),
            rollups,
            ..Default::default()
        })?;
        eprintln!("ringfeed: {text}");
        datasets = client.datasets()?;
    }
    let Some(base) = datasets
        .get(&a.dataset)
        .and_then(|d| d.get("base"))
        .and_then(|b| b.as_str())
    else {
        let known: Vec<&String> = datasets
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        bail!(
            "the daemon has no dataset {:?} (known: {known:?}); pass --create (with --timeframe and --rollups) to create it through the daemon",
            a.dataset
        );
    };
    let tf: Timeframe = base.parse()?;
    let kind = if tf.is_tick() {
        Kind::Ticks
    } else {
        Kind::Bars
    };
    let mut opts = a.parse.options(true)?;
    let inputs = Input::all(&a.files, kind, &opts)?;
    let said: Vec<(&Input, Timeframe, &str)> = inputs
        .iter()
        .filter_map(|i| i.timeframe().map(|(tf, from)| (i, tf, from)))
        .collect();
    warn_timeframe(&said, tf, &format!("dataset {} stores {tf}", a.dataset));
    for i in &inputs {
        i.tell(&a.parse);
    }
    opts.batch_rows = a.batch_rows.max(1);
    // The daemon checks the same rules again; the grid of days depends on the dataset's
    // session, which only the daemon knows.
    opts.rules = RowRules {
        grid: Grid::new(tf).filter(|_| tf.nanos() < Some(86_400_000_000_000)),
    };
    let t0 = Instant::now();
    let mut report = RowReport::default();
    let (mut sent, mut requests) = (0u64, 0u64);
    for f in &a.files {
        let path = (f.as_os_str() != "-").then_some(f.as_path());
        let mut sink = |b: RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            // Rows the parser flagged (--keep-invalid) must be kept by the daemon too;
            // any other rule break the daemon finds refuses the request whole.
            let invalid = if a.parse.keep_invalid {
                ringfeed_client::InvalidRows::Keep
            } else {
                ringfeed_client::InvalidRows::Refuse
            };
            sent += client
                .append_with(&a.dataset, std::slice::from_ref(&b), invalid)?
                .rows_stored;
            requests += 1;
            Ok(())
        };
        ingest::load(path, kind, &opts, &mut report, &mut sink)?;
    }
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "appended {sent} rows to {}/{tf} in {requests} requests, {secs:.2}s ({:.0} rows/s): durable and published; span {}, {} rejected, {} flagged",
        a.dataset,
        sent as f64 / secs.max(1e-9),
        span(&report),
        report.rejected,
        report.flagged
    );
    print_bad_rows(&report);
    drop(client);
    exit_if_rejected(&report, &a.parse);
    Ok(())
}
