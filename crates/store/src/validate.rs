//! Row validation: one set of rules for every row the store is given, whatever its road
//! in. `ringfeed ingest` and `ringfeed append` check rows while they parse (CSV, Parquet,
//! Feather); [`BarStore::append`](crate::BarStore::append) checks decoded Arrow batches
//! (every client append of the daemon). A row gets the same verdict and the same reason
//! on every road.
//!
//! Bars: `open`, `high`, `low`, `close` finite and not negative; `high ≥ low`; `open`
//! and `close` inside `[low, high]`; `volume` finite and not negative; `quote_volume`,
//! `taker_buy_base`, `taker_buy_quote` (when present) finite and not negative, `trades`
//! not negative; `ts` on the dataset's grid ([`Grid`]). Trades: `price` and `size` finite
//! and not negative, `side` 1, -1 or null. No grid for trades.
//!
//! A rule that fails makes the row *invalid*: rejected under [`InvalidPolicy::Reject`]
//! (the default), kept and counted as flagged under [`InvalidPolicy::Keep`]. A row without
//! a required value (or a CSV line that does not parse) is always rejected. With
//! [`RowPolicy::strict`] the first row that would be rejected fails the whole call instead,
//! and nothing of it is written.
//!
//! ```
//! use ringfeed_store::validate::{BarRow, Grid, RowRules};
//! let rules = RowRules { grid: Grid::new("1m".parse().unwrap()) };
//! let mut bar = BarRow {
//!     ts: 120_000_000_000, // 00:02:00
//!     open: 10.0, high: 11.0, low: 9.0, close: 10.5, volume: 3.0,
//!     ..BarRow::default()
//! };
//! assert!(rules.check_bar(&bar).is_ok());
//! bar.ts += 17_000_000_000; // 00:02:17 in a 1m dataset
//! assert_eq!(
//!     rules.check_bar(&bar).unwrap_err().to_string(),
//!     "ts 1970-01-01T00:02:17Z is not on the 1m grid (bars open at whole multiples of 1m from 00:00 UTC)"
//! );
//! ```

use crate::catalog::DatasetConfig;
use crate::schema::{self, Kind};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, Int8Type};
use arrow_array::{Array, BooleanArray, RecordBatch};
use arrow_schema::ArrowError;
use std::collections::BTreeSet;

/// What to do with rows that are readable but break a rule (NaN or negative prices,
/// high < low, open/close outside [low, high], negative volume, ts off the grid).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum InvalidPolicy {
    /// Reject them (reported like unreadable rows).
    #[default]
    Reject,
    /// Keep them and count them as flagged.
    Keep,
}

/// How bad rows are handled: the [`InvalidPolicy`], and whether the first rejected row
/// fails the whole call.
///
/// ```
/// use ringfeed_store::validate::{InvalidPolicy, RowPolicy};
/// let keep = RowPolicy { invalid: InvalidPolicy::Keep, ..RowPolicy::default() };
/// assert!(!keep.strict);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowPolicy {
    /// Reject or keep (flagged) rows that break a rule.
    pub invalid: InvalidPolicy,
    /// Fail on the first rejected row instead of skipping it; nothing is written.
    pub strict: bool,
}

/// One rejected or flagged row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRow {
    /// Where the row came from: the file name (`-` for stdin), or `append` for an Arrow
    /// batch.
    pub file: String,
    /// 1-based line (CSV) or row (columnar files, Arrow batches) number.
    pub line: u64,
    /// What is wrong.
    pub reason: String,
}

impl std::fmt::Display for BadRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.reason)
    }
}

/// What validation made of the rows of a load or an append.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowReport {
    /// Data rows seen.
    pub rows_read: u64,
    /// Rows passed on to the store (flagged ones included).
    pub rows_ok: u64,
    /// Rows rejected.
    pub rejected: u64,
    /// Invalid rows kept under [`InvalidPolicy::Keep`].
    pub flagged: u64,
    /// The first rejected rows (at most 10).
    pub rejects: Vec<BadRow>,
    /// The first flagged rows (at most 10).
    pub flags: Vec<BadRow>,
    /// Symbols of the rows passed on.
    pub symbols: BTreeSet<String>,
    /// Smallest ts passed on, ns.
    pub min_ts: Option<i64>,
    /// Largest ts passed on, ns.
    pub max_ts: Option<i64>,
}

