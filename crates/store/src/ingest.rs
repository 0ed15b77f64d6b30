//! Loaders: Binance kline CSV, generic OHLCV CSV, trades CSV, Parquet and Arrow/Feather
//! files, into canonical bar or tick batches. Every row passes the store's row rules
//! ([`crate::validate`], the same as client appends): bad rows are rejected with file:line
//! and a reason (or, for invalid-but-parseable values under [`InvalidPolicy::Keep`], kept
//! and flagged); `strict` turns the first bad row into an error.
//!
//! Without a given format, a headerless CSV whose first line has Binance's 12-column
//! kline layout is read as one ([`sniff_binance_kline`]), so no column is lost; and a
//! file named like Binance's downloads (`ADABTC-1m-2021-11-27.csv`, [`BinanceName`])
//! gives the symbol when none is given. [`detect`] tells a caller both up front.

mod columnar;
mod detect;
mod time;

use columnar::load_columnar;
pub use time::parse_ts;

pub use detect::{sniff_binance_kline, BinanceName};

use crate::schema::{Kind, TickColumns};
pub use crate::validate::{BadRow, InvalidPolicy, RowPolicy, RowReport};
use crate::validate::{BarRow, RowFault, RowRules};
use arrow_array::builder::StringViewBuilder;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_buffer::NullBuffer;
use arrow_schema::ArrowError;

use chrono_tz::Tz;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

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

fn trim(b: &[u8]) -> &[u8] {
    let mut s = b;
    while let [first, rest @ ..] = s {
        if first.is_ascii_whitespace() || *first == b'"' {
            s = rest;
        } else {
            break;
        }
    }
    while let [rest @ .., last] = s {
        if last.is_ascii_whitespace() || *last == b'"' {
            s = rest;
        } else {
            break;
        }
    }
    s
}

fn num(b: &[u8], what: &str) -> Result<f64, String> {
    let t = trim(b);
    if let Some(x) = fast_decimal(t) {
        return Ok(x);
    }
    lexical_core::parse::<f64>(t)
        .map_err(|_| format!("{what}: not a number: {:?}", String::from_utf8_lossy(t)))
}

/// Exact powers of ten representable in an f64.
const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// `[-]digits[.digits]` with a mantissa below 2^53 and at most 22 decimals, the common case
/// in market data, parsed as `mantissa / 10^decimals`: both are exact f64 values and IEEE
/// division rounds correctly, so this is the correctly rounded value, the same bits
/// `lexical_core::parse` returns (Clinger's fast path). `None` for anything else.
#[inline]
fn fast_decimal(t: &[u8]) -> Option<f64> {
    let (neg, d) = match t {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, t),
    };
    // At most 19 characters: at most 19 digits, so the mantissa cannot overflow a u64.
    if d.is_empty() || d.len() > 19 {
        return None;
    }
    let mut m: u64 = 0;
    let mut i = 0;
    while i < d.len() {
        let c = d[i].wrapping_sub(b'0');
        if c > 9 {
            break;
        }
        m = m * 10 + u64::from(c);
        i += 1;
    }
    if i == 0 {
        return None;
    }
    let mut decimals = 0;
    if i < d.len() {
        if d[i] != b'.' {
            return None;
        }
        let s = i + 1;
        i = s;
        while i < d.len() {
            let c = d[i].wrapping_sub(b'0');
            if c > 9 {
                return None;
            }
            m = m * 10 + u64::from(c);
            i += 1;
        }
        decimals = i - s;
        if decimals == 0 {
            return None;
        }
    }
    if m > (1u64 << 53) {
        return None;
    }
    let x = m as f64 / POW10[decimals];
    Some(if neg { -x } else { x })
}

fn parse_side(b: &[u8]) -> Option<i8> {
    match trim(b).to_ascii_lowercase().as_slice() {
        b"buy" | b"b" | b"1" | b"bid" => Some(1),
        b"sell" | b"s" | b"-1" | b"ask" => Some(-1),
        _ => None,
    }
}

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

/// Resolve canonical fields to column indices, given header names (or `None`).
fn resolve(
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
            load_columnar(p, format, kind, opts, report, sink)
        }
        _ => load_csv(path, &shown, format, kind, opts, report, sink),
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
/// use ringfeed_store::ingest::{detect, Format, IngestOptions};
/// use ringfeed_store::schema::Kind;
/// let d = detect("ADABTC-1m-2021-11-27.csv".as_ref(), Kind::Bars, &IngestOptions::default())?;
/// assert_eq!(d.format, Format::BinanceKline);
/// assert_eq!(d.name.unwrap().symbol, "ADABTC");
/// # Ok::<(), ringfeed_store::ingest::IngestError>(())
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
    let (input, _) = open_input(path, &mut archive)?;
    input.take(64 << 10).read_to_end(&mut head).map_err(ioerr)?;
    let first = head
        .split(|c| *c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .find(|l| !l.iter().all(u8::is_ascii_whitespace));
    if let Some(first) = first {
        let layout = Layout::of(first, opts);
        if format == Format::BinanceKline || layout.binance_kline(format, kind, opts) {
            d.from_content = format != Format::BinanceKline;
            d.format = Format::BinanceKline;
            d.interval_ns = sniff_binance_kline(first);
        }
    }
    Ok(d)
}

