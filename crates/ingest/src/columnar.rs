//! Parquet and Arrow/Feather files: columns mapped by name, cast, and every
//! row checked by the store's rules.

use crate::field::parse_side;
use crate::rows::{flush_rows, BarBuf};
use crate::time::{naive_to_ns, parse_ts};
use crate::{resolve, Format, IngestError, IngestOptions, Sink, TsFormat, BAR_FIELDS, TICK_FIELDS};
use arrow_array::{Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use arrow_schema::{ArrowError, DataType, TimeUnit};
use chrono_tz::Tz;
use ringfeed_store::schema::{Kind, TickColumns};
use ringfeed_store::validate::{BarRow, RowFault, RowReport};
use std::path::Path;

/// The record batches of a columnar file, in file order.
type Batches = Box<dyn Iterator<Item = Result<RecordBatch, ArrowError>>>;

/// Load a Parquet or Feather file: each record batch's columns are mapped to the
/// canonical fields by name, and its rows checked and handed to `sink` as one batch.
pub(crate) fn load_columnar(
    path: &Path,
    format: Format,
    kind: Kind,
    opts: &IngestOptions,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let file = path.display().to_string();
    let mut row0 = 0u64;
    for b in open_batches(path, format, opts)? {
        let b = b.map_err(|e| decode_error(path, format, e))?;
        let cols = Columns::resolve(&b, kind, opts, path)?;
        let ts_arr = cols.col(0).ok_or_else(|| {
            cols.error(format!(
                "no timestamp column (columns: {})",
                cols.names.join(",")
            ))
        })?;
        let ts =
            ts_column(&ts_arr, &opts.ts_format, opts.tz.as_ref()).map_err(|d| cols.error(d))?;
        let sym = cols.strs(1);
        if sym.is_none() && opts.symbol.is_none() {
            return Err(IngestError::NoSymbol { path: path.into() });
        }
        let rows = Rows {
            ts,
            sym,
            opts,
            file: &file,
            row0,
        };
        if kind == Kind::Ticks {
            load_ticks(&cols, &rows, report, sink)?;
        } else {
            load_bars(&cols, &rows, report, sink)?;
        }
        row0 += b.num_rows() as u64;
    }
    Ok(())
}

/// The error of a file `format`'s decoder refused.
fn decode_error(path: &Path, format: Format, detail: impl ToString) -> IngestError {
    IngestError::Decode {
        path: path.into(),
        format: if format == Format::Parquet {
            "Parquet"
        } else {
            "Arrow IPC"
        },
        detail: detail.to_string(),
    }
}

/// Open `path` and read its record batches (Parquet in batches of at most
/// `opts.batch_rows` rows).
fn open_batches(path: &Path, format: Format, opts: &IngestOptions) -> Result<Batches, IngestError> {
    let dec = |e: &dyn std::fmt::Display| decode_error(path, format, e);
    let f = std::fs::File::open(path).map_err(|source| IngestError::Io {
        path: path.into(),
        source,
    })?;
    Ok(if format == Format::Parquet {
        Box::new(
            parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
                .map_err(|e| dec(&e))?
                .with_batch_size(opts.batch_rows.min(1 << 20))
                .build()
                .map_err(|e| dec(&e))?,
        )
    } else {
        Box::new(arrow_ipc::reader::FileReader::try_new(f, None).map_err(|e| dec(&e))?)
    })
}

/// One record batch, its columns resolved to the canonical fields.
struct Columns<'a> {
    batch: &'a RecordBatch,
    /// The batch's column names.
    names: Vec<String>,
    /// The column of each canonical field, in [`BAR_FIELDS`] or [`TICK_FIELDS`] order.
    cols: Vec<Option<usize>>,
    path: &'a Path,
}

impl<'a> Columns<'a> {
    fn resolve(
        batch: &'a RecordBatch,
        kind: Kind,
        opts: &IngestOptions,
        path: &'a Path,
    ) -> Result<Self, IngestError> {
        let names: Vec<String> = batch
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
        Ok(Columns {
            batch,
            names,
            cols,
            path,
        })
    }

    /// The column of canonical field `k`, if the batch has one.
    fn col(&self, k: usize) -> Option<ArrayRef> {
        self.cols[k].map(|i| self.batch.column(i).clone())
    }

    fn error(&self, detail: String) -> IngestError {
        IngestError::Columns {
            path: self.path.into(),
            detail,
        }
    }

    /// Field `k` cast to f64; a missing `required` one is an error.
    fn f64s(
        &self,
        k: usize,
        name: &str,
        required: bool,
    ) -> Result<Option<Float64Array>, IngestError> {
        match self.col(k) {
            Some(a) => {
                let c = arrow_cast::cast(&a, &DataType::Float64)
                    .map_err(|e| self.error(format!("{name}: {e}")))?;
                Ok(Some(
                    c.as_any().downcast_ref::<Float64Array>().unwrap().clone(),
                ))
            }
            None if required => Err(self.error(format!(
                "no {name} column (columns: {})",
                self.names.join(",")
            ))),
            None => Ok(None),
        }
    }

    /// Field `k` as text, when the batch has it and it casts.
    fn strs(&self, k: usize) -> Option<StringArray> {
        self.col(k)
            .and_then(|a| arrow_cast::cast(&a, &DataType::Utf8).ok())
            .map(|a| a.as_any().downcast_ref::<StringArray>().unwrap().clone())
    }
}