/// Rows listed in a report, per kind.
const MAX_LISTED: usize = 10;

impl RowReport {
    /// Count a rejected row and list it (the first 10 are listed). For loaders outside
    /// the store (`ringfeed-ingest`) that judge rows themselves.
    pub fn reject(&mut self, r: BadRow) {
        self.rejected += 1;
        if self.rejects.len() < MAX_LISTED {
            self.rejects.push(r);
        }
    }
    /// Count a flagged row (kept under [`InvalidPolicy::Keep`]) and list it (the first 10
    /// are listed).
    pub fn flag(&mut self, r: BadRow) {
        self.flagged += 1;
        if self.flags.len() < MAX_LISTED {
            self.flags.push(r);
        }
    }
    /// Count a row passed on to the store and widen the report's time range to `ts`.
    pub fn accept(&mut self, ts: i64) {
        self.rows_ok += 1;
        self.min_ts = Some(self.min_ts.map_or(ts, |m| m.min(ts)));
        self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
    }

    /// Add `other`'s counts and rows to this report (the listed rows stay at most 10).
    pub fn merge(&mut self, other: &RowReport) {
        self.rows_read += other.rows_read;
        self.rows_ok += other.rows_ok;
        for r in &other.rejects {
            if self.rejects.len() < MAX_LISTED {
                self.rejects.push(r.clone());
            }
        }
        for r in &other.flags {
            if self.flags.len() < MAX_LISTED {
                self.flags.push(r.clone());
            }
        }
        self.rejected += other.rejected;
        self.flagged += other.flagged;
        self.symbols.extend(other.symbols.iter().cloned());
        for t in [other.min_ts, other.max_ts].into_iter().flatten() {
            self.min_ts = Some(self.min_ts.map_or(t, |m| m.min(t)));
            self.max_ts = Some(self.max_ts.map_or(t, |m| m.max(t)));
        }
    }
}

/// Where bars of a dataset open: whole multiples of the base timeframe from the epoch
/// (weeks: from Monday 00:00 UTC). A `1m` dataset takes 02:03:00, not 02:03:17.
///
/// ```
/// use ringfeed_store::validate::Grid;
/// let g = Grid::new("5m".parse().unwrap()).unwrap();
/// assert!(g.contains(300_000_000_000) && !g.contains(301_000_000_000));
/// assert!(Grid::new("tick".parse().unwrap()).is_none());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    tf: Timeframe,
    interval: i64,
    offset: i64,
    /// `interval = odd · 2^shift`; `inverse · odd ≡ 1 (mod 2^64)`; `max = ⌊(2^64 − 1) /
    /// interval⌋`: a divisibility test without a division (see [`Grid::contains`]).
    inverse: u64,
    shift: u32,
    max: u64,
}

impl Grid {
    /// The grid of bars of `base`; `None` for ticks.
    pub fn new(base: Timeframe) -> Option<Grid> {
        let interval = base.nanos()?;
        let d = interval as u64;
        let shift = d.trailing_zeros();
        let odd = d >> shift;
        // Newton's iteration for the inverse mod 2^64: `odd` is its own inverse mod 8
        // (3 bits), and each step doubles the bits: 6, 12, 24, 48, 96.
        let mut inverse = odd;
        for _ in 0..5 {
            inverse = inverse.wrapping_mul(2u64.wrapping_sub(odd.wrapping_mul(inverse)));
        }
        Some(Grid {
            tf: base,
            interval,
            offset: base.default_offset(),
            inverse,
            shift,
            max: u64::MAX / d,
        })
    }

