//! The 7-column OHLCV schema, and the rule for string columns.
//!
//! polars imports numeric, timestamp, `Utf8View` and dictionary columns
//! without copying, but converts plain `Utf8` (`DataType::Utf8`) into its own
//! string-view layout: 7–11 ms per million rows. So string columns that
//! should reach polars zero-copy must be `Utf8View` (or dictionary-encoded).
//! The bar schema's `symbol` is `Utf8View`.

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// `ts, symbol, open, high, low, close, volume`: the 7-column OHLCV schema
/// of this crate's examples, benches and C++ `write_bars`. `ts` is the bar
/// open, `timestamp[ns, UTC]`, left-labelled.
///
/// This is *not* the store's canonical bar schema:
/// `ringfeed_store::schema::bar_schema()` has these 7 columns plus the
/// nullable `quote_volume, trades, taker_buy_base, taker_buy_quote` (11),
/// and is what the daemon's topics and query results carry.
///
/// ```
/// let s = ringfeed_arrow::ohlcv_schema();
/// assert_eq!(s.fields().len(), 7);
/// assert_eq!(s.field(1).data_type(), &arrow_schema::DataType::Utf8View);
/// ```
pub fn ohlcv_schema() -> Schema {
    Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("symbol", DataType::Utf8View, false),
        Field::new("open", DataType::Float64, false),
        Field::new("high", DataType::Float64, false),
        Field::new("low", DataType::Float64, false),
        Field::new("close", DataType::Float64, false),
        Field::new("volume", DataType::Float64, false),
    ])
}

/// The old name of [`ohlcv_schema`] (7 columns), easily confused with the
/// store's 11-column `ringfeed_store::schema::bar_schema()`.
#[deprecated(
    since = "0.1.0",
    note = "renamed `ohlcv_schema`; the store's canonical bar schema is `ringfeed_store::schema::bar_schema()`"
)]
pub fn bar_schema() -> Schema {
    ohlcv_schema()
}
