//! Calendar rollups on write (`1M`, `3M`, `1Y`).
//!
//! A fixed rollup bar lies inside one UTC day, so a write rewrites it from that day's
//! base rows. A month bar depends on every day of its month, so a write instead
//! recomputes the spans it touches from the coarsest *other* stored timeframe that nests
//! in them (the `1d` rollup: at most 31 rows a symbol a month; a stored `1M` for `1Y`),
//! with the same kernel and `complete` rule as a query resampled on read. Each bar is kept
//! in the WAL of the UTC day of its label (the span's first instant, or with a session the
//! first session's open): a write-down then carries it to the cold tier like any rollup
//! bar of that day, and a later write to the month rewrites that day as a late
//! correction does.
//!
//! Per calendar rollup and write:
//! - the spans holding the days written (or deleted) are recomputed for the symbols
//!   written, and a span left without rows loses its bar;
//! - each symbol's latest bar *before* those spans gets the `complete` flag it now has:
//!   rows in a later span close it, and deleting them reopens it.
//!
//! The whole refresh runs inside the caller's write (all or nothing, rolled back with
//! it) and before its rollup marker, so a crash in between is repaired at open like the
//! fixed rollups.

use super::query::source_of;
use super::rollup::{merge_jobs, RollupBars, WalJob};
use super::{split_days, BarStore, ReadError, WriteError};
use crate::catalog::DatasetConfig;
use crate::merge::{DeleteRange, Op};
use crate::resample::{self, Bucketing};
use crate::schema;
use crate::session::Calendar;
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use arrow_array::{Array, BooleanArray, RecordBatch};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

impl BarStore {
    /// Rewrite the calendar rollup bars of `syms` whose spans hold any of `days` (UTC day
    /// numbers written or deleted), finest timeframe first, and fix the `complete` flag of
    /// the latest bar before them of each symbol of `earlier` (those that may have one:
    /// not a symbol the write is the first to list). Returns the bars written.
    pub(super) fn refresh_calendar(
        &mut self,
        dataset: &str,
        cfg: &DatasetConfig,
        days: &BTreeSet<i64>,
        (syms, earlier): (&BTreeSet<String>, &BTreeSet<String>),
        marks: Option<HashMap<String, i64>>,
    ) -> Result<RollupBars, WriteError> {
        let mut calendar: Vec<Timeframe> = cfg.calendar_rollups().collect();
        if calendar.is_empty() || days.is_empty() || syms.is_empty() {
            return Ok(Vec::new());
        }
        crate::failpoint("upsert:before_calendar");
        // Months before years: a year is then built from the months written just before.
        calendar.sort();
        // The symbols' watermarks: from the upsert, which knows them unless the symbol has
        // rows in a later day (then it says `i64::MAX`, which is right for the fixed
        // rollups of the days written only), or read back.
        let marks = match marks {
            Some(mut m) => {
                let later: BTreeSet<String> = m
                    .iter()
                    .filter(|(_, w)| **w == i64::MAX)
                    .map(|(s, _)| s.clone())
                    .collect();
                if !later.is_empty() {
                    m.extend(self.base_watermarks(dataset, cfg, later)?);
                }
                m
            }
            None => self.base_watermarks(dataset, cfg, syms.clone())?,
        };
        let session = cfg.session.as_ref().map(|s| {
            s.calendar()
                .expect("sessions are validated at dataset creation")
        });
        let mut out: RollupBars = Vec::new();
        for tf in calendar {
            let mut b = Self::rollup_bucketing(cfg, tf);
            let spans = touched_spans(&mut b, session.as_ref(), days);
            let (jobs, mut bars) =
                self.span_jobs(dataset, cfg, tf, &mut b, &spans, (syms, earlier), &marks)?;
            if let Some(first) = jobs.iter().map(|(_, d, _)| *d).min() {
                self.lower_hot_floor(dataset, Some(first))?;
            }
            self.hot.write(dataset, cfg.fsync, merge_jobs(jobs))?;
            out.append(&mut bars);
        }
        Ok(out)
    }