    /// The grid a dataset's base rows must sit on: `None` for ticks, and for daily or
    /// longer bars of a dataset with a trading session (their bars open at the session's
    /// local open, which the UTC grid does not describe).
    pub fn of_dataset(cfg: &DatasetConfig) -> Option<Grid> {
        let n = cfg.base.nanos()?;
        if cfg.session.is_some() && n >= NANOS_PER_DAY {
            return None;
        }
        Grid::new(cfg.base)
    }

    /// The timeframe whose bars open on this grid.
    pub fn timeframe(&self) -> Timeframe {
        self.tf
    }

    /// Whether a bar may open at `ts` (ns): `ts − offset` is a multiple of the interval.
    ///
    /// Every parsed row asks this, so it multiplies instead of dividing (a 64-bit division
    /// takes tens of cycles): `x` is a multiple of `odd · 2^shift` exactly when
    /// `rotate_right(x · odd⁻¹, shift) ≤ ⌊(2^64 − 1) / interval⌋` (Hacker's Delight
    /// §10-17, what compilers emit for constant divisors).
    #[inline]
    pub fn contains(&self, ts: i64) -> bool {
        ts.checked_sub(self.offset).is_some_and(|t| {
            t.unsigned_abs()
                .wrapping_mul(self.inverse)
                .rotate_right(self.shift)
                <= self.max
        })
    }
}

/// Why a row was rejected or flagged. `Copy` and allocation-free: the reason text is only
/// made (by `Display`) for rows that are reported.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum RowFault {
    /// A required value is null. Never kept.
    Missing(&'static str),
    /// The timestamp is null or could not be read. Never kept.
    TsUnreadable,
    /// A price, volume or amount is NaN or infinite.
    NotFinite {
        /// The column.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// A price, volume, amount or count is negative.
    Negative {
        /// The column.
        field: &'static str,
        /// Its value.
        value: f64,
    },
    /// `high` is below `low`.
    HighBelowLow {
        /// The high.
        high: f64,
        /// The low.
        low: f64,
    },
    /// `open` or `close` lies outside `[low, high]`.
    OutsideRange {
        /// The open.
        open: f64,
        /// The close.
        close: f64,
        /// The low.
        low: f64,
        /// The high.
        high: f64,
    },
    /// The bar does not open on the dataset's grid.
    OffGrid {
        /// The bar's ts, ns.
        ts: i64,
        /// The grid.
        grid: Grid,
    },
    /// A trade's side is not 1 (buy), -1 (sell) or null.
    Side(i8),
}

impl RowFault {
    /// Whether [`InvalidPolicy::Keep`] may keep the row (it has every value, some break a
    /// rule); rows with missing values are always rejected.
    pub fn keepable(&self) -> bool {
        !matches!(self, RowFault::Missing(_) | RowFault::TsUnreadable)
    }
}

/// `ns` as `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z`.
pub(crate) fn iso(ns: i64) -> String {
    let t = chrono::DateTime::from_timestamp_nanos(ns);
    if ns.rem_euclid(1_000_000_000) == 0 {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
    }
}

impl std::fmt::Display for RowFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match *self {
            RowFault::Missing(field) => write!(f, "missing {field}"),
            RowFault::TsUnreadable => f.write_str("missing or unparseable timestamp"),
            RowFault::NotFinite { field, value } => write!(f, "{field} is {value}"),
            RowFault::Negative { field, value } => write!(f, "{field} is negative ({value})"),
            RowFault::HighBelowLow { high, low } => write!(f, "high {high} < low {low}"),
            RowFault::OutsideRange {
                open,
                close,
                low,
                high,
            } => write!(
                f,
                "open {open} or close {close} outside [low {low}, high {high}]"
            ),
            RowFault::OffGrid { ts, grid } => {
                let from = if grid.offset == 0 {
                    "00:00 UTC"
                } else {
                    "Monday 00:00 UTC"
                };
                write!(
                    f,
                    "ts {} is not on the {tf} grid (bars open at whole multiples of {tf} from {from})",
                    iso(ts),
                    tf = grid.tf
                )
            }
            RowFault::Side(s) => write!(f, "side is {s}: use 1 (buy), -1 (sell) or null"),
        }
    }
}