/// Whether `path` is a zip archive (by its name).
fn is_zip(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("zip"))
}

/// The bytes of a CSV input and their length when known: the file, or the one CSV
/// inside a zip archive (Binance's and Lean's downloads), read in place. `archive`
/// holds the open archive the reader borrows.
fn open_input<'a>(
    path: &Path,
    archive: &'a mut Option<zip::ZipArchive<std::fs::File>>,
) -> Result<(Box<dyn Read + 'a>, Option<u64>), IngestError> {
    let file = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.into(),
        source,
    })?;
    if !is_zip(path) {
        let len = file.metadata().ok().map(|m| m.len());
        return Ok((Box::new(file), len));
    }
    let dec = |detail: String| IngestError::Decode {
        path: path.into(),
        format: "zip",
        detail,
    };
    let z = archive.insert(zip::ZipArchive::new(file).map_err(|e| dec(e.to_string()))?);
    let csv: Vec<usize> = (0..z.len())
        .filter(|i| {
            z.name_for_index(*i)
                .is_some_and(|n| !n.ends_with('/') && n.to_ascii_lowercase().ends_with(".csv"))
        })
        .collect();
    let [i] = csv[..] else {
        return Err(dec(format!(
            "it holds {} CSV files; ingest reads a zip holding exactly one (unzip it and ingest the files)",
            csv.len()
        )));
    };
    let entry = z.by_index(i).map_err(|e| dec(e.to_string()))?;
    let len = entry.size();
    Ok((Box::new(entry), Some(len)))
}

/// The separator, fields and header of a CSV's first non-blank line.
struct Layout<'a> {
    line: &'a [u8],
    sep: u8,
    fields: Vec<&'a [u8]>,
    header: bool,
}

impl<'a> Layout<'a> {
    fn of(first: &'a [u8], opts: &IngestOptions) -> Self {
        let sep = opts.separator.unwrap_or_else(|| {
            [b',', b';', b'\t', b'|']
                .into_iter()
                .max_by_key(|s| first.iter().filter(|c| *c == s).count())
                .unwrap_or(b',')
        });
        let fields: Vec<&[u8]> = first.split(|c| *c == sep).collect();
        let looks_header = parse_ts(fields[0], &opts.ts_format, opts.tz.as_ref()).is_err()
            && fields[0].iter().any(u8::is_ascii_alphabetic);
        Layout {
            line: first,
            sep,
            header: opts.header.unwrap_or(looks_header),
            fields,
        }
    }

    /// A CSV of bars, format not given, no column mapping, no header, and a first line
    /// of Binance's kline layout: read it as Binance kline CSV.
    fn binance_kline(&self, format: Format, kind: Kind, opts: &IngestOptions) -> bool {
        opts.format.is_none()
            && format == Format::Csv
            && kind == Kind::Bars
            && opts.columns.is_empty()
            && !self.header
            && self.sep == b','
            && sniff_binance_kline(self.line).is_some()
    }
}

/// Row buffers the CSV parser fills: bars ([`BarBuf`]) or ticks ([`TickColumns`]).
trait RowBuf: Default + Send {
    fn rows(&self) -> usize;
    /// Make room for `n` more rows.
    fn reserve(&mut self, n: usize);
    /// Drop every row, keeping the allocations.
    fn clear(&mut self);
    /// Append rows `a..b` of `src` (which may be emptied by the call when it moves all of them).
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize);
    /// Build the record batch of every row, updating the report's totals, and clear.
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError>;
}

/// A nullable column under construction: values, plus validity once a null arrives.
#[derive(Default)]
struct OptVec<T> {
    vals: Vec<T>,
    /// Validity per row; empty while every row is valid.
    valid: Vec<bool>,
}

impl<T: Copy + Default> OptVec<T> {
    #[inline]
    fn push(&mut self, v: Option<T>) {
        match v {
            Some(x) => {
                self.vals.push(x);
                if !self.valid.is_empty() {
                    self.valid.push(true);
                }
            }
            None => {
                if self.valid.is_empty() {
                    self.valid.resize(self.vals.len(), true);
                }
                self.vals.push(T::default());
                self.valid.push(false);
            }
        }
    }
    fn extend_from(&mut self, src: &Self, a: usize, b: usize) {
        let before = self.vals.len();
        self.vals.extend_from_slice(&src.vals[a..b]);
        let src_nulls = !src.valid.is_empty() && src.valid[a..b].contains(&false);
        if src_nulls || !self.valid.is_empty() {
            self.valid.resize(before, true);
            if src.valid.is_empty() {
                self.valid.resize(self.vals.len(), true);
            } else {
                self.valid.extend_from_slice(&src.valid[a..b]);
            }
        }
    }
    fn take(&mut self) -> (Vec<T>, Option<NullBuffer>) {
        let valid = std::mem::take(&mut self.valid);
        let nulls = (!valid.is_empty() && valid.contains(&false)).then(|| NullBuffer::from(valid));
        (std::mem::take(&mut self.vals), nulls)
    }
}