    /// [`BarStore::refresh_calendar`] of the spans holding `day`, as a write of its own
    /// (all or nothing; a crash midway leaves a state that running the caller again
    /// finishes, as for [`BarStore::trim`]).
    pub(super) fn rebuild_calendar(
        &mut self,
        dataset: &str,
        day: i64,
        syms: &BTreeSet<String>,
    ) -> Result<(), WriteError> {
        let cfg = self.entry(dataset)?.config.clone();
        if cfg.calendar_rollups().next().is_none() {
            return Ok(());
        }
        self.begin_write();
        let res = self
            .refresh_calendar(dataset, &cfg, &[day].into(), (syms, syms), None)
            .and_then(|_| Ok(self.hot.sync_pending()?))
            .and_then(|_| Ok(self.hot.mark_rollups_done(dataset)?));
        self.end_write(res)
    }

    /// The WAL appends that bring the `tf` bars of `syms` in `spans` (and the latest bar
    /// before them) up to date, and the bars they write.
    #[allow(clippy::too_many_arguments)]
    fn span_jobs(
        &self,
        dataset: &str,
        cfg: &DatasetConfig,
        tf: Timeframe,
        b: &mut Bucketing,
        spans: &BTreeSet<(i64, i64)>,
        (syms, earlier): (&BTreeSet<String>, &BTreeSet<String>),
        marks: &HashMap<String, i64>,
    ) -> Result<(Vec<WalJob>, RollupBars), ReadError> {
        let Some(&(first, _)) = spans.first() else {
            return Ok((Vec::new(), Vec::new()));
        };
        let src = source_of(&cfg.stored(), tf, 0, cfg.session.is_some())
            .expect("calendar rollups are validated at dataset creation");
        let (kind, out_kind) = (Self::kind_of(cfg, src), Self::kind_of(cfg, tf));
        let mut jobs: Vec<WalJob> = Vec::new();
        let mut bars: RollupBars = Vec::new();
        for (lo, hi) in runs(spans) {
            let raw = self.read_range(dataset, src, kind, lo, hi, Some(syms))?;
            let new = resample::resample(&raw, kind, src, b, Some(marks))?;
            // An old bar without a new one: every row of its span is gone, and so is it.
            let old = self.read_range(dataset, tf, out_kind, lo, hi, Some(syms))?;
            let kept: HashSet<(&str, i64)> = keys(&new).collect();
            for (sym, ts) in keys(&old).filter(|k| !kept.contains(k)) {
                let range = DeleteRange {
                    symbol: Some(sym.to_string()),
                    start: ts,
                    end: ts + 1,
                };
                jobs.push((tf, ts.div_euclid(NANOS_PER_DAY), vec![Op::Delete(range)]));
            }
            for (day, piece) in split_days(&new)? {
                jobs.push((tf, day, vec![Op::Upsert(piece.clone())]));
                bars.push((tf, day, piece));
            }
        }
        // The latest bar before the spans closes when the symbol has later rows, and
        // reopens when they are deleted. (A search for a symbol without one reads every
        // earlier day of `tf`: symbols new to the dataset are left out by the caller.)
        let before = first.div_euclid(NANOS_PER_DAY);
        for (day, prev) in self.latest_rows_before(dataset, cfg, tf, earlier, i64::MIN, before)? {
            if let Some(fixed) = with_complete_flags(&prev, b, marks)? {
                jobs.push((tf, day, vec![Op::Upsert(fixed.clone())]));
                bars.push((tf, day, fixed));
            }
        }
        Ok((jobs, bars))
    }
}

