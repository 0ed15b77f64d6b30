//! The 7-column OHLCV schema, and the rule for string columns.
//!
//! polars imports numeric, timestamp, `Utf8View` and dictionary columns
//! without copying, but converts plain `Utf8` (`DataType::Utf8`) into its own
//! string-view layout: 7–11 ms per million rows. So string columns that
//! should reach polars zero-copy must be `Utf8View` (or dictionary-encoded).
//! The bar schema's `symbol` is `Utf8View`.

use arrow_schema::{DataType, Field, FieldRef, Schema, TimeUnit};
use std::sync::Arc;

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

/// How a ring stores string and binary columns ([`crate::RingOptions::strings`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StringLayout {
    /// `Utf8` and `LargeUtf8` columns are stored as `Utf8View`, `Binary` and
    /// `LargeBinary` as `BinaryView`, also inside lists, fixed-size lists and
    /// structs: polars and pyarrow import views without a copy, while plain
    /// `Utf8` costs polars a copy of every string (~11 ms per million rows).
    /// The writer converts such columns on write (a pass over the offsets;
    /// the string bytes are copied once, into the slot, as before).
    #[default]
    View,
    /// Columns are stored in the layout the schema gives.
    AsGiven,
}

/// The schema a ring with string layout `layout` stores for batches of
/// `schema`: with [`StringLayout::View`], every `Utf8`/`LargeUtf8` field
/// becomes `Utf8View` and every `Binary`/`LargeBinary` field `BinaryView`
/// (recursively through `List`, `LargeList`, `FixedSizeList` and `Struct`;
/// dictionary values, maps, unions and run-end encoded columns keep theirs).
/// Names, nullability and metadata are kept.
///
/// ```
/// use arrow_schema::{DataType, Field, Schema};
/// use ringfeed_arrow::{storage_schema, StringLayout};
/// let s = Schema::new(vec![Field::new("sym", DataType::Utf8, false)]);
/// let stored = storage_schema(&s, StringLayout::View);
/// assert_eq!(stored.field(0).data_type(), &DataType::Utf8View);
/// assert_eq!(storage_schema(&s, StringLayout::AsGiven), s);
/// ```
pub fn storage_schema(schema: &Schema, layout: StringLayout) -> Schema {
    match layout {
        StringLayout::AsGiven => schema.clone(),
        StringLayout::View => {
            let fields: Vec<FieldRef> = schema.fields().iter().map(view_field).collect();
            Schema::new_with_metadata(fields, schema.metadata().clone())
        }
    }
}

fn view_field(f: &FieldRef) -> FieldRef {
    match view_type(f.data_type()) {
        Some(dt) => Arc::new(f.as_ref().clone().with_data_type(dt)),
        None => f.clone(),
    }
}

/// `dt` with views for strings and binary, or `None` if nothing changes.
fn view_type(dt: &DataType) -> Option<DataType> {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 => Some(DataType::Utf8View),
        DataType::Binary | DataType::LargeBinary => Some(DataType::BinaryView),
        DataType::List(f) => view_type(f.data_type()).map(|_| DataType::List(view_field(f))),
        DataType::LargeList(f) => {
            view_type(f.data_type()).map(|_| DataType::LargeList(view_field(f)))
        }
        DataType::FixedSizeList(f, n) => {
            view_type(f.data_type()).map(|_| DataType::FixedSizeList(view_field(f), *n))
        }
        DataType::Struct(fs) => fs
            .iter()
            .any(|f| view_type(f.data_type()).is_some())
            .then(|| DataType::Struct(fs.iter().map(view_field).collect())),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn view_layout_rewrites_strings_and_binary_at_every_level() {
        let item = |dt| Arc::new(Field::new("item", dt, true));
        let s = Schema::new(vec![
            Field::new("a", DataType::Utf8, false),
            Field::new("b", DataType::LargeBinary, true),
            Field::new("c", DataType::List(item(DataType::LargeUtf8)), true),
            Field::new(
                "d",
                DataType::Struct(vec![Field::new("x", DataType::Binary, true)].into()),
                true,
            ),
            Field::new("e", DataType::FixedSizeList(item(DataType::Utf8), 2), true),
            Field::new_dictionary("f", DataType::Int32, DataType::Utf8, true),
            Field::new("g", DataType::Int64, false),
        ])
        .with_metadata(std::collections::HashMap::from([(
            "k".to_string(),
            "v".to_string(),
        )]));
        let v = storage_schema(&s, StringLayout::View);
        let want = Schema::new(vec![
            Field::new("a", DataType::Utf8View, false),
            Field::new("b", DataType::BinaryView, true),
            Field::new("c", DataType::List(item(DataType::Utf8View)), true),
            Field::new(
                "d",
                DataType::Struct(vec![Field::new("x", DataType::BinaryView, true)].into()),
                true,
            ),
            Field::new(
                "e",
                DataType::FixedSizeList(item(DataType::Utf8View), 2),
                true,
            ),
            Field::new_dictionary("f", DataType::Int32, DataType::Utf8, true),
            Field::new("g", DataType::Int64, false),
        ])
        .with_metadata(std::collections::HashMap::from([(
            "k".to_string(),
            "v".to_string(),
        )]));
        assert_eq!(v, want);
        assert_eq!(storage_schema(&v, StringLayout::View), v, "idempotent");
        assert_eq!(storage_schema(&s, StringLayout::AsGiven), s);
        assert_eq!(
            storage_schema(&ohlcv_schema(), StringLayout::View),
            ohlcv_schema()
        );
    }
}
