//! Queries: what is asked ([`Query`]), and how it is answered from the tiers: stored
//! timeframes as stored (hot merged over cold), others resampled on read.

use super::rollup::raise_watermarks;
use super::{list, BarStore, QueryError, ReadError};
use crate::catalog::DatasetConfig;
use crate::merge;
use crate::resample::{self, Bucketing};
use crate::schema::{self, Kind};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use crate::validate;
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_schema::ArrowError;
use std::collections::{BTreeSet, HashMap};

/// Which symbols a query asks for.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Symbols {
    /// Every symbol.
    #[default]
    All,
    /// These symbols.
    List(Vec<String>),
}

/// A query: symbols × timeframe × time range, with projection and limit.
///
/// ```no_run
/// # use ringfeed_store::{BarStore, Query, Symbols};
/// let store = BarStore::open_read_only("ringfeed-data".as_ref()).unwrap();
/// let mut q = Query::new("binance-spot", "1h".parse().unwrap());
/// q.symbols = Symbols::List(vec!["BTCUSDT".into()]);
/// q.limit = Some(24);
/// q.from_end = true;
/// let bars = store.query(&q).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct Query {
    /// Dataset name.
    pub dataset: String,
    /// Symbols.
    pub symbols: Symbols,
    /// Timeframe: stored, or resampled on read.
    pub timeframe: Timeframe,
    /// Bucket offset in ns for resampling (buckets start at `offset + k * interval`).
    pub offset: Option<i64>,
    /// First ts included (ns).
    pub start: Option<i64>,
    /// First ts excluded (ns).
    pub end: Option<i64>,
    /// Columns besides `ts` and `symbol`; `None` = all.
    pub fields: Option<Vec<String>>,
    /// At most this many rows per symbol.
    pub limit: Option<usize>,
    /// Take the limit from the end instead of the start.
    pub from_end: bool,
    /// First day of `1w` buckets; `None` = the dataset's `week_start`.
    pub week_start: Option<chrono::Weekday>,
}

impl Query {
    /// A query for every symbol and all time.
    pub fn new(dataset: &str, timeframe: Timeframe) -> Self {
        Query {
            dataset: dataset.into(),
            symbols: Symbols::All,
            timeframe,
            offset: None,
            start: None,
            end: None,
            fields: None,
            limit: None,
            from_end: false,
            week_start: None,
        }
    }
}

impl BarStore {
    /// The first and last ts of one merged (dataset, timeframe, day), for
    /// [`BarStore::extent`]; cheap for the writer (see [`crate::hot`]'s `span`).
    pub(crate) fn day_span(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        day: i64,
    ) -> Result<Option<(i64, i64)>, ReadError> {
        let cold = self.cold().on(dataset, tf, day);
        self.hot.day_span(dataset, tf, kind, day, &cold)
    }

    /// Answer a query: stored timeframes are read as stored (hot merged over cold); other
    /// timeframes are resampled on read from the coarsest stored one that divides them.
    /// Rows are sorted by (symbol, ts); `limit` applies per symbol.
    pub fn query(&self, q: &Query) -> Result<RecordBatch, QueryError> {
        let mut batches = self.query_batches(q)?;
        if batches.len() == 1 {
            return Ok(batches.pop().expect("one batch"));
        }
        let schema = batches[0].schema();
        Ok(arrow_select::concat::concat_batches(&schema, &batches).map_err(ReadError::from)?)
    }

