//! Rollups on write: after an upsert or a delete, the rollup bars it can change are
//! rewritten from the base bars, and the `complete` flags it closes are set.

use super::{BarStore, ReadError, WriteError};
use crate::catalog::DatasetConfig;
use crate::merge::{self, DeleteRange, Op};
use crate::par_map;
use crate::resample::{self, Bucketing};
use crate::schema::{self, Kind};
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use arrow_array::{RecordBatch, UInt32Array};
use std::collections::{BTreeMap, BTreeSet, HashMap};

impl BarStore {
    /// Bring the rollups up to date after an upsert, rewriting only the rollup bars it can
    /// change. A rollup bar is `complete` when its window ends at or before the end of the
    /// symbol's latest base bar (in any day), so for each (day, symbol) of the batch:
    /// - intraday rollups that divide the day: the buckets from the one holding the
    ///   symbol's bar before the batch's first row of the day (whose window may close now;
    ///   with no gap that is the previous bucket) to the one holding the batch's last row,
    ///   and the bucket of the day's last row (it closes when later data exists);
    /// - other rollups (`1d`, session days, intervals that do not divide the day): the day.
    ///
    /// When the batch holds a symbol's first row of a day, the last bars of the latest
    /// earlier day with rows of that symbol close too: they are rewritten (that day's last
    /// buckets only). An upsert never empties a bucket, so the rewritten bars replace every
    /// old bar in their range by key: no delete frames are needed.
    pub(super) fn refresh_after_upsert(
        &mut self,
        dataset: &str,
        cfg: &DatasetConfig,
        batch: &RecordBatch,
        pieces: &[(i64, RecordBatch)],
        fresh: &BTreeMap<i64, bool>,
        seen: &BTreeSet<String>,
    ) -> Result<RollupBars, WriteError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        // Per symbol: the end of its last bar in the batch, or i64::MAX when it has rows in
        // a later day already (then every bar up to the batch's last day is complete).
        let mut wm = HashMap::new();
        raise_watermarks(batch, len, &mut wm);
        let mut by_last_day: BTreeMap<i64, BTreeSet<String>> = BTreeMap::new();
        for (s, w) in &wm {
            by_last_day
                .entry((w - len).div_euclid(NANOS_PER_DAY))
                .or_default()
                .insert(s.clone());
        }
        for (day, syms) in &by_last_day {
            for s in self.symbols_after(dataset, cfg, syms, *day)? {
                wm.insert(s, i64::MAX);
            }
        }
        // The batch's days, on every CPU (a fresh day's rows are the piece: nothing to read).
        let this = &*self;
        let wm = &wm;
        let per_day = par_map(pieces, |(day, piece)| {
            this.upsert_day_ops(dataset, cfg, kind, *day, piece, fresh[day], wm)
        });
        let mut bars: RollupBars = Vec::new();
        // (after, before) → symbols whose latest day with rows in that open interval
        // gets its last bars rewritten.
        let mut searches: BTreeMap<(i64, i64), BTreeSet<String>> = BTreeMap::new();
        let mut prev_day: HashMap<String, i64> = HashMap::new();
        // The symbols' watermarks after the write (the largest their days said), for the
        // calendar rollups only: no map on the append path of datasets without them.
        let calendar = cfg.calendar_rollups().next().is_some();
        let mut marks: HashMap<String, i64> = HashMap::new();
        for ((day, _), r) in pieces.iter().zip(per_day) {
            let (mut b, firsts) = r?;
            bars.append(&mut b);
            for (s, first, mark) in firsts {
                if calendar {
                    let m = marks.entry(s.clone()).or_insert(mark);
                    *m = (*m).max(mark);
                }
                // The batch's own earlier day of this symbol is rewritten whole above.
                let after = prev_day.insert(s.clone(), *day).unwrap_or(i64::MIN);
                if first && seen.contains(&s) {
                    searches.entry((after, *day)).or_default().insert(s);
                }
            }
        }
        for ((after, before), syms) in searches {
            for (day, src) in
                self.latest_rows_before(dataset, cfg, cfg.base, &syms, after, before)?
            {
                let spans = last_bar_spans(&src);
                let marks: HashMap<String, i64> =
                    spans.keys().map(|s| (s.clone(), i64::MAX)).collect();
                bars.append(&mut self.range_ops(cfg, kind, day, &src, &spans, &marks)?);
            }
        }
        self.hot
            .write(dataset, cfg.fsync, merge_jobs(rollup_jobs(&bars)))?;
        if calendar {
            // Calendar spans are rebuilt from the fixed rollups just written.
            let days: BTreeSet<i64> = pieces.iter().map(|(d, _)| *d).collect();
            let syms: BTreeSet<String> = wm.keys().cloned().collect();
            bars.append(&mut self.refresh_calendar(
                dataset,
                cfg,
                &days,
                (&syms, seen),
                Some(marks),
            )?);
        }
        Ok(bars)
    }

    /// The rollup appends for one day of an upsert (see
    /// [`BarStore::refresh_after_upsert`]), the bars to write, and for each symbol of the
    /// piece whether the batch holds its first row of the day.
    #[allow(clippy::too_many_arguments)]
    fn upsert_day_ops(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        piece: &RecordBatch,
        fresh: bool,
        wm: &HashMap<String, i64>,
    ) -> Result<DayOps, ReadError> {
        let len = cfg.base.nanos().unwrap_or(0);
        let syms: BTreeSet<String> = merge::symbols_of(piece).into_iter().collect();
        let src = if fresh {
            piece.clone()
        } else {
            self.read_base_day(dataset, cfg.base, kind, day, Some(&syms))?
                .unwrap_or_else(|| piece.clone())
        };
        let mut marks;
        let marks = if fresh {
            wm // the day holds only the batch's rows, which `wm` covers
        } else {
            marks = wm.clone();
            raise_watermarks(&src, len, &mut marks);
            &marks
        };
        // Per symbol: [the batch's first row, or the row before it; the batch's last row]
        // and the day's last row.
        let (pv, sv) = (schema::view(piece), schema::view(&src));
        let runs = symbol_runs(&src);
        let mut spans: HashMap<String, Vec<(i64, i64)>> = HashMap::new();
        let mut firsts = Vec::new();
        let mut i = 0;
        while i < piece.num_rows() {
            let sym = pv.symbol.value(i);
            let j = schema::run_end(pv.symbol, i);
            let (lo, hi) = (pv.ts[i], pv.ts[j - 1]);
            let (a, b) = runs.get(sym).copied().unwrap_or((0, 0));
            let ts = &sv.ts[a..b];
            let before = ts.partition_point(|t| *t < lo);
            let from = if before > 0 { ts[before - 1] } else { lo };
            let last = ts.last().copied().unwrap_or(hi);
            spans.insert(sym.to_string(), vec![(from, hi), (last, last)]);
            firsts.push((sym.to_string(), before == 0, marks[sym]));
            i = j;
        }
        Ok((self.range_ops(cfg, kind, day, &src, &spans, marks)?, firsts))
    }

    /// The new rollup bars of `day` whose buckets hold the rows of `spans` (per
    /// symbol, `(from, to)` instants: every bucket from `from`'s to `to`'s), resampled from
    /// `src` (the day's merged base rows of those symbols) with watermarks `marks`. Rollups
    /// whose buckets do not divide the day (and daily ones) take all of the day's rows.
    fn range_ops(
        &self,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        src: &RecordBatch,
        spans: &HashMap<String, Vec<(i64, i64)>>,
        marks: &HashMap<String, i64>,
    ) -> Result<RollupBars, ReadError> {
        let mut bars = Vec::new();
        let v = schema::view(src);
        for tf in fixed_rollups(cfg) {
            let input = match divides_day(cfg, *tf) {
                None => src.clone(),
                Some(width) => {
                    // Row ranges of `src` inside the buckets to rewrite, run by run.
                    let mut take: Vec<(usize, usize)> = Vec::new();
                    let mut i = 0;
                    while i < src.num_rows() {
                        let j = schema::run_end(v.symbol, i);
                        let ts = &v.ts[i..j];
                        let floor = |t: i64| t.div_euclid(width) * width;
                        let mut buckets: Vec<(i64, i64)> = spans
                            .get(v.symbol.value(i))
                            .map(|s| s.iter().map(|(a, b)| (floor(*a), floor(*b) + width)))
                            .into_iter()
                            .flatten()
                            .collect();
                        buckets.sort_unstable();
                        let mut merged: Vec<(i64, i64)> = Vec::new();
                        for (a, b) in buckets {
                            match merged.last_mut() {
                                Some(m) if a <= m.1 => m.1 = m.1.max(b),
                                _ => merged.push((a, b)),
                            }
                        }
                        for (a, b) in merged {
                            let (x, y) = (
                                ts.partition_point(|t| *t < a),
                                ts.partition_point(|t| *t < b),
                            );
                            if x < y {
                                take.push((i + x, i + y));
                            }
                        }
                        i = j;
                    }
                    if take.iter().map(|(a, b)| b - a).sum::<usize>() == src.num_rows() {
                        src.clone() // every row (a fresh day, say): no copy
                    } else {
                        let idx: UInt32Array = take
                            .iter()
                            .flat_map(|&(a, b)| (a as u32)..(b as u32))
                            .collect();
                        arrow_select::take::take_record_batch(src, &idx)?
                    }
                }
            };
            if input.num_rows() == 0 {
                continue;
            }
            let out = resample::resample(
                &input,
                kind,
                cfg.base,
                &mut Self::rollup_bucketing(cfg, *tf),
                Some(marks),
            )?;
            if out.num_rows() > 0 {
                bars.push((*tf, day, out));
            }
        }
        Ok(bars)
    }

    pub(super) fn rollup_bucketing(cfg: &DatasetConfig, tf: Timeframe) -> Bucketing {
        let cal = match &cfg.session {
            Some(s) if tf.spans_days() => Some(
                s.calendar()
                    .expect("sessions are validated at dataset creation"),
            ),
            _ => None,
        };
        Bucketing::new(tf, tf.default_offset(), cal)
            .expect("rollups are validated at dataset creation")
    }

    /// Rewrite the rollups of `syms` after a delete: every bar of the `days` touched
    /// (delete each symbol's day, then upsert), then the last bars of each symbol's latest
    /// earlier day, which stay complete only while the symbol has later rows.
    pub(super) fn refresh_after_delete(
        &mut self,
        dataset: &str,
        cfg: &DatasetConfig,
        days: &[i64],
        syms: &BTreeSet<String>,
    ) -> Result<usize, WriteError> {
        let kind = Self::kind_of(cfg, cfg.base);
        let len = cfg.base.nanos().unwrap_or(0);
        let (first, last) = (days[0], days[days.len() - 1]);
        // Symbols with rows after the day being rewritten: its bars are all complete.
        let mut later = self.symbols_after(dataset, cfg, syms, last)?;
        let mut rows = 0;
        let mut jobs: Vec<WalJob> = Vec::new();
        for &day in days.iter().rev() {
            let src = self.read_base_day(dataset, cfg.base, kind, day, Some(syms))?;
            let mut marks: HashMap<String, i64> =
                later.iter().map(|s| (s.clone(), i64::MAX)).collect();
            if let Some(src) = &src {
                raise_watermarks(src, len, &mut marks);
                later.extend(merge::symbols_of(src));
            }
            let (n, mut j) = self.day_ops(dataset, cfg, kind, day, syms, src.as_ref(), &marks)?;
            rows += n;
            jobs.append(&mut j);
        }
        for (day, src) in self.latest_rows_before(dataset, cfg, cfg.base, syms, i64::MIN, first)? {
            let mut marks: HashMap<String, i64> = HashMap::new();
            raise_watermarks(&src, len, &mut marks);
            for (s, w) in marks.iter_mut() {
                if later.contains(s) {
                    *w = i64::MAX;
                }
            }
            let bars = self.range_ops(cfg, kind, day, &src, &last_bar_spans(&src), &marks)?;
            rows += bars.iter().map(|(_, _, b)| b.num_rows()).sum::<usize>();
            jobs.append(&mut rollup_jobs(&bars));
        }
        self.hot.write(dataset, cfg.fsync, merge_jobs(jobs))?;
        let days: BTreeSet<i64> = days.iter().copied().collect();
        rows += self
            .refresh_calendar(dataset, cfg, &days, (syms, syms), None)?
            .iter()
            .map(|(_, _, b)| b.num_rows())
            .sum::<usize>();
        Ok(rows)
    }

    /// The WAL appends that replace one day's rollup bars of `syms` (deletes of the old
    /// ones, then the new bars), for every rollup timeframe, and the number of new bars.
    #[allow(clippy::too_many_arguments)]
    fn day_ops(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        kind: Kind,
        day: i64,
        syms: &BTreeSet<String>,
        src: Option<&RecordBatch>,
        marks: &HashMap<String, i64>,
    ) -> Result<(usize, Vec<WalJob>), ReadError> {
        let mut rows = 0;
        let mut jobs = Vec::new();
        for tf in fixed_rollups(cfg) {
            // A (timeframe, day) with no WAL and no cold part has nothing to delete.
            let has_old = self.hot.exists(dataset, *tf, day) || self.cold().has(dataset, *tf, day);
            let mut ops: Vec<Op> = if has_old {
                syms.iter()
                    .map(|s| {
                        Op::Delete(DeleteRange {
                            symbol: Some(s.clone()),
                            start: day * NANOS_PER_DAY,
                            end: (day + 1) * NANOS_PER_DAY,
                        })
                    })
                    .collect()
            } else {
                Vec::new()
            };
            if let Some(src) = src {
                let mut b = Self::rollup_bucketing(cfg, *tf);
                let out = resample::resample(src, kind, cfg.base, &mut b, Some(marks))?;
                rows += out.num_rows();
                if out.num_rows() > 0 {
                    ops.push(Op::Upsert(out));
                }
            }
            if !ops.is_empty() {
                jobs.push((*tf, day, ops)); // else nothing to delete, nothing to write
            }
        }
        Ok((rows, jobs))
    }

    /// Days with base data of (dataset, tf) in `range`, per the writer's view: hot WALs
    /// and cold parts. `true` marks a day whose content needs a read to know its symbols
    /// (a hot WAL, or a compacted part); a day of its own part lists them in the catalog.
    pub(super) fn data_days(
        &self,
        dataset: &str,
        tf: Timeframe,
        range: impl std::ops::RangeBounds<i64> + Clone,
    ) -> BTreeMap<i64, bool> {
        let mut days: BTreeMap<i64, bool> = self
            .hot
            .indexed_days(dataset, tf, range.clone())
            .into_iter()
            .map(|d| (d, true))
            .collect();
        // A day of a compacted part needs a read too: the part lists the symbols of its
        // whole run of days, not of the day.
        for (d, compacted) in self.cold().days_in(dataset, tf, range) {
            days.entry(d).or_insert(compacted);
        }
        days
    }

    /// Which of `syms` have rows of `tf` on `day` (a day listed by
    /// [`BarStore::data_days`]), and those rows when the day had to be read.
    #[allow(clippy::too_many_arguments)]
    fn symbols_on(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        tf: Timeframe,
        day: i64,
        hot: bool,
        syms: &BTreeSet<String>,
    ) -> Result<(BTreeSet<String>, Option<RecordBatch>), ReadError> {
        if !hot {
            // Cold only: the catalog lists the symbols of each part exactly.
            let listed: BTreeSet<String> = self
                .cold()
                .on(dataset, tf, day)
                .into_iter()
                .flat_map(|p| p.symbols)
                .filter(|s| syms.contains(s))
                .collect();
            return Ok((listed, None));
        }
        let kind = Self::kind_of(cfg, tf);
        let rows = self.read_base_day(dataset, tf, kind, day, Some(syms))?;
        let found = rows
            .as_ref()
            .map(|b| merge::symbols_of(b).into_iter().collect())
            .unwrap_or_default();
        Ok((found, rows))
    }

    /// The symbols of `syms` with base rows on a day after `day`.
    fn symbols_after(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        syms: &BTreeSet<String>,
        day: i64,
    ) -> Result<BTreeSet<String>, ReadError> {
        let mut pending = syms.clone();
        let mut found = BTreeSet::new();
        for (d, hot) in self.data_days(dataset, cfg.base, day + 1..) {
            if pending.is_empty() {
                break;
            }
            let (here, _) = self.symbols_on(dataset, cfg, cfg.base, d, hot, &pending)?;
            for s in here {
                pending.remove(&s);
                found.insert(s);
            }
        }
        Ok(found)
    }

    /// For each of `syms`, the latest day in `(after, before)` with rows of it at `tf`
    /// (the base, or a calendar rollup): one entry per such day, with the day's merged
    /// rows of the symbols whose latest day it is.
    pub(super) fn latest_rows_before(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        tf: Timeframe,
        syms: &BTreeSet<String>,
        after: i64,
        before: i64,
    ) -> Result<Vec<(i64, RecordBatch)>, ReadError> {
        let mut pending = syms.clone();
        let mut out = Vec::new();
        if after.saturating_add(1) >= before {
            return Ok(out);
        }
        let kind = Self::kind_of(cfg, tf);
        for (d, hot) in self
            .data_days(dataset, tf, after + 1..before)
            .into_iter()
            .rev()
        {
            if pending.is_empty() {
                break;
            }
            let (here, rows) = self.symbols_on(dataset, cfg, tf, d, hot, &pending)?;
            if here.is_empty() {
                continue;
            }
            let rows = match rows {
                Some(r) => Some(r),
                None => self.read_base_day(dataset, tf, kind, d, Some(&here))?,
            };
            for s in &here {
                pending.remove(s);
            }
            if let Some(r) = rows {
                out.push((d, r));
            }
        }
        Ok(out)
    }
}

