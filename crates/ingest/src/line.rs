//! One CSV line into a row: fields split at the separator (quotes honoured),
//! numbers, times and sides parsed, and the row checked by the store's rules.

use crate::csv::Layout;
use crate::field::{num, parse_side, trim};
use crate::rows::BarBuf;
use crate::{
    parse_ts, resolve, Format, IngestError, IngestOptions, InvalidPolicy, TsFormat, BAR_FIELDS,
    TICK_FIELDS,
};
use chrono_tz::Tz;
use ringfeed_store::schema::{Kind, TickColumns};
use ringfeed_store::validate::{BarRow, RowFault, RowRules};
use std::path::Path;

/// Parses the lines of one CSV file.
pub(crate) struct LineParser {
    pub(crate) sep: u8,
    pub(crate) binance: bool,
    /// Column of each canonical field, for generic CSV.
    pub(crate) cols: Vec<Option<usize>>,
    pub(crate) symbol: Option<String>,
    pub(crate) ts_format: TsFormat,
    pub(crate) tz: Option<Tz>,
    pub(crate) keep_invalid: bool,
    pub(crate) rules: RowRules,
    pub(crate) ncols: usize,
}

impl LineParser {
    pub(crate) fn new(
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
    pub(crate) fn split<'a>(&self, line: &'a [u8], out: &mut [&'a [u8]; 16]) -> usize {
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
    pub(crate) fn bar(&self, line: &[u8], out: &mut BarBuf) -> Result<Option<String>, String> {
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

    pub(crate) fn tick(
        &self,
        line: &[u8],
        out: &mut TickColumns,
    ) -> Result<Option<String>, String> {
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