/// The values of one bar, as parsed (CSV) or read from Arrow columns.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct BarRow {
    /// Bar open time, ns (UTC).
    pub ts: i64,
    /// Open price.
    pub open: f64,
    /// High price.
    pub high: f64,
    /// Low price.
    pub low: f64,
    /// Close price.
    pub close: f64,
    /// Base volume.
    pub volume: f64,
    /// Quote volume, if any.
    pub quote_volume: Option<f64>,
    /// Number of trades, if any.
    pub trades: Option<i64>,
    /// Taker buy base volume, if any.
    pub taker_buy_base: Option<f64>,
    /// Taker buy quote volume, if any.
    pub taker_buy_quote: Option<f64>,
}

/// The rules of a dataset: the value rules (fixed) and the grid of its base timeframe.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RowRules {
    /// Where bars must open; `None` checks no grid (trades, session days).
    pub grid: Option<Grid>,
}

#[inline]
fn amount(field: &'static str, x: f64) -> Result<(), RowFault> {
    if !x.is_finite() {
        return Err(RowFault::NotFinite { field, value: x });
    }
    if x < 0.0 {
        return Err(RowFault::Negative { field, value: x });
    }
    Ok(())
}

impl RowRules {
    /// The rules of a dataset's base rows.
    pub fn for_dataset(cfg: &DatasetConfig) -> RowRules {
        RowRules {
            grid: Grid::of_dataset(cfg),
        }
    }

    /// Check one bar; the first rule it breaks, in the order of the module docs.
    #[inline]
    pub fn check_bar(&self, b: &BarRow) -> Result<(), RowFault> {
        amount("open", b.open)?;
        amount("high", b.high)?;
        amount("low", b.low)?;
        amount("close", b.close)?;
        let (o, h, l, c) = (b.open, b.high, b.low, b.close);
        if h < l {
            return Err(RowFault::HighBelowLow { high: h, low: l });
        }
        if o < l || o > h || c < l || c > h {
            return Err(RowFault::OutsideRange {
                open: o,
                close: c,
                low: l,
                high: h,
            });
        }
        amount("volume", b.volume)?;
        if let Some(x) = b.quote_volume {
            amount("quote_volume", x)?;
        }
        if let Some(t) = b.trades.filter(|t| *t < 0) {
            return Err(RowFault::Negative {
                field: "trades",
                value: t as f64,
            });
        }
        if let Some(x) = b.taker_buy_base {
            amount("taker_buy_base", x)?;
        }
        if let Some(x) = b.taker_buy_quote {
            amount("taker_buy_quote", x)?;
        }
        match self.grid {
            Some(g) if !g.contains(b.ts) => Err(RowFault::OffGrid { ts: b.ts, grid: g }),
            _ => Ok(()),
        }
    }

    /// Check one trade.
    #[inline]
    pub fn check_tick(
        &self,
        _ts: i64,
        price: f64,
        size: f64,
        side: Option<i8>,
    ) -> Result<(), RowFault> {
        amount("price", price)?;
        amount("size", size)?;
        match side {
            Some(s) if s != 1 && s != -1 => Err(RowFault::Side(s)),
            _ => Ok(()),
        }
    }
}

/// Apply `policy` to a fault of row `line` of `file`: `Ok(true)` keeps the row (flagged),
/// `Ok(false)` drops it (rejected), `Err` is the row that fails a strict call. Public for
/// loaders outside the store (`ringfeed-ingest`), so a file's rows get the same verdicts as
/// [`crate::BarStore::append`] gives a batch's.
pub fn judge(
    report: &mut RowReport,
    policy: &RowPolicy,
    fault: RowFault,
    file: &str,
    line: u64,
) -> Result<bool, BadRow> {
    let row = BadRow {
        file: file.to_string(),
        line,
        reason: fault.to_string(),
    };
    if policy.invalid == InvalidPolicy::Keep && fault.keepable() {
        report.flag(row);
        Ok(true)
    } else if policy.strict {
        Err(row)
    } else {
        report.reject(row);
        Ok(false)
    }
}