/// One WAL append: the timeframe and day of its file, and its frames.
pub(super) type WalJob = (Timeframe, i64, Vec<Op>);

/// One day's rollup bars after an upsert, and for each symbol of the batch whether the
/// batch holds its first row of the day, and its watermark as far as the day says.
type DayOps = (RollupBars, Vec<(String, bool, i64)>);

/// Rollup bars to upsert: (timeframe, UTC day, bars).
pub(super) type RollupBars = Vec<(Timeframe, i64, RecordBatch)>;

/// One WAL upsert per rollup bars of `bars`.
fn rollup_jobs(bars: &RollupBars) -> Vec<WalJob> {
    bars.iter()
        .map(|(tf, day, b)| (*tf, *day, vec![Op::Upsert(b.clone())]))
        .collect()
}

/// Jobs with the same file joined into one, in first-seen order (the appends of one write
/// run concurrently, so each file must appear once).
pub(super) fn merge_jobs(jobs: Vec<WalJob>) -> Vec<WalJob> {
    let mut at: HashMap<(Timeframe, i64), usize> = HashMap::new();
    let mut out: Vec<WalJob> = Vec::with_capacity(jobs.len());
    for (tf, day, mut ops) in jobs {
        match at.get(&(tf, day)) {
            Some(&k) => out[k].2.append(&mut ops),
            None => {
                at.insert((tf, day), out.len());
                out.push((tf, day, ops));
            }
        }
    }
    out
}

