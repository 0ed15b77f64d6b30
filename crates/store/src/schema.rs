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

/// Cast `batch` to `schema` by column name, filling absent nullable columns with nulls.
/// Fails when a non-null column is missing or a type cannot be cast.
pub fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, ArrowError> {
    if Arc::ptr_eq(&batch.schema(), schema) || batch.schema().as_ref() == schema.as_ref() {
        return Ok(batch.clone());
    }
    let n = batch.num_rows();
    let mut cols = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => cols.push(c.clone()),
            Some(c) => cols.push(arrow_cast::cast(c, f.data_type())?),
            None if f.is_nullable() => cols.push(arrow_array::new_null_array(f.data_type(), n)),
            None => {
                return Err(ArrowError::SchemaError(format!(
                    "column {:?} is missing; a batch needs the columns {:?}",
                    f.name(),
                    schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                )))
            }
        }
    }
    RecordBatch::try_new(schema.clone(), cols)
}