/// Validate every row of `batch` (the input form of `kind`'s schema: canonical types,
/// nulls allowed, see [`schema::conform_input`]) under `rules` and `policy`. Returns the
/// rows to store, with `kind`'s schema, and the report; `Err` is the first rejected row of
/// a strict call. Rows are numbered from 1 within the batch.
pub(crate) fn check_batch(
    batch: &RecordBatch,
    kind: Kind,
    rules: &RowRules,
    policy: &RowPolicy,
    file: &str,
) -> Result<(RecordBatch, RowReport), CheckError> {
    let n = batch.num_rows();
    let mut report = RowReport {
        rows_read: n as u64,
        ..RowReport::default()
    };
    let ts = batch
        .column_by_name(schema::TS)
        .expect("conformed")
        .as_primitive::<arrow_array::types::TimestampNanosecondType>();
    let sym = batch
        .column_by_name(schema::SYMBOL)
        .expect("conformed")
        .as_string_view();
    let f64s = |name: &str| {
        batch
            .column_by_name(name)
            .map(|c| c.as_primitive::<Float64Type>())
    };
    let need = |name: &str| f64s(name).expect("conformed");
    let opt = |a: Option<&arrow_array::Float64Array>, i: usize| {
        a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
    };
    // Rows kept, built only once a row is dropped.
    let mut keep: Option<Vec<bool>> = None;
    let mut last_sym: Option<&str> = None;
    let mut verdict = |i: usize, v: Result<(), RowFault>, report: &mut RowReport| {
        let stored = match v {
            Ok(()) => true,
            Err(fault) => judge(report, policy, fault, file, i as u64 + 1)?,
        };
        if stored {
            report.accept(ts.value(i));
            let s = sym.value(i);
            if last_sym != Some(s) && !report.symbols.contains(s) {
                report.symbols.insert(s.to_string());
            }
            last_sym = Some(s);
        }
        match (&mut keep, stored) {
            (Some(k), _) => k.push(stored),
            (None, false) => {
                let mut k = vec![true; i];
                k.push(false);
                keep = Some(k);
            }
            (None, true) => {}
        }
        Ok::<(), BadRow>(())
    };
    let missing = |a: &dyn Array, i: usize| a.is_null(i);
    match kind {
        Kind::Ticks => {
            let (price, size) = (need("price"), need("size"));
            let side = batch
                .column_by_name("side")
                .map(|c| c.as_primitive::<Int8Type>());
            let ids = batch
                .column_by_name("trade_id")
                .expect("conformed")
                .as_primitive::<Int64Type>();
            for i in 0..n {
                let v = if missing(ts, i) {
                    Err(RowFault::Missing("ts"))
                } else if missing(sym, i) {
                    Err(RowFault::Missing("symbol"))
                } else if missing(price, i) {
                    Err(RowFault::Missing("price"))
                } else if missing(size, i) {
                    Err(RowFault::Missing("size"))
                } else if missing(ids, i) {
                    Err(RowFault::Missing("trade_id"))
                } else {
                    let s = side.filter(|a| a.is_valid(i)).map(|a| a.value(i));
                    rules.check_tick(ts.value(i), price.value(i), size.value(i), s)
                };
                verdict(i, v, &mut report).map_err(CheckError::Strict)?;
            }
        }
        _ => {
            let cols = ["open", "high", "low", "close", "volume"].map(need);
            let (qv, tb, tq) = (
                f64s("quote_volume"),
                f64s("taker_buy_base"),
                f64s("taker_buy_quote"),
            );
            let trades = batch
                .column_by_name("trades")
                .map(|c| c.as_primitive::<Int64Type>());
            let names = ["open", "high", "low", "close", "volume"];
            for i in 0..n {
                let gap = if missing(ts, i) {
                    Some("ts")
                } else if missing(sym, i) {
                    Some("symbol")
                } else {
                    (0..5).find(|k| missing(cols[*k], i)).map(|k| names[k])
                };
                let v = match gap {
                    Some(field) => Err(RowFault::Missing(field)),
                    None => rules.check_bar(&BarRow {
                        ts: ts.value(i),
                        open: cols[0].value(i),
                        high: cols[1].value(i),
                        low: cols[2].value(i),
                        close: cols[3].value(i),
                        volume: cols[4].value(i),
                        quote_volume: opt(qv, i),
                        trades: trades.filter(|a| a.is_valid(i)).map(|a| a.value(i)),
                        taker_buy_base: opt(tb, i),
                        taker_buy_quote: opt(tq, i),
                    }),
                };
                verdict(i, v, &mut report).map_err(CheckError::Strict)?;
            }
        }
    }
    let rows = match keep {
        None => batch.clone(),
        Some(k) => arrow_select::filter::filter_record_batch(batch, &BooleanArray::from(k))
            .map_err(CheckError::Arrow)?,
    };
    // The canonical schema (non-null columns): every row with a missing value is gone.
    let rows =
        RecordBatch::try_new(kind.schema(), rows.columns().to_vec()).map_err(CheckError::Arrow)?;
    Ok((rows, report))
}