/// The fixed rollups (calendar ones are rebuilt by [`BarStore::refresh_calendar`]).
fn fixed_rollups(cfg: &DatasetConfig) -> impl Iterator<Item = &Timeframe> {
    cfg.rollups.iter().filter(|t| !t.is_calendar())
}

/// The bucket width of a rollup that splits the UTC day into whole buckets (bucketed
/// from the epoch, no session), which can be rewritten bucket by bucket; `None` for the
/// rest (`1d`, session days, widths that do not divide the day), rewritten by whole days.
fn divides_day(cfg: &DatasetConfig, tf: Timeframe) -> Option<i64> {
    let n = tf.nanos()?;
    let session = cfg.session.is_some() && n >= NANOS_PER_DAY;
    (n < NANOS_PER_DAY && NANOS_PER_DAY % n == 0 && tf.default_offset() == 0 && !session)
        .then_some(n)
}

/// Row range `[start, end)` of each symbol of a batch sorted by (symbol, ts).
fn symbol_runs(batch: &RecordBatch) -> HashMap<&str, (usize, usize)> {
    let v = schema::view(batch);
    let mut out = HashMap::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let j = schema::run_end(v.symbol, i);
        out.insert(v.symbol.value(i), (i, j));
        i = j;
    }
    out
}

/// Per symbol of a sorted batch, the span of its last row: the bucket of a day's last
/// bar, which closes when later rows arrive (or reopens when they are deleted).
fn last_bar_spans(batch: &RecordBatch) -> HashMap<String, Vec<(i64, i64)>> {
    let v = schema::view(batch);
    symbol_runs(batch)
        .into_iter()
        .map(|(s, (_, j))| (s.to_string(), vec![(v.ts[j - 1], v.ts[j - 1])]))
        .collect()
}

/// Raise `wm[symbol]` to the end (`ts + len`) of each row's bar: one map lookup (and at
/// most one allocation) per run of equal symbols, not per row.
pub(super) fn raise_watermarks(batch: &RecordBatch, len: i64, wm: &mut HashMap<String, i64>) {
    let v = schema::view(batch);
    let n = batch.num_rows();
    let mut i = 0;
    while i < n {
        let sym = v.symbol.value(i);
        let j = schema::run_end(v.symbol, i);
        let hi = v.ts[i..j].iter().copied().max().unwrap_or(i64::MIN);
        let end = hi + len;
        match wm.get_mut(sym) {
            Some(e) => *e = (*e).max(end),
            None => {
                wm.insert(sym.to_string(), end);
            }
        }
        i = j;
    }
}
