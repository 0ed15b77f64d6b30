//! The canonical bar schema, and the rule for string columns.
//!
//! polars imports numeric, timestamp, `Utf8View` and dictionary columns
//! without copying, but converts plain `Utf8` (`DataType::Utf8`) into its own
//! string-view layout: 7–11 ms per million rows. So string columns that
//! should reach polars zero-copy must be `Utf8View` (or dictionary-encoded).
//! The bar schema's `symbol` is `Utf8View`.

use arrow_schema::{DataType, Field, Schema, TimeUnit};

/// `ts, symbol, open, high, low, close, volume`: the 7-column bar schema.
/// `ts` is the bar open, `timestamp[ns, UTC]`, left-labelled.
pub fn bar_schema() -> Schema {
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