/// Bar rows under construction, column by column; symbols as runs, not one `String` a row.
#[derive(Default)]
struct BarBuf {
    ts: Vec<i64>,
    /// Runs of equal symbols: (first row, symbol).
    sym: Vec<(usize, String)>,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    quote_volume: OptVec<f64>,
    trades: OptVec<i64>,
    taker_buy_base: OptVec<f64>,
    taker_buy_quote: OptVec<f64>,
}

impl BarBuf {
    /// Record the symbol of the row about to be pushed.
    #[inline]
    fn symbol_str(&mut self, s: &str) {
        if self.sym.last().is_none_or(|(_, l)| l != s) {
            self.sym.push((self.ts.len(), s.to_string()));
        }
    }
    /// The same from CSV bytes (lossy UTF-8, as before).
    #[inline]
    fn symbol_bytes(&mut self, b: &[u8]) {
        if self.sym.last().is_some_and(|(_, l)| l.as_bytes() == b) {
            return;
        }
        let s = String::from_utf8_lossy(b);
        self.symbol_str(&s);
    }
    #[allow(clippy::too_many_arguments)]
    #[inline]
    fn push(
        &mut self,
        ts: i64,
        o: f64,
        h: f64,
        l: f64,
        c: f64,
        v: f64,
        extra: (Option<f64>, Option<i64>, Option<f64>, Option<f64>),
    ) {
        self.ts.push(ts);
        self.open.push(o);
        self.high.push(h);
        self.low.push(l);
        self.close.push(c);
        self.volume.push(v);
        self.quote_volume.push(extra.0);
        self.trades.push(extra.1);
        self.taker_buy_base.push(extra.2);
        self.taker_buy_quote.push(extra.3);
    }
}

impl RowBuf for BarBuf {
    fn rows(&self) -> usize {
        self.ts.len()
    }
    fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        for v in [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.quote_volume.vals,
            &mut self.taker_buy_base.vals,
            &mut self.taker_buy_quote.vals,
        ] {
            v.reserve(n);
        }
        self.trades.vals.reserve(n);
    }
    fn clear(&mut self) {
        self.ts.clear();
        self.sym.clear();
        for v in [
            &mut self.open,
            &mut self.high,
            &mut self.low,
            &mut self.close,
            &mut self.volume,
            &mut self.quote_volume.vals,
            &mut self.taker_buy_base.vals,
            &mut self.taker_buy_quote.vals,
        ] {
            v.clear();
        }
        self.trades.vals.clear();
        for v in [
            &mut self.quote_volume.valid,
            &mut self.trades.valid,
            &mut self.taker_buy_base.valid,
            &mut self.taker_buy_quote.valid,
        ] {
            v.clear();
        }
    }
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize) {
        if self.ts.is_empty() && a == 0 && b == src.ts.len() {
            std::mem::swap(self, src);
            return;
        }
        let base = self.ts.len();
        // Runs of src overlapping a..b, re-based.
        let first = src.sym.partition_point(|(r, _)| *r <= a).saturating_sub(1);
        for (r, s) in &src.sym[first..] {
            if *r >= b {
                break;
            }
            let at = base + r.saturating_sub(a);
            if self.sym.last().is_none_or(|(_, l)| l != s) {
                self.sym.push((at, s.clone()));
            }
        }
        self.ts.extend_from_slice(&src.ts[a..b]);
        self.open.extend_from_slice(&src.open[a..b]);
        self.high.extend_from_slice(&src.high[a..b]);
        self.low.extend_from_slice(&src.low[a..b]);
        self.close.extend_from_slice(&src.close[a..b]);
        self.volume.extend_from_slice(&src.volume[a..b]);
        self.quote_volume.extend_from(&src.quote_volume, a, b);
        self.trades.extend_from(&src.trades, a, b);
        self.taker_buy_base.extend_from(&src.taker_buy_base, a, b);
        self.taker_buy_quote.extend_from(&src.taker_buy_quote, a, b);
    }
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError> {
        let mut b = std::mem::take(self);
        let n = b.ts.len();
        report.rows_ok += n as u64;
        if let (Some(lo), Some(hi)) = (b.ts.iter().min(), b.ts.iter().max()) {
            report.min_ts = Some(report.min_ts.map_or(*lo, |m| m.min(*lo)));
            report.max_ts = Some(report.max_ts.map_or(*hi, |m| m.max(*hi)));
        }
        let mut sym = StringViewBuilder::with_capacity(n);
        for (k, (first, s)) in b.sym.iter().enumerate() {
            let end = b.sym.get(k + 1).map_or(n, |r| r.0);
            for _ in *first..end {
                sym.append_value(s);
            }
            if !report.symbols.contains(s) {
                report.symbols.insert(s.clone());
            }
        }
        let f64s = |v: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(v)) };
        let opt = |o: &mut OptVec<f64>| -> ArrayRef {
            let (v, nulls) = o.take();
            Arc::new(Float64Array::new(v.into(), nulls))
        };
        let (tr, tr_nulls) = b.trades.take();
        let cols: Vec<ArrayRef> = vec![
            Arc::new(
                TimestampNanosecondArray::from(std::mem::take(&mut b.ts)).with_timezone("UTC"),
            ),
            Arc::new(sym.finish()),
            f64s(std::mem::take(&mut b.open)),
            f64s(std::mem::take(&mut b.high)),
            f64s(std::mem::take(&mut b.low)),
            f64s(std::mem::take(&mut b.close)),
            f64s(std::mem::take(&mut b.volume)),
            opt(&mut b.quote_volume),
            Arc::new(Int64Array::new(tr.into(), tr_nulls)),
            opt(&mut b.taker_buy_base),
            opt(&mut b.taker_buy_quote),
        ];
        RecordBatch::try_new(crate::schema::bar_schema(), cols)
    }
}

