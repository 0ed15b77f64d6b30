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
use std::collections::HashMap;
use std::sync::Arc;

/// How instants map to buckets.
#[derive(Clone, Debug)]
pub struct Bucketing {
    interval: i64,
    offset: i64,
    session: Option<(Calendar, bool)>,
}

/// Why a bucketing was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BucketError {
    /// Ticks are not an interval.
    #[error("cannot resample to `tick`; ask for a bar timeframe such as 1m")]
    Tick,
    /// A session was given with an interval it cannot shape.
    #[error("with a trading session, bars of 1d and 1w follow the session; {0} is not supported (use 1d or 1w, or an intraday interval)")]
    SessionInterval(String),
}

impl Bucketing {
    /// Fixed windows of `tf` starting at `offset + k * interval` (ns since the epoch).
    /// With a session, `1d` and `1w` windows are sessions (weeks: Monday's session open to
    /// the next Monday's); intraday timeframes ignore the session.
    pub fn new(tf: Timeframe, offset: i64, session: Option<Calendar>) -> Result<Self, BucketError> {
        let interval = tf.nanos().ok_or(BucketError::Tick)?;
        let session = match (session, tf.normalized()) {
            (
                Some(c),
                Timeframe::Bars {
                    n: 1,
                    unit: Unit::Day,
                },
            ) => Some((c, false)),
            (
                Some(c),
                Timeframe::Bars {
                    n: 1,
                    unit: Unit::Week,
                },
            ) => Some((c, true)),
            (Some(_), t) if interval >= NANOS_PER_DAY => {
                return Err(BucketError::SessionInterval(t.to_string()))
            }
            _ => None,
        };
        Ok(Bucketing {
            interval,
            offset: offset.rem_euclid(interval),
            session,
        })
    }

    /// Bucket of an instant as `(label, end)`; `None` when outside the session.
    pub fn bucket(&mut self, ts: i64) -> Option<(i64, i64)> {
        match &mut self.session {
            None => {
                let label =
                    (ts - self.offset).div_euclid(self.interval) * self.interval + self.offset;
                Some((label, label + self.interval))
            }
            Some((cal, false)) => cal.session_at(ts).map(|(_, o, c)| (o, c)),
            Some((cal, true)) => {
                let (day, _, _) = cal.session_at(ts)?;
                // 1970-01-01 was a Thursday: Monday = day - (day + 3) mod 7.
                let monday = day - (day + 3).rem_euclid(7);
                let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
                let d = |k: i64| epoch + chrono::Duration::days(k);
                Some((
                    cal.session_of_date(d(monday)).0,
                    cal.session_of_date(d(monday + 7)).0,
                ))
            }
        }
    }

    /// `(interval, offset)` when windows are fixed (no session): the bucket of `ts` is then
    /// `floor((ts - offset) / interval) * interval + offset`.
    pub fn fixed(&self) -> Option<(i64, i64)> {
        self.session
            .is_none()
            .then_some((self.interval, self.offset))
    }

    /// The span of source data needed to fill the buckets that overlap `[start, end)`.
    pub fn widen(&self, start: i64, end: i64) -> (i64, i64) {
        let pad = if self.session.is_some() {
            8 * NANOS_PER_DAY
        } else {
            self.interval
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
            tf in prop_oneof![Just("1m"), Just("5m"), Just("1h"), Just("7h"), Just("1d"), Just("1w"), Just("2s")],
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
            let cal = (session && tf.nanos() >= Some(NANOS_PER_DAY)).then(|| {
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
}
