//! Canonical bar and tick schemas, and the columns they share.

use arrow_array::builder::StringViewBuilder;
use arrow_array::{
    Array, ArrayRef, BooleanArray, Float64Array, Int64Array, Int8Array, RecordBatch,
    StringViewArray, TimestampNanosecondArray,
};
use arrow_schema::{ArrowError, DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, OnceLock};

/// Timestamp column: bar open (left label) or trade time, `timestamp[ns, UTC]`.
pub const TS: &str = "ts";
/// Symbol column, `Utf8View` (zero-copy in polars, same as the rings).
pub const SYMBOL: &str = "symbol";
/// The `complete` flag of rolled-up bars: false while the bar's window is still open.
pub const COMPLETE: &str = "complete";
/// Bar price columns.
pub const PRICES: [&str; 4] = ["open", "high", "low", "close"];
/// Optional additive bar columns, nullable.
pub const OPTIONAL_F64: [&str; 3] = ["quote_volume", "taker_buy_base", "taker_buy_quote"];

/// Which schema a series uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Stored bars at the dataset's base timeframe.
    Bars,
    /// Rolled-up or resampled bars: the bar schema plus `complete`.
    Rollup,
    /// Trades.
    Ticks,
}

fn ts_type() -> DataType {
    DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()))
}

/// The canonical bar schema: `ts, symbol, open, high, low, close, volume, quote_volume?,
/// trades?, taker_buy_base?, taker_buy_quote?` (`?` = nullable).
pub fn bar_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| Arc::new(Schema::new(bar_fields())))
        .clone()
}

fn bar_fields() -> Vec<Field> {
    vec![
        Field::new(TS, ts_type(), false),
        Field::new(SYMBOL, DataType::Utf8View, false),
        Field::new("open", DataType::Float64, false),
        Field::new("high", DataType::Float64, false),
        Field::new("low", DataType::Float64, false),
        Field::new("close", DataType::Float64, false),
        Field::new("volume", DataType::Float64, false),
        Field::new("quote_volume", DataType::Float64, true),
        Field::new("trades", DataType::Int64, true),
        Field::new("taker_buy_base", DataType::Float64, true),
        Field::new("taker_buy_quote", DataType::Float64, true),
    ]
}

/// The bar schema plus a non-null `complete` flag, used by rollups and resampled results.
pub fn rollup_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        let mut f = bar_fields();
        f.push(Field::new(COMPLETE, DataType::Boolean, false));
        Arc::new(Schema::new(f))
    })
    .clone()
}

/// The tick schema: `ts, symbol, price, size, side?, trade_id`. `side` is the taker side:
/// 1 = buy, -1 = sell, null = unknown. `trade_id` is the source's id, or for sources
/// without ids the ordinal of the trade among trades of the same symbol and timestamp.
pub fn tick_schema() -> SchemaRef {
    static S: OnceLock<SchemaRef> = OnceLock::new();
    S.get_or_init(|| {
        Arc::new(Schema::new(vec![
            Field::new(TS, ts_type(), false),
            Field::new(SYMBOL, DataType::Utf8View, false),
            Field::new("price", DataType::Float64, false),
            Field::new("size", DataType::Float64, false),
            Field::new("side", DataType::Int8, true),
            Field::new("trade_id", DataType::Int64, false),
        ]))
    })
    .clone()
}

impl Kind {
    /// The schema of this kind.
    pub fn schema(self) -> SchemaRef {
        match self {
            Kind::Bars => bar_schema(),
            Kind::Rollup => rollup_schema(),
            Kind::Ticks => tick_schema(),
        }
    }
}

