//! `ringfeed-ingest`: files into the bar store's canonical batches. Binance kline CSV,
//! generic OHLCV CSV, trades CSV (each also zipped, as Binance and Lean ship them),
//! Parquet and Arrow/Feather files become bar or tick batches of
//! [`ringfeed_store::schema`]. Every row passes the store's row rules
//! ([`ringfeed_store::validate`], the same as client appends): bad rows are rejected with
//! file:line and a reason (or, for invalid-but-parseable values under
//! [`InvalidPolicy::Keep`], kept and flagged); `strict` turns the first bad row into an
//! error.
//!
//! Without a given format, a headerless CSV whose first line has Binance's 12-column
//! kline layout is read as one ([`sniff_binance_kline`]), so no column is lost; and a
//! file named like Binance's downloads (`ADABTC-1m-2021-11-27.csv`, [`BinanceName`])
//! gives the symbol when none is given. [`detect`] tells a caller both up front.
//!
//! Modules, by format: `csv` (the chunked, parallel CSV loader and its input: files,
//! zips, stdin), `line` (one CSV line into a row), `columnar` (Parquet and Feather),
//! `rows` (the row buffers both fill), `detect` (what a file's name and first line say),
//! `time` (timestamps), `field` (numbers and sides). This file holds the API: formats,
//! options, errors, column resolution, [`load`] and [`detect`].
//!
//! ```
//! use ringfeed_ingest::{load, IngestOptions, RowReport};
//! use ringfeed_store::schema::Kind;
//! let dir = tempfile::tempdir().unwrap();
//! let csv = dir.path().join("bars.csv");
//! std::fs::write(
//!     &csv,
//!     "ts,open,high,low,close,volume\n\
//!      2024-01-02T00:00:00Z,10,11,9,10.5,3\n\
//!      2024-01-02T00:01:00Z,10.5,10,11,10,1\n",
//! )
//! .unwrap();
//! let opts = IngestOptions { symbol: Some("BTCUSDT".into()), ..Default::default() };
//! let mut report = RowReport::default();
//! let mut rows = 0;
//! let mut sink = |b: arrow_array::RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
//!     rows += b.num_rows();
//!     Ok(())
//! };
//! load(Some(&csv), Kind::Bars, &opts, &mut report, &mut sink).unwrap();
//! // The second bar has high < low: rejected, with its line; the first is passed on.
//! assert_eq!((rows, report.rejected, report.rejects[0].line), (1, 1, 3));
//! ```

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod columnar;
mod csv;
mod detect;
mod field;
mod line;
mod rows;
mod time;

pub use detect::{sniff_binance_kline, BinanceName};
pub use ringfeed_store::validate::{BadRow, InvalidPolicy, RowPolicy, RowReport};
pub use time::parse_ts;

use ringfeed_store::schema::Kind;
use ringfeed_store::validate::RowRules;

use arrow_array::RecordBatch;
use chrono_tz::Tz;
use std::io::Read;
use std::path::{Path, PathBuf};

/// Input file format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Binance kline CSV: 12 columns, no header, open time in ms or µs.
    BinanceKline,
    /// Generic OHLCV CSV.
    Csv,
    /// Trades CSV (ts, price, size[, side][, trade_id]).
    TradesCsv,
    /// Parquet file (bars or trades by column names).
    Parquet,
    /// Arrow IPC file (Feather v2).
    Feather,
}

impl std::str::FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "binance-kline" | "binance" => Format::BinanceKline,
            "csv" => Format::Csv,
            "trades-csv" => Format::TradesCsv,
            "parquet" => Format::Parquet,
            "feather" | "arrow" | "ipc" => Format::Feather,
            _ => {
                return Err(format!(
                    "unknown format {s:?}: use binance-kline, csv, trades-csv, parquet or feather"
                ))
            }
        })
    }
}

impl Format {
    /// Guess from a file name (`.parquet`, `.feather`/`.arrow`/`.ipc`, else CSV, zipped
    /// CSV included).
    pub fn guess(path: &Path, kind: Kind) -> Format {
        match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
            "parquet" | "pq" => Format::Parquet,
            "feather" | "arrow" | "ipc" => Format::Feather,
            _ if kind == Kind::Ticks => Format::TradesCsv,
            _ => Format::Csv,
        }
    }
}

/// How CSV timestamps are written.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum TsFormat {
    /// Integers by magnitude (s < 1e11 ≤ ms < 1e14 ≤ µs < 1e17 ≤ ns, per value), ISO-8601,
    /// or `YYYYMMDD HHMMSS`.
    #[default]
    Auto,
    /// Unix seconds (fractions allowed).
    UnixS,
    /// Unix milliseconds.
    UnixMs,
    /// Unix microseconds.
    UnixUs,
    /// Unix nanoseconds.
    UnixNs,
    /// A chrono `strftime` pattern, e.g. `%Y%m%d %H%M%S`.
    Pattern(String),
}