/// The `(label, end)` spans of `b` that hold rows of the UTC `days`: those of each day's
/// first and last instants and, with a session, of the session that opens in the day
/// (a session sits inside one UTC day, checked at dataset creation).
fn touched_spans(
    b: &mut Bucketing,
    session: Option<&Calendar>,
    days: &BTreeSet<i64>,
) -> BTreeSet<(i64, i64)> {
    let mut spans = BTreeSet::new();
    for &d in days {
        let start = d.saturating_mul(NANOS_PER_DAY);
        let mut probes = vec![start, start.saturating_add(NANOS_PER_DAY - 1)];
        if let Some(cal) = session {
            for local in d - 1..=d + 1 {
                let Some(date) = chrono::DateTime::from_timestamp(local.saturating_mul(86_400), 0)
                else {
                    continue;
                };
                let (open, _) = cal.session_of_date(date.date_naive());
                if open.div_euclid(NANOS_PER_DAY) == d {
                    probes.push(open);
                }
            }
        }
        spans.extend(probes.into_iter().filter_map(|t| b.bucket(t)));
    }
    spans
}

/// Sorted spans joined where one ends at the next one's label: the ranges to read.
fn runs(spans: &BTreeSet<(i64, i64)>) -> Vec<(i64, i64)> {
    let mut out: Vec<(i64, i64)> = Vec::new();
    for &(label, end) in spans {
        match out.last_mut() {
            Some(r) if label <= r.1 => r.1 = r.1.max(end),
            _ => out.push((label, end)),
        }
    }
    out
}

/// `(symbol, ts)` of each row of a batch in the bar or rollup schema.
fn keys(batch: &RecordBatch) -> impl Iterator<Item = (&str, i64)> {
    let v = schema::view(batch);
    (0..batch.num_rows()).map(move |i| (v.symbol.value(i), v.ts[i]))
}

/// `bars` (rollup schema) with each `complete` flag set as the watermarks now say (the
/// span ends at or before the end of the symbol's latest base bar); `None` when every flag
/// already says so.
fn with_complete_flags(
    bars: &RecordBatch,
    b: &mut Bucketing,
    marks: &HashMap<String, i64>,
) -> Result<Option<RecordBatch>, ReadError> {
    let idx = bars.schema().index_of(schema::COMPLETE)?;
    let old = bars
        .column(idx)
        .as_any()
        .downcast_ref::<BooleanArray>()
        .expect("the rollup schema's complete column is boolean");
    let v = schema::view(bars);
    let flags: Vec<bool> = (0..bars.num_rows())
        .map(|i| {
            let end = b.bucket(v.ts[i]).map_or(i64::MAX, |(_, e)| e);
            marks.get(v.symbol.value(i)).is_some_and(|wm| end <= *wm)
        })
        .collect();
    if flags
        .iter()
        .enumerate()
        .all(|(i, f)| old.is_valid(i) && old.value(i) == *f)
    {
        return Ok(None);
    }
    let mut cols = bars.columns().to_vec();
    cols[idx] = Arc::new(BooleanArray::from(flags));
    Ok(Some(RecordBatch::try_new(bars.schema(), cols)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_join_adjacent_spans_only() {
        let spans: BTreeSet<(i64, i64)> = [(0, 10), (10, 20), (30, 40)].into();
        assert_eq!(runs(&spans), vec![(0, 20), (30, 40)]);
        assert!(runs(&BTreeSet::new()).is_empty());
    }

    #[test]
    fn a_day_touches_its_month_and_a_utc_month_end_touches_one() {
        let mut b = Bucketing::new("1M".parse().unwrap(), 0, None).unwrap();
        // 2024-01-31 (day 19753): January only.
        let spans = touched_spans(&mut b, None, &[19_753].into());
        assert_eq!(spans.len(), 1);
        let (label, end) = *spans.first().unwrap();
        assert_eq!(label, 19_723 * NANOS_PER_DAY); // 2024-01-01
        assert_eq!(end, 19_754 * NANOS_PER_DAY); // 2024-02-01
    }
}