/// Column vectors of one bar batch, the form parsers and resamplers build.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct BarColumns {
    /// Bar open times, ns since the epoch (UTC).
    pub ts: Vec<i64>,
    /// Symbol of every row.
    pub symbol: Vec<String>,
    /// Open prices.
    pub open: Vec<f64>,
    /// High prices.
    pub high: Vec<f64>,
    /// Low prices.
    pub low: Vec<f64>,
    /// Close prices.
    pub close: Vec<f64>,
    /// Base volume.
    pub volume: Vec<f64>,
    /// Quote volume, if the source has it.
    pub quote_volume: Vec<Option<f64>>,
    /// Number of trades, if the source has it.
    pub trades: Vec<Option<i64>>,
    /// Taker buy base volume, if the source has it.
    pub taker_buy_base: Vec<Option<f64>>,
    /// Taker buy quote volume, if the source has it.
    pub taker_buy_quote: Vec<Option<f64>>,
    /// The `complete` flag (rollups only; empty otherwise).
    pub complete: Vec<bool>,
}

impl BarColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    /// Build a record batch with the bar schema, or the rollup schema when `complete` is filled.
    pub fn into_batch(self) -> Result<RecordBatch, ArrowError> {
        let n = self.ts.len();
        let mut sym = StringViewBuilder::with_capacity(n);
        for s in &self.symbol {
            sym.append_value(s);
        }
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(self.ts).with_timezone("UTC")),
            Arc::new(sym.finish()),
            Arc::new(Float64Array::from(self.open)),
            Arc::new(Float64Array::from(self.high)),
            Arc::new(Float64Array::from(self.low)),
            Arc::new(Float64Array::from(self.close)),
            Arc::new(Float64Array::from(self.volume)),
            opt_f64(self.quote_volume, n),
            if self.trades.is_empty() {
                arrow_array::new_null_array(&DataType::Int64, n)
            } else {
                Arc::new(Int64Array::from(self.trades))
            },
            opt_f64(self.taker_buy_base, n),
            opt_f64(self.taker_buy_quote, n),
        ];
        let schema = if self.complete.is_empty() {
            bar_schema()
        } else {
            cols.push(Arc::new(BooleanArray::from(self.complete)));
            rollup_schema()
        };
        RecordBatch::try_new(schema, cols)
    }
}

fn opt_f64(v: Vec<Option<f64>>, n: usize) -> ArrayRef {
    if v.is_empty() {
        arrow_array::new_null_array(&DataType::Float64, n)
    } else {
        Arc::new(Float64Array::from(v))
    }
}

/// Column vectors of one tick batch.
#[derive(Default, Debug, Clone, PartialEq)]
pub struct TickColumns {
    /// Trade times, ns since the epoch (UTC).
    pub ts: Vec<i64>,
    /// Symbol of every row.
    pub symbol: Vec<String>,
    /// Trade prices.
    pub price: Vec<f64>,
    /// Trade sizes (base units).
    pub size: Vec<f64>,
    /// Taker side: 1 buy, -1 sell.
    pub side: Vec<Option<i8>>,
    /// Trade ids (`None` = assign the ordinal within the timestamp).
    pub trade_id: Vec<Option<i64>>,
}

impl TickColumns {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.ts.len()
    }
    /// True when there are no rows.
    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }
    /// Build a record batch with the tick schema, assigning missing trade ids.
    pub fn into_batch(self) -> Result<RecordBatch, ArrowError> {
        let n = self.ts.len();
        let mut ids = Vec::with_capacity(n);
        // Ordinal within (symbol, ts) for rows without ids: stable across re-ingests of a file.
        let mut last: Option<(usize, i64)> = None;
        let mut ord = 0i64;
        for i in 0..n {
            match self.trade_id[i] {
                Some(id) => ids.push(id),
                None => {
                    let same = last
                        .map(|(j, t)| t == self.ts[i] && self.symbol[j] == self.symbol[i])
                        .unwrap_or(false);
                    ord = if same { ord + 1 } else { 0 };
                    ids.push(ord);
                }
            }
            last = Some((i, self.ts[i]));
        }
        let mut sym = StringViewBuilder::with_capacity(n);
        for s in &self.symbol {
            sym.append_value(s);
        }
        RecordBatch::try_new(
            tick_schema(),
            vec![
                Arc::new(TimestampNanosecondArray::from(self.ts).with_timezone("UTC")),
                Arc::new(sym.finish()),
                Arc::new(Float64Array::from(self.price)),
                Arc::new(Float64Array::from(self.size)),
                Arc::new(Int8Array::from(self.side)),
                Arc::new(Int64Array::from(ids)),
            ],
        )
    }
}