impl std::str::FromStr for TsFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" | "iso" => TsFormat::Auto,
            "s" | "unix" | "unix-s" => TsFormat::UnixS,
            "ms" | "unix-ms" => TsFormat::UnixMs,
            "us" | "unix-us" => TsFormat::UnixUs,
            "ns" | "unix-ns" => TsFormat::UnixNs,
            p if p.contains('%') => TsFormat::Pattern(p.into()),
            _ => return Err(format!("unknown timestamp format {s:?}: use auto, s, ms, us, ns or a strftime pattern like \"%Y%m%d %H%M%S\"")),
        })
    }
}

/// Options for a load.
#[derive(Clone, Debug)]
pub struct IngestOptions {
    /// The file format; `None` guesses from the extension.
    pub format: Option<Format>,
    /// Symbol for files without a symbol column.
    pub symbol: Option<String>,
    /// CSV separator; `None` detects `,`, `;`, tab or `|` from the first line.
    pub separator: Option<u8>,
    /// Whether the CSV has a header; `None` detects it.
    pub header: Option<bool>,
    /// Column mapping overrides: canonical field → header name or 0-based index.
    pub columns: Vec<(String, String)>,
    /// Timestamp format for CSV text and integer columns.
    pub ts_format: TsFormat,
    /// Time zone of naive timestamps (default UTC).
    pub tz: Option<Tz>,
    /// Bad rows: reject or keep (flagged) rows that break a rule, and whether the first
    /// rejected row aborts the load.
    pub policy: RowPolicy,
    /// The dataset's rules beyond the values: its grid (`RowRules::for_dataset`). The
    /// default checks no grid.
    pub rules: RowRules,
    /// Rows per emitted batch.
    pub batch_rows: usize,
    /// Show a progress bar on stderr (hidden when stderr is not a terminal).
    pub progress: bool,
}

impl Default for IngestOptions {
    fn default() -> Self {
        IngestOptions {
            format: None,
            symbol: None,
            separator: None,
            header: None,
            columns: Vec::new(),
            ts_format: TsFormat::Auto,
            tz: None,
            policy: RowPolicy::default(),
            rules: RowRules::default(),
            batch_rows: 1 << 20,
            progress: false,
        }
    }
}

/// Failure of a load.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IngestError {
    /// The input could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `strict` was set and a row was bad.
    #[error("{row} (strict mode: nothing from this batch was written; fix the row or drop --strict to skip bad rows)")]
    Strict {
        /// The first bad row.
        row: BadRow,
    },
    /// The file has no symbol column and no symbol was given.
    #[error("{path}: no symbol column; pass --symbol")]
    NoSymbol {
        /// The file.
        path: PathBuf,
    },
    /// A required column is missing or has an unusable type.
    #[error("{path}: {detail}; map columns with --columns field=name|index (fields: ts, symbol, open, high, low, close, volume, price, size, side, trade_id)")]
    Columns {
        /// The file.
        path: PathBuf,
        /// What is missing.
        detail: String,
    },
    /// The file is not valid Parquet/Arrow.
    #[error("{path}: not a readable {format} file: {detail}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The expected format.
        format: &'static str,
        /// The decoder's error.
        detail: String,
    },
    /// The store refused a batch.
    #[error("writing to the store failed: {0}")]
    Sink(Box<dyn std::error::Error + Send + Sync>),
}

/// Callback receiving each parsed batch.
pub type Sink<'a> =
    dyn FnMut(RecordBatch) -> Result<(), Box<dyn std::error::Error + Send + Sync>> + 'a;

const ALIASES: &[(&str, &[&str])] = &[
    (
        "ts",
        &[
            "ts",
            "timestamp",
            "time",
            "date",
            "datetime",
            "date_time",
            "open_time",
            "t",
        ],
    ),
    ("symbol", &["symbol", "ticker", "pair", "instrument"]),
    ("open", &["open", "o"]),
    ("high", &["high", "h"]),
    ("low", &["low", "l"]),
    ("close", &["close", "c"]),
    ("volume", &["volume", "vol", "v", "base_volume"]),
    ("quote_volume", &["quote_volume", "quote_asset_volume"]),
    ("trades", &["trades", "count", "number_of_trades"]),
    // Binance futures files with a header name these taker_buy_volume and
    // taker_buy_quote_volume.
    (
        "taker_buy_base",
        &[
            "taker_buy_base",
            "taker_buy_base_asset_volume",
            "taker_buy_volume",
        ],
    ),
    (
        "taker_buy_quote",
        &[
            "taker_buy_quote",
            "taker_buy_quote_asset_volume",
            "taker_buy_quote_volume",
        ],
    ),
    ("price", &["price", "p"]),
    ("size", &["size", "amount", "quantity", "qty", "volume"]),
    ("side", &["side", "taker_side"]),
    ("buyer_maker", &["buyer_maker", "is_buyer_maker"]),
    ("trade_id", &["trade_id", "id", "tid"]),
];

