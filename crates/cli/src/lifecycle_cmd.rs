//! `ringfeed retention | trim | drop-dataset`: a dataset's lifecycle from the command
//! line, through the running daemon (`--daemon`) or on the data directory directly.

use crate::store_cmd::{open_for_writing, parse_time, report_recovery, Store, ViaDaemon};
use anyhow::{bail, Result};
use clap::Args;
use ringfeed_store::retention::RetentionSpec;

/// `ringfeed retention`.
#[derive(Args, Debug)]
pub struct Retention {
    #[command(flatten)]
    store: Store,
    /// Dataset.
    dataset: String,
    /// How long rows are kept: 400d, 26w or 2y (a year is 365 days); `none` keeps
    /// everything.
    retention: String,
    /// How long rollup bars are kept, when longer (e.g. 10y): the base bars go first, the
    /// coarse history stays.
    #[arg(long, value_name = "SPAN")]
    rollups: Option<String>,
    #[command(flatten)]
    via: ViaDaemon,
}

/// `ringfeed trim`.
#[derive(Args, Debug)]
pub struct Trim {
    #[command(flatten)]
    store: Store,
    /// Dataset.
    #[arg(long)]
    dataset: String,
    /// Only this symbol (default: every symbol).
    #[arg(long)]
    symbol: Option<String>,
    /// First timestamp kept: rows before it are removed.
    #[arg(long)]
    before: String,
    #[command(flatten)]
    via: ViaDaemon,
}

/// `ringfeed drop-dataset`.
#[derive(Args, Debug)]
pub struct DropDataset {
    #[command(flatten)]
    store: Store,
    /// Dataset.
    dataset: String,
    /// Drop it even though it holds rows (without it, a dataset with rows is only
    /// described).
    #[arg(long)]
    yes: bool,
    #[command(flatten)]
    via: ViaDaemon,
}

/// Help texts of the three commands.
pub const RETENTION_HELP: &str = "Partitions wholly older than the retention are dropped whole (a compacted month goes once its last day is older), never rewritten: at once, then at every write-down (the daemon's after each UTC midnight, or `ringfeed write-down`). Hot days older than it are dropped without being written down.

Examples:
  ringfeed retention crypto 400d
  ringfeed retention crypto 90d --rollups 10y     # 1m bars for 90 days, rollups for 10 years
  ringfeed retention crypto none --daemon";
/// See [`RETENTION_HELP`].
pub const TRIM_HELP: &str = "Removes rows with ts < --before in every stored timeframe, hot and cold. Whole partitions before the cut are dropped, one straddling it is rewritten without those rows; the rollup bars of the cut's day are recomputed from the rows left (a bar whose bucket straddles the cut keeps its start and is rebuilt from the rows at or after it). Running it again is a no-op; after a crash it finishes the job.

Examples:
  ringfeed trim --dataset crypto --before 2021-01-01
  ringfeed trim --dataset crypto --symbol LUNAUSDT --before 2022-06-01T00:00 --daemon";
/// See [`RETENTION_HELP`].
pub const DROP_HELP: &str = "Removes the dataset from the catalog first, then its WALs (_hot/<D>) and Parquet (dataset=<D>). A dataset holding rows is only described unless --yes is given. Afterwards the name is free for a new dataset with other settings.

Examples:
  ringfeed drop-dataset scratch
  ringfeed drop-dataset scratch --yes --daemon";

fn parse_span(s: &str) -> Result<Option<RetentionSpec>> {
    if s.trim() == "none" {
        return Ok(None);
    }
    Ok(Some(s.parse()?))
}

/// Run `ringfeed retention`.
pub fn retention(a: Retention) -> Result<()> {
    let r = parse_span(&a.retention)?;
    let rr = a.rollups.as_deref().map(parse_span).transpose()?.flatten();
    if a.via.run(|c| {
        c.set_retention(
            &a.dataset,
            r.map(|x| x.to_string()).as_deref(),
            rr.map(|x| x.to_string()).as_deref(),
        )
    })? {
        return Ok(());
    }
    let mut store = open_for_writing(&a.store.data_dir, "retention")?;
    report_recovery(&store);
    store.set_retention(&a.dataset, r, rr)?;
    let s = store.apply_retention(Some(&a.dataset), ringfeed_client::time::now_ns())?;
    eprintln!(
        "{}: retention {}{}; dropped {} parts ({} rows, {} bytes) and {} hot days",
        a.dataset,
        r.map_or("none".into(), |x| x.to_string()),
        rr.map_or(String::new(), |x| format!(", rollups {x}")),
        s.parts,
        s.rows,
        s.bytes + s.wal_bytes,
        s.wal_files
    );
    Ok(())
}

/// Run `ringfeed trim`.
pub fn trim(a: Trim) -> Result<()> {
    let before = parse_time(&a.before)?;
    if a.via.run(|c| {
        c.trim(
            &a.dataset,
            a.symbol.as_deref(),
            ringfeed_client::TimeSpec::Nanos(before),
        )
    })? {
        return Ok(());
    }
    let mut store = open_for_writing(&a.store.data_dir, "trim")?;
    report_recovery(&store);
    let s = store.trim(&a.dataset, a.symbol.as_deref(), before)?;
    eprintln!(
        "trimmed {} of {} before {}: {} parts dropped, {} rewritten, {} cold rows removed, {} bytes freed{}",
        a.symbol.as_deref().unwrap_or("every symbol"),
        a.dataset,
        ringfeed_client::time::iso(before),
        s.parts_dropped,
        s.parts_rewritten,
        s.rows,
        s.bytes_freed,
        if s.partial_day {
            "; the cut's day trimmed and its rollups recomputed"
        } else {
            ""
        }
    );
    Ok(())
}

/// Run `ringfeed drop-dataset`.
pub fn drop_dataset(a: DropDataset) -> Result<()> {
    if a.via.run(|c| c.drop_dataset(&a.dataset, a.yes))? {
        return Ok(());
    }
    let mut store = open_for_writing(&a.store.data_dir, "drop-dataset")?;
    report_recovery(&store);
    let fp = store.footprint(&a.dataset)?;
    if fp.rows > 0 && !a.yes {
        bail!(
            "dataset {:?} holds {fp}; nothing was removed: run again with --yes to drop it",
            a.dataset
        );
    }
    let fp = store.drop_dataset(&a.dataset)?;
    eprintln!("dropped dataset {}: {fp}", a.dataset);
    Ok(())
}
