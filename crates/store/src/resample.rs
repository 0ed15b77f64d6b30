//! Bucketing of bars or ticks into coarser bars: rollups on write and resampling on read
//! share this code. Open = first, high = max, low = min, close = last, volume and the
//! other additive fields = sum. A bucket with no input rows produces no bar: gaps stay gaps.

use crate::schema::{self, Kind};
use crate::session::Calendar;
use crate::timeframe::{Timeframe, Unit, NANOS_PER_DAY};
use arrow_array::builder::StringViewBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, Int8Array, RecordBatch,
    TimestampNanosecondArray,
};
use arrow_buffer::NullBuffer;
use arrow_schema::ArrowError;
use chrono::{Datelike, NaiveDate};
use std::collections::HashMap;
use std::sync::Arc;

/// How instants map to buckets.
#[derive(Clone, Debug)]
pub struct Bucketing {
    windows: Windows,
    offset: i64,
    /// The last calendar bucket found, as `(key, label, end)`: rows of one bucket come in
    /// runs, so a run pays the date arithmetic once.
    memo: Option<(i64, i64, i64)>,
}

/// The shape of the buckets.
#[derive(Clone, Debug)]
enum Windows {
    /// Fixed windows of this many ns from `offset`.
    Fixed(i64),
    /// Spans of this many UTC calendar months, their boundaries shifted by `offset`.
    Months(u32),
    /// One bucket per session.
    SessionDays(Calendar),
    /// Weeks of sessions, from the session of the weekday this many days after Monday.
    SessionWeeks(Calendar, i64),
    /// Spans of this many months of the sessions' local dates.
    SessionMonths(Calendar, u32),
}

/// Why a bucketing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    /// Ticks are not an interval.
    #[error("cannot resample to `tick`; ask for a bar timeframe such as 1m")]
    Tick,
    /// A session was given with an interval it cannot shape.
    #[error("with a trading session, bars of 1d, 1w and calendar months and years (1M, 3M, 1Y) follow the session; {0} is not supported (use 1d, 1w, a calendar timeframe, or an intraday interval)")]
    SessionInterval(String),
}

/// The local date `day` days after 1970-01-01 (clamped to chrono's range).
fn date_of_day(day: i64) -> NaiveDate {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    i32::try_from(day)
        .ok()
        .and_then(|d| epoch.checked_add_signed(chrono::Duration::days(d.into())))
        .unwrap_or(if day < 0 {
            NaiveDate::MIN
        } else {
            NaiveDate::MAX
        })
}

/// Days from 1970-01-01 to `d`.
fn day_of_date(d: NaiveDate) -> i64 {
    let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a valid date");
    (d - epoch).num_days()
}

/// Months from 1970-01 to the month of `d`.
fn month_index(d: NaiveDate) -> i64 {
    (i64::from(d.year()) - 1970) * 12 + i64::from(d.month0())
}

/// The first day of month `k` (months from 1970-01), as days since the epoch.
fn first_day_of_month(k: i64) -> i64 {
    let year = i32::try_from(1970 + k.div_euclid(12)).unwrap_or(i32::MAX);
    let month = u32::try_from(k.rem_euclid(12)).unwrap_or(0) + 1;
    NaiveDate::from_ymd_opt(year, month, 1)
        .map(day_of_date)
        .unwrap_or(if k < 0 { i64::MIN / 2 } else { i64::MAX / 2 })
}

/// The bucket with key `key`: from `memo` when it holds that key, else from `make`
/// (and then kept in `memo`).
fn cached(
    memo: &mut Option<(i64, i64, i64)>,
    key: i64,
    make: impl FnOnce() -> (i64, i64),
) -> (i64, i64) {
    match *memo {
        Some((k, l, e)) if k == key => (l, e),
        _ => {
            let (l, e) = make();
            *memo = Some((key, l, e));
            (l, e)
        }
    }
}

/// `day * NANOS_PER_DAY + offset`, clamped to the i64 range.
fn day_start(day: i64, offset: i64) -> i64 {
    let ns = i128::from(day) * i128::from(NANOS_PER_DAY) + i128::from(offset);
    ns.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
}

