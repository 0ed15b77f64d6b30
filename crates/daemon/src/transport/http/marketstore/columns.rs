//! Arrow bars ↔ MarketStore's column-bytes dataset (`NumpyMultiDataset`): `types` (numpy
//! type strings), `names`, `data` (one byte string per column: its values, little-endian,
//! back to back), `length`, and per time bucket key its `startindex` and `lengths`.
//!
//! Out: `Epoch` (int64 seconds), `Nanoseconds` (int32, tick timeframes only), then every
//! numeric column, named as MarketStore names them (`QuoteVolume`). Nulls are NaN in
//! float columns and 0 in integer ones. The `symbol` column becomes the keys, rows of one
//! symbol being contiguous (a query's result is in (symbol, ts) order).
//!
//! In: the same shape, every length checked against the declared ones before anything is
//! built, so a small body cannot make the daemon allocate much more than its own size.

use super::names::{column_to_ms, column_to_rf, reply_key};
use super::wire::ColumnBytes;
use arrow_array::cast::AsArray;
use arrow_array::types::*;
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;

const NS: i64 = 1_000_000_000;

/// MarketStore's `NumpyMultiDataset`, field for field and in its order.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Dataset {
    /// numpy type strings (`i8`, `f8`).
    #[serde(default)]
    pub types: Vec<String>,
    /// Column names.
    #[serde(default)]
    pub names: Vec<String>,
    /// Per column, its values' bytes.
    #[serde(default)]
    pub data: Vec<ColumnBytes>,
    /// Rows in every column.
    #[serde(default)]
    pub length: i64,
    /// Per key (`SYM/1Min/OHLCV:Symbol/Timeframe/AttributeGroup`), its first row.
    #[serde(default)]
    pub startindex: BTreeMap<String, i64>,
    /// Per key, its rows.
    #[serde(default)]
    pub lengths: BTreeMap<String, i64>,
}

/// A numpy type string's Arrow type and width; `None` for types ringfeed does not take.
fn numpy_type(t: &str) -> Option<(DataType, usize)> {
    Some(match t {
        "i1" => (DataType::Int8, 1),
        "i2" => (DataType::Int16, 2),
        "i4" => (DataType::Int32, 4),
        "i8" => (DataType::Int64, 8),
        "u1" => (DataType::UInt8, 1),
        "u2" => (DataType::UInt16, 2),
        "u4" => (DataType::UInt32, 4),
        "u8" => (DataType::UInt64, 8),
        "f4" => (DataType::Float32, 4),
        "f8" => (DataType::Float64, 8),
        _ => return None,
    })
}

/// The width of a numpy type string ringfeed takes (`f8`: 8).
pub fn numpy_width(t: &str) -> Option<usize> {
    numpy_type(t).map(|(_, w)| w)
}

/// An Arrow column's numpy type string, if it is a number this face carries.
pub fn numpy_of(t: &DataType) -> Option<&'static str> {
    Some(match t {
        DataType::Int8 => "i1",
        DataType::Int16 => "i2",
        DataType::Int32 => "i4",
        DataType::Int64 => "i8",
        DataType::UInt8 => "u1",
        DataType::UInt16 => "u2",
        DataType::UInt32 => "u4",
        DataType::UInt64 => "u8",
        DataType::Float32 => "f4",
        DataType::Float64 => "f8",
        _ => return None,
    })
}

/// Appends `col`'s values to `out` as little-endian bytes; nulls as NaN or 0.
fn push_values(col: &dyn Array, out: &mut Vec<u8>) {
    fn prim<T: ArrowPrimitiveType>(col: &dyn Array, out: &mut Vec<u8>, null: T::Native)
    where
        T::Native: ToLeBytes,
    {
        let a = col.as_primitive::<T>();
        if a.null_count() == 0 && cfg!(target_endian = "little") {
            // The values buffer is the column's bytes: one copy, no per-value work.
            let v = a.values();
            out.extend_from_slice(v.inner().as_slice());
            return;
        }
        for i in 0..a.len() {
            let x = if a.is_null(i) { null } else { a.value(i) };
            x.le_into(out);
        }
    }
    match col.data_type() {
        DataType::Int8 => prim::<Int8Type>(col, out, 0),
        DataType::Int16 => prim::<Int16Type>(col, out, 0),
        DataType::Int32 => prim::<Int32Type>(col, out, 0),
        DataType::Int64 => prim::<Int64Type>(col, out, 0),
        DataType::UInt8 => prim::<UInt8Type>(col, out, 0),
        DataType::UInt16 => prim::<UInt16Type>(col, out, 0),
        DataType::UInt32 => prim::<UInt32Type>(col, out, 0),
        DataType::UInt64 => prim::<UInt64Type>(col, out, 0),
        DataType::Float32 => prim::<Float32Type>(col, out, f32::NAN),
        DataType::Float64 => prim::<Float64Type>(col, out, f64::NAN),
        _ => {}
    }
}

