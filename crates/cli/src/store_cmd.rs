//! `ringfeed ingest | query | write-down | delete`: the bar store from the command line.

use anyhow::{bail, Context, Result};
use arrow_array::RecordBatch;
use clap::Args;
use ringfeed_ingest::{self as ingest, Format, IngestOptions, InvalidPolicy, TsFormat};
use ringfeed_store::schema::Kind;
use ringfeed_store::validate::{RowPolicy, RowReport, RowRules};
use ringfeed_store::{
    BarStore, DatasetConfig, DeleteRange, FsyncPolicy, Query, Session, Symbols, Timeframe,
};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::output::{display_batch, iso, write_table, write_text};

/// Where the store lives.
#[derive(Args, Debug, Clone)]
pub struct Store {
    /// Data directory of the store.
    #[arg(long, default_value = "ringfeed-data")]
    pub data_dir: PathBuf,
}

/// How input files are read (shared by `ingest` and `append`).
#[derive(Args, Debug, Clone)]
pub struct Parse {
    /// Symbol for inputs without a symbol column.
    #[arg(long)]
    symbol: Option<String>,
    /// binance-kline, csv, trades-csv, parquet or feather (default: from the extension;
    /// a headerless CSV in Binance's 12-column kline layout is read as binance-kline).
    #[arg(long)]
    format: Option<Format>,
    /// CSV separator (default: detected).
    #[arg(long)]
    sep: Option<char>,
    /// The CSV has a header line (default: detected).
    #[arg(long, conflicts_with = "no_header")]
    header: bool,
    /// The CSV has no header line.
    #[arg(long)]
    no_header: bool,
    /// Column mapping, `field=name|index,...` (fields: ts, symbol, open, high, low, close,
    /// volume, quote_volume, trades, price, size, side, trade_id).
    #[arg(long, value_delimiter = ',')]
    columns: Vec<String>,
    /// Timestamp format: auto, s, ms, us, ns, or a strftime pattern like "%Y%m%d %H%M%S".
    #[arg(long, default_value = "auto")]
    ts_format: TsFormat,
    /// Time zone of naive timestamps (IANA name), default UTC.
    #[arg(long)]
    tz: Option<String>,
    /// Abort on the first bad row instead of rejecting it (nothing of the batch holding
    /// it is written).
    #[arg(long)]
    strict: bool,
    /// Keep rows that break a rule (NaN or negative prices, high < low, volume < 0, ts off
    /// the timeframe's grid) and flag them. Rows that do not parse are still rejected.
    #[arg(long)]
    pub(crate) keep_invalid: bool,
    /// Exit 0 even when rows were rejected (default: exit 3, see below).
    #[arg(long)]
    allow_rejects: bool,
}