impl Bucketing {
    /// Buckets of `tf`. Fixed timeframes: windows starting at `offset + k * interval` (ns
    /// since the epoch). Calendar timeframes (`NM`, `NY`): UTC calendar months, spans of
    /// `N` months counted from 1970-01 (so `3M` are quarters and `1Y` years), each
    /// boundary a UTC midnight shifted by `offset`.
    ///
    /// With a session, `1d` windows are sessions; `1w` windows run from the session of
    /// the weekday on which the fixed week at `offset` starts (`offset` 4 days: Monday,
    /// see [`Timeframe::week_offset`]) to that of the next week; calendar windows hold
    /// the sessions of the months of their local dates, labelled at the session of the
    /// first day of the span and ending at the session of the first day of the next.
    /// Intraday timeframes ignore the session.
    pub fn new(tf: Timeframe, offset: i64, session: Option<Calendar>) -> Result<Self, BucketError> {
        let tf = tf.normalized();
        if tf.is_tick() {
            return Err(BucketError::Tick);
        }
        let months = tf.months();
        let windows = match (session, tf) {
            (
                Some(c),
                Timeframe::Bars {
                    n: 1,
                    unit: Unit::Day,
                },
            ) => Windows::SessionDays(c),
            (
                Some(c),
                Timeframe::Bars {
                    n: 1,
                    unit: Unit::Week,
                },
            ) => Windows::SessionWeeks(c, (offset.div_euclid(NANOS_PER_DAY) + 3).rem_euclid(7)),
            (Some(c), _) if months.is_some() => Windows::SessionMonths(c, months.unwrap_or(1)),
            (Some(_), t) if t.spans_days() => {
                return Err(BucketError::SessionInterval(t.to_string()))
            }
            (_, t) => match (t.nanos(), months) {
                (Some(interval), _) => Windows::Fixed(interval),
                (None, m) => Windows::Months(m.unwrap_or(1)),
            },
        };
        let offset = match windows {
            Windows::Fixed(interval) => offset.rem_euclid(interval),
            _ => offset,
        };
        Ok(Bucketing {
            windows,
            offset,
            memo: None,
        })
    }

    /// Bucket of an instant as `(label, end)`; `None` when outside the session.
    pub fn bucket(&mut self, ts: i64) -> Option<(i64, i64)> {
        let Bucketing {
            windows,
            offset,
            memo,
        } = self;
        let offset = *offset;
        match windows {
            Windows::Fixed(interval) => {
                let label = (ts - offset).div_euclid(*interval) * *interval + offset;
                Some((label, label + *interval))
            }
            Windows::Months(m) => {
                if let Some((_, l, e)) = *memo {
                    if l <= ts && ts < e {
                        return Some((l, e));
                    }
                }
                let day = ts.saturating_sub(offset).div_euclid(NANOS_PER_DAY);
                let m = i64::from(*m);
                let k = month_index(date_of_day(day)).div_euclid(m) * m;
                Some(cached(memo, k, || {
                    (
                        day_start(first_day_of_month(k), offset),
                        day_start(first_day_of_month(k + m), offset),
                    )
                }))
            }
            Windows::SessionDays(cal) => cal.session_at(ts).map(|(_, o, c)| (o, c)),
            Windows::SessionWeeks(cal, first) => {
                let (day, _, _) = cal.session_at(ts)?;
                // 1970-01-01 was a Thursday (3 days after Monday).
                let start = day - (day + 3 - *first).rem_euclid(7);
                Some(cached(memo, start, || {
                    (
                        cal.session_of_date(date_of_day(start)).0,
                        cal.session_of_date(date_of_day(start + 7)).0,
                    )
                }))
            }
            Windows::SessionMonths(cal, m) => {
                let (day, _, _) = cal.session_at(ts)?;
                let m = i64::from(*m);
                let k = month_index(date_of_day(day)).div_euclid(m) * m;
                Some(cached(memo, k, || {
                    (
                        cal.session_of_date(date_of_day(first_day_of_month(k))).0,
                        cal.session_of_date(date_of_day(first_day_of_month(k + m)))
                            .0,
                    )
                }))
            }
        }
    }

    /// `(interval, offset)` when windows are fixed (no session, no calendar): the bucket
    /// of `ts` is then `floor((ts - offset) / interval) * interval + offset`.
    pub fn fixed(&self) -> Option<(i64, i64)> {
        match self.windows {
            Windows::Fixed(interval) => Some((interval, self.offset)),
            _ => None,
        }
    }

    /// The span of source data needed to fill the buckets that overlap `[start, end)`:
    /// one bucket's length each side (a month is at most 31 days; sessions add two days
    /// of local-date slack).
    pub fn widen(&self, start: i64, end: i64) -> (i64, i64) {
        let pad = match &self.windows {
            Windows::Fixed(interval) => *interval,
            Windows::SessionDays(_) | Windows::SessionWeeks(..) => 8 * NANOS_PER_DAY,
            Windows::Months(m) | Windows::SessionMonths(_, m) => {
                (i64::from(*m) * 31 + 2).saturating_mul(NANOS_PER_DAY)
            }
        };
        (start.saturating_sub(pad), end.saturating_add(pad))
    }
}

/// Growing output columns of [`resample`] (the rollup schema).
#[derive(Default)]
struct Out {
    ts: Vec<i64>,
    symbol: StringViewBuilder,
    open: Vec<f64>,
    high: Vec<f64>,
    low: Vec<f64>,
    close: Vec<f64>,
    volume: Vec<f64>,
    quote_volume: Vec<Option<f64>>,
    trades: Vec<Option<i64>>,
    taker_buy_base: Vec<Option<f64>>,
    taker_buy_quote: Vec<Option<f64>>,
    ends: Vec<i64>,
}

/// A nullable f64 input column read without per-row downcasts.
#[derive(Clone, Copy)]
struct OptCol<'a> {
    values: &'a [f64],
    nulls: Option<&'a NullBuffer>,
}

