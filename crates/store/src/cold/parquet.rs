//! Parquet I/O of the cold tier: the writer's encodings and codec, atomic part writes, and
//! reads decoded straight into the store's types.

use crate::catalog;
use crate::perms::StoreOptions;
use crate::store::{ReadError, WriteDownError};
use arrow_array::cast::AsArray;
use arrow_array::types::Int64Type;
use arrow_array::{BooleanArray, RecordBatch, StringViewArray};
use arrow_cast::cast;
use arrow_schema::ArrowError;
use arrow_select::filter::filter_record_batch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection,
    RowSelector,
};
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::{
    page_index::RowGroupPageIndex, PageIndexPolicy, RowGroupMetaData, SortingColumn,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::statistics::Statistics;
use parquet::schema::types::ColumnPath;
use std::cmp::Ordering;
use std::path::Path;

/// What a part file holds, which decides its row groups and page statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PartShape {
    /// One UTC day of a dataset and timeframe: the write-down's part files.
    Day,
    /// A compacted file of many days (e.g. a dataset-month) whose rows are sorted by
    /// `(symbol, ts)`: the footer says so, and page statistics on both let a reader of one
    /// symbol or a time range skip the rest.
    Sorted,
}

/// Cold-tier Parquet settings, measured in docs/benchmarks.md ("Cold tier encodings",
/// `cargo run --release -p ringfeed-store --example parquet_encodings`):
/// - `ts`, `trades`, `trade_id` DELTA_BINARY_PACKED (PLAIN `ts`: +6.4 bytes a bar);
/// - f64 columns PLAIN without dictionary (zstd finds the repeated 8-byte prices;
///   BYTE_STREAM_SPLIT: +7.5, a dictionary: +12.9 bytes a bar in month files);
/// - `symbol` dictionary encoded (RLE_DICTIONARY);
/// - page statistics (the page index) on `ts` and `symbol` only, so a reader of one symbol
///   or a time range skips pages; none on the values, which no query filters on;
/// - zstd 6 for day parts (written at write-down, where level 9 is slower and no smaller);
///   zstd 9 for sorted files (compaction runs in the background; 3 % smaller), in row groups
///   of 128k rows (row-group statistics prune for readers without the page index) and pages
///   of ≤ 20k rows (a one-symbol read of a 10-symbol month decodes ~1.4 symbols' rows).
pub fn writer_props(shape: PartShape) -> WriterProperties {
    let (level, row_group) = match shape {
        PartShape::Day => (6, 1 << 20),
        PartShape::Sorted => (9, 128 * 1024),
    };
    let mut p = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(level).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(row_group))
        .set_data_page_row_count_limit(20_000)
        .set_statistics_enabled(EnabledStatistics::None);
    for c in [crate::schema::TS, crate::schema::SYMBOL] {
        p = p.set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::Page);
    }
    for c in FLOAT_COLUMNS {
        p = p.set_column_dictionary_enabled(ColumnPath::from(c), false);
    }
    for c in [crate::schema::TS, "trades", "trade_id"] {
        p = p
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    if shape == PartShape::Sorted {
        // Every store schema starts `ts, symbol`.
        p = p.set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: 1,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: 0,
                descending: false,
                nulls_first: false,
            },
        ]));
    }
    p.build()
}

/// The f64 columns of the bar and tick schemas.
const FLOAT_COLUMNS: [&str; 10] = [
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "taker_buy_base",
    "taker_buy_quote",
    "price",
    "size",
];

/// Write `batch` to `path` atomically (temp name, fsync, rename, fsync dir) with the
/// default modes. Returns bytes.
pub fn write_parquet(path: &Path, batch: &RecordBatch) -> Result<u64, WriteDownError> {
    write_parquet_with(path, batch, &StoreOptions::default())
}

/// [`write_parquet`] with the modes (and test hook) of `opts`.
pub fn write_parquet_with(
    path: &Path,
    batch: &RecordBatch,
    opts: &StoreOptions,
) -> Result<u64, WriteDownError> {
    write_parquet_shaped(path, batch, opts, PartShape::Day)
}

