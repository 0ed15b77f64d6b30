//! The cold tier: closed days as Parquet in a Hive layout, listed by the catalog.
//!
//! ```text
//! <root>/dataset=<D>/tf=<tf>/month=<YYYY-MM>/part-<N>.parquet                a compacted month
//! <root>/dataset=<D>/tf=<tf>/month=<YYYY-MM>/date-<YYYY-MM-DD>-part-<N>.parquet   one day
//! <root>/dataset=<D>/tf=<tf>/date=<YYYY-MM-DD>/part-<N>.parquet   one day, stores written before months
//! ```
//!
//! Write-down writes one part per closed day; compaction ([`crate::BarStore::compact`])
//! merges the days of a finished month into one part, rows sorted by (symbol, ts), so a
//! symbol-year reads 12 files. The parts of a (dataset, timeframe) never cover a day twice:
//! a day written down inside a compacted month rewrites that month's part.
//!
//! [`ColdTier`] is a view of the parts the current catalog lists, with the Parquet I/O
//! ([`parquet`]) under it.

pub mod parquet;

use crate::catalog::{Catalog, PartFile};
use crate::merge;
use crate::perms::StoreOptions;
use crate::read_dirs;
use crate::schema::{self, Kind};
use crate::store::{ReadError, WriteDownError};
use crate::time::day_string;
use crate::timeframe::{Timeframe, NANOS_PER_DAY};
use arrow_array::RecordBatch;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The cold tier as the current catalog lists it.
#[derive(Clone, Copy)]
pub(crate) struct ColdTier<'a> {
    pub(crate) root: &'a Path,
    pub(crate) opts: &'a StoreOptions,
    pub(crate) catalog: &'a Catalog,
}