/// Little-endian bytes of a number.
trait ToLeBytes: Copy {
    fn le_into(self, out: &mut Vec<u8>);
}
macro_rules! le {
    ($($t:ty),*) => {$(impl ToLeBytes for $t {
        fn le_into(self, out: &mut Vec<u8>) { out.extend_from_slice(&self.to_le_bytes()) }
    })*};
}
le!(i8, i16, i32, i64, u8, u16, u32, u64, f32, f64);

/// The ts column's values in ns (the store's are timestamp[ns]).
fn ts_ns(col: &ArrayRef) -> Option<&[i64]> {
    match col.data_type() {
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            Some(col.as_primitive::<TimestampNanosecondType>().values())
        }
        DataType::Int64 => Some(col.as_primitive::<Int64Type>().values()),
        _ => None,
    }
}

/// A query's result batches (in (symbol, ts) order) as one dataset, keyed
/// `SYM/timeframe/group`; `with_nanos` adds the `Nanoseconds` column.
pub fn from_batches(
    batches: &[RecordBatch],
    schema: &Schema,
    timeframe: &str,
    group: &str,
    with_nanos: bool,
) -> Result<Dataset, String> {
    let value_cols: Vec<usize> = schema
        .fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| numpy_of(f.data_type()).is_some() && f.name() != "ts")
        .map(|(i, _)| i)
        .collect();
    let mut d = Dataset {
        types: vec!["i8".into()],
        names: vec!["Epoch".into()],
        ..Default::default()
    };
    if with_nanos {
        d.types.push("i4".into());
        d.names.push("Nanoseconds".into());
    }
    for &i in &value_cols {
        let f = schema.field(i);
        d.types.push(numpy_of(f.data_type()).unwrap_or("f8").into());
        d.names.push(column_to_ms(f.name()));
    }
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut data: Vec<Vec<u8>> = d
        .types
        .iter()
        .map(|t| Vec::with_capacity(rows * numpy_type(t).map_or(8, |(_, w)| w)))
        .collect();
    // Runs of one symbol: (symbol, first row, rows).
    let mut runs: Vec<(String, usize, usize)> = Vec::new();
    let mut at = 0usize;
    for b in batches {
        let ts = b
            .column_by_name("ts")
            .and_then(ts_ns)
            .ok_or("the result has no ts column of timestamp[ns]")?;
        for &t in ts {
            data[0].extend_from_slice(&t.div_euclid(NS).to_le_bytes());
        }
        if with_nanos {
            for &t in ts {
                data[1].extend_from_slice(&(t.rem_euclid(NS) as i32).to_le_bytes());
            }
        }
        let first_value = if with_nanos { 2 } else { 1 };
        for (k, &i) in value_cols.iter().enumerate() {
            let name = schema.field(i).name();
            let col = b
                .column_by_name(name)
                .ok_or_else(|| format!("a result batch lacks column {name}"))?;
            push_values(col.as_ref(), &mut data[first_value + k]);
        }
        let symbols = b
            .column_by_name("symbol")
            .map(|c| arrow_cast::cast(c, &DataType::Utf8View))
            .transpose()
            .map_err(|e| format!("the result's symbol column: {e}"))?;
        match symbols {
            Some(s) => {
                let s = s.as_string_view();
                for r in 0..s.len() {
                    let sym = if s.is_null(r) { "" } else { s.value(r) };
                    match runs.last_mut() {
                        Some((last, _, n)) if last == sym => *n += 1,
                        _ => runs.push((sym.to_string(), at + r, 1)),
                    }
                }
            }
            None => match runs.last_mut() {
                Some((_, _, n)) => *n += b.num_rows(),
                None => runs.push((String::new(), at, b.num_rows())),
            },
        }
        at += b.num_rows();
    }
    for (sym, start, n) in runs {
        let key = reply_key(&sym, timeframe, group);
        if d.startindex.contains_key(&key) {
            return Err(format!(
                "the result's rows of {sym} are not contiguous; please report it"
            ));
        }
        d.startindex.insert(key.clone(), start as i64);
        d.lengths.insert(key, n as i64);
    }
    d.length = rows as i64;
    d.data = data.into_iter().map(ColumnBytes).collect();
    Ok(d)
}