/// Why [`check_batch`] stopped.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// A strict call met a rejected row.
    Strict(BadRow),
    /// Building the batch of kept rows failed (a bug: the input was conformed).
    Arrow(ArrowError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(o: f64, h: f64, l: f64, c: f64, v: f64) -> BarRow {
        BarRow {
            open: o,
            high: h,
            low: l,
            close: c,
            volume: v,
            ..BarRow::default()
        }
    }

    #[test]
    fn bad_bars_are_named() {
        let r = RowRules::default();
        let reason = |b: BarRow| r.check_bar(&b).unwrap_err().to_string();
        assert!(r.check_bar(&bar(1.0, 2.0, 0.5, 1.5, 3.0)).is_ok());
        assert_eq!(reason(bar(f64::NAN, 2.0, 0.5, 1.5, 3.0)), "open is NaN");
        assert_eq!(reason(bar(1.0, 0.4, 0.5, 0.45, 3.0)), "high 0.4 < low 0.5");
        assert_eq!(
            reason(bar(-1.0, 2.0, -2.0, 1.5, 3.0)),
            "open is negative (-1)"
        );
        assert_eq!(
            reason(bar(1.0, 2.0, 0.5, 1.5, -3.0)),
            "volume is negative (-3)"
        );
        assert_eq!(
            reason(bar(3.0, 2.0, 0.5, 1.5, 3.0)),
            "open 3 or close 1.5 outside [low 0.5, high 2]"
        );
        assert_eq!(
            reason(bar(1.0, f64::INFINITY, 0.5, 1.5, 3.0)),
            "high is inf"
        );
        let mut b = bar(1.0, 2.0, 0.5, 1.5, 3.0);
        b.trades = Some(-2);
        assert_eq!(reason(b), "trades is negative (-2)");
        b.trades = None;
        b.quote_volume = Some(f64::NAN);
        assert_eq!(reason(b), "quote_volume is NaN");
    }

    #[test]
    fn the_grid_is_the_base_timeframe_from_the_epoch_or_monday() {
        let tf = |s: &str| s.parse::<Timeframe>().unwrap();
        let min = 60_000_000_000i64;
        let m1 = RowRules {
            grid: Grid::new(tf("1m")),
        };
        let mut b = bar(1.0, 1.0, 1.0, 1.0, 0.0);
        b.ts = (2 * 60 + 3) * min + 17_000_000_000;
        let fault = m1.check_bar(&b).unwrap_err();
        assert!(fault.keepable());
        assert_eq!(
            fault.to_string(),
            "ts 1970-01-01T02:03:17Z is not on the 1m grid (bars open at whole multiples of 1m from 00:00 UTC)"
        );
        b.ts = -5 * min;
        assert!(m1.check_bar(&b).is_ok(), "before the epoch too");
        let week = Grid::new(tf("1w")).unwrap();
        // 1970-01-05 was a Monday.
        assert!(week.contains(4 * NANOS_PER_DAY) && !week.contains(0));
        assert!(!Grid::new(tf("1h")).unwrap().contains(i64::MIN));
        let mut cfg = DatasetConfig::new(tf("1d"));
        assert!(Grid::of_dataset(&cfg).is_some());
        cfg.session = Some("09:30-16:00 America/New_York".parse().unwrap());
        assert!(
            Grid::of_dataset(&cfg).is_none(),
            "session days open locally"
        );
        assert!(Grid::of_dataset(&DatasetConfig::new(Timeframe::Tick)).is_none());
    }

    #[test]
    fn the_grid_test_without_division_agrees_with_the_remainder() {
        let mut rnd = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rnd ^= rnd << 13;
            rnd ^= rnd >> 7;
            rnd ^= rnd << 17;
            rnd
        };
        let tfs = [
            "1s", "7s", "1m", "5m", "7m", "15m", "1h", "4h", "1d", "3d", "1w", "999999s",
        ];
        for tf in tfs {
            let g = Grid::new(tf.parse().unwrap()).unwrap();
            let slow = |ts: i64| {
                ts.checked_sub(g.offset)
                    .is_some_and(|t| t.rem_euclid(g.interval) == 0)
            };
            let mut cases = vec![0, 1, -1, i64::MIN, i64::MAX, g.interval, -g.interval];
            for _ in 0..20_000 {
                let r = next() as i64;
                let k = r % (i64::MAX / g.interval / 2);
                cases.push(k * g.interval + g.offset); // on the grid
                cases.push(k * g.interval + g.offset + (r >> 50)); // near it
                cases.push(r);
            }
            for ts in cases {
                assert_eq!(g.contains(ts), slow(ts), "{tf} {ts}");
            }
        }
    }

    #[test]
    fn ticks_check_price_size_and_side() {
        let r = RowRules::default();
        assert!(r.check_tick(0, 1.0, 0.0, Some(-1)).is_ok());
        assert_eq!(
            r.check_tick(0, f64::NAN, 1.0, None)
                .unwrap_err()
                .to_string(),
            "price is NaN"
        );
        assert_eq!(
            r.check_tick(0, 1.0, -1.0, None).unwrap_err().to_string(),
            "size is negative (-1)"
        );
        assert_eq!(
            r.check_tick(0, 1.0, 1.0, Some(3)).unwrap_err().to_string(),
            "side is 3: use 1 (buy), -1 (sell) or null"
        );
    }

    #[test]
    fn judge_follows_the_policy() {
        let fault = RowFault::HighBelowLow {
            high: 1.0,
            low: 2.0,
        };
        let mut rep = RowReport::default();
        let reject = RowPolicy::default();
        let keep = RowPolicy {
            invalid: InvalidPolicy::Keep,
            strict: true,
        };
        let strict = RowPolicy {
            strict: true,
            ..RowPolicy::default()
        };
        assert_eq!(judge(&mut rep, &reject, fault, "f", 3), Ok(false));
        assert_eq!(judge(&mut rep, &keep, fault, "f", 4), Ok(true));
        // Missing values are never kept; strict fails on them.
        let err = judge(&mut rep, &keep, RowFault::Missing("high"), "f", 5).unwrap_err();
        assert_eq!(err.to_string(), "f:5: missing high");
        assert!(judge(&mut rep, &strict, fault, "f", 6).is_err());
        assert_eq!((rep.rejected, rep.flagged), (1, 1));
        assert_eq!(rep.rejects[0].to_string(), "f:3: high 1 < low 2");
        assert_eq!(rep.flags[0].line, 4);
    }
}