/// The exit codes and row rules of `ingest` and `append`, for `--help`.
macro_rules! exit_codes {
    () => {
        "Exit status: 0 = every row loaded (flagged rows included); 3 = loaded, but rows were rejected (they are listed on stderr; --allow-rejects exits 0 instead); 1 = failed (with --strict: the first bad row, nothing of its batch written); 2 = bad arguments.

Row rules (the store's, the same for every way in): prices finite and not negative, high >= low, open and close inside [low, high], volume and the other amounts not negative, ts on the timeframe's grid (a 1m dataset takes 02:03:00, not 02:03:17); trades: price and size finite and not negative."
    };
}
pub(crate) use exit_codes;

/// Exit code of `ingest` and `append` when rows were rejected.
const EXIT_REJECTED: i32 = 3;

impl Parse {
    /// The ingest options (`ringfeed_ingest`) for these flags.
    pub fn options(&self, progress: bool) -> Result<IngestOptions> {
        Ok(IngestOptions {
            format: self.format,
            symbol: self.symbol.clone(),
            separator: self.sep.map(|c| c as u8),
            header: if self.header {
                Some(true)
            } else if self.no_header {
                Some(false)
            } else {
                None
            },
            columns: self
                .columns
                .iter()
                .map(|kv| {
                    kv.split_once('=')
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .with_context(|| format!("--columns entry {kv:?} is not field=name"))
                })
                .collect::<Result<_>>()?,
            ts_format: self.ts_format.clone(),
            tz: self
                .tz
                .as_deref()
                .map(ringfeed_store::session::parse_tz)
                .transpose()?,
            policy: RowPolicy {
                invalid: if self.keep_invalid {
                    InvalidPolicy::Keep
                } else {
                    InvalidPolicy::Reject
                },
                strict: self.strict,
            },
            progress,
            ..Default::default()
        })
    }
}

/// `ringfeed ingest`.
#[derive(Args, Debug)]
#[command(after_help = concat!(
    "Examples:
  ringfeed ingest --dataset crypto ADABTC-1m-2021-11-27.csv
      (a Binance kline file: format, symbol and timeframe come from the file)
  ringfeed ingest --dataset perp --symbol BTC-PERP --rollups 5m,1h btc-perp_1m.csv

Without --format, a headerless 12-column Binance kline CSV is recognised by its first line; a
file named like Binance's downloads (SYMBOL-1m-YYYY-MM-DD.csv or SYMBOL-1m-YYYY-MM.csv) gives
the symbol and timeframe when --symbol and --timeframe are not given. A given flag always wins.
Binance's .zip downloads are read as they are.

",
    exit_codes!()
))]
pub struct Ingest {
    #[command(flatten)]
    store: Store,
    /// Dataset to write (created on first ingest).
    #[arg(long)]
    dataset: String,
    /// Resolution of the input: a bar timeframe like 1m, or `tick` for trades
    /// (default: what Binance file names or kline close times say, else the existing
    /// dataset's, else 1m).
    #[arg(long)]
    timeframe: Option<Timeframe>,
    #[command(flatten)]
    parse: Parse,
    /// Rollup targets for a new dataset, e.g. 5m,15m,1h,1d, calendar months and years
    /// (1d,1M,1Y), or `none` (default: the ladder 1m,5m,15m,1h,1d above the timeframe).
    #[arg(long, value_delimiter = ',')]
    rollups: Option<Vec<String>>,
    /// Trading session of a new dataset, e.g. "09:30-16:00 America/New_York".
    #[arg(long)]
    session: Option<Session>,
    /// WAL fsync policy of a new dataset: always, never or <N>ms.
    #[arg(long, default_value = "always")]
    fsync: FsyncPolicy,
    /// First day of the week of a new dataset's 1w bars resampled on read: mon, tue,
    /// ..., sun (with --session, the week starts at that weekday's session).
    #[arg(long, value_name = "DAY", default_value = "mon", value_parser = parse_weekday)]
    week_start: ringfeed_store::timeframe::Weekday,
    /// Input files; `-` reads stdin; a .zip holding one CSV file (as Binance ships
    /// them) is read in place.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `ringfeed query`.
#[derive(Args, Debug)]
#[command(after_help = "Examples:
  ringfeed query --dataset crypto --symbol ADABTC --timeframe 5m --start 2021-11-27 --end 2021-11-28
  ringfeed query --dataset crypto --timeframe 1h --offset 30m --format csv > bars.csv
  ringfeed query --dataset stocks --symbol SPY --timeframe 1M
  ringfeed query --dataset crypto --timeframe 1w --week-start sun

The table shows the first and last --rows rows (default 10 each; --all for every row) and
leaves out columns that are empty in every row (it says which). Text formats print floats
with up to 15 significant digits, so 0.1 + 0.2 prints 0.3; arrow and parquet keep the exact
values.")]
pub struct QueryArgs {
    #[command(flatten)]
    store: Store,
    /// Dataset to read.
    #[arg(long)]
    dataset: String,
    /// Symbols, comma-separated, or `*` for all.
    #[arg(long, default_value = "*")]
    symbol: String,
    /// Timeframe: stored or resampled on read (any N{s,m,h,d,w}, or calendar months and
    /// years N{M,Y}: 1M, 3M, 1Y; capital M is months, lowercase m minutes).
    #[arg(long, default_value = "1m")]
    timeframe: Timeframe,
    /// First day of 1w buckets: mon, tue, ..., sun (default: the dataset's, Monday
    /// unless set when it was created).
    #[arg(long, value_name = "DAY", value_parser = parse_weekday)]
    week_start: Option<ringfeed_store::timeframe::Weekday>,
    /// Bucket offset for resampling, e.g. 15m or -1h.
    #[arg(long)]
    offset: Option<String>,
    /// First timestamp included (ISO-8601, date, or Unix s/ms/us/ns).
    #[arg(long)]
    start: Option<String>,
    /// First timestamp excluded.
    #[arg(long)]
    end: Option<String>,
    /// Columns besides ts and symbol, comma-separated.
    #[arg(long, value_delimiter = ',')]
    fields: Option<Vec<String>>,
    /// At most N rows per symbol.
    #[arg(long)]
    limit: Option<usize>,
    /// Take the limit from the end.
    #[arg(long)]
    from_end: bool,
    /// Output: table, csv, json (one object per line), arrow (IPC stream) or parquet.
    #[arg(long, default_value = "table")]
    format: String,
    /// Table: show the first N and the last N rows, with a line saying how many are left
    /// out between them.
    #[arg(long, default_value_t = 10, value_name = "N")]
    rows: usize,
    /// Table: show every row.
    #[arg(long, conflicts_with = "rows")]
    all: bool,
}

/// `ringfeed write-down`.
#[derive(Args, Debug)]
pub struct WriteDown {
    #[command(flatten)]
    store: Store,
    /// Only this dataset (default: all).
    #[arg(long)]
    dataset: Option<String>,
    /// Write down days before this UTC date (default: before today).
    #[arg(long, conflicts_with = "all")]
    before: Option<String>,
    /// Write down every day, today included.
    #[arg(long)]
    all: bool,
    /// Leave the days as day files: do not merge finished months into one file each
    /// (a later write-down or `ringfeed compact` merges them). Local stores only; the
    /// daemon always compacts.
    #[arg(long, conflicts_with_all = ["daemon", "socket"])]
    no_compact: bool,
    #[command(flatten)]
    via: ViaDaemon,
}

/// `ringfeed compact`.
#[derive(Args, Debug)]
pub struct Compact {
    #[command(flatten)]
    store: Store,
    /// Only this dataset (default: all).
    #[arg(long)]
    dataset: Option<String>,
    /// Compact the months that end before this UTC date (default: every month, the current
    /// one included; a month compacted early is rewritten when more of its days are
    /// written down).
    #[arg(long)]
    before: Option<String>,
}

/// `--daemon` / `--socket` of the store commands a running daemon can do for us.
#[derive(Args, Debug)]
pub struct ViaDaemon {
    /// Ask the running daemon to do it (ringfeedd holds its data directory, so a second
    /// writer is refused; it also drops the cached query results the change affects).
    #[arg(long)]
    daemon: bool,
    /// The daemon's socket (implies --daemon; default $RINGFEED_SOCKET, else the daemon's
    /// default path).
    #[arg(long)]
    socket: Option<PathBuf>,
}

impl ViaDaemon {
    /// With `--daemon` or `--socket`: run `f` on a connection and print its summary.
    pub(crate) fn run(
        &self,
        f: impl FnOnce(&mut ringfeed_client::Client) -> Result<String, ringfeed_client::ClientError>,
    ) -> Result<bool> {
        if !self.daemon && self.socket.is_none() {
            return Ok(false);
        }
        let mut client = ringfeed_client::Client::connect(self.socket.as_deref())?;
        eprintln!("ringfeedd {}", f(&mut client)?);
        Ok(true)
    }
}

/// `ringfeed delete`.
#[derive(Args, Debug)]
pub struct Delete {
    #[command(flatten)]
    store: Store,
    /// Dataset.
    #[arg(long)]
    dataset: String,
    /// Symbol to delete from (`*` = all symbols).
    #[arg(long)]
    symbol: String,
    /// First timestamp deleted.
    #[arg(long)]
    start: String,
    /// First timestamp kept after the range.
    #[arg(long)]
    end: String,
    #[command(flatten)]
    via: ViaDaemon,
}

/// The one time grammar of every face (`ringfeed_client::time`).
pub(crate) fn parse_time(s: &str) -> Result<i64> {
    Ok(ringfeed_client::time::parse_time(s)?)
}

pub(crate) fn print_bad_rows(report: &RowReport) {
    for r in &report.rejects {
        eprintln!("  rejected {r}");
    }
    if report.rejected > report.rejects.len() as u64 {
        eprintln!(
            "  … and {} more rejected rows",
            report.rejected - report.rejects.len() as u64
        );
    }
    for r in &report.flags {
        eprintln!("  flagged {r}");
    }
}

/// After the summary of a load: exit [`EXIT_REJECTED`] when rows were rejected, unless
/// `--allow-rejects`. Called last, with everything written and closed.
pub(crate) fn exit_if_rejected(report: &RowReport, parse: &Parse) {
    if report.rejected > 0 && !parse.allow_rejects {
        eprintln!(
            "ringfeed: loaded, but {} row(s) were rejected (listed above); exit status {EXIT_REJECTED}. Fix them, pass --keep-invalid to keep rows that break a rule, or --allow-rejects to exit 0",
            report.rejected
        );
        std::process::exit(EXIT_REJECTED);
    }
}

pub(crate) fn span(r: &RowReport) -> String {
    match (r.min_ts, r.max_ts) {
        (Some(a), Some(b)) => format!("{} .. {}", iso(a), iso(b)),
        _ => "(empty)".into(),
    }
}

/// What an input file says about itself: how it will be read, and the timeframe its
/// name (or, for Binance klines, its close times) gives.
pub(crate) struct Input {
    shown: String,
    detected: ingest::Detected,
}

impl Input {
    /// Every input but stdin, as `ingest::load` will read it.
    pub(crate) fn all(files: &[PathBuf], kind: Kind, opts: &IngestOptions) -> Result<Vec<Input>> {
        files
            .iter()
            .filter(|f| f.as_os_str() != "-")
            .map(|f| {
                Ok(Input {
                    shown: f.display().to_string(),
                    detected: ingest::detect(f, kind, opts)?,
                })
            })
            .collect()
    }