/// One key's rows of a written dataset as a bar batch for `symbol`: `ts` from `Epoch`
/// (plus `Nanoseconds` when present), the other columns renamed (`QuoteVolume` →
/// `quote_volume`) in their own types, for the store to check and cast.
pub fn to_batch(d: &Dataset, symbol: &str, start: i64, len: i64) -> Result<RecordBatch, String> {
    let n = usize::try_from(d.length).map_err(|_| format!("length {} is negative", d.length))?;
    if d.types.len() != d.names.len() || d.types.len() != d.data.len() {
        return Err(format!(
            "the dataset has {} types, {} names and {} data columns: they must be as many",
            d.types.len(),
            d.names.len(),
            d.data.len()
        ));
    }
    let (Ok(start), Ok(len)) = (usize::try_from(start), usize::try_from(len)) else {
        return Err(format!(
            "startindex {start} and lengths {len} must not be negative"
        ));
    };
    if start.checked_add(len).is_none_or(|end| end > n) {
        return Err(format!(
            "rows {start}..{} of {symbol} are past the dataset's length {n}",
            start.saturating_add(len)
        ));
    }
    let mut epoch: Option<Vec<i64>> = None;
    let mut nanos: Option<Vec<i64>> = None;
    let mut fields = vec![];
    let mut cols: Vec<ArrayRef> = vec![];
    for ((t, name), bytes) in d.types.iter().zip(&d.names).zip(&d.data) {
        let (dt, width) = numpy_type(t).ok_or_else(|| {
            format!("column {name}: type {t:?} is not taken here: use i1-i8, u1-u8, f4 or f8")
        })?;
        if bytes.0.len() != n * width {
            return Err(format!(
                "column {name} holds {} bytes; {n} rows of {t} are {} bytes",
                bytes.0.len(),
                n * width
            ));
        }
        let part = &bytes.0[start * width..(start + len) * width];
        let col = decode_column(&dt, part);
        match name.as_str() {
            "Epoch" => epoch = Some(ints(&col)?),
            "Nanoseconds" => nanos = Some(ints(&col)?),
            _ => {
                fields.push(Field::new(column_to_rf(name), dt, true));
                cols.push(col);
            }
        }
    }
    let epoch = epoch.ok_or("the dataset has no Epoch column: add Epoch (i8, seconds)")?;
    let ts: Vec<i64> = epoch
        .iter()
        .enumerate()
        .map(|(i, &s)| {
            let ns = nanos.as_ref().map_or(0, |n| n[i]);
            s.checked_mul(NS)
                .and_then(|t| t.checked_add(ns))
                .ok_or_else(|| format!("Epoch {s} is out of range"))
        })
        .collect::<Result<_, _>>()?;
    fields.insert(
        0,
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
    );
    cols.insert(
        0,
        Arc::new(arrow_array::TimestampNanosecondArray::from(ts).with_timezone("UTC")),
    );
    fields.insert(1, Field::new("symbol", DataType::Utf8, false));
    cols.insert(
        1,
        Arc::new(arrow_array::StringArray::from(vec![symbol; len])),
    );
    RecordBatch::try_new(Arc::new(Schema::new(fields)), cols).map_err(|e| e.to_string())
}