/// [`write_parquet_with`] for a file of `shape`. A [`PartShape::Sorted`] batch must be
/// sorted by `(symbol, ts)`; it is refused otherwise, since its footer would claim an order
/// readers rely on.
pub fn write_parquet_shaped(
    path: &Path,
    batch: &RecordBatch,
    opts: &StoreOptions,
    shape: PartShape,
) -> Result<u64, WriteDownError> {
    let err = |detail: String| WriteDownError::Write {
        path: path.into(),
        detail,
    };
    if shape == PartShape::Sorted && !sorted_by_symbol_ts(batch) {
        return Err(err(
            "rows are not sorted by (symbol, ts); sort the batch before writing a sorted part"
                .into(),
        ));
    }
    let dir = path.parent().expect("part files live in a directory");
    opts.create_dir_all(dir).map_err(|e| err(e.to_string()))?;
    let tmp = path.with_extension("parquet.tmp");
    let (f, _) = opts
        .open_write(&tmp, crate::perms::Create::truncate())
        .map_err(|e| err(e.to_string()))?;
    opts.check_fault(&tmp).map_err(|e| err(e.to_string()))?;
    // No embedded Arrow schema (~900 bytes a file): readers get the types from Parquet's
    // own logical types, and the store reads with its schema as the hint.
    let opts = ArrowWriterOptions::new()
        .with_properties(writer_props(shape))
        .with_skip_arrow_metadata(true);
    let mut w = ArrowWriter::try_new_with_options(f, batch.schema(), opts)
        .map_err(|e| err(e.to_string()))?;
    w.write(batch).map_err(|e| err(e.to_string()))?;
    let f = w.into_inner().map_err(|e| err(e.to_string()))?;
    f.sync_all().map_err(|e| err(e.to_string()))?;
    let bytes = f.metadata().map_err(|e| err(e.to_string()))?.len();
    drop(f);
    crate::failpoint("writedown:before_rename");
    std::fs::rename(&tmp, path).map_err(|e| err(e.to_string()))?;
    catalog::sync_dir(dir).map_err(|e| err(e.to_string()))?;
    Ok(bytes)
}

/// Read every batch of a Parquet file.
pub fn read_parquet(path: &Path) -> Result<Vec<RecordBatch>, ReadError> {
    read_parquet_as(path, None)
}

/// Read every batch of a Parquet file, decoded straight into `schema`'s types (`Utf8View`
/// symbols, `UTC` timestamps) when given and compatible; otherwise as the file describes
/// itself (the caller conforms).
pub fn read_parquet_as(
    path: &Path,
    schema: Option<&arrow_schema::SchemaRef>,
) -> Result<Vec<RecordBatch>, ReadError> {
    Loaded::load(path, schema)?.read(None)
}

/// A part file read into memory with its footer decoded: what a read splits by row group,
/// so that one month file is decoded on every CPU.
pub(crate) struct Loaded {
    path: std::path::PathBuf,
    bytes: bytes::Bytes,
    meta: ArrowReaderMetadata,
}

impl Loaded {
    /// Read `path` (part files are at most a month of one timeframe: one read, then decode
    /// from memory), with `schema` as the decoding hint as in [`read_parquet_as`].
    pub(crate) fn load(
        path: &Path,
        schema: Option<&arrow_schema::SchemaRef>,
    ) -> Result<Loaded, ReadError> {
        let f = bytes::Bytes::from(std::fs::read(path).map_err(|source| ReadError::Io {
            path: path.into(),
            source,
        })?);
        let perr = |source| ReadError::Parquet {
            path: path.into(),
            source,
        };
        let meta = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(perr)?;
        let meta = match schema {
            Some(s) if s.fields().len() == meta.schema().fields().len() => {
                let hinted = ArrowReaderOptions::new().with_schema(s.clone());
                ArrowReaderMetadata::try_new(meta.metadata().clone(), hinted).unwrap_or(meta)
            }
            _ => meta,
        };
        Ok(Loaded {
            path: path.into(),
            bytes: f,
            meta,
        })
    }

    /// Row groups in the file.
    pub(crate) fn row_groups(&self) -> usize {
        self.meta.metadata().num_row_groups()
    }

    /// Decode the row groups `groups` (all when `None`), in file order.
    pub(crate) fn read(&self, groups: Option<Vec<usize>>) -> Result<Vec<RecordBatch>, ReadError> {
        let perr = |source| ReadError::Parquet {
            path: self.path.clone(),
            source,
        };
        let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(
            self.bytes.clone(),
            self.meta.clone(),
        )
        .with_batch_size(1 << 20);
        if let Some(g) = groups {
            b = b.with_row_groups(g);
        }
        let r = b.build().map_err(perr)?;
        r.map(|b| b.map_err(ReadError::Arrow)).collect()
    }
}