impl RowBuf for TickColumns {
    fn rows(&self) -> usize {
        self.ts.len()
    }
    fn reserve(&mut self, n: usize) {
        self.ts.reserve(n);
        self.symbol.reserve(n);
        self.price.reserve(n);
        self.size.reserve(n);
        self.side.reserve(n);
        self.trade_id.reserve(n);
    }
    fn clear(&mut self) {
        self.ts.clear();
        self.symbol.clear();
        self.price.clear();
        self.size.clear();
        self.side.clear();
        self.trade_id.clear();
    }
    fn extend_from(&mut self, src: &mut Self, a: usize, b: usize) {
        if self.ts.is_empty() && a == 0 && b == src.ts.len() {
            std::mem::swap(self, src);
            return;
        }
        self.ts.extend_from_slice(&src.ts[a..b]);
        self.symbol
            .extend(src.symbol[a..b].iter_mut().map(std::mem::take));
        self.price.extend_from_slice(&src.price[a..b]);
        self.size.extend_from_slice(&src.size[a..b]);
        self.side.extend_from_slice(&src.side[a..b]);
        self.trade_id.extend_from_slice(&src.trade_id[a..b]);
    }
    fn take_batch(&mut self, report: &mut RowReport) -> Result<RecordBatch, ArrowError> {
        for (t, s) in self.ts.iter().zip(&self.symbol) {
            report.accept(*t);
            if !report.symbols.contains(s) {
                report.symbols.insert(s.clone());
            }
        }
        std::mem::take(self).into_batch()
    }
}

/// A bad or flagged line met while parsing a part of a chunk.
struct Event {
    /// Rows pushed before it (a flagged row is the row at this index).
    row: usize,
    /// Line number within the part, 1-based.
    line: u64,
    /// Data lines parsed up to and including it.
    data_lines: u64,
    reject: bool,
    reason: String,
}

/// The result of parsing one run of whole lines.
struct Part<B> {
    buf: B,
    events: Vec<Event>,
    /// Lines (blank ones too).
    lines: u64,
    /// Non-blank data lines.
    data_lines: u64,
}

/// Parse whole lines (`bytes` ends with a newline, or at the end of the input).
fn parse_part<B: RowBuf>(
    bytes: &[u8],
    mut buf: B,
    parse: &(impl Fn(&[u8], &mut B) -> Result<Option<String>, String> + Sync),
) -> Part<B> {
    buf.clear();
    let mut part = Part {
        buf,
        events: Vec::new(),
        lines: 0,
        data_lines: 0,
    };
    // Room for the rows, guessed from the lines in the first 4 KiB (+10 %).
    let sample = &bytes[..bytes.len().min(4096)];
    let lines = memchr::memchr_iter(b'\n', sample).count();
    if let Some(line_len) = sample.len().checked_div(lines) {
        part.buf
            .reserve(bytes.len() / line_len.max(1) * 11 / 10 + 1);
    }
    let mut start = 0;
    while start < bytes.len() {
        let stop = memchr::memchr(b'\n', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        let mut line = &bytes[start..stop];
        start = stop + 1;
        part.lines += 1;
        if let [rest @ .., b'\r'] = line {
            line = rest;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        part.data_lines += 1;
        let row = part.buf.rows();
        let (reject, reason) = match parse(line, &mut part.buf) {
            Ok(None) => continue,
            Ok(Some(flag)) => (false, flag),
            Err(reason) => (true, reason),
        };
        part.events.push(Event {
            row,
            line: part.lines,
            data_lines: part.data_lines,
            reject,
            reason,
        });
    }
    part
}

/// Split `bytes` (whole lines) into about `n` runs of whole lines and parse them in
/// parallel. Parts of less than 256 KiB are not worth a thread.
fn parse_parallel<B: RowBuf>(
    bytes: &[u8],
    n: usize,
    pool: &mut Vec<B>,
    parse: &(impl Fn(&[u8], &mut B) -> Result<Option<String>, String> + Sync),
) -> Vec<Part<B>> {
    let n = n.clamp(1, (bytes.len() / (256 << 10)).max(1));
    let mut cuts = vec![0];
    for k in 1..n {
        let target = (bytes.len() * k / n).max(*cuts.last().unwrap());
        match memchr::memchr(b'\n', &bytes[target..]) {
            Some(i) => cuts.push(target + i + 1),
            None => break,
        }
    }
    cuts.push(bytes.len());
    cuts.dedup();
    let mut take = || pool.pop().unwrap_or_default();
    if cuts.len() <= 2 {
        return vec![parse_part(bytes, take(), parse)];
    }
    let first = take();
    let rest: Vec<B> = (2..cuts.len()).map(|_| take()).collect();
    std::thread::scope(|scope| {
        let handles: Vec<_> = cuts
            .windows(2)
            .skip(1)
            .zip(rest)
            .map(|(w, buf)| {
                let piece = &bytes[w[0]..w[1]];
                scope.spawn(move || parse_part(piece, buf, parse))
            })
            .collect();
        let mut parts = vec![parse_part(&bytes[..cuts[1]], first, parse)];
        parts.extend(
            handles
                .into_iter()
                .map(|h| h.join().expect("parser thread")),
        );
        parts
    })
}

/// Threads for CSV parsing: the available CPUs, at most 4.
fn parse_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get().min(4))
}

