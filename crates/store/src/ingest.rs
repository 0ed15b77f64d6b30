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
mod csv;
mod detect;
mod line;
mod time;

use csv::*;
use line::*;

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