    /// [`BarStore::query`] as batches (at least one, maybe empty) whose rows, one batch
    /// after the other, are the query's: the pieces as read when they already follow each
    /// other in (symbol, ts) order, as a one-symbol range over month files and days does,
    /// without the copy that joining them takes (a symbol-year of 1m bars: ~40 % of the
    /// query). For a consumer that takes chunks (a polars DataFrame, an Arrow stream, the
    /// daemon's result arena).
    pub fn query_batches(&self, q: &Query) -> Result<Vec<RecordBatch>, QueryError> {
        let entry =
            self.catalog
                .datasets
                .get(&q.dataset)
                .ok_or_else(|| QueryError::UnknownDataset {
                    name: q.dataset.clone(),
                    known: self.known(),
                })?;
        let cfg = &entry.config;
        let symbols: Option<BTreeSet<String>> = match &q.symbols {
            Symbols::All => None,
            Symbols::List(v) => {
                for s in v {
                    if !entry.symbols.contains(s) {
                        return Err(QueryError::UnknownSymbol {
                            dataset: q.dataset.clone(),
                            symbol: s.clone(),
                            known: list(&entry.symbols),
                        });
                    }
                }
                Some(v.iter().cloned().collect())
            }
        };
        let stored = self.stored_timeframes(&q.dataset);
        let week_start = q.week_start.unwrap_or(cfg.week_start);
        let offset = q
            .offset
            .unwrap_or_else(|| q.timeframe.week_offset(week_start));
        let (start, end) = (q.start.unwrap_or(i64::MIN), q.end.unwrap_or(i64::MAX));
        if start >= end {
            return Err(QueryError::Range {
                start: validate::iso(start),
                end: validate::iso(end),
            });
        }
        let direct = stored.contains(&q.timeframe) && offset == q.timeframe.default_offset();
        let session_cal = match &cfg.session {
            Some(s) if q.timeframe.spans_days() => {
                Some(s.calendar().expect("validated at creation"))
            }
            _ => None,
        };
        let mut out = if direct {
            let kind = Self::kind_of(cfg, q.timeframe);
            match q.limit {
                None => self.read_range_pieces(
                    &q.dataset,
                    q.timeframe,
                    kind,
                    start,
                    end,
                    symbols.as_ref(),
                )?,
                Some(n) => {
                    let want = symbols.clone().unwrap_or_else(|| entry.symbols.clone());
                    let range = (q.timeframe, kind, start, end);
                    let pieces =
                        self.read_limited_pieces(&q.dataset, range, want, n, q.from_end)?;
                    vec![join(kind, pieces).map_err(ReadError::from)?]
                }
            }
        } else {
            let src = source_of(&stored, q.timeframe, offset, session_cal.is_some()).ok_or_else(
                || QueryError::Timeframe {
                    dataset: q.dataset.clone(),
                    asked: q.timeframe,
                    stored: list(stored.iter().map(|t| t.to_string())),
                },
            )?;
            let mut b = Bucketing::new(q.timeframe, offset, session_cal)?;
            let (ws, we) = b.widen(start, end);
            let kind = Self::kind_of(cfg, src);
            let raw = self.read_range(&q.dataset, src, kind, ws, we, symbols.as_ref())?;
            // `complete` as rollups on write set it: a bucket is closed when it ends at or
            // before the end of the symbol's latest base bar. The last source row says so
            // only when the source is the base and the read ran to the end of the data: a
            // source rollup's last bar may still be forming (the 05:00 1h bar of a last
            // base bar at 05:31 ends at 06:00, yet 05:00–06:00 is not closed), and a read
            // that stops at `end` misses later bars.
            let marks = if src == cfg.base && we == i64::MAX {
                None
            } else {
                let syms: BTreeSet<String> = merge::symbols_of(&raw).into_iter().collect();
                Some(self.base_watermarks(&q.dataset, cfg, syms)?)
            };
            let res = resample::resample(&raw, kind, src, &mut b, marks.as_ref())
                .map_err(ReadError::from)?;
            vec![filter_ts(&res, start, end).map_err(ReadError::from)?]
        };
        if let Some(n) = q.limit {
            out = vec![limit_per_symbol(&out[0], n, q.from_end).map_err(ReadError::from)?];
        }
        if let Some(fields) = &q.fields {
            let schema = out[0].schema();
            let mut idx = vec![0, 1];
            for f in fields {
                if f == schema::TS || f == schema::SYMBOL {
                    continue;
                }
                match schema.index_of(f) {
                    Ok(i) => idx.push(i),
                    Err(_) => {
                        return Err(QueryError::UnknownField {
                            field: f.clone(),
                            known: list(schema.fields().iter().map(|f| f.name())),
                        })
                    }
                }
            }
            out = out
                .iter()
                .map(|b| b.project(&idx))
                .collect::<Result<_, _>>()
                .map_err(ReadError::from)?;
        }
        Ok(out)
    }