impl<'a> OptCol<'a> {
    fn new(a: Option<&'a Float64Array>) -> Option<Self> {
        a.map(|a| OptCol {
            values: a.values(),
            nulls: a.nulls().filter(|n| n.null_count() > 0),
        })
    }
    #[inline]
    fn get(&self, i: usize) -> Option<f64> {
        match self.nulls {
            Some(n) if n.is_null(i) => None,
            _ => Some(self.values[i]),
        }
    }
}

/// `sum = Some(sum.unwrap_or(0.0) + v)` for present values: null when every input is null.
#[inline]
fn add(sum: &mut Option<f64>, v: Option<f64>) {
    if let Some(v) = v {
        *sum = Some(sum.unwrap_or(0.0) + v);
    }
}

/// Resample `input` (sorted by symbol, ts; bar, rollup or tick schema) into bars with the
/// rollup schema. `source` is the input's resolution. A bar is `complete` when its window
/// ends at or before the symbol's watermark: from `watermarks` when given, else the end of
/// the symbol's last input row.
///
/// One pass over runs of equal symbols; with fixed windows (no session) a row only pays a
/// division when it leaves the current window.
pub fn resample(
    input: &RecordBatch,
    kind: Kind,
    source: Timeframe,
    bucketing: &mut Bucketing,
    watermarks: Option<&HashMap<String, i64>>,
) -> Result<RecordBatch, ArrowError> {
    let n = input.num_rows();
    let v = schema::view(input);
    let src_len = source.nanos().unwrap_or(0);
    let f = |name: &str| schema::f64_col(input, name);
    let need = |name: &str| {
        f(name)
            .map(|a| a.values().as_ref())
            .ok_or_else(|| ArrowError::SchemaError(format!("input has no {name} column")))
    };
    enum Src<'a> {
        Bars {
            o: &'a [f64],
            h: &'a [f64],
            l: &'a [f64],
            c: &'a [f64],
            vol: &'a [f64],
            qv: Option<OptCol<'a>>,
            tr: Option<&'a Int64Array>,
            tb: Option<OptCol<'a>>,
            tq: Option<OptCol<'a>>,
        },
        Ticks {
            p: &'a [f64],
            s: &'a [f64],
            side: Option<&'a Int8Array>,
        },
    }
    let src = match kind {
        Kind::Ticks => Src::Ticks {
            p: need("price")?,
            s: need("size")?,
            side: input
                .column_by_name("side")
                .and_then(|c| c.as_any().downcast_ref::<Int8Array>()),
        },
        _ => Src::Bars {
            o: need("open")?,
            h: need("high")?,
            l: need("low")?,
            c: need("close")?,
            vol: need("volume")?,
            qv: OptCol::new(f("quote_volume")),
            tr: schema::i64_col(input, "trades"),
            tb: OptCol::new(f("taker_buy_base")),
            tq: OptCol::new(f("taker_buy_quote")),
        },
    };
    let fixed = bucketing.fixed();
    let mut out = Out::default();
    // (first output row, symbol) of every symbol run, to set `complete` at the end.
    let mut runs: Vec<(usize, &str)> = Vec::new();
    let mut wm: HashMap<&str, i64> = HashMap::new();
    let mut i = 0;
    while i < n {
        let sym = v.symbol.value(i);
        let j = schema::run_end(v.symbol, i);
        runs.push((out.ts.len(), sym));
        if let (
            Some((interval, offset)),
            Src::Bars {
                o,
                h,
                l,
                c,
                vol,
                qv,
                tr,
                tb,
                tq,
            },
        ) = (fixed, &src)
        {
            // Bars into fixed windows: find each window's rows, then fold them column by
            // column (same operations in the same order as the row loop below).
            let ts = &v.ts[i..j];
            let mut a = i;
            while a < j {
                let label = (v.ts[a] - offset).div_euclid(interval) * interval + offset;
                let e = label + interval;
                let mut b = a + 1;
                while b < j && ts[b - i] >= label && ts[b - i] < e {
                    b += 1;
                }
                out.ts.push(label);
                out.symbol.append_value(sym);
                out.open.push(o[a]);
                out.high
                    .push(h[a + 1..b].iter().fold(h[a], |m, x| m.max(*x)));
                out.low
                    .push(l[a + 1..b].iter().fold(l[a], |m, x| m.min(*x)));
                out.close.push(c[b - 1]);
                out.volume
                    .push(vol[a + 1..b].iter().fold(vol[a], |s, x| s + x));
                out.ends.push(e);
                let sum = |col: &Option<OptCol<'_>>| {
                    let mut acc = None;
                    if let Some(col) = col {
                        match col.nulls {
                            None => {
                                for x in &col.values[a..b] {
                                    acc = Some(acc.unwrap_or(0.0) + x);
                                }
                            }
                            Some(_) => (a..b).for_each(|r| add(&mut acc, col.get(r))),
                        }
                    }
                    acc
                };
                out.quote_volume.push(sum(qv));
                out.taker_buy_base.push(sum(tb));
                out.taker_buy_quote.push(sum(tq));
                let mut trades: Option<i64> = None;
                if let Some(t) = tr {
                    for r in a..b {
                        if t.is_valid(r) {
                            trades = Some(trades.unwrap_or(0) + t.value(r));
                        }
                    }
                }
                out.trades.push(trades);
                a = b;
            }
            if watermarks.is_none() {
                let last_ts = ts.iter().copied().max().unwrap_or(i64::MIN);
                let e = wm.entry(sym).or_insert(i64::MIN);
                *e = (*e).max(last_ts.saturating_add(src_len));
            }
            i = j;
            continue;
        }
        let mut last_ts = i64::MIN;
        // The current window [label, end) and whether an output bar is open for it.
        let (mut label, mut end, mut open) = (0i64, 0i64, false);
        let mut qv: Option<f64> = None;
        let mut tb: Option<f64> = None;
        let mut tq: Option<f64> = None;
        let mut trades: Option<i64> = None;
        for r in i..j {
            let ts = v.ts[r];
            last_ts = last_ts.max(ts);
            let (l, e) = match fixed {
                Some(_) if open && ts >= label && ts < end => (label, end),
                Some((interval, offset)) => {
                    let l = (ts - offset).div_euclid(interval) * interval + offset;
                    (l, l + interval)
                }
                None => match bucketing.bucket(ts) {
                    Some(b) => b,
                    None => continue,
                },
            };
            let (price, high, low, close, vol) = match &src {
                Src::Bars {
                    o, h, l, c, vol, ..
                } => (o[r], h[r], l[r], c[r], vol[r]),
                Src::Ticks { p, s, .. } => (p[r], p[r], p[r], p[r], s[r]),
            };
            if !(open && l == label) {
                if open {
                    out.quote_volume.push(qv.take());
                    out.taker_buy_base.push(tb.take());
                    out.taker_buy_quote.push(tq.take());
                    out.trades.push(trades.take());
                }
                open = true;
                label = l;
                end = e;
                out.ts.push(l);
                out.symbol.append_value(sym);
                out.open.push(price);
                out.high.push(high);
                out.low.push(low);
                out.close.push(close);
                out.volume.push(vol);
                out.ends.push(e);
            } else {
                let k = out.ts.len() - 1;
                out.high[k] = out.high[k].max(high);
                out.low[k] = out.low[k].min(low);
                out.close[k] = close;
                out.volume[k] += vol;
            }
            match &src {
                Src::Bars {
                    qv: q,
                    tr,
                    tb: b,
                    tq: t,
                    ..
                } => {
                    add(&mut qv, q.and_then(|a| a.get(r)));
                    add(&mut tb, b.and_then(|a| a.get(r)));
                    add(&mut tq, t.and_then(|a| a.get(r)));
                    if let Some(t) = tr.filter(|a| a.is_valid(r)) {
                        trades = Some(trades.unwrap_or(0) + t.value(r));
                    }
                }
                Src::Ticks { p, s, side } => {
                    let (pi, si) = (p[r], s[r]);
                    add(&mut qv, Some(pi * si));
                    let buy = side.filter(|a| a.is_valid(r)).map(|a| a.value(r) > 0);
                    if let Some(b) = buy {
                        add(&mut tb, Some(if b { si } else { 0.0 }));
                        add(&mut tq, Some(if b { pi * si } else { 0.0 }));
                    }
                    trades = Some(trades.unwrap_or(0) + 1);
                }
            }
        }
        if open {
            out.quote_volume.push(qv);
            out.taker_buy_base.push(tb);
            out.taker_buy_quote.push(tq);
            out.trades.push(trades);
        }
        if watermarks.is_none() {
            let e = wm.entry(sym).or_insert(i64::MIN);
            *e = (*e).max(last_ts.saturating_add(src_len));
        }
        i = j;
    }
    let rows = out.ts.len();
    if rows == 0 {
        return Ok(RecordBatch::new_empty(schema::rollup_schema()));
    }
    let mut complete = Vec::with_capacity(rows);
    for (k, &(first, sym)) in runs.iter().enumerate() {
        let last = runs.get(k + 1).map_or(rows, |r| r.0);
        let w = match watermarks {
            Some(m) => m.get(sym).copied(),
            None => wm.get(sym).copied(),
        };
        complete.extend(
            out.ends[first..last]
                .iter()
                .map(|e| w.is_some_and(|w| *e <= w)),
        );
    }
    let cols: Vec<ArrayRef> = vec![
        Arc::new(TimestampNanosecondArray::from(out.ts).with_timezone("UTC")),
        Arc::new(out.symbol.finish()),
        Arc::new(Float64Array::from(out.open)),
        Arc::new(Float64Array::from(out.high)),
        Arc::new(Float64Array::from(out.low)),
        Arc::new(Float64Array::from(out.close)),
        Arc::new(Float64Array::from(out.volume)),
        Arc::new(Float64Array::from(out.quote_volume)),
        Arc::new(Int64Array::from(out.trades)),
        Arc::new(Float64Array::from(out.taker_buy_base)),
        Arc::new(Float64Array::from(out.taker_buy_quote)),
        Arc::new(BooleanArray::from(complete)),
    ];
    RecordBatch::try_new(schema::rollup_schema(), cols)
}