#[allow(clippy::too_many_arguments)]
fn load_csv(
    path: Option<&Path>,
    shown: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    if kind == Kind::Ticks {
        load_csv_rows::<TickColumns>(path, shown, format, kind, opts, report, sink, |p, l, o| {
            p.tick(l, o)
        })
    } else {
        load_csv_rows::<BarBuf>(path, shown, format, kind, opts, report, sink, |p, l, o| {
            p.bar(l, o)
        })
    }
}

/// The CSV loader: reads 8 MiB chunks, detects the format on the first non-blank line,
/// parses the chunk's lines on several threads, then replays the parts in file order:
/// rows move to the batch being built (handed to `sink` every `batch_rows` rows, exactly
/// as a line-by-line loop would), bad lines are reported with their line numbers, and
/// `strict` stops at the first bad line in file order.
#[allow(clippy::too_many_arguments)]
fn load_csv_rows<B: RowBuf>(
    path: Option<&Path>,
    shown: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
    parse_line: impl Fn(&LineParser, &[u8], &mut B) -> Result<Option<String>, String> + Sync,
) -> Result<(), IngestError> {
    let ioerr = |source| IngestError::Io {
        path: shown.to_path_buf(),
        source,
    };
    let mut archive = None;
    let (mut input, total): (Box<dyn Read>, _) = match path {
        Some(p) => open_input(p, &mut archive)?,
        None => (Box::new(std::io::stdin().lock()), None),
    };
    let bar = progress(opts.progress, total, shown);
    let file = shown.display().to_string();
    let threads = parse_threads();
    let cap = opts.batch_rows.max(1);
    let mut parser: Option<LineParser> = None;
    let mut buf: Vec<u8> = Vec::with_capacity(8 << 20);
    let mut line_no = 0u64;
    let mut eof = false;
    let mut rows = B::default();
    // Part buffers are reused from chunk to chunk (no fresh pages to fault in each time).
    let mut pool: Vec<B> = Vec::new();
    while !eof {
        // Up to 8 MiB more, read into the spare capacity (no zeroing first).
        let n = (&mut input)
            .take(8 << 20)
            .read_to_end(&mut buf)
            .map_err(ioerr)?;
        if n == 0 {
            eof = true;
        }
        bar.inc(n as u64);
        let end = if eof {
            buf.len()
        } else {
            match memchr::memrchr(b'\n', &buf) {
                Some(i) => i + 1,
                None => continue,
            }
        };
        let mut start = 0;
        // The first non-blank line fixes the separator, columns and header.
        while parser.is_none() && start < end {
            let stop = memchr::memchr(b'\n', &buf[start..end]).map_or(end, |i| start + i);
            let mut line = &buf[start..stop];
            if let [rest @ .., b'\r'] = line {
                line = rest;
            }
            if line.iter().all(u8::is_ascii_whitespace) {
                line_no += 1;
                start = stop + 1;
                continue;
            }
            let (p, was_header) = LineParser::new(line, format, kind, opts, shown)?;
            parser = Some(p);
            if was_header {
                line_no += 1;
                start = stop + 1;
            }
        }
        let Some(p) = parser.as_ref() else {
            buf.drain(..end.min(buf.len()));
            continue;
        };
        let region = &buf[start.min(end)..end];
        let parse = |line: &[u8], out: &mut B| parse_line(p, line, out);
        for mut part in parse_parallel(region, threads, &mut pool, &parse) {
            let mut cursor = 0;
            let events = std::mem::take(&mut part.events);
            for ev in events {
                move_rows(&mut rows, &mut part.buf, cursor, ev.row, cap, report, sink)?;
                cursor = ev.row;
                let row = BadRow {
                    file: file.clone(),
                    line: line_no + ev.line,
                    reason: ev.reason,
                };
                if !ev.reject {
                    report.flag(row);
                } else if opts.policy.strict {
                    report.rows_read += ev.data_lines;
                    bar.finish_and_clear();
                    return Err(IngestError::Strict { row });
                } else {
                    report.reject(row);
                }
            }
            let all = part.buf.rows();
            move_rows(&mut rows, &mut part.buf, cursor, all, cap, report, sink)?;
            report.rows_read += part.data_lines;
            line_no += part.lines;
            pool.push(part.buf);
        }
        buf.drain(..end);
    }
    flush_rows(&mut rows, report, sink)?;
    bar.finish_and_clear();
    Ok(())
}

