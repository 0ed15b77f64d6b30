//! What a follower already holds of each symbol, and the rows of a catch-up it can skip.
//!
//! A follower's copy of a symbol is whole up to its newest stored bar: the follower
//! stores what its primary sends in order, one all-or-nothing append at a time, and every
//! change the primary made below that bar since (a correction, a delete, a trim) is in the
//! primary's change log, which the follower applies ([`super::changes`]). So a catch-up
//! (the chunked backfill, or a subscription's history) need not store again:
//! - a row before the symbol's newest stored bar: held already;
//! - the bar at it, when it equals the stored one. The replay re-sends that bar because
//!   it may have changed since (the current bar, updated in place, is not logged); storing
//!   it unchanged is not free when its day has gone to Parquet (an upsert into a cold day
//!   rewrites the day), which made a one-hour outage's catch-up 3.7 s instead of 0.1 s.

use crate::service::HeldTail;
use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use arrow_array::{BooleanArray, RecordBatch};
use arrow_ord::ord::{make_comparator, DynComparator};
use arrow_schema::{DataType, SchemaRef, SortOptions};
use std::collections::{BTreeMap, BTreeSet};

/// The newest stored base bar of each symbol, and the catch-up filter built on it.
pub(super) struct Held {
    tail: HeldTail,
    /// Row of each symbol's newest bar in `tail.rows`.
    row_of: BTreeMap<String, usize>,
}

impl Held {
    pub(super) fn new(tail: HeldTail) -> Result<Self, String> {
        let symbols = symbols(&tail.rows)?;
        let row_of = (0..tail.rows.num_rows())
            .map(|i| (symbols.value(i).to_string(), i))
            .collect();
        Ok(Held { tail, row_of })
    }

    /// The newest stored bar of `symbol` (ns).
    pub(super) fn newest(&self, symbol: &str) -> Option<i64> {
        self.tail.newest.get(symbol).copied()
    }

    /// Whether any bar of `symbol` is stored here.
    pub(super) fn holds(&self, symbol: &str) -> bool {
        self.tail.newest.contains_key(symbol)
    }

    /// Where a catch-up of `symbols` starts: the oldest of their newest stored bars,
    /// inclusive; 0 (the first bar) when one of them is not held yet.
    pub(super) fn resume_point(&self, symbols: &BTreeSet<String>) -> i64 {
        symbols
            .iter()
            .map(|s| self.newest(s).unwrap_or(0))
            .min()
            .unwrap_or(0)
            .max(0)
    }

    /// The newest stored bar over every symbol (ns), for the lag.
    pub(super) fn newest_overall(&self) -> Option<i64> {
        self.tail.newest.values().copied().max()
    }

    /// The stored base columns.
    pub(super) fn schema(&self) -> SchemaRef {
        self.tail.rows.schema()
    }

    /// `batch` without the rows held already (see the module doc): rows before their
    /// symbol's newest stored bar, and that bar when it is equal. `None` when none is left.
    pub(super) fn drop_held(&self, batch: &RecordBatch) -> Result<Option<RecordBatch>, String> {
        if self.tail.newest.is_empty() || batch.num_rows() == 0 {
            return Ok(Some(batch.clone()).filter(|b| b.num_rows() > 0));
        }
        let batch = ringfeed_store::schema::conform(batch, &self.schema())
            .map_err(|e| format!("the primary's bars do not fit the stored columns: {e}"))?;
        let ts = batch
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampNanosecondType>())
            .ok_or("the primary's bars have no timestamp[ns] ts")?;
        let syms = symbols(&batch)?;
        // One comparator per column, built once per batch, and only when a row of it
        // falls on a stored newest bar.
        let mut cmp: Option<Vec<DynComparator>> = None;
        let mut keep = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let sym = syms.value(i);
            let k = match self.newest(sym) {
                None => true,
                Some(n) if ts.value(i) > n => true,
                Some(n) if ts.value(i) < n => false,
                Some(_) => {
                    if cmp.is_none() {
                        cmp = Some(self.comparators(&batch)?);
                    }
                    let j = self.row_of[sym];
                    !cmp.as_ref()
                        .expect("built above")
                        .iter()
                        .all(|c| c(i, j).is_eq())
                }
            };
            keep.push(k);
        }
        let kept = arrow_select::filter::filter_record_batch(&batch, &BooleanArray::from(keep))
            .map_err(|e| e.to_string())?;
        Ok(Some(kept).filter(|b| b.num_rows() > 0))
    }

    fn comparators(&self, batch: &RecordBatch) -> Result<Vec<DynComparator>, String> {
        let opts = SortOptions::default();
        batch
            .columns()
            .iter()
            .zip(self.tail.rows.columns())
            .map(|(a, b)| make_comparator(a.as_ref(), b.as_ref(), opts).map_err(|e| e.to_string()))
            .collect()
    }
}

/// The `symbol` column as strings.
fn symbols(b: &RecordBatch) -> Result<arrow_array::StringArray, String> {
    let col = b.column_by_name("symbol").ok_or("bars without a symbol")?;
    let s = arrow_cast::cast(col, &DataType::Utf8).map_err(|e| e.to_string())?;
    Ok(s.as_string::<i32>().clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringfeed_store::schema::BarColumns;

    fn bars(rows: &[(&str, i64, f64)]) -> RecordBatch {
        let mut b = BarColumns::default();
        for (s, ts, close) in rows {
            b.ts.push(*ts);
            b.symbol.push((*s).into());
            b.open.push(1.0);
            b.high.push(2.0);
            b.low.push(0.5);
            b.close.push(*close);
            b.volume.push(1.0);
        }
        b.into_batch().unwrap()
    }

    #[test]
    fn rows_before_the_newest_and_an_equal_newest_bar_are_dropped_a_changed_one_kept() {
        let tail = bars(&[("A", 100, 1.0), ("B", 200, 1.0)]);
        let held = Held::new(HeldTail {
            newest: [("A".to_string(), 100), ("B".to_string(), 200)].into(),
            rows: tail,
        })
        .unwrap();
        assert_eq!(held.resume_point(&["A".into(), "B".into()].into()), 100);
        assert_eq!(held.resume_point(&["A".into(), "C".into()].into()), 0);
        let sent = bars(&[
            ("A", 100, 1.0), // equal: dropped
            ("B", 100, 9.0), // before B's newest: dropped
            ("B", 200, 1.5), // B's newest, changed: kept
            ("A", 160, 1.0), // after: kept
            ("C", 50, 1.0),  // a symbol not held: kept
        ]);
        let kept = held.drop_held(&sent).unwrap().unwrap();
        let ts: Vec<i64> = kept
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampNanosecondType>()
            .values()
            .to_vec();
        assert_eq!(ts, [200, 160, 50]);
        assert!(held.drop_held(&bars(&[("A", 100, 1.0)])).unwrap().is_none());
    }
}