/// Borrowed typed views of a canonical batch's columns.
pub(crate) struct View<'a> {
    pub ts: &'a [i64],
    pub symbol: &'a StringViewArray,
}

pub(crate) fn view(batch: &RecordBatch) -> View<'_> {
    View {
        ts: f_ts(batch),
        symbol: batch
            .column_by_name(SYMBOL)
            .and_then(|c| c.as_any().downcast_ref::<StringViewArray>())
            .expect("canonical batch has a Utf8View symbol column"),
    }
}

/// End of the run of rows, from `i`, with the same symbol as row `i`. Equal views mean
/// equal strings (inline up to 12 bytes, else the same buffer range), so the string
/// comparison only runs when the views differ.
#[inline]
pub(crate) fn run_end(sym: &StringViewArray, i: usize) -> usize {
    let views = sym.views();
    let (v, s) = (views[i], sym.value(i));
    let mut j = i + 1;
    while j < views.len() && (views[j] == v || sym.value(j) == s) {
        j += 1;
    }
    j
}

pub(crate) fn f_ts(batch: &RecordBatch) -> &[i64] {
    batch
        .column_by_name(TS)
        .and_then(|c| c.as_any().downcast_ref::<TimestampNanosecondArray>())
        .expect("canonical batch has a ts column")
        .values()
}

pub(crate) fn f64_col<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a Float64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Float64Array>())
}

pub(crate) fn i64_col<'a>(batch: &'a RecordBatch, name: &str) -> Option<&'a Int64Array> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
}

/// Cast `batch` to `schema` by column name, filling absent nullable columns with nulls,
/// for batches the store made or already checked (reads, rollups, ingest's own batches).
/// Timestamps convert exactly ([`ts_to_ns`]); a non-timestamp `ts` is refused, never
/// reinterpreted. Client input goes through [`conform_input`] instead.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(&batch.schema(), schema) || batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch.clone());
    }
    let n = batch.num_rows();
    let mut cols = Vec::with_capacity(schema.fields().len());
    let absent: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| !f.is_nullable() && batch.column_by_name(f.name()).is_none())
        .map(|f| f.name().as_str())
        .collect();
    if !absent.is_empty() {
        return Err(ArrowError::SchemaError(missing_columns(
            &absent,
            schema,
            &batch.schema(),
        )));
    }
    for f in schema.fields() {
        match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => cols.push(c.clone()),
            Some(c) if f.name() == TS => cols.push(Arc::new(
                ts_to_ns(c.as_ref()).map_err(|e| ArrowError::CastError(e.to_string()))?,
            )),
            Some(c) => cols.push(arrow_cast::cast(c, f.data_type())?),
            None => cols.push(arrow_array::new_null_array(f.data_type(), n)),
        }
    }
    RecordBatch::try_new(schema.clone(), cols)
}