/// Whether `batch` is sorted by `(symbol, ts)` (true when it lacks either column: there is
/// nothing to claim then, and [`writer_props`] only names columns 0 and 1).
fn sorted_by_symbol_ts(batch: &RecordBatch) -> bool {
    let (Ok(sym), Ok(ts)) = (
        symbol_view(batch),
        ts_nanos(batch, &arrow_schema::DataType::Int64),
    ) else {
        return true;
    };
    let ts = ts.as_primitive::<Int64Type>().values();
    (1..batch.num_rows()).all(|i| match sym.value(i - 1).cmp(sym.value(i)) {
        Ordering::Less => true,
        Ordering::Equal => ts[i - 1] <= ts[i],
        Ordering::Greater => false,
    })
}

/// The `symbol` column of `batch` as a string view (cast from `Utf8`, dictionaries, …).
fn symbol_view(batch: &RecordBatch) -> Result<StringViewArray, ArrowError> {
    let c = batch
        .column_by_name(crate::schema::SYMBOL)
        .ok_or_else(|| ArrowError::SchemaError("no symbol column".into()))?;
    Ok(cast(c, &arrow_schema::DataType::Utf8View)?
        .as_string_view()
        .clone())
}

/// The `ts` column of `batch` in nanoseconds, cast to `to` (`Int64` or a nanosecond
/// timestamp).
fn ts_nanos(
    batch: &RecordBatch,
    to: &arrow_schema::DataType,
) -> Result<arrow_array::ArrayRef, ArrowError> {
    let c = batch
        .column_by_name(crate::schema::TS)
        .ok_or_else(|| ArrowError::SchemaError("no ts column".into()))?;
    let ns = cast(
        c,
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Nanosecond, None),
    )?;
    cast(&ns, to)
}

/// Read the rows of a Parquet file whose symbol is one of `symbols` (all when `None`) and
/// whose `ts` (ns since the epoch) is in `start..end`, decoded like [`read_parquet_as`].
///
/// Row groups and pages whose statistics (row-group statistics, then the page index of
/// `symbol` and `ts`) rule them out are neither read nor decoded; the rows left are then
/// filtered exactly. A file without statistics or page index is read whole and filtered.
pub fn read_parquet_filtered(
    path: &Path,
    schema: Option<&arrow_schema::SchemaRef>,
    symbols: Option<&[&str]>,
    start: i64,
    end: i64,
) -> Result<Vec<RecordBatch>, ReadError> {
    let perr = |source| ReadError::Parquet {
        path: path.into(),
        source,
    };
    let f = std::fs::File::open(path).map_err(|source| ReadError::Io {
        path: path.into(),
        source,
    })?;
    let indexed = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
    let meta = ArrowReaderMetadata::load(&f, indexed.clone()).map_err(perr)?;
    let meta = match schema {
        Some(s) if s.fields().len() == meta.schema().fields().len() => {
            ArrowReaderMetadata::try_new(meta.metadata().clone(), indexed.with_schema(s.clone()))
                .unwrap_or(meta)
        }
        _ => meta,
    };
    let wanted = Wanted::new(&meta, symbols, start, end);
    let pq = meta.metadata().clone();
    let (mut groups, mut selectors, mut any_skipped) = (Vec::new(), Vec::new(), false);
    for (i, rg) in pq.row_groups().iter().enumerate() {
        let rows = usize::try_from(rg.num_rows()).unwrap_or(0);
        if !wanted.row_group_may_match(rg) {
            any_skipped = true;
            continue;
        }
        let sel = wanted.page_selection(&pq.page_index_for_row_group(i), rows);
        if !sel.selects_any() {
            any_skipped = true;
            continue;
        }
        any_skipped |= sel.row_count() < rows;
        groups.push(i);
        selectors.extend(Vec::<RowSelector>::from(sel));
    }
    let mut b = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta)
        .with_batch_size(1 << 20)
        .with_row_groups(groups);
    if any_skipped {
        b = b.with_row_selection(RowSelection::from(selectors));
    }
    let mut out = Vec::new();
    for batch in b.build().map_err(perr)? {
        let batch = wanted.filter(&batch?)?;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
    }
    Ok(out)
}