    /// Per symbol of `syms`, the end of its latest base bar (`ts` + the base length; for
    /// ticks the latest trade's `ts`): the watermark of `complete`. Read back from the
    /// newest base data in growing windows (a day, then 4×, …) until every symbol is found
    /// or the data's start is passed.
    pub(super) fn base_watermarks(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        mut pending: BTreeSet<String>,
    ) -> Result<HashMap<String, i64>, ReadError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        let hot = self.hot.days(dataset, cfg.base);
        let parts = self.cold().parts(dataset, cfg.base);
        let newest = hot
            .last()
            .copied()
            .max(parts.iter().map(|p| p.last()).max());
        let oldest = [hot.first().copied(), parts.iter().map(|p| p.day).min()]
            .into_iter()
            .flatten()
            .min();
        let mut wm = HashMap::new();
        let (Some(newest), Some(oldest)) = (newest, oldest) else {
            return Ok(wm);
        };
        let mut hi = (newest + 1).saturating_mul(NANOS_PER_DAY);
        let mut span = 1i64;
        while !pending.is_empty() {
            let lo = hi.saturating_sub(span.saturating_mul(NANOS_PER_DAY));
            // The pieces as read: a watermark is a maximum, so no join or sort is needed.
            let pieces = self.read_range_pieces(dataset, cfg.base, kind, lo, hi, Some(&pending))?;
            for b in &pieces {
                raise_watermarks(b, len, &mut wm);
            }
            for s in pieces.iter().flat_map(merge::symbols_of) {
                pending.remove(&s);
            }
            if lo <= oldest.saturating_mul(NANOS_PER_DAY) {
                break;
            }
            hi = lo;
            span = span.saturating_mul(4);
        }
        Ok(wm)
    }

    /// The rows of (dataset, tf) in `[start, end)`, of `symbols` (all when `None`),
    /// sorted by key, in one batch.
    pub(super) fn read_range(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        start: i64,
        end: i64,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<RecordBatch, ReadError> {
        let pieces = self.read_range_pieces(dataset, tf, kind, start, end, symbols)?;
        Ok(join(kind, pieces)?)
    }

    /// The pieces of a read limited to `n` rows per symbol: the range's days with data
    /// read from its end (`from_end`) or its start, in windows of 1, 2, 4, ... days, each
    /// for the symbols that hold fewer than `n` rows so far, until every symbol of `want`
    /// has `n` or the days run out. The newest bar of each symbol of a year-long dataset
    /// (what a follower resumes from) then reads a day or two, not the year.
    fn read_limited_pieces(
        &self,
        dataset: &str,
        (tf, kind, start, end): (Timeframe, Kind, i64, i64),
        mut want: BTreeSet<String>,
        n: usize,
        from_end: bool,
    ) -> Result<Vec<RecordBatch>, ReadError> {
        let (first, last) = days_of(start, end);
        // Hot days as every opener sees them (the writer's index is the writer's only),
        // and the cold parts' days.
        let mut days: BTreeSet<i64> = self
            .hot
            .days(dataset, tf)
            .into_iter()
            .filter(|d| (first..=last).contains(d))
            .collect();
        days.extend(self.cold().days_in(dataset, tf, first..=last).into_keys());
        let mut days: Vec<i64> = days.into_iter().collect();
        if from_end {
            days.reverse();
        }
        let mut have: HashMap<String, usize> = HashMap::new();
        let mut pieces = Vec::new();
        let (mut at, mut width) = (0usize, 1usize);
        while at < days.len() && !want.is_empty() && n > 0 {
            let window = &days[at..(at + width).min(days.len())];
            let (lo, hi) = window
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), d| (lo.min(*d), hi.max(*d)));
            let a = start.max(lo.saturating_mul(NANOS_PER_DAY));
            let b = end.min(hi.saturating_add(1).saturating_mul(NANOS_PER_DAY));
            for p in self.read_range_pieces(dataset, tf, kind, a, b, Some(&want))? {
                let v = schema::view(&p);
                for i in 0..p.num_rows() {
                    let sym = v.symbol.value(i);
                    match have.get_mut(sym) {
                        Some(c) => *c += 1,
                        None => {
                            have.insert(sym.to_string(), 1);
                        }
                    }
                }
                pieces.push(p);
            }
            want.retain(|s| have.get(s).is_none_or(|c| *c < n));
            at += window.len();
            width = width.saturating_mul(2);
        }
        Ok(pieces)
    }

    /// The rows of (dataset, tf) in `[start, end)`, of `symbols` (all when `None`), as
    /// batches in key order (at least one). The hot tier answers for the days it has
    /// frames of (each day its parts overlaid with its WAL, days on every CPU); the cold
    /// tier for the rest, each part that may hold such rows read once (on every CPU),
    /// whatever days it covers.
    fn read_range_pieces(
        &self,
        dataset: &str,
        tf: Timeframe,
        kind: Kind,
        start: i64,
        end: i64,
        symbols: Option<&BTreeSet<String>>,
    ) -> Result<Vec<RecordBatch>, ReadError> {
        let (first, last) = days_of(start, end);
        let cold = self.cold();
        let hot_days: BTreeSet<i64> = self
            .hot
            .days(dataset, tf)
            .into_iter()
            .filter(|d| (first..=last).contains(d))
            .collect();
        let parts = cold.in_range(dataset, tf, symbols, start, end);
        let mut pieces =
            crate::cold::read_rows(self.root(), &parts, kind, symbols, (start, end), &hot_days)?;
        let plan = cold.by_day(dataset, tf, &hot_days);
        pieces.extend(self.hot.read_days(dataset, tf, kind, &plan, symbols)?);
        let mut out: Vec<RecordBatch> = Vec::with_capacity(pieces.len());
        let mut pieces = pieces.into_iter();
        while let Some(p) = pieces.next() {
            // Each piece is sorted and free of repeated keys as written (a part, a merged
            // day); checked here anyway, and sorted if not (no copy when it is).
            let p = merge::sort_dedup(kind, filter_ts(&p, start, end)?)?;
            if p.num_rows() == 0 {
                continue;
            }
            if out
                .last()
                .is_some_and(|prev| !merge::follows(kind, prev, &p))
            {
                // Out of order (several symbols over several parts, a hot day between
                // cold ones): one batch, sorted, the last write of a key winning.
                out.push(p);
                for rest in pieces {
                    out.push(filter_ts(&rest, start, end)?);
                }
                return Ok(vec![join(kind, out)?]);
            }
            out.push(p);
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(kind.schema()));
        }
        Ok(out)
    }
}