/// Hand every buffered row to `sink` as one batch.
fn flush_rows<B: RowBuf>(
    rows: &mut B,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    if rows.rows() == 0 {
        return Ok(());
    }
    let batch = rows
        .take_batch(report)
        .map_err(|e| IngestError::Sink(Box::new(e)))?;
    sink(batch).map_err(IngestError::Sink)
}

/// Move rows `a..b` of `src` to `rows`, flushing whenever `rows` reaches `cap`.
fn move_rows<B: RowBuf>(
    rows: &mut B,
    src: &mut B,
    mut a: usize,
    b: usize,
    cap: usize,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    while a < b {
        let take = (cap - rows.rows()).min(b - a);
        rows.extend_from(src, a, a + take);
        a += take;
        if rows.rows() >= cap {
            flush_rows(rows, report, sink)?;
        }
    }
    Ok(())
}

fn progress(on: bool, total: Option<u64>, path: &Path) -> indicatif::ProgressBar {
    use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
    if !on || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let b = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
    b.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    b.set_message(path.display().to_string());
    b
}

/// Parses the lines of one CSV file.
struct LineParser {
    sep: u8,
    binance: bool,
    /// Column of each canonical field, for generic CSV.
    cols: Vec<Option<usize>>,
    symbol: Option<String>,
    ts_format: TsFormat,
    tz: Option<Tz>,
    keep_invalid: bool,
    rules: RowRules,
    ncols: usize,
}