/// The canonical bar fields, in the bar schema's order: indices of [`resolve`]'s answer.
pub(crate) const BAR_FIELDS: [&str; 11] = [
    "ts",
    "symbol",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "taker_buy_base",
    "taker_buy_quote",
];
/// The canonical tick fields: indices of [`resolve`]'s answer.
pub(crate) const TICK_FIELDS: [&str; 7] = [
    "ts",
    "symbol",
    "price",
    "size",
    "side",
    "trade_id",
    "buyer_maker",
];

/// Resolve canonical fields to column indices, given header names (or `None`).
pub(crate) fn resolve(
    fields: &[&str],
    names: Option<&[String]>,
    overrides: &[(String, String)],
    positional: &[&str],
) -> Result<Vec<Option<usize>>, String> {
    let mut out = Vec::new();
    for f in fields {
        let by_override = overrides.iter().find(|(k, _)| k == f).map(|(_, v)| v);
        let idx = match by_override {
            Some(v) => match v.parse::<usize>() {
                Ok(i) => Some(i),
                Err(_) => Some(
                    names
                        .and_then(|n| n.iter().position(|h| h.eq_ignore_ascii_case(v)))
                        .ok_or_else(|| format!("column {v:?} (for {f}) not found"))?,
                ),
            },
            None => match names {
                Some(n) => ALIASES.iter().find(|(k, _)| k == f).and_then(|(_, al)| {
                    al.iter()
                        .find_map(|a| n.iter().position(|h| h.trim().eq_ignore_ascii_case(a)))
                }),
                None => positional.iter().position(|p| p == f),
            },
        };
        out.push(idx);
    }
    Ok(out)
}

/// Load one input (`None` = stdin) into `kind` batches, passing each to `sink`.
pub fn load(
    path: Option<&Path>,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let shown = path
        .map(|p| p.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("-"));
    let format = opts.format.unwrap_or_else(|| match path {
        Some(p) => Format::guess(p, kind),
        None if kind == Kind::Ticks => Format::TradesCsv,
        None => Format::Csv,
    });
    // Binance's downloads carry the symbol only in their name.
    let named;
    let opts = match path.and_then(BinanceName::parse) {
        Some(n) if opts.symbol.is_none() => {
            named = IngestOptions {
                symbol: Some(n.symbol),
                ..opts.clone()
            };
            &named
        }
        _ => opts,
    };
    match format {
        Format::Parquet | Format::Feather => {
            let p = path.ok_or_else(|| IngestError::Columns {
                path: shown.clone(),
                detail: "Parquet and Feather input must be a file, not stdin".into(),
            })?;
            columnar::load_columnar(p, format, kind, opts, report, sink)
        }
        _ => csv::load_csv(path, &shown, format, kind, opts, report, sink),
    }
}

/// How [`load`] will read a file, known before loading it: for [`detect`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Detected {
    /// The format `load` will use.
    pub format: Format,
    /// The format was not given and came from the first line (a headerless CSV with
    /// Binance's 12-column kline layout).
    pub from_content: bool,
    /// For Binance kline CSV, the bar interval in ns (close time - open time of the
    /// first line).
    pub interval_ns: Option<i64>,
    /// What the file name says when it is a Binance download's.
    pub name: Option<BinanceName>,
}

/// How [`load`] will read `path` with `opts`: the format (given, by extension, or
/// detected from the first line) and what a Binance file name says. Reads the first
/// line only.
///
/// ```no_run
/// use ringfeed_ingest::{detect, Format, IngestOptions};
/// use ringfeed_store::schema::Kind;
/// let d = detect("ADABTC-1m-2021-11-27.csv".as_ref(), Kind::Bars, &IngestOptions::default())?;
/// assert_eq!(d.format, Format::BinanceKline);
/// assert_eq!(d.name.unwrap().symbol, "ADABTC");
/// # Ok::<(), ringfeed_ingest::IngestError>(())
/// ```
pub fn detect(path: &Path, kind: Kind, opts: &IngestOptions) -> Result<Detected, IngestError> {
    let name = BinanceName::parse(path);
    let format = opts.format.unwrap_or_else(|| Format::guess(path, kind));
    let mut d = Detected {
        format,
        from_content: false,
        interval_ns: None,
        name,
    };
    if !matches!(format, Format::Csv | Format::BinanceKline) {
        return Ok(d);
    }
    let ioerr = |source| IngestError::Io {
        path: path.into(),
        source,
    };
    let mut head = Vec::with_capacity(64 << 10);
    let mut archive = None;
    let (input, _) = csv::open_input(path, &mut archive)?;
    input.take(64 << 10).read_to_end(&mut head).map_err(ioerr)?;
    let first = head
        .split(|c| *c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    if let Some(first) = first {
        let layout = csv::Layout::of(first, opts);
        if format == Format::BinanceKline || layout.binance_kline(format, kind, opts) {
            d.from_content = format != Format::BinanceKline;
            d.format = Format::BinanceKline;
            d.interval_ns = sniff_binance_kline(first);
        }
    }
    Ok(d)
}