/// "missing column(s) …; required: …; optional: …; the batch has: …".
fn missing_columns(absent: &[&str], schema: &Schema, found: &Schema) -> String {
    let names = |nullable: bool| {
        schema
            .fields()
            .iter()
            .filter(|f| f.is_nullable() == nullable)
            .map(|f| f.name().as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let found: Vec<&str> = found.fields().iter().map(|f| f.name().as_str()).collect();
    format!(
        "missing column{} {}; required: {}; optional: {}; the batch has: {}",
        if absent.len() == 1 { "" } else { "s" },
        absent.join(", "),
        names(false),
        names(true),
        if found.is_empty() {
            "no columns".to_string()
        } else {
            found.join(", ")
        }
    )
}

/// Why a client's batch cannot be read as bars or trades at all (as opposed to single
/// bad rows, which validation reports).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// Required columns are absent.
    #[error("{0}; other columns are ignored")]
    MissingColumns(String),
    /// `ts` is not an Arrow timestamp.
    #[error("ts is {found}: ts must be timestamp[ns, UTC] (timestamps in s, ms or us and in other zones are converted exactly; a timestamp without a zone is read as UTC); integers, floats and strings are never guessed: convert them first, e.g. polars `pl.from_epoch(\"ts\", time_unit=\"ms\")` or pyarrow `pc.cast(ts, pa.timestamp(\"ms\", tz=\"UTC\"))`")]
    TsType {
        /// The type found.
        found: DataType,
    },
    /// A timestamp does not fit `timestamp[ns]`.
    #[error("ts at row {row} ({value} {unit} since the epoch) is outside 1677-09-21..2262-04-11, the range of timestamp[ns]; check the column's unit")]
    TsRange {
        /// 1-based row.
        row: usize,
        /// The raw value.
        value: i64,
        /// Its unit (`s`, `ms`, `us`).
        unit: &'static str,
    },
    /// A required column has the Arrow type `null` (no values at all).
    #[error("column {column} has type null (no values); it is required: send its values")]
    NullColumn {
        /// The column.
        column: String,
    },
    /// A column's type cannot hold its field.
    #[error("column {column} is {found}; it must be {expected}")]
    ColumnType {
        /// The column.
        column: String,
        /// The type found.
        found: DataType,
        /// What is accepted.
        expected: &'static str,
    },
    /// A column's values do not fit its field's type.
    #[error("column {column}: {detail}; send values that fit its type (float64 for prices and amounts, int64 for trades and trade_id, int8 for side)")]
    Values {
        /// The column.
        column: String,
        /// The conversion error.
        detail: String,
    },
}

/// A `ts` column as `timestamp[ns, UTC]`. Arrow stores zoned timestamps as instants since
/// the epoch in UTC whatever the zone, so only the unit changes (exactly: an overflow is
/// an error, never a wrap); a zone-less timestamp is read as UTC. Anything else is refused.
pub fn ts_to_ns(a: &dyn Array) -> Result<TimestampNanosecondArray, InputError> {
    use arrow_array::cast::AsArray;
    use arrow_array::types::*;
    let DataType::Timestamp(unit, _) = a.data_type() else {
        return Err(InputError::TsType {
            found: a.data_type().clone(),
        });
    };
    let (values, nulls, mul, name) = match unit {
        TimeUnit::Nanosecond => {
            let t = a.as_primitive::<TimestampNanosecondType>();
            (t.values().clone(), t.nulls().cloned(), 1, "ns")
        }
        TimeUnit::Microsecond => {
            let t = a.as_primitive::<TimestampMicrosecondType>();
            (t.values().clone(), t.nulls().cloned(), 1_000, "us")
        }
        TimeUnit::Millisecond => {
            let t = a.as_primitive::<TimestampMillisecondType>();
            (t.values().clone(), t.nulls().cloned(), 1_000_000, "ms")
        }
        TimeUnit::Second => {
            let t = a.as_primitive::<TimestampSecondType>();
            (t.values().clone(), t.nulls().cloned(), 1_000_000_000, "s")
        }
    };
    if mul == 1 {
        return Ok(TimestampNanosecondArray::new(values, nulls).with_timezone("UTC"));
    }
    let mut out = Vec::with_capacity(values.len());
    for (i, v) in values.iter().enumerate() {
        // A null slot's value is arbitrary: it must not fail the column.
        let null = nulls.as_ref().is_some_and(|n| n.is_null(i));
        match v.checked_mul(mul) {
            Some(x) => out.push(x),
            None if null => out.push(0),
            None => {
                return Err(InputError::TsRange {
                    row: i + 1,
                    value: *v,
                    unit: name,
                })
            }
        }
    }
    Ok(TimestampNanosecondArray::new(out.into(), nulls).with_timezone("UTC"))
}

/// What a client column of a field may be, and how it becomes the field's type.
fn accepts(field: &Field, t: &DataType) -> Result<(), &'static str> {
    use DataType::*;
    let int = |t: &DataType| {
        matches!(
            t,
            Int8 | Int16 | Int32 | Int64 | UInt8 | UInt16 | UInt32 | UInt64
        )
    };
    let ok = match field.data_type() {
        Utf8View => match t {
            Utf8 | LargeUtf8 | Utf8View => true,
            Dictionary(k, v) => int(k) && matches!(**v, Utf8 | LargeUtf8 | Utf8View),
            _ => false,
        },
        Float64 => {
            int(t)
                || matches!(
                    t,
                    Float16 | Float32 | Float64 | Decimal128(..) | Decimal256(..)
                )
        }
        Int64 | Int8 => int(t),
        _ => false,
    };
    if ok {
        return Ok(());
    }
    Err(match field.data_type() {
        Utf8View => "a string column (utf8, large_utf8, utf8_view or a dictionary of strings)",
        Float64 => "a number column (float64, float32 or an integer or decimal type)",
        _ => "an integer column",
    })
}

