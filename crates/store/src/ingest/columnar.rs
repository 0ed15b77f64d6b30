//! Parquet and Arrow/Feather files: columns mapped by name, cast, and every
//! row checked by the store's rules.

use super::time::{naive_to_ns, parse_ts};
use super::{
    flush_rows, parse_side, resolve, BarBuf, Format, IngestError, IngestOptions, Sink, TsFormat,
    BAR_FIELDS, TICK_FIELDS,
};
use crate::schema::{Kind, TickColumns};
pub use crate::validate::RowReport;
use crate::validate::{BarRow, RowFault};
use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::{DataType, TimeUnit};
use chrono_tz::Tz;
use std::path::Path;

#[allow(clippy::needless_range_loop)] // rows index several parallel columns
pub(super) fn load_columnar(
    path: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let name = if format == Format::Parquet {
        "Parquet"
    } else {
        "Arrow IPC"
    };
    let dec = |detail: String| IngestError::Decode {
        path: path.into(),
        format: name,
        detail,
    };
    let f = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.into(),
        source,
    })?;
    let batches: Box<dyn Iterator<Item = Result<RecordBatch, arrow_schema::ArrowError>>> = if format
        == Format::Parquet
    {
        Box::new(
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| dec(e.to_string()))?
                .with_batch_size(opts.batch_rows.min(1 << 20))
                .build()
                .map_err(|e| dec(e.to_string()))?,
        )
    } else {
        Box::new(arrow_ipc::reader::FileReader::try_new(f, None).map_err(|e| dec(e.to_string()))?)
    };
    let file = path.display().to_string();
    let mut row0 = 0u64;
    for b in batches {
        let b = b.map_err(|e| dec(e.to_string()))?;
        let names: Vec<String> = b
            .schema()
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let wanted: &[&str] = if kind == Kind::Ticks {
            &TICK_FIELDS
        } else {
            &BAR_FIELDS
        };
        let cols = resolve(wanted, Some(&names), &opts.columns, &[]).map_err(|detail| {
            IngestError::Columns {
                path: path.into(),
                detail,
            }
        })?;
        let col = |k: usize| cols[k].map(|i| b.column(i).clone());
        let cerr = |detail: String| IngestError::Columns {
            path: path.into(),
            detail,
        };
        let ts_arr = col(0).ok_or_else(|| {
            cerr(format!(
                "no timestamp column (columns: {})",
                names.join(",")
            ))
        })?;
        let ts = ts_column(&ts_arr, &opts.ts_format, opts.tz.as_ref()).map_err(cerr)?;
        let f64s = |k: usize,
                    name: &str,
                    required: bool|
         -> Result<Option<arrow_array::Float64Array>, IngestError> {
            match col(k) {
                Some(a) => {
                    let c = arrow_cast::cast(&a, &DataType::Float64)
                        .map_err(|e| cerr(format!("{name}: {e}")))?;
                    Ok(Some(
                        c.as_any()
                            .downcast_ref::<arrow_array::Float64Array>()
                            .unwrap()
                            .clone(),
                    ))
                }
                None if required => Err(cerr(format!(
                    "no {name} column (columns: {})",
                    names.join(",")
                ))),
                None => Ok(None),
            }
        };
        let strs = |k: usize| -> Option<StringArray> {
            col(k)
                .and_then(|a| arrow_cast::cast(&a, &DataType::Utf8).ok())
                .map(|a| a.as_any().downcast_ref::<StringArray>().unwrap().clone())
        };
        let sym = strs(1);
        if sym.is_none() && opts.symbol.is_none() {
            return Err(IngestError::NoSymbol { path: path.into() });
        }
        let symbol_at = |i: usize| match &sym {
            Some(s) if s.is_valid(i) => s.value(i),
            _ => opts.symbol.as_deref().unwrap_or_default(),
        };
        let n = b.num_rows();
        let handle = |i: usize,
                      verdict: Result<(), RowFault>,
                      report: &mut RowReport|
         -> Result<bool, IngestError> {
            match verdict {
                Ok(()) => Ok(true),
                Err(fault) => {
                    let line = row0 + i as u64 + 1;
                    crate::validate::judge(report, &opts.policy, fault, &file, line)
                        .map_err(|row| IngestError::Strict { row })
                }
            }
        };
        let val = |a: &Option<arrow_array::Float64Array>, i: usize| {
            a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i))
        };
        if kind == Kind::Ticks {
            let price = f64s(2, "price", true)?.unwrap();
            let size = f64s(3, "size", true)?.unwrap();
            let side = strs(4);
            let bm = strs(6);
            let ids = col(5)
                .map(|a| arrow_cast::cast(&a, &DataType::Int64))
                .transpose()
                .map_err(|e| cerr(format!("trade_id: {e}")))?;
            let ids = ids.map(|a| {
                a.as_any()
                    .downcast_ref::<arrow_array::Int64Array>()
                    .unwrap()
                    .clone()
            });
            let mut out = TickColumns::default();
            for i in 0..n {
                report.rows_read += 1;
                let sd = match (&side, &bm) {
                    (Some(s), _) if s.is_valid(i) => parse_side(s.value(i).as_bytes()),
                    (_, Some(b)) if b.is_valid(i) => match b.value(i).to_ascii_lowercase().as_str()
                    {
                        "true" | "1" => Some(-1),
                        "false" | "0" => Some(1),
                        _ => None,
                    },
                    _ => None,
                };
                let v = match ts[i] {
                    None => Err(RowFault::TsUnreadable),
                    Some(_) if !price.is_valid(i) => Err(RowFault::Missing("price")),
                    Some(_) if !size.is_valid(i) => Err(RowFault::Missing("size")),
                    Some(t) => opts.rules.check_tick(t, price.value(i), size.value(i), sd),
                };
                if !handle(i, v, report)? {
                    continue;
                }
                out.ts.push(ts[i].unwrap());
                out.symbol.push(symbol_at(i).to_string());
                out.price.push(price.value(i));
                out.size.push(size.value(i));
                out.side.push(sd);
                out.trade_id
                    .push(ids.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)));
            }
            flush_rows(&mut out, report, sink)?;
        } else {
            let o = f64s(2, "open", true)?.unwrap();
            let h = f64s(3, "high", true)?.unwrap();
            let l = f64s(4, "low", true)?.unwrap();
            let c = f64s(5, "close", true)?.unwrap();
            let vol = f64s(6, "volume", true)?.unwrap();
            let qv = f64s(7, "quote_volume", false)?;
            let tr = f64s(8, "trades", false)?;
            let tb = f64s(9, "taker_buy_base", false)?;
            let tq = f64s(10, "taker_buy_quote", false)?;
            let mut out = BarBuf::default();
            let cols = [("open", &o), ("high", &h), ("low", &l), ("close", &c)];
            for i in 0..n {
                report.rows_read += 1;
                let gap = cols
                    .iter()
                    .chain([("volume", &vol)].iter())
                    .find(|(_, a)| !a.is_valid(i))
                    .map(|(name, _)| *name);
                let row = ts[i].map(|t| BarRow {
                    ts: t,
                    open: o.value(i),
                    high: h.value(i),
                    low: l.value(i),
                    close: c.value(i),
                    volume: vol.value(i),
                    quote_volume: val(&qv, i),
                    trades: val(&tr, i).map(|x| x as i64),
                    taker_buy_base: val(&tb, i),
                    taker_buy_quote: val(&tq, i),
                });
                let v = match (row, gap) {
                    (None, _) => Err(RowFault::TsUnreadable),
                    (_, Some(field)) => Err(RowFault::Missing(field)),
                    (Some(r), None) => opts.rules.check_bar(&r),
                };
                if !handle(i, v, report)? {
                    continue;
                }
                let r = row.expect("checked");
                out.symbol_str(symbol_at(i));
                out.push(
                    r.ts,
                    r.open,
                    r.high,
                    r.low,
                    r.close,
                    r.volume,
                    (
                        r.quote_volume,
                        r.trades,
                        r.taker_buy_base,
                        r.taker_buy_quote,
                    ),
                );
            }
            flush_rows(&mut out, report, sink)?;
        }
        row0 += n as u64;
    }
    Ok(())
}