#[cfg(test)]
mod tests {
    //! The one-pass kernel against the row-at-a-time implementation it replaced.
    use super::*;
    use crate::schema::{BarColumns, TickColumns};
    use proptest::prelude::*;

    mod old {
        use super::super::Bucketing;
        use crate::schema::{self, BarColumns, Kind};
        use crate::timeframe::Timeframe;
        use arrow_array::{Array, Float64Array, Int64Array, Int8Array, RecordBatch};
        use arrow_schema::ArrowError;
        use std::collections::HashMap;

        struct Acc {
            sum: Option<f64>,
        }
        impl Acc {
            fn add(&mut self, v: Option<f64>) {
                if let Some(v) = v {
                    self.sum = Some(self.sum.unwrap_or(0.0) + v);
                }
            }
        }

        /// Resample `input` (sorted by symbol, ts; bar, rollup or tick schema) into bars with the
        /// rollup schema. `source` is the input's resolution. A bar is `complete` when its window
        /// ends at or before the symbol's watermark: from `watermarks` when given, else the end of
        /// the symbol's last input row.
        pub(super) fn old_resample(
            input: &RecordBatch,
            kind: Kind,
            source: Timeframe,
            bucketing: &mut Bucketing,
            watermarks: Option<&HashMap<String, i64>>,
        ) -> Result<RecordBatch, ArrowError> {
            let n = input.num_rows();
            let v = schema::view(input);
            let src_len = source.nanos().unwrap_or(0);
            let f = |name: &str| schema::f64_col(input, name);
            let need = |name: &str| {
                f(name)
                    .ok_or_else(|| ArrowError::SchemaError(format!("input has no {name} column")))
            };
            enum Src<'a> {
                Bars {
                    o: &'a Float64Array,
                    h: &'a Float64Array,
                    l: &'a Float64Array,
                    c: &'a Float64Array,
                    vol: &'a Float64Array,
                    qv: Option<&'a Float64Array>,
                    tr: Option<&'a Int64Array>,
                    tb: Option<&'a Float64Array>,
                    tq: Option<&'a Float64Array>,
                },
                Ticks {
                    p: &'a Float64Array,
                    s: &'a Float64Array,
                    side: Option<&'a Int8Array>,
                },
            }
            let src = match kind {
                Kind::Ticks => Src::Ticks {
                    p: need("price")?,
                    s: need("size")?,
                    side: input
                        .column_by_name("side")
                        .and_then(|c| c.as_any().downcast_ref::<Int8Array>()),
                },
                _ => Src::Bars {
                    o: need("open")?,
                    h: need("high")?,
                    l: need("low")?,
                    c: need("close")?,
                    vol: need("volume")?,
                    qv: f("quote_volume"),
                    tr: schema::i64_col(input, "trades"),
                    tb: f("taker_buy_base"),
                    tq: f("taker_buy_quote"),
                },
            };
            let opt = |a: Option<&Float64Array>, i: usize| {
                a.filter(|a| a.is_valid(i)).map(|a| a.value(i))
            };
            let mut out = BarColumns::default();
            let mut ends: Vec<i64> = Vec::new();
            let mut acc = [Acc { sum: None }, Acc { sum: None }, Acc { sum: None }];
            let mut trades: Option<i64> = None;
            let mut cur: Option<(usize, i64)> = None; // (row of the symbol's first appearance, label)
            let mut wm: HashMap<String, i64> = HashMap::new();