    /// The timeframe the file says it holds, and where it says so.
    pub(crate) fn timeframe(&self) -> Option<(Timeframe, &'static str)> {
        let d = &self.detected;
        if let Some(tf) = d.name.as_ref().and_then(|n| n.timeframe) {
            return Some((tf, "file name"));
        }
        let ns = d.interval_ns?;
        let tf = (ns % 1_000_000_000 == 0)
            .then(|| format!("{}s", ns / 1_000_000_000).parse().ok())
            .flatten()?;
        Some((tf, "kline close times"))
    }

    /// Tell the user what was not given but taken from the file.
    pub(crate) fn tell(&self, parse: &Parse) {
        let d = &self.detected;
        let mut said = Vec::new();
        if d.from_content {
            said.push(
                "Binance kline CSV (detected: 12 columns, no header; all columns loaded)"
                    .to_string(),
            );
        }
        if let (None, Some(n)) = (&parse.symbol, &d.name) {
            said.push(format!("symbol {} from the file name", n.symbol));
        }
        if !said.is_empty() {
            eprintln!("ringfeed: {}: {}", self.shown, said.join("; "));
        }
    }
}

/// The timeframe of `ingest`: `--timeframe` when given (a file that says otherwise is
/// a warning), else the one the files agree on; `None` when nothing says.
pub(crate) fn ingest_timeframe(
    given: Option<Timeframe>,
    inputs: &[Input],
) -> Result<Option<Timeframe>> {
    let said: Vec<(&Input, Timeframe, &str)> = inputs
        .iter()
        .filter_map(|i| i.timeframe().map(|(tf, from)| (i, tf, from)))
        .collect();
    if let Some(tf) = given {
        warn_timeframe(&said, tf, &format!("--timeframe {tf} was given"));
        return Ok(Some(tf));
    }
    let Some(&(_, first, from)) = said.first() else {
        return Ok(None);
    };
    if let Some((other, tf, _)) = said.iter().find(|(_, tf, _)| *tf != first) {
        bail!(
            "the files hold different timeframes ({} is {first}, {} is {tf}); ingest them separately, or pass --timeframe",
            said[0].0.shown,
            other.shown
        );
    }
    eprintln!("ringfeed: timeframe {first} from the {from} (pass --timeframe to override)");
    Ok(Some(first))
}

/// Warn about every file that says it holds another timeframe than `tf`.
pub(crate) fn warn_timeframe(said: &[(&Input, Timeframe, &str)], tf: Timeframe, why: &str) {
    for (input, file_tf, from) in said {
        if *file_tf != tf {
            eprintln!(
                "ringfeed: warning: {}: the {from} says {file_tf} bars, but {why}; loading them as {tf}",
                input.shown
            );
        }
    }
}

/// Run `ringfeed ingest`.
pub fn ingest(a: Ingest) -> Result<()> {
    // What the files say is known before the dataset is made: it may give the timeframe.
    let probe_kind = match a.timeframe {
        Some(tf) if tf.is_tick() => Kind::Ticks,
        _ => Kind::Bars,
    };
    let inputs = Input::all(&a.files, probe_kind, &a.parse.options(false)?)?;
    let timeframe = ingest_timeframe(a.timeframe, &inputs)?;
    for i in &inputs {
        i.tell(&a.parse);
    }
    let mut store = BarStore::open(&a.store.data_dir)
        .with_context(|| format!("cannot open store {}", a.store.data_dir.display()))?;
    report_recovery(&store);
    // Nothing said: an existing dataset's base timeframe, else 1m.
    let timeframe = match (timeframe, store.dataset(&a.dataset)) {
        (Some(tf), _) => tf,
        (None, Some(d)) => d.config.base,
        (None, None) => "1m".parse().expect("a timeframe"),
    };
    if store.dataset(&a.dataset).is_none() {
        let mut cfg = DatasetConfig::new(timeframe);
        if let Some(r) = &a.rollups {
            cfg.rollups = if r.len() == 1 && r[0] == "none" {
                Vec::new()
            } else {
                r.iter().map(|s| s.parse()).collect::<Result<_, _>>()?
            };
        }
        cfg.session = a.session.clone();
        cfg.fsync = a.fsync;
        cfg.week_start = a.week_start;
        store.create_dataset(&a.dataset, cfg)?;
    } else {
        let base = store.dataset(&a.dataset).unwrap().config.base;
        if base != timeframe {
            bail!(
                "dataset {} stores {base} data; ingest --timeframe {base} (coarser timeframes are rollups)",
                a.dataset
            );
        }
    }
    let kind = if timeframe.is_tick() {
        Kind::Ticks
    } else {
        Kind::Bars
    };
    let mut opts = a.parse.options(true)?;
    opts.rules = RowRules::for_dataset(&store.dataset(&a.dataset).expect("created above").config);
    // Batches of at most 128k rows go to a writer thread, so the store writes one batch
    // while the parser reads the next (a symbol-year: parse ~120 ms, WAL writes 60-100 ms,
    // which used to add up).
    opts.batch_rows = opts.batch_rows.min(WRITE_BATCH_ROWS);
    let t0 = Instant::now();
    let mut report = RowReport::default();
    let written = write_while_parsing(&mut store, &a.dataset, |sink| {
        for f in &a.files {
            let path = (f.as_os_str() != "-").then_some(f.as_path());
            ingest::load(path, kind, &opts, &mut report, sink)?;
        }
        Ok(())
    })?;
    let secs = t0.elapsed().as_secs_f64();
    eprintln!(
        "ingested {} rows ({} unique keys) into {}/{} in {:.2}s ({:.0} rows/s): {} symbols [{}], span {}, {} rejected, {} flagged",
        report.rows_ok,
        written,
        a.dataset,
        timeframe,
        secs,
        report.rows_ok as f64 / secs.max(1e-9),
        report.symbols.len(),
        report.symbols.iter().take(10).cloned().collect::<Vec<_>>().join(","),
        span(&report),
        report.rejected,
        report.flagged
    );
    print_bad_rows(&report);
    drop(store);
    exit_if_rejected(&report, &a.parse);
    Ok(())
}

/// A weekday flag: `mon`, `Monday`, `sun`, ... (any case).
fn parse_weekday(s: &str) -> Result<ringfeed_store::timeframe::Weekday, String> {
    s.trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a weekday: write mon, tue, wed, thu, fri, sat or sun"))
}

/// Run `ringfeed query`.
pub fn query(a: QueryArgs) -> Result<()> {
    let store = BarStore::open_read_only(&a.store.data_dir)
        .with_context(|| format!("cannot open store {}", a.store.data_dir.display()))?;
    let mut q = Query::new(&a.dataset, a.timeframe);
    // The symbol-list forms of every face: "A,B", " A , B ", "*".
    let symbols = ringfeed_client::protocol::symbol_list(&[&a.symbol]);
    q.symbols = if symbols.is_empty() {
        Symbols::All
    } else {
        Symbols::List(symbols)
    };
    q.offset = a
        .offset
        .as_deref()
        .map(ringfeed_store::timeframe::parse_duration)
        .transpose()?;
    q.start = a.start.as_deref().map(parse_time).transpose()?;
    q.end = a.end.as_deref().map(parse_time).transpose()?;
    if let (Some(s), Some(e)) = (q.start, q.end) {
        if s >= e {
            bail!(
                "--start {} is not before --end {}: start must be before end (the end is excluded)",
                iso(s),
                iso(e)
            );
        }
    }
    q.fields = a.fields.clone();
    q.limit = a.limit;
    q.from_end = a.from_end;
    q.week_start = a.week_start;
    let batch = store.query(&q)?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    match a.format.as_str() {
        "table" => {
            let shown = (!a.all).then_some(a.rows);
            write_table(&mut out, &display_batch(&batch)?, shown)?
        }
        "csv" => write_text(&mut out, &display_batch(&batch)?, false)?,
        "json" => write_text(&mut out, &display_batch(&batch)?, true)?,
        "arrow" => {
            let mut w = arrow_ipc::writer::StreamWriter::try_new(&mut out, &batch.schema())?;
            w.write(&batch)?;
            w.finish()?;
        }
        "parquet" => {
            let mut buf = Vec::new();
            let mut w = parquet::arrow::ArrowWriter::try_new(&mut buf, batch.schema(), None)?;
            w.write(&batch)?;
            w.close()?;
            out.write_all(&buf)?;
        }
        f => bail!("unknown output format {f:?}: use table, csv, json, arrow or parquet"),
    }
    out.flush()?;
    Ok(())
}

/// Rows per batch handed from the parser to the store's writer thread by `ingest`.
const WRITE_BATCH_ROWS: usize = 128 * 1024;

/// Run `parse` (which hands batches to the sink it is given) while a second thread upserts
/// each batch into `dataset`, in order, at most two batches behind. The first failure wins:
/// a failed upsert stops the parse (its sink refuses the next batch) and is the error
/// returned, and nothing after the failed batch is written. Returns the rows written.
fn write_while_parsing(
    store: &mut BarStore,
    dataset: &str,
    parse: impl FnOnce(&mut ingest::Sink<'_>) -> Result<()>,
) -> Result<usize> {
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    let (tx, rx) = std::sync::mpsc::sync_channel::<RecordBatch>(2);
    std::thread::scope(|sc| {
        let writer = sc.spawn(move || -> Result<usize, BoxError> {
            let mut written = 0;
            for b in rx {
                written += store.upsert(dataset, &b)?.rows;
            }
            Ok(written)
        });
        let mut sink = |b: RecordBatch| -> Result<(), BoxError> {
            tx.send(b)
                .map_err(|_| "the store's writer stopped (its error follows)".into())
        };
        let parsed = parse(&mut sink);
        drop(tx);
        let written = writer
            .join()
            .map_err(|_| anyhow::anyhow!("the store's writer thread panicked"))?;
        // The writer's error is the cause when both failed.
        let written = written.map_err(|e| anyhow::anyhow!(e))?;
        parsed?;
        Ok(written)
    })
}

/// Run `ringfeed write-down`.
pub fn write_down(a: WriteDown) -> Result<()> {
    if a.via
        .run(|c| c.write_down(a.dataset.as_deref(), a.before.as_deref(), a.all))?
    {
        return Ok(());
    }
    let mut store = open_for_writing(&a.store.data_dir, "write-down")?;
    report_recovery(&store);
    let before = if a.all {
        i64::MAX
    } else if let Some(d) = &a.before {
        before_day(d)?
    } else {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_secs() as i64;
        now.div_euclid(86_400)
    };
    let t0 = Instant::now();
    let s = if a.no_compact {
        store.write_down_uncompacted(a.dataset.as_deref(), before)?
    } else {
        store.write_down(a.dataset.as_deref(), before)?
    };
    eprintln!(
        "wrote down {} partitions: {} rows, {} bytes of Parquet ({:.1} bytes/row) in {:.2}s; catalog v{}",
        s.partitions,
        s.rows,
        s.bytes,
        s.bytes as f64 / (s.rows.max(1)) as f64,
        t0.elapsed().as_secs_f64(),
        store.catalog().version
    );
    if s.compacted_months > 0 {
        eprintln!(
            "compacted {} day parts into {} month parts (one file per dataset, timeframe and finished month)",
            s.compacted_parts, s.compacted_months
        );
    }
    Ok(())
}

/// A `--before` date of write-down and compact as a day number.
fn before_day(d: &str) -> Result<i64> {
    ringfeed_store::store::parse_day(d)
        .with_context(|| format!("--before {d:?} is not a YYYY-MM-DD date"))
}

/// Run `ringfeed compact`.
pub fn compact(a: Compact) -> Result<()> {
    let mut store = open_for_writing(&a.store.data_dir, "compact")?;
    report_recovery(&store);
    let before = a.before.as_deref().map_or(Ok(i64::MAX), before_day)?;
    let t0 = Instant::now();
    let c = store.compact(a.dataset.as_deref(), before)?;
    eprintln!(
        "compacted {} parts into {} month parts: {} rows, {} → {} bytes ({:.1} bytes/row) in {:.2}s; catalog v{}",
        c.parts_in,
        c.months,
        c.rows,
        c.bytes_in,
        c.bytes_out,
        c.bytes_out as f64 / (c.rows.max(1)) as f64,
        t0.elapsed().as_secs_f64(),
        store.catalog().version
    );
    Ok(())
}

/// Run `ringfeed delete`.
pub fn delete(a: Delete) -> Result<()> {
    let range = DeleteRange {
        symbol: (a.symbol != "*").then(|| a.symbol.clone()),
        start: parse_time(&a.start)?,
        end: parse_time(&a.end)?,
    };
    let sym = range.symbol.as_deref();
    if a.via.run(|c| {
        c.delete(
            &a.dataset,
            sym,
            ringfeed_client::TimeSpec::Nanos(range.start),
            ringfeed_client::TimeSpec::Nanos(range.end),
        )
    })? {
        return Ok(());
    }
    let mut store = open_for_writing(&a.store.data_dir, "delete")?;
    report_recovery(&store);
    let days = store.delete(&a.dataset, range)?;
    eprintln!("deleted from {days} days of {}", a.dataset);
    Ok(())
}

/// Open the store for `ringfeed <command>`; when another process holds it, point at
/// `ringfeed <command> --daemon` (the daemon can do it for us).
pub(crate) fn open_for_writing(dir: &Path, command: &str) -> Result<BarStore> {
    BarStore::open(dir).map_err(|e| {
        let hint = match e {
            ringfeed_store::store::OpenError::Locked { .. } => {
                format!("; when that is ringfeedd, `ringfeed {command} --daemon` asks it to")
            }
            _ => String::new(),
        };
        anyhow::anyhow!("cannot open store {}: {e}{hint}", dir.display())
    })
}

/// Tell the user what opening the store for writing repaired.
pub(crate) fn report_recovery(store: &BarStore) {
    for line in store.recovery_notes() {
        eprintln!("ringfeed: {line}");
    }
}
