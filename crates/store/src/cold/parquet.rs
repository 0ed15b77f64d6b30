//! Parquet I/O of the cold tier: the writer's encodings and codec, atomic part writes, and
//! reads decoded straight into the store's types.

use crate::catalog;
use crate::perms::StoreOptions;
use crate::store::{ReadError, WriteDownError};
use arrow_array::RecordBatch;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::arrow_writer::{ArrowWriter, ArrowWriterOptions};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use std::path::Path;

/// Cold-tier Parquet settings (measured in docs/benchmarks.md, `store_bench encodings`):
/// zstd level 6 (smaller *and* faster than 9 on 1m bars); float columns PLAIN without a
/// dictionary (zstd finds the repeated 8-byte prices of a day: 3.1 bytes a price against
/// 5.0 with BYTE_STREAM_SPLIT, whose low mantissa bytes of decimal prices look random) and
/// without statistics; `ts`, `trades` and `trade_id` delta-encoded; `symbol` dictionary
/// encoded with page statistics, so readers can skip pages of other symbols.
fn parquet_props() -> WriterProperties {
    let mut p = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(6).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(1 << 20));
    for c in [
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
    ] {
        p = p
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_statistics_enabled(ColumnPath::from(c), EnabledStatistics::None);
    }
    for c in ["ts", "trades", "trade_id"] {
        p = p
            .set_column_dictionary_enabled(ColumnPath::from(c), false)
            .set_column_encoding(ColumnPath::from(c), Encoding::DELTA_BINARY_PACKED);
    }
    p.build()
}

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
    let err = |detail: String| WriteDownError::Write {
        path: path.into(),
        detail,
    };
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
        .with_properties(parquet_props())
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
    let perr = |source| ReadError::Parquet {
        path: path.into(),
        source,
    };
    // Part files are small (a day): one read, then decode from memory.
    let f = bytes::Bytes::from(std::fs::read(path).map_err(|source| ReadError::Io {
        path: path.into(),
        source,
    })?);
    let meta = ArrowReaderMetadata::load(&f, ArrowReaderOptions::new()).map_err(perr)?;
    let meta = match schema {
        Some(s) if s.fields().len() == meta.schema().fields().len() => {
            let hinted = ArrowReaderOptions::new().with_schema(s.clone());
            ArrowReaderMetadata::try_new(meta.metadata().clone(), hinted).unwrap_or(meta)
        }
        _ => meta,
    };
    let r = ParquetRecordBatchReaderBuilder::new_with_metadata(f, meta)
        .with_batch_size(1 << 20)
        .build()
        .map_err(perr)?;
    r.map(|b| b.map_err(ReadError::Arrow)).collect()
}