/// Read a client's batch as `kind` rows: the canonical types (timestamps converted
/// exactly, numbers cast), nullable everywhere, so that validation can report a row
/// with a missing value instead of failing the batch. Columns are found by name;
/// absent optional columns are null, others are ignored.
///
/// Every column is checked before anything is allocated: required columns must exist with
/// a usable type and not the Arrow type `null`, whose arrays have no buffers and so can
/// claim any length (a few hundred bytes of IPC can declare 2^33 rows). A required column
/// of a usable type holds a buffer entry for every row, so the row count, and every cast
/// and null fill after this check, is bounded by the input's own size.
pub fn conform_input(batch: &RecordBatch, kind: Kind) -> Result<RecordBatch, InputError> {
    let schema = kind.schema();
    let found = batch.schema();
    let absent: Vec<&str> = schema
        .fields()
        .iter()
        .filter(|f| !f.is_nullable() && batch.column_by_name(f.name()).is_none())
        .map(|f| f.name().as_str())
        .collect();
    if !absent.is_empty() {
        return Err(InputError::MissingColumns(missing_columns(
            &absent, &schema, &found,
        )));
    }
    // Types first, with no allocation; then convert.
    for f in schema.fields() {
        let Some(c) = batch.column_by_name(f.name()) else {
            continue;
        };
        let t = c.data_type();
        if f.name() == TS {
            if !matches!(t, DataType::Timestamp(..)) {
                return Err(InputError::TsType { found: t.clone() });
            }
        } else if t == &DataType::Null {
            if !f.is_nullable() {
                return Err(InputError::NullColumn {
                    column: f.name().clone(),
                });
            }
        } else if let Err(expected) = accepts(f, t) {
            return Err(InputError::ColumnType {
                column: f.name().clone(),
                found: t.clone(),
                expected,
            });
        }
    }
    let n = batch.num_rows();
    let exact = arrow_cast::CastOptions {
        safe: false,
        ..Default::default()
    };
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut cols: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        fields.push(f.as_ref().clone().with_nullable(true));
        cols.push(match batch.column_by_name(f.name()) {
            Some(c) if f.name() == TS => Arc::new(ts_to_ns(c.as_ref())?),
            Some(c) if c.data_type() == f.data_type() => c.clone(),
            Some(c) if c.data_type() != &DataType::Null => {
                arrow_cast::cast_with_options(c, f.data_type(), &exact).map_err(|e| {
                    InputError::Values {
                        column: f.name().clone(),
                        detail: e.to_string(),
                    }
                })?
            }
            _ => arrow_array::new_null_array(f.data_type(), n),
        });
    }
    let loose = Arc::new(Schema::new(fields));
    Ok(RecordBatch::try_new_with_options(
        loose,
        cols,
        &arrow_array::RecordBatchOptions::new().with_row_count(Some(n)),
    )
    .expect("columns conformed to the schema"))
}