/// What every row of a batch shares: its time and symbol, and how a bad one is judged.
struct Rows<'a> {
    /// UTC ns per row (`None` = unreadable).
    ts: Vec<Option<i64>>,
    /// The symbol column, if any.
    sym: Option<StringArray>,
    opts: &'a IngestOptions,
    /// The file as bad rows name it.
    file: &'a str,
    /// Rows of the file before this batch.
    row0: u64,
}

impl Rows<'_> {
    /// Row `i`'s symbol: its own, or the given one when it has none.
    fn symbol_at(&self, i: usize) -> &str {
        match &self.sym {
            Some(s) if s.is_valid(i) => s.value(i),
            _ => self.opts.symbol.as_deref().unwrap_or_default(),
        }
    }

    /// Apply the policy to row `i`'s verdict: `Ok(true)` stores the row.
    fn judge(
        &self,
        i: usize,
        verdict: Result<(), RowFault>,
        report: &mut RowReport,
    ) -> Result<bool, IngestError> {
        match verdict {
            Ok(()) => Ok(true),
            Err(fault) => {
                let line = self.row0 + i as u64 + 1;
                ringfeed_store::validate::judge(report, &self.opts.policy, fault, self.file, line)
                    .map_err(|row| IngestError::Strict { row })
            }
        }
    }
}

/// A trade's side: the side column, else the buyer-maker flag (a buyer maker means the
/// taker sold).
fn side_at(side: &Option<StringArray>, buyer_maker: &Option<StringArray>, i: usize) -> Option<i8> {
    match (side, buyer_maker) {
        (Some(s), _) if s.is_valid(i) => parse_side(s.value(i).as_bytes()),
        (_, Some(b)) if b.is_valid(i) => match b.value(i).to_ascii_lowercase().as_str() {
            "true" | "1" => Some(-1),
            "false" | "0" => Some(1),
            _ => None,
        },
        _ => None,
    }
}

/// The trades of one batch.
#[allow(clippy::needless_range_loop)] // rows index several parallel columns
fn load_ticks(
    cols: &Columns<'_>,
    rows: &Rows<'_>,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let price = cols.f64s(2, "price", true)?.unwrap();
    let size = cols.f64s(3, "size", true)?.unwrap();
    let side = cols.strs(4);
    let bm = cols.strs(6);
    let ids = cols
        .col(5)
        .map(|a| arrow_cast::cast(&a, &DataType::Int64))
        .transpose()
        .map_err(|e| cols.error(format!("trade_id: {e}")))?;
    let ids = ids.map(|a| a.as_any().downcast_ref::<Int64Array>().unwrap().clone());
    let ts = &rows.ts;
    let mut out = TickColumns::default();
    for i in 0..cols.batch.num_rows() {
        report.rows_read += 1;
        let sd = side_at(&side, &bm, i);
        let v = match ts[i] {
            None => Err(RowFault::TsUnreadable),
            Some(_) if !price.is_valid(i) => Err(RowFault::Missing("price")),
            Some(_) if !size.is_valid(i) => Err(RowFault::Missing("size")),
            Some(t) => rows
                .opts
                .rules
                .check_tick(t, price.value(i), size.value(i), sd),
        };
        if !rows.judge(i, v, report)? {
            continue;
        }
        out.ts.push(ts[i].unwrap());
        out.symbol.push(rows.symbol_at(i).to_string());
        out.price.push(price.value(i));
        out.size.push(size.value(i));
        out.side.push(sd);
        out.trade_id
            .push(ids.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)));
    }
    flush_rows(&mut out, report, sink)
}

/// The bars of one batch.
fn load_bars(
    cols: &Columns<'_>,
    rows: &Rows<'_>,
    report: &mut RowReport,
    sink: &mut Sink<'_>,
) -> Result<(), IngestError> {
    let o = cols.f64s(2, "open", true)?.unwrap();
    let h = cols.f64s(3, "high", true)?.unwrap();
    let l = cols.f64s(4, "low", true)?.unwrap();
    let c = cols.f64s(5, "close", true)?.unwrap();
    let vol = cols.f64s(6, "volume", true)?.unwrap();
    let qv = cols.f64s(7, "quote_volume", false)?;
    let tr = cols.f64s(8, "trades", false)?;
    let tb = cols.f64s(9, "taker_buy_base", false)?;
    let tq = cols.f64s(10, "taker_buy_quote", false)?;
    let val = |a: &Option<Float64Array>, i: usize| {
        a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i))
    };
    let mut out = BarBuf::default();
    let required = [
        ("open", &o),
        ("high", &h),
        ("low", &l),
        ("close", &c),
        ("volume", &vol),
    ];
    for (i, ts) in rows.ts.iter().enumerate() {
        report.rows_read += 1;
        let gap = required
            .iter()
            .find(|(_, a)| !a.is_valid(i))
            .map(|(name, _)| *name);
        let row = ts.map(|t| BarRow {
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
            (Some(r), None) => rows.opts.rules.check_bar(&r),
        };
        if !rows.judge(i, v, report)? {
            continue;
        }
        let r = row.expect("checked");
        out.symbol_str(rows.symbol_at(i));
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
    flush_rows(&mut out, report, sink)
}

/// Convert a timestamp column of any common type to UTC ns per row (`None` = unusable).
pub(crate) fn ts_column(
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