impl<'a> ColdTier<'a> {
    /// Every part of (dataset, tf), ordered by day.
    pub(crate) fn parts(&self, dataset: &str, tf: Timeframe) -> &'a [PartFile] {
        self.catalog
            .datasets
            .get(dataset)
            .and_then(|e| e.cold.get(&tf.to_string()))
            .map_or(&[], |v| v.as_slice())
    }

    /// The part covering one day (a list: empty, or one part; stores written before the
    /// rule of one part per day could hold more, read in order).
    pub(crate) fn on(&self, dataset: &str, tf: Timeframe, day: i64) -> Vec<PartFile> {
        self.parts(dataset, tf)
            .iter()
            .filter(|p| p.covers(day))
            .cloned()
            .collect()
    }

    /// Whether a part covers (dataset, tf, day).
    pub(crate) fn has(&self, dataset: &str, tf: Timeframe, day: i64) -> bool {
        self.parts(dataset, tf).iter().any(|p| p.covers(day))
    }

    /// The parts that may hold rows of `symbols` (all when `None`) in `[start, end)`, by
    /// the catalog's per-part symbols and time bounds, in day order.
    pub(crate) fn in_range(
        &self,
        dataset: &str,
        tf: Timeframe,
        symbols: Option<&BTreeSet<String>>,
        start: i64,
        end: i64,
    ) -> Vec<PartFile> {
        self.parts(dataset, tf)
            .iter()
            .filter(|p| {
                symbols.is_none_or(|s| p.symbols.iter().any(|x| s.contains(x)))
                    && p.max_ts >= start
                    && p.min_ts < end
            })
            .cloned()
            .collect()
    }

    /// The parts covering each of `days`, in day order (an empty list for a day with none).
    pub(crate) fn by_day(
        &self,
        dataset: &str,
        tf: Timeframe,
        days: &BTreeSet<i64>,
    ) -> Vec<(i64, Vec<PartFile>)> {
        let parts = self.parts(dataset, tf);
        days.iter()
            .map(|d| (*d, parts.iter().filter(|p| p.covers(*d)).cloned().collect()))
            .collect()
    }

    /// The days in `range` that parts cover, each with whether its part is a compacted
    /// one (whose symbols are those of its whole run of days, not of the day).
    pub(crate) fn days_in(
        &self,
        dataset: &str,
        tf: Timeframe,
        range: impl std::ops::RangeBounds<i64>,
    ) -> BTreeMap<i64, bool> {
        let mut out = BTreeMap::new();
        for p in self.parts(dataset, tf) {
            for d in p.day..=p.last() {
                if range.contains(&d) {
                    out.insert(d, p.is_compacted());
                }
            }
        }
        out
    }

    /// Write one day's merged rows as the next part of (dataset, tf, day), after `old`
    /// (the parts it replaces): atomically, not yet in any catalog.
    pub(crate) fn write_part(
        &self,
        dataset: &str,
        tf: Timeframe,
        day: i64,
        old: &[PartFile],
        rows: &RecordBatch,
    ) -> Result<PartFile, WriteDownError> {
        let part = old.iter().map(|p| p.part + 1).max().unwrap_or(0);
        let rel = format!(
            "{}/date-{}-part-{part}.parquet",
            month_dir(dataset, tf, day),
            day_string(day)
        );
        self.write(rel, day, None, part, rows)
    }

    /// Write a compacted part of the days `first..=last` (a month, or what of it has rows)
    /// as part `part` of its month's directory: atomically, not yet in any catalog.
    pub(crate) fn write_run(
        &self,
        dataset: &str,
        tf: Timeframe,
        (first, last): (i64, i64),
        part: u32,
        rows: &RecordBatch,
    ) -> Result<PartFile, WriteDownError> {
        let rel = format!("{}/part-{part}.parquet", month_dir(dataset, tf, first));
        self.write(rel, first, Some(last), part, rows)
    }

    /// Write `rows` as the replacement of part `p` in the same shape (a day part, or a
    /// compacted run of the same days under the next part number): atomically, not yet in
    /// any catalog. Trim uses it to rewrite a part without the rows it removes.
    pub(crate) fn rewrite(
        &self,
        dataset: &str,
        tf: Timeframe,
        p: &PartFile,
        rows: &RecordBatch,
    ) -> Result<PartFile, WriteDownError> {
        if p.is_compacted() {
            self.write_run(dataset, tf, (p.day, p.last()), p.part + 1, rows)
        } else {
            self.write_part(dataset, tf, p.day, std::slice::from_ref(p), rows)
        }
    }

    /// Write `rows` as the part at `rel`: a day part, or (with `last_day`) a compacted run,
    /// whose rows the caller sorted by (symbol, ts) and whose footer says so.
    fn write(
        &self,
        rel: String,
        day: i64,
        last_day: Option<i64>,
        part: u32,
        rows: &RecordBatch,
    ) -> Result<PartFile, WriteDownError> {
        let shape = if last_day.is_some() {
            parquet::PartShape::Sorted
        } else {
            parquet::PartShape::Day
        };
        let bytes = parquet::write_parquet_shaped(&self.root.join(&rel), rows, self.opts, shape)?;
        let v = schema::view(rows);
        Ok(PartFile {
            path: rel,
            day,
            last_day,
            part,
            rows: rows.num_rows() as u64,
            bytes,
            min_ts: v.ts.iter().copied().min().unwrap_or(0),
            max_ts: v.ts.iter().copied().max().unwrap_or(0),
            symbols: merge::symbols_of(rows),
        })
    }

    /// Remove part files the catalog does not list (leftovers of a write-down cut short)
    /// and temp files, then empty day directories.
    pub(crate) fn collect_garbage(&self) {
        let mut referenced = BTreeSet::new();
        for e in self.catalog.datasets.values() {
            for parts in e.cold.values() {
                for p in parts {
                    referenced.insert(self.root.join(&p.path));
                }
            }
        }
        for d in read_dirs(self.root) {
            if !d
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("dataset="))
            {
                continue;
            }
            for t in read_dirs(&d) {
                for day in read_dirs(&t) {
                    for f in read_dirs(&day) {
                        let name = f.to_string_lossy();
                        let orphan = name.ends_with(".tmp")
                            || (name.ends_with(".parquet") && !referenced.contains(&f));
                        if orphan {
                            let _ = std::fs::remove_file(&f);
                        }
                    }
                    let _ = std::fs::remove_dir(&day); // only succeeds when empty
                }
            }
        }
    }
}

/// The month directory of a day: `dataset=<D>/tf=<tf>/month=<YYYY-MM>`.
fn month_dir(dataset: &str, tf: Timeframe, day: i64) -> String {
    format!(
        "dataset={dataset}/tf={}/month={}",
        tf.dir_name(),
        &day_string(day)[..7]
    )
}

/// The first and last UTC day of the month holding `day`.
pub(crate) fn month_of(day: i64) -> (i64, i64) {
    use chrono::Datelike;
    let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).expect("valid");
    let d = epoch + chrono::Duration::days(day);
    let first = d.with_day(1).expect("day 1 exists");
    let next = if first.month() == 12 {
        chrono::NaiveDate::from_ymd_opt(first.year() + 1, 1, 1)
    } else {
        chrono::NaiveDate::from_ymd_opt(first.year(), first.month() + 1, 1)
    }
    .expect("valid");
    ((first - epoch).num_days(), (next - epoch).num_days() - 1)
}

/// The rows of `day` in `parts` (the parts covering it, in catalog order), decoded into
/// `kind`'s schema. Of a compacted part only the pages that can hold the day are read
/// (its `ts` page statistics), then cut to the day.
pub(crate) fn read_day(
    root: &Path,
    parts: &[PartFile],
    kind: Kind,
    day: i64,
) -> Result<Vec<RecordBatch>, ReadError> {
    let schema = kind.schema();
    let mut out = Vec::new();
    for p in parts {
        let path = root.join(&p.path);
        if p.is_compacted() {
            let (lo, hi) = (day * NANOS_PER_DAY, (day + 1) * NANOS_PER_DAY);
            out.extend(parquet::read_parquet_filtered(
                &path,
                Some(&schema),
                None,
                lo,
                hi,
            )?);
        } else {
            out.extend(parquet::read_parquet_as(&path, Some(&schema))?);
        }
    }
    Ok(out)
}