const BAR_FIELDS: [&str; 11] = [
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
const TICK_FIELDS: [&str; 7] = [
    "ts",
    "symbol",
    "price",
    "size",
    "side",
    "trade_id",
    "buyer_maker",
];

impl LineParser {
    fn new(
        first: &[u8],
        format: Format,
        kind: Kind,
        opts: &IngestOptions,
        path: &Path,
    ) -> Result<(Self, bool), IngestError> {
        let layout = Layout::of(first, opts);
        let binance = format == Format::BinanceKline || layout.binance_kline(format, kind, opts);
        let Layout {
            sep,
            fields,
            header,
            ..
        } = layout;
        let names: Option<Vec<String>> = header.then(|| {
            fields
                .iter()
                .map(|f| String::from_utf8_lossy(trim(f)).into_owned())
                .collect()
        });
        let cols_err = |detail: String| IngestError::Columns {
            path: path.into(),
            detail,
        };
        let (wanted, positional): (&[&str], &[&str]) = if kind == Kind::Ticks {
            (&TICK_FIELDS, &["ts", "price", "size", "side", "trade_id"])
        } else {
            (
                &BAR_FIELDS,
                &["ts", "open", "high", "low", "close", "volume"],
            )
        };
        let cols = if binance {
            Vec::new()
        } else {
            resolve(wanted, names.as_deref(), &opts.columns, positional).map_err(cols_err)?
        };
        if !binance {
            let required: &[&str] = if kind == Kind::Ticks {
                &["ts", "price", "size"]
            } else {
                &["ts", "open", "high", "low", "close", "volume"]
            };
            for r in required {
                let i = wanted.iter().position(|w| w == r).unwrap();
                if cols[i].is_none() {
                    return Err(cols_err(format!(
                        "no column for {r} (header: {})",
                        names
                            .as_ref()
                            .map(|n| n.join(","))
                            .unwrap_or_else(|| "none".into())
                    )));
                }
            }
            if cols[1].is_none() && opts.symbol.is_none() {
                return Err(IngestError::NoSymbol { path: path.into() });
            }
        } else if opts.symbol.is_none() {
            return Err(IngestError::NoSymbol { path: path.into() });
        }
        Ok((
            LineParser {
                sep,
                binance,
                cols,
                symbol: opts.symbol.clone(),
                ts_format: opts.ts_format.clone(),
                tz: opts.tz,
                keep_invalid: opts.policy.invalid == InvalidPolicy::Keep,
                rules: opts.rules,
                ncols: fields.len(),
            },
            header,
        ))
    }

    /// Split at the separator into the first 16 fields; returns the number of fields.
    /// Eight bytes at a time: a word's separator bytes are found with an exact
    /// zero-byte mask (no false positives), then visited lowest first.
    #[inline]
    fn split<'a>(&self, line: &'a [u8], out: &mut [&'a [u8]; 16]) -> usize {
        const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
        let mut n = 0;
        let mut start = 0;
        let mut field = |i: usize, n: &mut usize| {
            if *n < out.len() {
                out[*n] = &line[start..i];
            }
            *n += 1;
            start = i + 1;
        };
        let bcast = u64::from_le_bytes([self.sep; 8]);
        let words = line.chunks_exact(8);
        let tail = words.remainder();
        for (k, w) in words.enumerate() {
            let x = u64::from_le_bytes(w.try_into().expect("8 bytes")) ^ bcast;
            let mut zero = !(((x & LOW7) + LOW7) | x | LOW7);
            while zero != 0 {
                field(k * 8 + (zero.trailing_zeros() / 8) as usize, &mut n);
                zero &= zero - 1;
            }
        }
        let base = line.len() - tail.len();
        for (i, c) in tail.iter().enumerate() {
            if *c == self.sep {
                field(base + i, &mut n);
            }
        }
        if n < out.len() {
            out[n] = &line[start..];
        }
        n + 1
    }

    /// A row that breaks a rule: flagged (`Ok(Some)`) or rejected (`Err`). The reason
    /// text is only made here, for bad rows.
    #[cold]
    fn invalid(&self, fault: RowFault) -> Result<Option<String>, String> {
        if self.keep_invalid && fault.keepable() {
            Ok(Some(fault.to_string()))
        } else {
            Err(fault.to_string())
        }
    }

    /// Parse one bar line. `Ok(Some(reason))` = kept but flagged.
    fn bar(&self, line: &[u8], out: &mut BarBuf) -> Result<Option<String>, String> {
        let mut f: [&[u8]; 16] = [b""; 16];
        let n = self.split(line, &mut f);
        let (ts, o, h, l, c, v, sym, extra);
        if self.binance {
            if !(11..=12).contains(&n) {
                return Err(format!("expected 12 columns (Binance kline), found {n}"));
            }
            ts = parse_ts(f[0], &TsFormat::Auto, None)?;
            (o, h, l, c, v) = (
                num(f[1], "open")?,
                num(f[2], "high")?,
                num(f[3], "low")?,
                num(f[4], "close")?,
                num(f[5], "volume")?,
            );
            let t = trim(f[8]);
            extra = (
                Some(num(f[7], "quote_volume")?),
                Some(lexical_core::parse::<i64>(t).map_err(|_| {
                    format!("trades: not an integer: {:?}", String::from_utf8_lossy(t))
                })?),
                Some(num(f[9], "taker_buy_base")?),
                Some(num(f[10], "taker_buy_quote")?),
            );
            sym = None;
        } else {
            if n != self.ncols {
                return Err(format!("expected {} columns, found {n}", self.ncols));
            }
            let get = |k: usize| self.cols[k].map(|i| f.get(i).copied().unwrap_or(b""));
            ts = parse_ts(get(0).unwrap(), &self.ts_format, self.tz.as_ref())?;
            (o, h, l, c, v) = (
                num(get(2).unwrap(), "open")?,
                num(get(3).unwrap(), "high")?,
                num(get(4).unwrap(), "low")?,
                num(get(5).unwrap(), "close")?,
                num(get(6).unwrap(), "volume")?,
            );
            let opt = |k: usize, name: &str| -> Result<Option<f64>, String> {
                match get(k) {
                    Some(b) if !trim(b).is_empty() => num(b, name).map(Some),
                    _ => Ok(None),
                }
            };
            extra = (
                opt(7, "quote_volume")?,
                opt(8, "trades")?.map(|x| x as i64),
                opt(9, "taker_buy_base")?,
                opt(10, "taker_buy_quote")?,
            );
            sym = get(1).map(trim);
        }
        let row = BarRow {
            ts,
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            quote_volume: extra.0,
            trades: extra.1,
            taker_buy_base: extra.2,
            taker_buy_quote: extra.3,
        };
        let verdict = match self.rules.check_bar(&row) {
            Ok(()) => None,
            Err(f) => self.invalid(f)?,
        };
        match sym {
            Some(s) => out.symbol_bytes(s),
            None => out.symbol_str(self.symbol.as_deref().expect("checked in new")),
        }
        out.push(ts, o, h, l, c, v, extra);
        Ok(verdict)
    }

    fn tick(&self, line: &[u8], out: &mut TickColumns) -> Result<Option<String>, String> {
        let mut f: [&[u8]; 16] = [b""; 16];
        let n = self.split(line, &mut f);
        if n != self.ncols {
            return Err(format!("expected {} columns, found {n}", self.ncols));
        }
        let get = |k: usize| self.cols[k].map(|i| f.get(i).copied().unwrap_or(b""));
        let ts = parse_ts(get(0).unwrap(), &self.ts_format, self.tz.as_ref())?;
        let p = num(get(2).unwrap(), "price")?;
        let s = num(get(3).unwrap(), "size")?;
        let side = match (get(4), get(6)) {
            (Some(b), _) => parse_side(b),
            (None, Some(bm)) => match trim(bm).to_ascii_lowercase().as_slice() {
                b"true" | b"1" => Some(-1),
                b"false" | b"0" => Some(1),
                _ => None,
            },
            _ => None,
        };
        let id = match get(5) {
            Some(b) if !trim(b).is_empty() => {
                Some(lexical_core::parse::<i64>(trim(b)).map_err(|_| {
                    format!("trade_id: not an integer: {:?}", String::from_utf8_lossy(b))
                })?)
            }
            _ => None,
        };
        let verdict = match self.rules.check_tick(ts, p, s, side) {
            Ok(()) => None,
            Err(f) => self.invalid(f)?,
        };
        out.ts.push(ts);
        out.symbol.push(match get(1) {
            Some(b) => String::from_utf8_lossy(trim(b)).into_owned(),
            None => self.symbol.clone().expect("checked in new"),
        });
        out.price.push(p);
        out.size.push(s);
        out.side.push(side);
        out.trade_id.push(id);
        Ok(verdict)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_parse_in_every_format() {
        let a = TsFormat::Auto;
        let want = 1_637_971_200_000_000_000i64; // 2021-11-27T00:00:00Z
        assert_eq!(parse_ts(b"1637971200000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200", &a, None), Ok(want));
        assert_eq!(parse_ts(b"1637971200000000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27 00:00:00.000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27T01:00:00+01:00", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27T00:00Z", &a, None), Ok(want));
        assert_eq!(parse_ts(b"20211127 000000", &a, None), Ok(want));
        assert_eq!(parse_ts(b"2021-11-27", &a, None), Ok(want));
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(parse_ts(b"20211126 190000", &a, Some(&ny)), Ok(want));
        let p = TsFormat::Pattern("%Y%m%d %H%M%S".into());
        assert_eq!(parse_ts(b"20211127 000000", &p, None), Ok(want));
        assert!(parse_ts(b"yesterday", &a, None).is_err());
        assert!(parse_ts(b"2021-13-01", &a, None).is_err());
    }

    #[test]
    fn fast_decimals_match_lexical_bit_for_bit() {
        let mut rnd = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            rnd
        };
        let mut cases: Vec<String> = [
            "0",
            "-0",
            "0.0",
            "-0.0",
            "1",
            "20000.00",
            "19997.95",
            "43.69863",
            "873972.6000",
            "0.1",
            "0.3",
            "9007199254740992",
            "9007199254740993",
            "900719925474099.3",
            "1234567890123456789",
            "12345678901234567890",
            "1.",
            ".5",
            "-",
            "",
            "1e5",
            "+1",
            "1.2.3",
            "0.0000000000000000000001",
            "0.00000000000000000000001",
            "00012.50",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for _ in 0..200_000 {
            let r = next();
            let int = r % 10u64.pow((r >> 60) as u32 % 12 + 1);
            let dec = (r >> 8) % 10u64.pow((r >> 56) as u32 % 10);
            let width = ((r >> 52) % 10) as usize;
            let sign = if r & 1 == 1 { "-" } else { "" };
            cases.push(format!("{sign}{int}.{dec:0width$}"));
            cases.push(format!("{sign}{int}"));
        }
        for c in &cases {
            let want = lexical_core::parse::<f64>(c.as_bytes()).ok();
            if let Some(got) = fast_decimal(c.as_bytes()) {
                assert_eq!(Some(got.to_bits()), want.map(f64::to_bits), "{c}");
            }
            assert_eq!(
                num(c.as_bytes(), "x").ok().map(f64::to_bits),
                want.map(f64::to_bits),
                "{c}"
            );
        }
    }

    #[test]
    fn split_finds_every_separator() {
        let p = LineParser {
            sep: b',',
            binance: true,
            cols: Vec::new(),
            symbol: None,
            ts_format: TsFormat::Auto,
            tz: None,
            keep_invalid: false,
            rules: RowRules::default(),
            ncols: 0,
        };
        let mut rnd = 12345u64;
        for len in 0..80 {
            for _ in 0..50 {
                let line: Vec<u8> = (0..len)
                    .map(|_| {
                        rnd = rnd
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        b",-+.0a\xac\x2d\x2c"[(rnd >> 60) as usize % 9]
                    })
                    .collect();
                let want: Vec<&[u8]> = line.split(|c| *c == b',').collect();
                let mut f: [&[u8]; 16] = [b""; 16];
                let n = p.split(&line, &mut f);
                assert_eq!(n, want.len());
                assert_eq!(&f[..n.min(16)], &want[..n.min(16)]);
            }
        }
    }
}