/// The coarsest of `stored` (other than `tf` itself) whose bars nest inside the buckets
/// of `tf` at `offset`: what `tf` is resampled from, on read or as a calendar rollup.
/// With a session (for timeframes that span days), the source bars must also nest in its
/// half-hour-aligned opening and closing times.
pub(super) fn source_of(
    stored: &[Timeframe],
    tf: Timeframe,
    offset: i64,
    session: bool,
) -> Option<Timeframe> {
    let session = session && tf.spans_days();
    stored
        .iter()
        .copied()
        .filter(|t| {
            *t != tf
                && tf.nests(*t, offset)
                && (!session || t.nanos().is_none_or(|n| (30 * 60 * 1_000_000_000) % n == 0))
        })
        .max()
}

/// `pieces` (batches of `kind`'s schema, in write order) as one batch sorted by key, the
/// last write of a key winning.
fn join(kind: Kind, mut pieces: Vec<RecordBatch>) -> Result<RecordBatch, ArrowError> {
    if pieces.len() == 1 {
        return merge::sort_dedup(kind, pieces.pop().expect("one piece"));
    }
    let all = arrow_select::concat::concat_batches(&kind.schema(), &pieces)?;
    merge::sort_dedup(kind, all)
}

/// The first and last day (since the epoch) of `[start, end)`; `i64::MAX` for an open
/// end.
fn days_of(start: i64, end: i64) -> (i64, i64) {
    let last = if end == i64::MAX {
        i64::MAX
    } else {
        (end - 1).div_euclid(NANOS_PER_DAY)
    };
    (start.div_euclid(NANOS_PER_DAY), last)
}

/// The rows of `symbols` in a batch sorted by (symbol, ts), found by binary search: a
/// slice (no copy) for one symbol. `None` when there are none.
pub(crate) fn select_symbols(
    b: &RecordBatch,
    symbols: &BTreeSet<String>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let v = schema::view(b);
    let n = b.num_rows();
    let first_at_or_after = |s: &str, strictly_after: bool| {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            let c = v.symbol.value(mid).cmp(s);
            if c.is_lt() || (strictly_after && c.is_eq()) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    };
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (a, z) in symbols
        .iter()
        .map(|s| (first_at_or_after(s, false), first_at_or_after(s, true)))
        .filter(|(a, z)| a < z)
    {
        // Runs of neighbouring symbols join: every symbol of a batch is then one slice.
        match runs.last_mut() {
            Some(r) if r.1 == a => r.1 = z,
            _ => runs.push((a, z)),
        }
    }
    Ok(match runs[..] {
        [] => None,
        [(a, z)] => Some(b.slice(a, z - a)),
        _ => {
            let idx: UInt32Array = runs
                .iter()
                .flat_map(|&(a, z)| (a as u32)..(z as u32))
                .collect();
            Some(arrow_select::take::take_record_batch(b, &idx)?)
        }
    })
}

fn filter_ts(b: &RecordBatch, start: i64, end: i64) -> Result<RecordBatch, ArrowError> {
    let ts = schema::f_ts(b);
    if ts.iter().all(|t| *t >= start && *t < end) {
        return Ok(b.clone());
    }
    let keep: BooleanArray = ts.iter().map(|t| Some(*t >= start && *t < end)).collect();
    arrow_select::filter::filter_record_batch(b, &keep)
}

fn limit_per_symbol(b: &RecordBatch, n: usize, from_end: bool) -> Result<RecordBatch, ArrowError> {
    let v = schema::view(b);
    let mut idx = Vec::new();
    let mut i = 0;
    while i < b.num_rows() {
        let mut j = i;
        while j < b.num_rows() && v.symbol.value(j) == v.symbol.value(i) {
            j += 1;
        }
        let (lo, hi) = if from_end {
            (j.saturating_sub(n).max(i), j)
        } else {
            (i, (i + n).min(j))
        };
        idx.extend((lo..hi).map(|k| k as u32));
        i = j;
    }
    arrow_select::take::take_record_batch(b, &UInt32Array::from(idx))
}