/// The rows a filtered read keeps, in the file's own terms (leaf columns, `ts` unit).
struct Wanted<'a> {
    symbols: Option<Vec<&'a str>>,
    start: i64,
    end: i64,
    /// `start..end` in the file's `ts` unit, widened to whole units.
    unit_range: (i64, i64),
    /// Leaf column indexes of `symbol` and `ts`, when the file has them.
    sym_col: Option<usize>,
    ts_col: Option<usize>,
}

impl<'a> Wanted<'a> {
    fn new(meta: &ArrowReaderMetadata, symbols: Option<&[&'a str]>, start: i64, end: i64) -> Self {
        let descr = meta.metadata().file_metadata().schema_descr();
        let leaf = |name: &str| (0..descr.num_columns()).find(|&i| descr.column(i).name() == name);
        let per_unit: i64 = match meta
            .schema()
            .field_with_name(crate::schema::TS)
            .map(|f| f.data_type())
        {
            Ok(arrow_schema::DataType::Timestamp(u, _)) => match u {
                arrow_schema::TimeUnit::Second => 1_000_000_000,
                arrow_schema::TimeUnit::Millisecond => 1_000_000,
                arrow_schema::TimeUnit::Microsecond => 1_000,
                arrow_schema::TimeUnit::Nanosecond => 1,
            },
            _ => 1,
        };
        // Floor the start and ceil the end: a page is skipped only if no value can match.
        let unit_range = (
            start.div_euclid(per_unit),
            end.div_euclid(per_unit) + i64::from(end.rem_euclid(per_unit) != 0),
        );
        let mut symbols = symbols.map(<[&str]>::to_vec);
        if let Some(s) = symbols.as_mut() {
            s.sort_unstable();
            s.dedup();
        }
        Wanted {
            symbols,
            start,
            end,
            unit_range,
            sym_col: leaf(crate::schema::SYMBOL),
            ts_col: leaf(crate::schema::TS),
        }
    }

    /// Whether some wanted symbol lies in `min..=max` (bytes, as Parquet orders UTF-8).
    fn symbol_in(&self, min: Option<&[u8]>, max: Option<&[u8]>) -> bool {
        let Some(symbols) = &self.symbols else {
            return true;
        };
        symbols
            .iter()
            .any(|s| min.is_none_or(|m| m <= s.as_bytes()) && max.is_none_or(|m| s.as_bytes() <= m))
    }

    /// Whether `min..=max` (in the file's unit) overlaps the wanted range.
    fn ts_in(&self, min: Option<i64>, max: Option<i64>) -> bool {
        max.is_none_or(|m| m >= self.unit_range.0) && min.is_none_or(|m| m < self.unit_range.1)
    }

    fn row_group_may_match(&self, rg: &RowGroupMetaData) -> bool {
        let sym = self.sym_col.and_then(|c| rg.column(c).statistics());
        let sym_ok = match sym {
            Some(s) => self.symbol_in(s.min_bytes_opt(), s.max_bytes_opt()),
            None => true,
        };
        let ts_ok = match self.ts_col.and_then(|c| rg.column(c).statistics()) {
            Some(Statistics::Int64(s)) => self.ts_in(s.min_opt().copied(), s.max_opt().copied()),
            _ => true,
        };
        sym_ok && ts_ok
    }

    /// The rows of a row group of `rows` rows whose `symbol` and `ts` pages may match.
    fn page_selection(&self, index: &RowGroupPageIndex, rows: usize) -> RowSelection {
        let all = RowSelection::from(vec![RowSelector::select(rows)]);
        let pages = |col: Option<usize>, keep: &dyn Fn(&ColumnIndexMetaData, usize) -> bool| {
            let col = col?;
            let (ci, oi) = (index.column_index(col)?, index.offset_index(col)?);
            let locs = oi.page_locations();
            let bound = |j: usize| {
                locs.get(j)
                    .map_or(rows, |l| usize::try_from(l.first_row_index).unwrap_or(rows))
            };
            let ranges = (0..locs.len())
                .filter(|&j| keep(ci, j))
                .map(|j| bound(j)..bound(j + 1));
            Some(RowSelection::from_consecutive_ranges(ranges, rows))
        };
        let mut sel = all;
        if self.symbols.is_some() {
            let by_sym = pages(self.sym_col, &|ci, j| match ci {
                ColumnIndexMetaData::BYTE_ARRAY(ix) => {
                    self.symbol_in(ix.min_value(j), ix.max_value(j))
                }
                _ => true,
            });
            if let Some(s) = by_sym {
                sel = sel.intersection(&s);
            }
        }
        if self.start > i64::MIN || self.end < i64::MAX {
            let by_ts = pages(self.ts_col, &|ci, j| match ci {
                ColumnIndexMetaData::INT64(ix) => {
                    ix.is_null_page(j)
                        || self.ts_in(ix.min_value(j).copied(), ix.max_value(j).copied())
                }
                _ => true,
            });
            if let Some(s) = by_ts {
                sel = sel.intersection(&s);
            }
        }
        sel
    }

    /// The rows of `batch` that match exactly.
    fn filter(&self, batch: &RecordBatch) -> Result<RecordBatch, ReadError> {
        let ts = ts_nanos(batch, &arrow_schema::DataType::Int64)?;
        let ts = ts.as_primitive::<Int64Type>().values();
        let sym = match self.symbols {
            Some(_) => Some(symbol_view(batch)?),
            None => None,
        };
        let keep: BooleanArray = (0..batch.num_rows())
            .map(|i| {
                let in_range = (self.start..self.end).contains(&ts[i]);
                let symbol_ok = match (&self.symbols, &sym) {
                    (Some(want), Some(s)) => want.binary_search(&s.value(i)).is_ok(),
                    _ => true,
                };
                Some(in_range && symbol_ok)
            })
            .collect();
        if keep.true_count() == batch.num_rows() {
            return Ok(batch.clone());
        }
        Ok(filter_record_batch(batch, &keep)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schema::bar_schema;
    use arrow_array::types::TimestampNanosecondType;
    use arrow_array::{ArrayRef, Float64Array, Int64Array, TimestampNanosecondArray};
    use std::sync::Arc;

    const DAY: i64 = 86_400_000_000_000;
    const MIN: i64 = 60_000_000_000;
    /// 2023-03-01T00:00:00Z.
    const MARCH: i64 = 1_677_628_800_000_000_000;
    const SYMBOLS: [&str; 5] = ["ADAUSDT", "BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"];

    /// `days` days of 1m bars for each of [`SYMBOLS`], sorted by (symbol, ts).
    fn month_batch(days: i64) -> RecordBatch {
        let per = (days * 1440) as usize;
        let n = per * SYMBOLS.len();
        let ts: Vec<i64> = (0..n).map(|i| MARCH + (i % per) as i64 * MIN).collect();
        let sym = SYMBOLS.iter().flat_map(|s| std::iter::repeat_n(*s, per));
        let px: Vec<f64> = (0..n).map(|i| 100.0 + (i % 977) as f64 * 0.01).collect();
        let mut cols: Vec<ArrayRef> = vec![
            Arc::new(TimestampNanosecondArray::from(ts).with_timezone("UTC")),
            Arc::new(StringViewArray::from_iter_values(sym)),
        ];
        for _ in 0..6 {
            cols.push(Arc::new(Float64Array::from(px.clone())));
        }
        cols.push(Arc::new(Int64Array::from_iter_values(
            (0..n as i64).map(|i| i % 900),
        )));
        for _ in 0..2 {
            cols.push(Arc::new(Float64Array::from(px.clone())));
        }
        RecordBatch::try_new(bar_schema(), cols).unwrap()
    }

    /// The reference: the full read filtered row by row.
    fn naive(full: &RecordBatch, symbols: Option<&[&str]>, start: i64, end: i64) -> RecordBatch {
        let ts = full.column(0).as_primitive::<TimestampNanosecondType>();
        let sym = full.column(1).as_string_view();
        let keep: BooleanArray = (0..full.num_rows())
            .map(|i| {
                let t = ts.value(i);
                Some(t >= start && t < end && symbols.is_none_or(|s| s.contains(&sym.value(i))))
            })
            .collect();
        filter_record_batch(full, &keep).unwrap()
    }

    fn concat(batches: &[RecordBatch]) -> RecordBatch {
        arrow_select::concat::concat_batches(&bar_schema(), batches).unwrap()
    }

    #[test]
    fn filtered_read_of_a_sorted_month_equals_filtering_the_full_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("month.parquet");
        let batch = month_batch(31);
        write_parquet_shaped(&path, &batch, &StoreOptions::default(), PartShape::Sorted).unwrap();
        let schema = bar_schema();
        let full = concat(&read_parquet_as(&path, Some(&schema)).unwrap());
        assert_eq!(full, batch);
        let cases: [(Option<&[&str]>, i64, i64); 8] = [
            (Some(&["ETHUSDT"]), i64::MIN, i64::MAX),
            (Some(&["ETHUSDT"]), MARCH + 14 * DAY, MARCH + 15 * DAY),
            (
                Some(&["ADAUSDT", "XRPUSDT"]),
                MARCH + 3 * DAY + 7,
                MARCH + 20 * DAY - 1,
            ),
            (None, MARCH + 30 * DAY, i64::MAX),
            (Some(&["DOGEUSDT"]), i64::MIN, i64::MAX),
            (Some(&["BTCUSDT"]), MARCH + 40 * DAY, i64::MAX),
            (Some(&[]), i64::MIN, i64::MAX),
            (
                Some(&["SOLUSDT", "SOLUSDT"]),
                MARCH + 5 * MIN,
                MARCH + 5 * MIN + 1,
            ),
        ];
        for (symbols, start, end) in cases {
            let got = read_parquet_filtered(&path, Some(&schema), symbols, start, end).unwrap();
            let want = naive(&full, symbols, start, end);
            let got = concat(&got);
            assert_eq!(got, want, "symbols {symbols:?} in {start}..{end}");
            if let Some(s) = symbols.and_then(|s| s.first()) {
                let one = got.column(1).as_string_view();
                assert!(
                    one.iter()
                        .all(|x| x.is_some_and(|x| symbols.unwrap().contains(&x))),
                    "{s}"
                );
            }
        }
        // The exact answers above, not just the filter: a one-symbol read of the 31 days.
        let eth =
            read_parquet_filtered(&path, Some(&schema), Some(&["ETHUSDT"]), i64::MIN, i64::MAX)
                .unwrap();
        assert_eq!(
            eth.iter().map(RecordBatch::num_rows).sum::<usize>(),
            31 * 1440
        );
    }

    /// Rows a filtered read of `path` would decode: row groups and pages its statistics
    /// leave in.
    fn selected_rows(path: &Path, symbols: Option<&[&str]>, start: i64, end: i64) -> usize {
        let f = std::fs::File::open(path).unwrap();
        let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load(&f, opts).unwrap();
        let pq = meta.metadata();
        let w = Wanted::new(&meta, symbols, start, end);
        (0..pq.num_row_groups())
            .filter(|&i| w.row_group_may_match(pq.row_group(i)))
            .map(|i| {
                let rows = pq.row_group(i).num_rows() as usize;
                w.page_selection(&pq.page_index_for_row_group(i), rows)
                    .row_count()
            })
            .sum()
    }

    #[test]
    fn a_filtered_read_skips_pages_that_statistics_rule_out() {
        let dir = tempfile::tempdir().unwrap();
        let month = dir.path().join("month.parquet");
        let batch = month_batch(31);
        write_parquet_shaped(&month, &batch, &StoreOptions::default(), PartShape::Sorted).unwrap();
        let total = batch.num_rows();
        let per_symbol = total / SYMBOLS.len();
        let one = selected_rows(&month, Some(&["ETHUSDT"]), i64::MIN, i64::MAX);
        // One symbol's rows plus at most a page on either side of them.
        assert!(
            one >= per_symbol && one < per_symbol + total / 4,
            "{one} of {total}"
        );
        // A symbol the file lacks costs at most the page whose symbol range straddles it.
        assert_eq!(
            selected_rows(&month, Some(&["AAAUSDT"]), i64::MIN, i64::MAX),
            0
        );
        let absent = selected_rows(&month, Some(&["DOGEUSDT"]), i64::MIN, i64::MAX);
        assert!(absent < total / 4, "{absent} of {total}");
        assert_eq!(selected_rows(&month, None, i64::MIN, i64::MAX), total);
        // In a file in ts order (one symbol, as a day or a one-symbol month), `ts` pages
        // narrow a time range too.
        let eth = dir.path().join("eth.parquet");
        let eth_rows = batch.slice(2 * per_symbol, per_symbol);
        write_parquet_shaped(&eth, &eth_rows, &StoreOptions::default(), PartShape::Sorted).unwrap();
        let day = selected_rows(&eth, Some(&["ETHUSDT"]), MARCH + 5 * DAY, MARCH + 6 * DAY);
        assert!(day >= 1440 && day < per_symbol, "{day} of {per_symbol}");
        assert_eq!(selected_rows(&eth, None, MARCH + 31 * DAY, i64::MAX), 0);
    }

    #[test]
    fn a_sorted_file_declares_its_order_and_indexes_ts_and_symbol_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("month.parquet");
        write_parquet_shaped(
            &path,
            &month_batch(2),
            &StoreOptions::default(),
            PartShape::Sorted,
        )
        .unwrap();
        let f = std::fs::File::open(&path).unwrap();
        let opts = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let meta = ArrowReaderMetadata::load(&f, opts).unwrap();
        let rg = meta.metadata().row_group(0);
        let order: Vec<i32> = rg
            .sorting_columns()
            .unwrap()
            .iter()
            .map(|c| c.column_idx)
            .collect();
        assert_eq!(order, [1, 0], "sorted by symbol, then ts");
        let index = meta.metadata().page_index_for_row_group(0);
        for (i, name) in ["ts", "symbol", "open", "trades"].iter().enumerate() {
            let col = [0, 1, 2, 8][i];
            assert_eq!(rg.column(col).column_path().string(), *name);
            let has = index.column_index(col).is_some();
            assert_eq!(has, col < 2, "page statistics of {name}");
        }
    }

    #[test]
    fn a_sorted_write_refuses_unsorted_rows_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("month.parquet");
        let b = month_batch(1);
        let backwards = arrow_select::take::take_record_batch(
            &b,
            &arrow_array::UInt32Array::from_iter_values((0..b.num_rows() as u32).rev()),
        )
        .unwrap();
        let e = write_parquet_shaped(
            &path,
            &backwards,
            &StoreOptions::default(),
            PartShape::Sorted,
        )
        .unwrap_err();
        assert!(e.to_string().contains("not sorted by (symbol, ts)"), "{e}");
        assert!(!path.exists());
        // A day part has no order to claim, and the same rows are then written and read.
        write_parquet_shaped(&path, &backwards, &StoreOptions::default(), PartShape::Day).unwrap();
        assert_eq!(
            concat(&read_parquet_as(&path, Some(&bar_schema())).unwrap()),
            backwards
        );
    }

