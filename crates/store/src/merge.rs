//! Last-writer-wins merge of a day's pieces: cold parts, then hot upserts and deletes in
//! WAL order. Re-applying the same operations is idempotent, which is what makes a crash
//! between a write-down commit and the WAL cleanup harmless.

use crate::schema::{self, Kind};
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::ArrowError;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Delete the rows of `symbol` (every symbol when `None`) with `start <= ts < end`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteRange {
    /// Symbol to delete from; `None` deletes from every symbol.
    pub symbol: Option<String>,
    /// First ns timestamp deleted.
    pub start: i64,
    /// First ns timestamp kept after the range (exclusive end).
    pub end: i64,
}

/// One operation in a WAL.
#[derive(Clone, Debug)]
pub enum Op {
    /// Insert or replace rows by key.
    Upsert(RecordBatch),
    /// Remove a time range.
    Delete(DeleteRange),
}

/// Fold pieces and operations into one batch sorted by key with unique keys
/// (`(symbol, ts)` for bars, `(symbol, ts, trade_id)` for ticks). Later rows win.
pub fn apply(
    kind: Kind,
    base: Vec<RecordBatch>,
    ops: impl IntoIterator<Item = Op>,
) -> Result<Option<RecordBatch>, ArrowError> {
    let mut pieces = base;
    for op in ops {
        match op {
            Op::Upsert(b) => pieces.push(b),
            Op::Delete(d) => {
                let mut kept = Vec::with_capacity(pieces.len());
                for p in pieces {
                    let p = delete_from(&p, &d)?;
                    if p.num_rows() > 0 {
                        kept.push(p);
                    }
                }
                pieces = kept;
            }
        }
    }
    pieces.retain(|p| p.num_rows() > 0);
    if pieces.is_empty() {
        return Ok(None);
    }
    let schema = kind.schema();
    let pieces = pieces
        .iter()
        .map(|p| schema::conform(p, &schema))
        .collect::<Result<Vec<_>, _>>()?;
    let all = arrow_select::concat::concat_batches(&schema, &pieces)?;
    sort_dedup(kind, all).map(Some)
}

/// Remove the rows a delete covers.
pub fn delete_from(batch: &RecordBatch, d: &DeleteRange) -> Result<RecordBatch, ArrowError> {
    let v = schema::view(batch);
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| {
            let hit = v.ts[i] >= d.start
                && v.ts[i] < d.end
                && d.symbol.as_deref().is_none_or(|s| v.symbol.value(i) == s);
            Some(!hit)
        })
        .collect();
    arrow_select::filter::filter_record_batch(batch, &keep)
}

fn key_cmp(kind: Kind, batch: &RecordBatch) -> impl Fn(usize, usize) -> std::cmp::Ordering + '_ {
    let v = schema::view(batch);
    let ids = (kind == Kind::Ticks)
        .then(|| schema::i64_col(batch, "trade_id").map(|a| a.values()))
        .flatten();
    move |a, b| {
        let by_symbol = if v.symbol.views()[a] == v.symbol.views()[b] {
            std::cmp::Ordering::Equal
        } else {
            v.symbol.value(a).cmp(v.symbol.value(b))
        };
        by_symbol
            .then(v.ts[a].cmp(&v.ts[b]))
            .then_with(|| match ids {
                Some(ids) => ids[a].cmp(&ids[b]),
                None => std::cmp::Ordering::Equal,
            })
    }
}

/// Sort by key, keeping the last row (highest position) of each key.
pub fn sort_dedup(kind: Kind, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
    let n = batch.num_rows();
    let sorted = {
        let cmp = key_cmp(kind, &batch);
        (1..n).all(|i| cmp(i - 1, i) == std::cmp::Ordering::Less)
    };
    if sorted {
        return Ok(batch);
    }
    let cmp = key_cmp(kind, &batch);
    let seq = UInt32Array::from_iter_values(0..n as u32);
    let mut cols = vec![
        SortColumn {
            values: batch.column_by_name(schema::SYMBOL).unwrap().clone(),
            options: None,
        },
        SortColumn {
            values: batch.column_by_name(schema::TS).unwrap().clone(),
            options: None,
        },
    ];
    if kind == Kind::Ticks {
        cols.push(SortColumn {
            values: batch.column_by_name("trade_id").unwrap().clone(),
            options: None,
        });
    }
    cols.push(SortColumn {
        values: Arc::new(seq),
        options: None,
    });
    let idx = lexsort_to_indices(&cols, None)?;
    let idx = idx.values();
    let mut keep = Vec::with_capacity(n);
    for j in 0..idx.len() {
        let last_of_key = j + 1 == idx.len()
            || cmp(idx[j] as usize, idx[j + 1] as usize) != std::cmp::Ordering::Equal;
        if last_of_key {
            keep.push(idx[j]);
        }
    }
    arrow_select::take::take_record_batch(&batch, &UInt32Array::from(keep))
}

/// Count of rows whose key equals an earlier row's key, and of rows out of key order.
pub fn disorder(kind: Kind, batch: &RecordBatch) -> (usize, usize) {
    let cmp = key_cmp(kind, batch);
    let (mut dup, mut back) = (0, 0);
    for i in 1..batch.num_rows() {
        match cmp(i - 1, i) {
            std::cmp::Ordering::Equal => dup += 1,
            std::cmp::Ordering::Greater => back += 1,
            std::cmp::Ordering::Less => {}
        }
    }
    (dup, back)
}

/// Whether the `n` rows of every symbol appear in one contiguous run.
pub(crate) fn symbols_of(batch: &RecordBatch) -> Vec<String> {
    let v = schema::view(batch);
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let s = v.symbol.value(i);
        if !out.iter().any(|o| o == s) {
            out.push(s.to_string());
        }
        i = schema::run_end(v.symbol, i);
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::BarColumns;

    fn bars(rows: &[(&str, i64, f64)]) -> RecordBatch {
        let mut c = BarColumns::default();
        for &(s, t, p) in rows {
            c.ts.push(t);
            c.symbol.push(s.into());
            c.open.push(p);
            c.high.push(p);
            c.low.push(p);
            c.close.push(p);
            c.volume.push(1.0);
        }
        c.into_batch().unwrap()
    }

    fn rows(b: &RecordBatch) -> Vec<(String, i64, f64)> {
        let v = schema::view(b);
        let c = schema::f64_col(b, "close").unwrap();
        (0..b.num_rows())
            .map(|i| (v.symbol.value(i).to_string(), v.ts[i], c.value(i)))
            .collect()
    }

    #[test]
    fn later_rows_win_and_deletes_apply_to_earlier_pieces() {
        let base = bars(&[("A", 1, 1.0), ("A", 2, 2.0), ("B", 1, 5.0)]);
        let ops = vec![
            Op::Upsert(bars(&[("A", 2, 20.0), ("A", 0, 0.5)])),
            Op::Delete(DeleteRange {
                symbol: Some("B".into()),
                start: 0,
                end: 10,
            }),
            Op::Upsert(bars(&[("A", 3, 3.0), ("A", 3, 30.0)])),
        ];
        let out = apply(Kind::Bars, vec![base.clone()], ops.clone())
            .unwrap()
            .unwrap();
        let want = vec![
            ("A".to_string(), 0, 0.5),
            ("A".to_string(), 1, 1.0),
            ("A".to_string(), 2, 20.0),
            ("A".to_string(), 3, 30.0),
        ];
        assert_eq!(rows(&out), want);
        // Idempotent: applying the same ops over the result changes nothing.
        let again = apply(Kind::Bars, vec![out], ops).unwrap().unwrap();
        assert_eq!(rows(&again), want);
    }
}
