//! Bucketing of bars or ticks into coarser bars: rollups on write and resampling on read
//! share this code. Open = first, high = max, low = min, close = last, volume and the
//! other additive fields = sum. A bucket with no input rows produces no bar: gaps stay gaps.

use crate::schema::{self, BarColumns, Kind};
use crate::session::Calendar;
use crate::timeframe::{Timeframe, Unit, NANOS_PER_DAY};
use arrow_array::{Array, Float64Array, Int64Array, Int8Array, RecordBatch};
use arrow_schema::ArrowError;
use std::collections::HashMap;

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
        let session = match (session, tf) {
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
        f(name).ok_or_else(|| ArrowError::SchemaError(format!("input has no {name} column")))
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
    let opt = |a: Option<&Float64Array>, i: usize| a.filter(|a| a.is_valid(i)).map(|a| a.value(i));
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
            Src::Bars { o, h, l, vol, .. } => (o.value(i), h.value(i), l.value(i), vol.value(i)),
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