fn decode_column(dt: &DataType, b: &[u8]) -> ArrayRef {
    macro_rules! arr {
        ($a:ty, $t:ty) => {{
            let v: Vec<$t> = b
                .chunks_exact(std::mem::size_of::<$t>())
                .map(|c| <$t>::from_le_bytes(c.try_into().expect("chunk of the width")))
                .collect();
            Arc::new(<$a>::from(v)) as ArrayRef
        }};
    }
    use arrow_array::*;
    match dt {
        DataType::Int8 => arr!(Int8Array, i8),
        DataType::Int16 => arr!(Int16Array, i16),
        DataType::Int32 => arr!(Int32Array, i32),
        DataType::UInt8 => arr!(UInt8Array, u8),
        DataType::UInt16 => arr!(UInt16Array, u16),
        DataType::UInt32 => arr!(UInt32Array, u32),
        DataType::UInt64 => arr!(UInt64Array, u64),
        DataType::Float32 => arr!(Float32Array, f32),
        DataType::Float64 => arr!(Float64Array, f64),
        _ => arr!(Int64Array, i64),
    }
}

fn ints(col: &ArrayRef) -> Result<Vec<i64>, String> {
    let c = arrow_cast::cast(col, &DataType::Int64).map_err(|e| e.to_string())?;
    Ok(c.as_primitive::<Int64Type>().values().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars() -> RecordBatch {
        let schema = Schema::new(vec![
            Field::new(
                "ts",
                DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
                false,
            ),
            Field::new("symbol", DataType::Utf8, false),
            Field::new("open", DataType::Float64, false),
            Field::new("quote_volume", DataType::Float64, true),
        ]);
        RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(
                    arrow_array::TimestampNanosecondArray::from(vec![60 * NS, 120 * NS, 60 * NS])
                        .with_timezone("UTC"),
                ),
                Arc::new(arrow_array::StringArray::from(vec!["A", "A", "B"])),
                Arc::new(arrow_array::Float64Array::from(vec![1.0, 2.0, 3.0])),
                Arc::new(arrow_array::Float64Array::from(vec![
                    Some(1.0),
                    None,
                    Some(3.0),
                ])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn bars_become_columns_keyed_per_symbol_and_back() {
        let b = bars();
        let d = from_batches(
            std::slice::from_ref(&b),
            &b.schema(),
            "1Min",
            "OHLCV",
            false,
        )
        .unwrap();
        assert_eq!(d.names, ["Epoch", "Open", "QuoteVolume"]);
        assert_eq!(d.types, ["i8", "f8", "f8"]);
        assert_eq!(d.length, 3);
        let ka = reply_key("A", "1Min", "OHLCV");
        let kb = reply_key("B", "1Min", "OHLCV");
        assert_eq!((d.startindex[&ka], d.lengths[&ka]), (0, 2));
        assert_eq!((d.startindex[&kb], d.lengths[&kb]), (2, 1));
        assert_eq!(&d.data[0].0[..8], &60i64.to_le_bytes());
        assert!(f64::from_le_bytes(d.data[2].0[8..16].try_into().unwrap()).is_nan());
        let back = to_batch(&d, "B", 2, 1).unwrap();
        assert_eq!(back.num_rows(), 1);
        assert_eq!(
            back.column_by_name("open")
                .unwrap()
                .as_primitive::<Float64Type>()
                .value(0),
            3.0
        );
        let ts = back.column(0).as_primitive::<TimestampNanosecondType>();
        assert_eq!(ts.value(0), 60 * NS);
    }

    #[test]
    fn written_lengths_are_checked_before_anything_is_built() {
        let b = bars();
        let mut d =
            from_batches(std::slice::from_ref(&b), &b.schema(), "1Min", "X", false).unwrap();
        assert!(to_batch(&d, "A", 2, 5).unwrap_err().contains("past"));
        assert!(to_batch(&d, "A", -1, 1).is_err());
        d.length = 1 << 40;
        assert!(to_batch(&d, "A", 0, 1).unwrap_err().contains("bytes"));
        d.length = 3;
        d.types[1] = "U16".into();
        assert!(to_batch(&d, "A", 0, 1).unwrap_err().contains("not taken"));
        d.types.pop();
        assert!(to_batch(&d, "A", 0, 1).unwrap_err().contains("as many"));
    }
}
