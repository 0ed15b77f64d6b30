//! Last-writer-wins merge of a day's pieces: cold parts, then hot upserts and deletes in
//! WAL order. Re-applying the same operations is idempotent, which is what makes a crash
//! between a write-down commit and the WAL cleanup harmless.

use crate::schema::{self, Kind};
use arrow_array::{BooleanArray, RecordBatch, UInt32Array};
use arrow_ord::sort::{lexsort_to_indices, SortColumn};
use arrow_schema::ArrowError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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

/// A symbol's rows of a merged day: batches in key order, each sorted by key with unique
/// keys, none empty, and every key of a batch below every key of the next.
pub type Chunks = Vec<RecordBatch>;

/// Chunks a symbol may gather (appends after its last key) before they are joined into one.
const MAX_CHUNKS: usize = 16;

/// [`apply`] onto a day that is already merged and split by symbol: one operation at a
/// time, each touching only the symbols it names. Rows after a symbol's last key (a live
/// feed's appends) become a new chunk, joined with the others every 16; other
/// upserts and deletes merge or filter the symbol's rows. Where [`apply`] concatenates and
/// sorts the whole day again, this costs the rows of the symbols touched at most. The
/// result is `apply`'s, split by symbol.
pub fn apply_by_symbol(
    kind: Kind,
    day: &mut BTreeMap<String, Chunks>,
    ops: impl IntoIterator<Item = Op>,
) -> Result<(), ArrowError> {
    let schema = kind.schema();
    let join = |chunks: &Chunks| match &chunks[..] {
        [one] => Ok(one.clone()),
        _ => arrow_select::concat::concat_batches(&schema, chunks),
    };
    for op in ops {
        match op {
            Op::Upsert(b) => {
                let b = sort_dedup(kind, schema::conform(&b, &schema)?)?;
                let v = schema::view(&b);
                let mut i = 0;
                while i < b.num_rows() {
                    let j = schema::run_end(v.symbol, i);
                    let piece = b.slice(i, j - i);
                    match day.get_mut(v.symbol.value(i)) {
                        Some(chunks) => {
                            let last = chunks.last().expect("chunks are never empty");
                            if key_after(kind, last, last.num_rows() - 1, &piece) {
                                chunks.push(piece);
                                if chunks.len() > MAX_CHUNKS {
                                    *chunks = vec![join(chunks)?];
                                }
                            } else {
                                *chunks = vec![merge_sorted(kind, &join(chunks)?, &piece)?];
                            }
                        }
                        None => {
                            day.insert(v.symbol.value(i).to_string(), vec![piece]);
                        }
                    }
                    i = j;
                }
            }
            Op::Delete(d) => {
                let names: Vec<String> = match &d.symbol {
                    Some(s) if day.contains_key(s) => vec![s.clone()],
                    Some(_) => Vec::new(),
                    None => day.keys().cloned().collect(),
                };
                for s in names {
                    let kept = delete_from(&join(&day[&s])?, &d)?;
                    if kept.num_rows() == 0 {
                        day.remove(&s);
                    } else {
                        day.insert(s, vec![kept]);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Whether the first key of `b` is above the key of row `i` of `a` (same symbol).
fn key_after(kind: Kind, a: &RecordBatch, i: usize, b: &RecordBatch) -> bool {
    let (ta, tb) = (schema::f_ts(a)[i], schema::f_ts(b)[0]);
    if kind != Kind::Ticks || ta != tb {
        return tb > ta;
    }
    match (
        schema::i64_col(a, "trade_id"),
        schema::i64_col(b, "trade_id"),
    ) {
        (Some(x), Some(y)) => y.value(0) > x.value(i),
        _ => false,
    }
}

/// Split a merged batch (sorted by key) into one zero-copy slice per symbol.
pub fn split_by_symbol(batch: &RecordBatch) -> BTreeMap<String, Chunks> {
    let v = schema::view(batch);
    let mut out = BTreeMap::new();
    let mut i = 0;
    while i < batch.num_rows() {
        let j = schema::run_end(v.symbol, i);
        out.insert(v.symbol.value(i).to_string(), vec![batch.slice(i, j - i)]);
        i = j;
    }
    out
}

/// Merge two batches sorted by key with unique keys; on equal keys `new`'s row wins.
fn merge_sorted(
    kind: Kind,
    old: &RecordBatch,
    new: &RecordBatch,
) -> Result<RecordBatch, ArrowError> {
    let schema = kind.schema();
    let (old, new) = (
        schema::conform(old, &schema)?,
        schema::conform(new, &schema)?,
    );
    let (a, b) = (schema::view(&old), schema::view(&new));
    let ids = |x: &RecordBatch| {
        (kind == Kind::Ticks)
            .then(|| schema::i64_col(x, "trade_id").map(|c| c.values().clone()))
            .flatten()
    };
    let (ia, ib) = (ids(&old), ids(&new));
    let cmp = |i: usize, j: usize| {
        a.symbol
            .value(i)
            .cmp(b.symbol.value(j))
            .then(a.ts[i].cmp(&b.ts[j]))
            .then_with(|| match (&ia, &ib) {
                (Some(x), Some(y)) => x[i].cmp(&y[j]),
                _ => std::cmp::Ordering::Equal,
            })
    };
    let (n, m) = (old.num_rows(), new.num_rows());
    if n == 0 || m == 0 || cmp(n - 1, 0).is_lt() {
        // Appended after every old key (a live feed's usual case): a plain copy.
        return arrow_select::concat::concat_batches(&schema, [&old, &new]);
    }
    let mut idx: Vec<(usize, usize)> = Vec::with_capacity(n + m);
    let (mut i, mut j) = (0, 0);
    while i < n && j < m {
        match cmp(i, j) {
            std::cmp::Ordering::Less => {
                idx.push((0, i));
                i += 1;
            }
            std::cmp::Ordering::Greater => {
                idx.push((1, j));
                j += 1;
            }
            std::cmp::Ordering::Equal => {
                idx.push((1, j));
                i += 1;
                j += 1;
            }
        }
    }
    idx.extend((i..n).map(|i| (0, i)));
    idx.extend((j..m).map(|j| (1, j)));
    arrow_select::interleave::interleave_record_batch(&[&old, &new], &idx)
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

/// Whether the first key of `b` comes after the last key of `a` (both non-empty, of
/// `kind`'s schema): then `a` followed by `b` is in key order.
pub(crate) fn follows(kind: Kind, a: &RecordBatch, b: &RecordBatch) -> bool {
    let (va, vb) = (schema::view(a), schema::view(b));
    let (i, j) = (a.num_rows() - 1, 0);
    let id = |x: &RecordBatch, k: usize| {
        (kind == Kind::Ticks)
            .then(|| schema::i64_col(x, "trade_id").map(|c| c.values()[k]))
            .flatten()
    };
    va.symbol
        .value(i)
        .cmp(vb.symbol.value(j))
        .then(va.ts[i].cmp(&vb.ts[j]))
        .then_with(|| id(a, i).cmp(&id(b, j)))
        == std::cmp::Ordering::Less
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

/// The distinct symbols of a batch, sorted: one set insert per run of equal symbols.
pub(crate) fn symbols_of(batch: &RecordBatch) -> Vec<String> {
    let v = schema::view(batch);
    let mut out: std::collections::BTreeSet<&str> = std::collections::BTreeSet::new();
    let mut i = 0;
    while i < batch.num_rows() {
        out.insert(v.symbol.value(i));
        i = schema::run_end(v.symbol, i);
    }
    out.into_iter().map(str::to_string).collect()
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
        let again = apply(Kind::Bars, vec![out.clone()], ops.clone())
            .unwrap()
            .unwrap();
        assert_eq!(rows(&again), want);
        // Applied one by one onto the merged base, split by symbol: the same.
        let mut day = split_by_symbol(&apply(Kind::Bars, vec![base], []).unwrap().unwrap());
        apply_by_symbol(Kind::Bars, &mut day, ops.clone()).unwrap();
        let parts: Vec<RecordBatch> = day.into_values().flatten().collect();
        let joined = arrow_select::concat::concat_batches(&parts[0].schema(), &parts).unwrap();
        assert_eq!(rows(&joined), want);
    }

    mod by_symbol {
        //! `apply_by_symbol` (the writer's day cache) against `apply`, on random operations.
        use super::super::*;
        use crate::schema::{BarColumns, TickColumns};
        use proptest::prelude::*;

        type Row = (u8, i64, i64, f64); // symbol, ts, trade id, price

        fn batch(kind: Kind, rows: &[Row]) -> RecordBatch {
            let name = |s: u8| ["A", "BBBBBBBBBBBBBBBBBBBB", "C"][s as usize].to_string();
            if kind == Kind::Ticks {
                let mut c = TickColumns::default();
                for &(s, t, id, p) in rows {
                    c.ts.push(t);
                    c.symbol.push(name(s));
                    c.price.push(p);
                    c.size.push(1.0);
                    c.side.push(None);
                    c.trade_id.push(Some(id));
                }
                return c.into_batch().unwrap();
            }
            let mut c = BarColumns::default();
            for &(s, t, _, p) in rows {
                c.ts.push(t);
                c.symbol.push(name(s));
                for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
                    v.push(p);
                }
                c.volume.push(p);
            }
            c.into_batch().unwrap()
        }

        fn rows() -> impl Strategy<Value = Vec<Row>> {
            proptest::collection::vec((0u8..3, 0i64..40, 0i64..3, 0.0f64..10.0), 0..30)
        }

        fn op(kind: Kind) -> impl Strategy<Value = Op> {
            prop_oneof![
                3 => rows().prop_map(move |r| Op::Upsert(batch(kind, &r))),
                1 => (proptest::option::of(0u8..4), 0i64..40, 0i64..20).prop_map(|(s, a, n)| {
                    Op::Delete(DeleteRange {
                        symbol: s.map(|s| ["A", "BBBBBBBBBBBBBBBBBBBB", "C", "D"][s as usize].into()),
                        start: a,
                        end: a + n,
                    })
                }),
            ]
        }

        fn check(kind: Kind, base: Vec<Row>, ops: Vec<Op>) -> Result<(), TestCaseError> {
            let base = batch(kind, &base);
            let want = apply(kind, vec![base.clone()], ops.clone()).unwrap();
            let mut day = apply(kind, vec![base], [])
                .unwrap()
                .map(|b| split_by_symbol(&b))
                .unwrap_or_default();
            apply_by_symbol(kind, &mut day, ops).unwrap();
            prop_assert!(day.values().flatten().all(|b| b.num_rows() > 0));
            let parts: Vec<RecordBatch> = day.into_values().flatten().collect();
            let got = (!parts.is_empty())
                .then(|| arrow_select::concat::concat_batches(&kind.schema(), &parts).unwrap());
            prop_assert_eq!(got, want);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]
            #[test]
            fn bars_match_apply(base in rows(), ops in proptest::collection::vec(op(Kind::Bars), 0..8)) {
                check(Kind::Bars, base, ops)?;
            }

            #[test]
            fn ticks_match_apply(base in rows(), ops in proptest::collection::vec(op(Kind::Ticks), 0..8)) {
                check(Kind::Ticks, base, ops)?;
            }
        }
    }
}