/// Convert a timestamp column of any common type to UTC ns per row (`None` = unusable).
pub(super) fn ts_column(
    a: &dyn Array,
    fmt: &TsFormat,
    tz: Option<&Tz>,
) -> Result<Vec<Option<i64>>, String> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let n = a.len();
    Ok(match a.data_type() {
        DataType::Timestamp(unit, zone) => {
            let mul = match unit {
                TimeUnit::Second => 1_000_000_000,
                TimeUnit::Millisecond => 1_000_000,
                TimeUnit::Microsecond => 1_000,
                TimeUnit::Nanosecond => 1,
            };
            let raw = arrow_cast::cast(a, &DataType::Int64).map_err(|e| e.to_string())?;
            let raw = raw.as_primitive::<Int64Type>();
            (0..n)
                .map(|i| {
                    raw.is_valid(i).then(|| raw.value(i) * mul).and_then(|v| {
                        // A zone-less timestamp is a local wall clock in `tz`.
                        match (zone, tz) {
                            (None, Some(tz)) => {
                                let naive = chrono::DateTime::from_timestamp_nanos(v).naive_utc();
                                naive_to_ns(naive, Some(tz))
                            }
                            _ => Some(v),
                        }
                    })
                })
                .collect()
        }
        DataType::Int64
        | DataType::Int32
        | DataType::UInt64
        | DataType::UInt32
        | DataType::Float64
        | DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Date32
        | DataType::Date64 => {
            let s = arrow_cast::cast(a, &DataType::Utf8).map_err(|e| e.to_string())?;
            let s = s.as_string::<i32>();
            (0..n)
                .map(|i| {
                    s.is_valid(i)
                        .then(|| parse_ts(s.value(i).as_bytes(), fmt, tz).ok())
                        .flatten()
                })
                .collect()
        }
        t => return Err(format!("timestamp column has unsupported type {t}")),
    })
}