/// The rows of `parts` with `ts` in `[start, end)`, of `symbols` (all when `None`), and not
/// on a day of `skip` (days the hot tier answers for), each part decoded into `kind`'s
/// schema; parts are read on every CPU, results in part order.
pub(crate) fn read_rows(
    root: &Path,
    parts: &[PartFile],
    kind: Kind,
    symbols: Option<&BTreeSet<String>>,
    (start, end): (i64, i64),
    skip: &BTreeSet<i64>,
) -> Result<Vec<RecordBatch>, ReadError> {
    let schema = kind.schema();
    let inside =
        |p: &PartFile| p.min_ts >= start && p.max_ts < end && !skip.iter().any(|d| p.covers(*d));
    let some_symbols = |p: &PartFile| symbols.filter(|s| p.symbols.iter().any(|x| !s.contains(x)));
    // A compacted part is sorted by (symbol, ts) with page statistics on both: read only
    // the pages that can hold the symbols and times asked for.
    let filtered = |p: &PartFile| p.is_compacted() && (some_symbols(p).is_some() || !inside(p));
    let cpus = crate::cpus();
    if parts.len() < cpus && !parts.iter().any(filtered) {
        // Fewer files than CPUs (a month, a quarter): decode each file's row groups on
        // every CPU instead of one file per CPU.
        let loaded: Vec<parquet::Loaded> = crate::par_map_all(parts, |p| {
            parquet::Loaded::load(&root.join(&p.path), Some(&schema))
        })
        .into_iter()
        .collect::<Result<_, _>>()?;
        let units: Vec<(usize, usize)> = loaded
            .iter()
            .enumerate()
            .flat_map(|(i, l)| (0..l.row_groups()).map(move |g| (i, g)))
            .collect();
        let mut out = Vec::new();
        let decoded = crate::par_map_all(&units, |&(i, g)| loaded[i].read(Some(vec![g])));
        for (&(i, _), r) in units.iter().zip(decoded) {
            out.extend(keep(
                &parts[i],
                r?,
                symbols,
                (start, end),
                skip,
                inside(&parts[i]),
            )?);
        }
        return Ok(out);
    }
    let one = |p: &PartFile| -> Result<Vec<RecordBatch>, ReadError> {
        let path = root.join(&p.path);
        let batches = if filtered(p) {
            let names: Option<Vec<&str>> =
                some_symbols(p).map(|s| s.iter().map(String::as_str).collect());
            parquet::read_parquet_filtered(&path, Some(&schema), names.as_deref(), start, end)?
        } else {
            parquet::read_parquet_as(&path, Some(&schema))?
        };
        keep(p, batches, symbols, (start, end), skip, inside(p))
    };
    let mut out = Vec::new();
    for r in crate::par_map_all(parts, one) {
        out.extend(r?);
    }
    Ok(out)
}

/// The rows of `batches` (read from part `p`) of `symbols` (all when `None`), with `ts`
/// in `[start, end)` and not on a day of `skip`; `inside`: every row of `p` is in range.
fn keep(
    p: &PartFile,
    batches: Vec<RecordBatch>,
    symbols: Option<&BTreeSet<String>>,
    (start, end): (i64, i64),
    skip: &BTreeSet<i64>,
    inside: bool,
) -> Result<Vec<RecordBatch>, ReadError> {
    let mut out = Vec::new();
    for b in batches {
        let b = match symbols {
            Some(s) if p.symbols.iter().any(|x| !s.contains(x)) => {
                match crate::store::select_symbols(&b, s)? {
                    Some(b) => b,
                    None => continue,
                }
            }
            _ => b,
        };
        if inside {
            out.push(b);
        } else {
            out.push(keep_rows(&b, |t| {
                (start..end).contains(&t) && !skip.contains(&t.div_euclid(NANOS_PER_DAY))
            })?);
        }
    }
    Ok(out)
}

/// The rows of `b` whose `ts` passes `keep` (no copy when all do).
fn keep_rows(b: &RecordBatch, keep: impl Fn(i64) -> bool) -> Result<RecordBatch, ReadError> {
    let ts = schema::f_ts(b);
    let mask: arrow_array::BooleanArray = ts.iter().map(|t| Some(keep(*t))).collect();
    if mask.true_count() == b.num_rows() {
        return Ok(b.clone());
    }
    Ok(arrow_select::filter::filter_record_batch(b, &mask)?)
}
