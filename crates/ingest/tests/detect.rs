//! Binance kline CSV without `--format`: the headerless 12-column layout is detected
//! from the first line and every column is loaded (quote_volume, trades, taker_buy_*
//! are not dropped to null); the symbol comes from a Binance file name; Binance's
//! zipped downloads are read in place. Generated files, and the real ones in
//! ../shared/data when present.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type, TimestampNanosecondType};
use arrow_array::{Array, RecordBatch};
use ringfeed_ingest::{self as ingest, detect, Format, IngestOptions, RowReport};
use ringfeed_store::schema::Kind;
use std::path::{Path, PathBuf};

/// `n` Binance kline lines from 2024-01-02T00:00Z, 1m bars, open time in `unit`
/// (1 = ms, 1000 = µs).
fn kline_csv(dir: &Path, name: &str, n: usize, unit: i64) -> PathBuf {
    let t0 = 1_704_153_600_000i64; // 2024-01-02T00:00:00Z in ms
    let mut text = String::new();
    for i in 0..n as i64 {
        let open = (t0 + i * 60_000) * unit;
        let close = (t0 + (i + 1) * 60_000) * unit - 1;
        text += &format!(
            "{open},10.{i},11.5,9.25,10.5,100.{i},{close},1050.75,{},40.5,425.125,0\n",
            7 + i
        );
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn load(path: &Path, opts: &IngestOptions) -> (RecordBatch, RowReport) {
    let mut rep = RowReport::default();
    let mut batches = Vec::new();
    let mut sink = |b: RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        batches.push(b);
        Ok(())
    };
    ingest::load(Some(path), Kind::Bars, opts, &mut rep, &mut sink).unwrap();
    let schema = batches[0].schema();
    (
        arrow_select::concat::concat_batches(&schema, &batches).unwrap(),
        rep,
    )
}

fn f64s(b: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    b.column_by_name(name)
        .unwrap()
        .as_primitive::<Float64Type>()
        .iter()
        .collect()
}

#[test]
fn headerless_binance_klines_load_every_column_without_a_format() {
    let dir = tempfile::tempdir().unwrap();
    for (unit, name) in [
        (1, "TESTUSDT-1m-2024-01-02.csv"),
        (1000, "TESTUSDT-1m-2024-01.csv"),
    ] {
        let path = kline_csv(dir.path(), name, 5, unit);
        let d = detect(&path, Kind::Bars, &IngestOptions::default()).unwrap();
        assert_eq!(d.format, Format::BinanceKline, "{name}");
        assert!(d.from_content);
        assert_eq!(d.interval_ns, Some(60_000_000_000));
        let n = d.name.unwrap();
        assert_eq!((n.symbol.as_str(), n.interval.as_str()), ("TESTUSDT", "1m"));

        // No format, no symbol: both come from the file.
        let (b, rep) = load(&path, &IngestOptions::default());
        assert_eq!((rep.rows_ok, rep.rejected), (5, 0), "{name}");
        assert_eq!(
            rep.symbols.iter().cloned().collect::<Vec<_>>(),
            ["TESTUSDT"]
        );
        let ts = b.column_by_name("ts").unwrap();
        let ts = ts.as_primitive::<TimestampNanosecondType>();
        assert_eq!(ts.value(0), 1_704_153_600_000_000_000, "{name}: ms or µs");
        assert_eq!(ts.value(4) - ts.value(0), 4 * 60_000_000_000);
        assert_eq!(f64s(&b, "open")[3], Some(10.3));
        assert_eq!(f64s(&b, "volume")[2], Some(100.2));
        assert_eq!(f64s(&b, "quote_volume"), vec![Some(1050.75); 5]);
        assert_eq!(f64s(&b, "taker_buy_base"), vec![Some(40.5); 5]);
        assert_eq!(f64s(&b, "taker_buy_quote"), vec![Some(425.125); 5]);
        let trades: Vec<Option<i64>> = b
            .column_by_name("trades")
            .unwrap()
            .as_primitive::<Int64Type>()
            .iter()
            .collect();
        assert_eq!(trades, (7..12).map(Some).collect::<Vec<_>>());
    }
}

#[test]
fn given_flags_win_over_detection() {
    let dir = tempfile::tempdir().unwrap();
    let path = kline_csv(dir.path(), "TESTUSDT-1m-2024-01-02.csv", 3, 1);
    // --symbol wins over the file name.
    let opts = IngestOptions {
        symbol: Some("MINE".into()),
        ..Default::default()
    };
    let (_, rep) = load(&path, &opts);
    assert_eq!(rep.symbols.iter().cloned().collect::<Vec<_>>(), ["MINE"]);
    // --format csv is taken at its word: the first six columns only.
    let opts = IngestOptions {
        format: Some(Format::Csv),
        ..Default::default()
    };
    let d = detect(&path, Kind::Bars, &opts).unwrap();
    assert_eq!((d.format, d.from_content), (Format::Csv, false));
    let (b, rep) = load(&path, &opts);
    assert_eq!(rep.rows_ok, 3);
    assert_eq!(b.column_by_name("quote_volume").unwrap().null_count(), 3);
}

#[test]
fn other_csv_is_not_taken_for_binance() {
    let dir = tempfile::tempdir().unwrap();
    // Six headerless columns with ms timestamps: generic OHLCV.
    let six = dir.path().join("six.csv");
    std::fs::write(
        &six,
        "1704153600000,1,2,0.5,1.5,10\n1704153660000,1,2,0.5,1.5,10\n",
    )
    .unwrap();
    let d = detect(&six, Kind::Bars, &IngestOptions::default()).unwrap();
    assert_eq!(
        (d.format, d.from_content, d.name),
        (Format::Csv, false, None)
    );
    // A header names the columns (Binance futures files have one): read by name,
    // the futures spellings of the taker columns included.
    let named = dir.path().join("BTCUSDT-1m-2024-01-02.csv");
    std::fs::write(
        &named,
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,taker_buy_volume,taker_buy_quote_volume,ignore\n\
         1704153600000,1,2,0.5,1.5,10,1704153659999,15,3,4,6,0\n",
    )
    .unwrap();
    let d = detect(&named, Kind::Bars, &IngestOptions::default()).unwrap();
    assert_eq!(d.format, Format::Csv);
    let (b, rep) = load(&named, &IngestOptions::default());
    assert_eq!(rep.symbols.iter().cloned().collect::<Vec<_>>(), ["BTCUSDT"]);
    assert_eq!(f64s(&b, "quote_volume"), [Some(15.0)]);
    assert_eq!(f64s(&b, "taker_buy_base"), [Some(4.0)]);
    assert_eq!(f64s(&b, "taker_buy_quote"), [Some(6.0)]);
}

#[test]
fn real_binance_files_load_every_column() {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/crypto");
    let path = data.join("ADABTC-1m-2021-11-27.csv");
    if !path.exists() {
        eprintln!("skipped: ../shared/data is absent (real market data lives beside the project)");
        return;
    }
    let (b, rep) = load(&path, &IngestOptions::default());
    assert_eq!((rep.rows_ok, rep.rejected), (10, 0));
    assert_eq!(rep.symbols.iter().cloned().collect::<Vec<_>>(), ["ADABTC"]);
    // The first line: ...,1637971259999,1.03547608,79,19523.00000000,0.55694227,0
    assert_eq!(f64s(&b, "quote_volume")[0], Some(1.03547608));
    assert_eq!(f64s(&b, "taker_buy_base")[0], Some(19523.0));
    assert_eq!(f64s(&b, "taker_buy_quote")[0], Some(0.55694227));
    let trades = b.column_by_name("trades").unwrap();
    assert_eq!(trades.null_count(), 0);
    assert_eq!(trades.as_primitive::<Int64Type>().value(0), 79);
}

/// `files` (name, text) zipped into `dir/name`, deflated as Binance ships them.
fn zip(dir: &Path, name: &str, files: &[(&str, &[u8])]) -> PathBuf {
    let p = dir.join(name);
    let mut w = zip::ZipWriter::new(std::fs::File::create(&p).unwrap());
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (n, bytes) in files {
        w.start_file(*n, opts).unwrap();
        std::io::Write::write_all(&mut w, bytes).unwrap();
    }
    w.finish().unwrap();
    p
}

#[test]
fn zipped_binance_downloads_load_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let csv = kline_csv(dir.path(), "TESTUSDT-1m-2024-01-02.csv", 4, 1);
    let text = std::fs::read(&csv).unwrap();
    let z = zip(
        dir.path(),
        "TESTUSDT-1m-2024-01-02.zip",
        &[("TESTUSDT-1m-2024-01-02.csv", &text)],
    );
    let d = detect(&z, Kind::Bars, &IngestOptions::default()).unwrap();
    assert_eq!((d.format, d.from_content), (Format::BinanceKline, true));
    assert_eq!(d.name.unwrap().symbol, "TESTUSDT");
    let (b, rep) = load(&z, &IngestOptions::default());
    assert_eq!((rep.rows_ok, rep.rejected), (4, 0));
    assert_eq!(
        rep.symbols.iter().cloned().collect::<Vec<_>>(),
        ["TESTUSDT"]
    );
    assert_eq!(f64s(&b, "taker_buy_quote"), vec![Some(425.125); 4]);
    // The same rows as the plain file.
    let (plain, _) = load(&csv, &IngestOptions::default());
    assert_eq!(b, plain);

    // A zip of several CSV files is refused with a way out; nothing is loaded.
    let two = zip(dir.path(), "two.zip", &[("a.csv", &text), ("b.csv", &text)]);
    let mut rep = RowReport::default();
    let mut rows = 0;
    let mut sink = |b: RecordBatch| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        rows += b.num_rows();
        Ok(())
    };
    let e = ingest::load(
        Some(&two),
        Kind::Bars,
        &IngestOptions::default(),
        &mut rep,
        &mut sink,
    )
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("holds 2 CSV files") && e.contains("unzip"),
        "{e}"
    );
    assert_eq!(rows, 0);
}