            let flush = |out: &mut BarColumns, acc: &mut [Acc; 3], trades: &mut Option<i64>| {
                out.quote_volume.push(acc[0].sum.take());
                out.taker_buy_base.push(acc[1].sum.take());
                out.taker_buy_quote.push(acc[2].sum.take());
                out.trades.push(trades.take());
            };

            for i in 0..n {
                let ts = v.ts[i];
                let sym = v.symbol.value(i);
                if watermarks.is_none() {
                    let e = wm.entry(sym.to_string()).or_insert(i64::MIN);
                    *e = (*e).max(ts + src_len);
                }
                let Some((label, end)) = bucketing.bucket(ts) else {
                    continue;
                };
                let (price, high, low, vol) = match &src {
                    Src::Bars { o, h, l, vol, .. } => {
                        (o.value(i), h.value(i), l.value(i), vol.value(i))
                    }
                    Src::Ticks { p, s, .. } => (p.value(i), p.value(i), p.value(i), s.value(i)),
                };
                let close = match &src {
                    Src::Bars { c, .. } => c.value(i),
                    Src::Ticks { p, .. } => p.value(i),
                };
                let same = cur.is_some_and(|(j, l)| l == label && v.symbol.value(j) == sym);
                if !same {
                    if cur.is_some() {
                        flush(&mut out, &mut acc, &mut trades);
                    }
                    cur = Some((i, label));
                    out.ts.push(label);
                    out.symbol.push(sym.to_string());
                    out.open.push(price);
                    out.high.push(high);
                    out.low.push(low);
                    out.close.push(close);
                    out.volume.push(vol);
                    ends.push(end);
                } else {
                    let k = out.ts.len() - 1;
                    out.high[k] = out.high[k].max(high);
                    out.low[k] = out.low[k].min(low);
                    out.close[k] = close;
                    out.volume[k] += vol;
                }
                match &src {
                    Src::Bars { qv, tr, tb, tq, .. } => {
                        acc[0].add(opt(*qv, i));
                        acc[1].add(opt(*tb, i));
                        acc[2].add(opt(*tq, i));
                        if let Some(t) = tr.filter(|a| a.is_valid(i)) {
                            trades = Some(trades.unwrap_or(0) + t.value(i));
                        }
                    }
                    Src::Ticks { p, s, side } => {
                        let (pi, si) = (p.value(i), s.value(i));
                        acc[0].add(Some(pi * si));
                        let buy = side.filter(|a| a.is_valid(i)).map(|a| a.value(i) > 0);
                        if let Some(b) = buy {
                            acc[1].add(Some(if b { si } else { 0.0 }));
                            acc[2].add(Some(if b { pi * si } else { 0.0 }));
                        }
                        trades = Some(trades.unwrap_or(0) + 1);
                    }
                }
            }
            if cur.is_some() {
                flush(&mut out, &mut acc, &mut trades);
            }
            let wm = watermarks.unwrap_or(&wm);
            out.complete = out
                .symbol
                .iter()
                .zip(&ends)
                .map(|(s, e)| wm.get(s).is_some_and(|w| *e <= *w))
                .collect();
            if out.is_empty() {
                return Ok(RecordBatch::new_empty(schema::rollup_schema()));
            }
            out.into_batch()
        }
    }

    type Row = (u8, i64, f64, f64, Option<f64>, Option<i64>, Option<i8>);

    fn rows() -> impl Strategy<Value = Vec<Row>> {
        proptest::collection::vec(
            (
                0u8..3,
                0i64..(3 * 86_400),
                1.0f64..100.0,
                0.0f64..5.0,
                proptest::option::of(0.0f64..10.0),
                proptest::option::of(0i64..50),
                proptest::option::of(prop_oneof![Just(1i8), Just(-1i8)]),
            ),
            0..300,
        )
    }

    fn sorted(mut r: Vec<Row>) -> Vec<Row> {
        r.sort_by_key(|x| (x.0, x.1));
        r.dedup_by_key(|x| (x.0, x.1));
        r
    }

    fn bars(r: &[Row], unit: i64) -> RecordBatch {
        let mut c = BarColumns::default();
        for &(s, t, p, d, q, tr, _) in r {
            c.ts.push(t * unit);
            c.symbol
                .push(["AAA", "BBBBBBBBBBBBBBBBBB", "C"][s as usize].into());
            c.open.push(p);
            c.high.push(p + d);
            c.low.push(p - d);
            c.close.push(p + d / 2.0);
            c.volume.push(d);
            c.quote_volume.push(q);
            c.trades.push(tr);
            c.taker_buy_base.push(q.map(|x| x / 2.0));
            c.taker_buy_quote.push(None);
        }
        c.into_batch().unwrap()
    }

    fn ticks(r: &[Row]) -> RecordBatch {
        let mut c = TickColumns::default();
        for &(s, t, p, d, _, _, side) in r {
            c.ts.push(t * 1_000_000_000);
            c.symbol
                .push(["AAA", "BBBBBBBBBBBBBBBBBB", "C"][s as usize].into());
            c.price.push(p);
            c.size.push(d);
            c.side.push(side);
            c.trade_id.push(None);
        }
        c.into_batch().unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn one_pass_kernel_equals_the_old_one(
            r in rows(),
            tf in prop_oneof![Just("1m"), Just("5m"), Just("1h"), Just("7h"), Just("1d"), Just("1w"), Just("2s"), Just("1M"), Just("1Y")],
            off in prop_oneof![Just(0i64), Just(90_000_000_000i64), Just(-3_600_000_000_000i64)],
            src in prop_oneof![Just("bars"), Just("ticks")],
            session in any::<bool>(),
            wm in any::<bool>(),
        ) {
            let r = sorted(r);
            let tf: Timeframe = tf.parse().unwrap();
            let (input, kind, source) = if src == "bars" {
                (bars(&r, 1_000_000_000), Kind::Bars, "1s".parse::<Timeframe>().unwrap())
            } else {
                (ticks(&r), Kind::Ticks, Timeframe::Tick)
            };
            let cal = (session && tf.spans_days()).then(|| {
                "09:30-16:00 America/New_York".parse::<crate::Session>().unwrap().calendar().unwrap()
            });
            let Ok(mut b1) = Bucketing::new(tf, tf.default_offset() + off, cal.clone()) else {
                return Ok(());
            };
            let mut b2 = b1.clone();
            let marks: HashMap<String, i64> =
                [("AAA".to_string(), 86_400_000_000_000i64), ("C".to_string(), 0)].into();
            let marks = wm.then_some(&marks);
            let new = resample(&input, kind, source, &mut b1, marks).unwrap();
            let old = old::old_resample(&input, kind, source, &mut b2, marks).unwrap();
            prop_assert_eq!(new, old);
        }
    }

    /// An RFC 3339 instant in ns.
    fn at(s: &str) -> i64 {
        chrono::DateTime::parse_from_rfc3339(s)
            .unwrap()
            .timestamp_nanos_opt()
            .unwrap()
    }

    fn months(tf: &str, offset: i64, session: Option<&str>) -> Bucketing {
        let cal = session.map(|s| s.parse::<crate::Session>().unwrap().calendar().unwrap());
        Bucketing::new(tf.parse().unwrap(), offset, cal).unwrap()
    }

    #[test]
    fn utc_months_and_years() {
        let mut m = months("1M", 0, None);
        assert_eq!(m.fixed(), None);
        for (ts, label, end) in [
            // Leap and common Februaries (2100 is not a leap year, 2000 is).
            (
                "2024-02-29T23:59:59Z",
                "2024-02-01T00:00:00Z",
                "2024-03-01T00:00:00Z",
            ),
            (
                "2023-02-14T00:00:00Z",
                "2023-02-01T00:00:00Z",
                "2023-03-01T00:00:00Z",
            ),
            (
                "2100-02-28T12:00:00Z",
                "2100-02-01T00:00:00Z",
                "2100-03-01T00:00:00Z",
            ),
            (
                "2000-02-29T00:00:00Z",
                "2000-02-01T00:00:00Z",
                "2000-03-01T00:00:00Z",
            ),
            // Both sides of a year boundary.
            (
                "2023-12-31T23:59:59.999999999Z",
                "2023-12-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
            ),
            (
                "2024-01-01T00:00:00Z",
                "2024-01-01T00:00:00Z",
                "2024-02-01T00:00:00Z",
            ),
            // Before the epoch.
            (
                "1969-12-31T12:00:00Z",
                "1969-12-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
            ),
            (
                "1960-02-29T01:00:00Z",
                "1960-02-01T00:00:00Z",
                "1960-03-01T00:00:00Z",
            ),
            (
                "1970-01-01T00:00:00Z",
                "1970-01-01T00:00:00Z",
                "1970-02-01T00:00:00Z",
            ),
        ] {
            assert_eq!(m.bucket(at(ts)), Some((at(label), at(end))), "{ts}");
        }
        // Month lengths over a leap year, one row per day: 31, 29, 31, 30, ...
        let mut lengths = Vec::new();
        let mut t = at("2024-01-01T00:00:00Z");
        while t < at("2025-01-01T00:00:00Z") {
            let (l, e) = m.bucket(t).unwrap();
            lengths.push((e - l) / NANOS_PER_DAY);
            t = e;
        }
        assert_eq!(lengths, [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]);
        let mut y = months("1Y", 0, None);
        assert_eq!(
            y.bucket(at("1999-07-04T00:00:00Z")),
            Some((at("1999-01-01T00:00:00Z"), at("2000-01-01T00:00:00Z")))
        );
        assert_eq!(
            y.bucket(at("1969-07-20T20:17:00Z")),
            Some((at("1969-01-01T00:00:00Z"), at("1970-01-01T00:00:00Z")))
        );
        // Quarters count from 1970-01; 2Y from 1970.
        let mut q = months("3M", 0, None);
        assert_eq!(
            q.bucket(at("2024-05-10T00:00:00Z")),
            Some((at("2024-04-01T00:00:00Z"), at("2024-07-01T00:00:00Z")))
        );
        let mut y2 = months("2Y", 0, None);
        assert_eq!(
            y2.bucket(at("2025-03-01T00:00:00Z")),
            Some((at("2024-01-01T00:00:00Z"), at("2026-01-01T00:00:00Z")))
        );
        // An offset shifts every boundary: months from 22:00 UTC on the last day.
        let mut shifted = months("1M", -2 * 3600 * 1_000_000_000, None);
        assert_eq!(
            shifted.bucket(at("2024-02-29T22:30:00Z")),
            Some((at("2024-02-29T22:00:00Z"), at("2024-03-31T22:00:00Z")))
        );
        // Extremes saturate instead of overflowing.
        let (l, e) = m.bucket(i64::MIN).unwrap();
        assert!(l == i64::MIN && e > l);
        let (l, e) = m.bucket(i64::MAX).unwrap();
        assert!(l < i64::MAX && e == i64::MAX);
    }

    #[test]
    fn session_months_follow_local_dates_across_dst() {
        let ny = Some("09:30-16:00 America/New_York");
        let mut m = months("1M", 0, ny);
        // March 2024: opens in EST (14:30Z), DST starts on the 10th, April opens in EDT.
        let march = Some((at("2024-03-01T14:30:00Z"), at("2024-04-01T13:30:00Z")));
        assert_eq!(m.bucket(at("2024-03-01T14:30:00Z")), march);
        assert_eq!(
            m.bucket(at("2024-03-11T13:30:00Z")),
            march,
            "first EDT open"
        );
        assert_eq!(m.bucket(at("2024-03-31T19:59:00Z")), march, "last minute");
        assert_eq!(
            m.bucket(at("2024-03-31T20:00:00Z")),
            None,
            "after the close"
        );
        assert_eq!(
            m.bucket(at("2024-03-01T14:29:00Z")),
            None,
            "before the open"
        );
        // November 2024: DST ends on the 3rd.
        let nov = Some((at("2024-11-01T13:30:00Z"), at("2024-12-01T14:30:00Z")));
        assert_eq!(m.bucket(at("2024-11-04T14:30:00Z")), nov);
        // An overnight session belongs to the month of its opening date: the 17:00-01:00
        // session of 31 January ends at 00:59 on 1 February, still January's.
        let mut late = months("1M", 0, Some("17:00-01:00 America/New_York"));
        assert_eq!(
            late.bucket(at("2024-02-01T05:30:00Z")),
            Some((at("2024-01-01T22:00:00Z"), at("2024-02-01T22:00:00Z"))),
            "00:30 on 1 Feb New York is in the session of 31 Jan"
        );
        let mut y = months("1Y", 0, ny);
        assert_eq!(
            y.bucket(at("2024-07-01T15:00:00Z")),
            Some((at("2024-01-01T14:30:00Z"), at("2025-01-01T14:30:00Z")))
        );
        // widen covers the months that overlap the range, whole.
        let (s, e) = m.widen(at("2024-03-31T00:00:00Z"), at("2024-04-01T00:00:00Z"));
        assert!(s <= at("2024-03-01T14:30:00Z") && e >= at("2024-04-01T13:30:00Z"));
        let (s, e) = m.widen(at("2024-03-01T00:00:00Z"), at("2024-03-01T01:00:00Z"));
        assert!(s <= at("2024-02-01T14:30:00Z") && e >= at("2024-04-01T13:30:00Z"));
    }

    #[test]
    fn session_weeks_start_on_the_offsets_weekday() {
        let cal = "09:30-16:00 America/New_York"
            .parse::<crate::Session>()
            .unwrap()
            .calendar()
            .unwrap();
        let w: Timeframe = "1w".parse().unwrap();
        // Wednesday 2024-03-13.
        let wed = at("2024-03-13T15:00:00Z");
        let mut mon =
            Bucketing::new(w, w.week_offset(chrono::Weekday::Mon), Some(cal.clone())).unwrap();
        assert_eq!(
            mon.bucket(wed),
            Some((at("2024-03-11T13:30:00Z"), at("2024-03-18T13:30:00Z")))
        );
        // Sunday weeks: from Sunday 10 March (the DST change: 09:30 is EDT already).
        let mut sun = Bucketing::new(w, w.week_offset(chrono::Weekday::Sun), Some(cal)).unwrap();
        assert_eq!(
            sun.bucket(wed),
            Some((at("2024-03-10T13:30:00Z"), at("2024-03-17T13:30:00Z")))
        );
    }

    #[test]
    fn monthly_bars_from_daily_bars_and_their_complete_flags() {
        // Daily bars for 2024-01-01 .. 2024-03-31 (91 days): price = day number.
        let mut c = BarColumns::default();
        let d0 = at("2024-01-01T00:00:00Z") / NANOS_PER_DAY;
        for k in 0..91 {
            c.ts.push((d0 + k) * NANOS_PER_DAY);
            c.symbol.push("S".into());
            let p = k as f64;
            c.open.push(p);
            c.high.push(p + 1.0);
            c.low.push(p - 1.0);
            c.close.push(p + 0.5);
            c.volume.push(1.0);
            c.quote_volume.push(None);
            c.trades.push(Some(2));
            c.taker_buy_base.push(None);
            c.taker_buy_quote.push(None);
        }
        let input = c.into_batch().unwrap();
        let day: Timeframe = "1d".parse().unwrap();
        let run = |rows: usize| {
            let mut b = months("1M", 0, None);
            resample(&input.slice(0, rows), Kind::Bars, day, &mut b, None).unwrap()
        };
        let f = |b: &RecordBatch, n: &str| schema::f64_col(b, n).unwrap().values().to_vec();
        let done = |b: &RecordBatch| {
            let c = b.column_by_name("complete").unwrap();
            let c = c.as_any().downcast_ref::<BooleanArray>().unwrap();
            (0..c.len()).map(|i| c.value(i)).collect::<Vec<_>>()
        };
        let all = run(91);
        assert_eq!(
            schema::view(&all).ts.to_vec(),
            [
                at("2024-01-01T00:00:00Z"),
                at("2024-02-01T00:00:00Z"),
                at("2024-03-01T00:00:00Z"),
            ]
        );
        assert_eq!(f(&all, "volume"), [31.0, 29.0, 31.0]);
        assert_eq!(f(&all, "open"), [0.0, 31.0, 60.0]);
        assert_eq!(f(&all, "close"), [30.5, 59.5, 90.5]);
        assert_eq!(f(&all, "high"), [31.0, 60.0, 91.0]);
        assert_eq!(f(&all, "low"), [-1.0, 30.0, 59.0]);
        // The data ends exactly at the end of March: every month is complete.
        assert_eq!(done(&all), [true, true, true]);
        // Ending on 30 March, March is still forming; ending on 29 Feb, February closed.
        assert_eq!(done(&run(90)), [true, true, false]);
        assert_eq!(done(&run(60)), [true, true]);
        assert_eq!(done(&run(59)), [true, false]);
    }
}