    #[test]
    fn a_filtered_read_converts_the_range_to_the_files_timestamp_unit() {
        // A file written by another tool, with millisecond timestamps and a Utf8 symbol.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ms.parquet");
        let n = 3000;
        let ts: Vec<i64> = (0..n).map(|i| 1_677_628_800_000 + i * 1500).collect();
        let batch = RecordBatch::try_from_iter([
            (
                "ts",
                Arc::new(arrow_array::TimestampMillisecondArray::from(ts).with_timezone("UTC"))
                    as ArrayRef,
            ),
            (
                "symbol",
                Arc::new(arrow_array::StringArray::from_iter_values(
                    (0..n).map(|i| if i < 1000 { "A" } else { "B" }),
                )),
            ),
        ])
        .unwrap();
        let props = WriterProperties::builder()
            .set_data_page_row_count_limit(100)
            .build();
        let mut w = ArrowWriter::try_new(
            std::fs::File::create(&path).unwrap(),
            batch.schema(),
            Some(props),
        )
        .unwrap();
        w.write(&batch).unwrap();
        w.close().unwrap();
        // Starts and ends that are not whole milliseconds round the right way.
        let (start, end) = (MARCH + 1_500_000_000 - 1, MARCH + 3_000_000_001);
        let got = read_parquet_filtered(&path, None, Some(&["A"]), start, end).unwrap();
        let ts: Vec<i64> = got
            .iter()
            .flat_map(|b| {
                ts_nanos(b, &arrow_schema::DataType::Int64)
                    .unwrap()
                    .as_primitive::<Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect();
        assert_eq!(ts, [MARCH + 1_500_000_000, MARCH + 3_000_000_000]);
    }
}
