//! Row buffers the loaders fill, bars ([`BarBuf`]) or ticks ([`TickColumns`]), and the
//! hand-over of their rows to the sink in batches of a fixed size.

use crate::{IngestError, Sink};
use arrow_array::builder::StringViewBuilder;
use arrow_array::{ArrayRef, Float64Array, Int64Array, RecordBatch, TimestampNanosecondArray};
use arrow_buffer::NullBuffer;
use arrow_schema::ArrowError;
use ringfeed_store::schema::TickColumns;
use ringfeed_store::validate::RowReport;
use std::sync::Arc;

/// Row buffers the CSV parser fills: bars ([`BarBuf`]) or ticks ([`TickColumns`]).
pub(crate) trait RowBuf: Default + Send {
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
pub(crate) struct OptVec<T> {
    vals: Vec<T>,
    /// Validity per row; empty while every row is valid.
    valid: Vec<bool>,
}

impl<T: Copy + Default> OptVec<T> {
    #[inline]
    pub(crate) fn push(&mut self, v: Option<T>) {
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
pub(crate) struct BarBuf {
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
    pub(crate) fn symbol_str(&mut self, s: &str) {
        if self.sym.last().is_none_or(|(_, l)| l != s) {
            self.sym.push((self.ts.len(), s.to_string()));
        }
    }
    /// The same from CSV bytes (lossy UTF-8, as before).
    #[inline]
    pub(crate) fn symbol_bytes(&mut self, b: &[u8]) {
        if self.sym.last().is_some_and(|(_, l)| l.as_bytes() == b) {
            return;
        }
        let s = String::from_utf8_lossy(b);
        self.symbol_str(&s);
    }
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(crate) fn push(
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
        RecordBatch::try_new(ringfeed_store::schema::bar_schema(), cols)
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

/// Hand every buffered row to `sink` as one batch.
pub(crate) fn flush_rows<B: RowBuf>(
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
pub(crate) fn move_rows<B: RowBuf>(
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
