//! A first hour with `ringfeed`, from `--help` and real-looking files (issue 18, items 6
//! and 10): a Binance kline file loads every column without `--format`, its name gives
//! the symbol and timeframe (a given flag wins, a disagreeing name is a warning);
//! `datasets` lists what a data directory holds; the query table is bounded, leaves out
//! empty columns and prints floats without representation noise; every `--help` shows
//! an example and the exit codes; nothing prints ANSI escapes into a pipe.

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `ringfeed` with `args`, stdout and stderr piped: (exit code, stdout, stderr).
/// Output never holds an ANSI escape: none of it goes to a terminal.
fn run<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args(args)
        .env_remove("NO_COLOR")
        .env("CLICOLOR", "1")
        .output()
        .expect("run ringfeed");
    for (name, bytes) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        // Binary formats (arrow, parquet) are exempt.
        let binary = args.iter().any(|a| {
            let a = a.as_ref();
            a == "arrow" || a == "parquet"
        });
        assert!(
            binary || !bytes.contains(&0x1b),
            "ANSI escape in the {name} of ringfeed {:?}:\n{}",
            args.iter().map(|a| a.as_ref()).collect::<Vec<_>>(),
            String::from_utf8_lossy(bytes)
        );
    }
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `n` Binance kline lines of `minutes`-minute bars from 2024-01-02T00:00Z (open time
/// in ms), written headerless under `name`.
fn klines(dir: &Path, name: &str, minutes: i64, n: i64) -> PathBuf {
    let t0 = 1_704_153_600_000i64;
    let step = minutes * 60_000;
    let mut text = String::new();
    for i in 0..n {
        let open = t0 + i * step;
        text += &format!(
            "{open},1.5,2.5,1.25,2,10.5,{},21.25,{},4.5,9.75,0\n",
            open + step - 1,
            30 + i
        );
    }
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

fn datasets_json(data: &Path) -> serde_json::Value {
    let (code, out, err) = run(&["datasets", "--json", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{err}");
    serde_json::from_str(&out).expect("datasets --json is JSON")
}

#[test]
fn binance_files_need_no_format_symbol_or_timeframe() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let five = klines(dir.path(), "TESTUSDT-5m-2024-01-02.csv", 5, 12);
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "spot",
        "--fsync",
        "never",
        "--data-dir",
        data_s,
        five.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "timeframe 5m from the file name",
        "Binance kline CSV (detected: 12 columns, no header; all columns loaded)",
        "symbol TESTUSDT from the file name",
        "ingested 12 rows",
        "into spot/5m",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let d = &datasets_json(&data)["datasets"][0];
    assert_eq!(d["dataset"], "spot");
    assert_eq!(d["base"], "5m");
    assert_eq!(d["symbols"], serde_json::json!(["TESTUSDT"]));
    // Every column was loaded: none is empty, none left out of the table.
    let (code, out, err) = run(&[
        "query",
        "--dataset",
        "spot",
        "--timeframe",
        "5m",
        "--data-dir",
        data_s,
        "--format",
        "csv",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let mut lines = out.lines();
    assert_eq!(
        lines.next().unwrap(),
        "ts,symbol,open,high,low,close,volume,quote_volume,trades,taker_buy_base,taker_buy_quote"
    );
    assert_eq!(
        lines.next().unwrap(),
        "2024-01-02T00:00:00Z,TESTUSDT,1.5,2.5,1.25,2,10.5,21.25,30,4.5,9.75"
    );

    // --timeframe wins over a file name that says otherwise, with a warning; --symbol
    // wins too, silently (nothing was inferred).
    let one = klines(dir.path(), "OTHERUSDT-1m-2024-01-02.csv", 5, 3);
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "spot",
        "--timeframe",
        "5m",
        "--symbol",
        "MINE",
        "--fsync",
        "never",
        "--data-dir",
        data_s,
        one.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("ringfeed: warning: ")
            && err.contains(
                "the file name says 1m bars, but --timeframe 5m was given; loading them as 5m"
            ),
        "{err}"
    );
    assert!(!err.contains("from the file name"), "{err}");
    let d = &datasets_json(&data)["datasets"][0];
    assert_eq!(d["symbols"], serde_json::json!(["MINE", "TESTUSDT"]));

    // A file that says nothing about its timeframe goes to an existing dataset at the
    // dataset's (5m here, not the 1m of a new dataset).
    let plain = dir.path().join("more.csv");
    std::fs::write(
        &plain,
        "ts,symbol,open,high,low,close,volume\n2024-01-02T01:00:00Z,TESTUSDT,1,2,0.5,1.5,3\n",
    )
    .unwrap();
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "spot",
        "--data-dir",
        data_s,
        plain.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("ingested 1 rows") && err.contains("into spot/5m"),
        "{err}"
    );

    // Files that disagree on the timeframe, with none given: refused, nothing loaded.
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "mixed",
        "--data-dir",
        data_s,
        five.to_str().unwrap(),
        one.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("the files hold different timeframes") && err.contains("--timeframe"),
        "{err}"
    );

    // Binance's zipped download, read in place: the name inside the zip's name.
    let zipped = dir.path().join("TESTUSDT-5m-2024-01-02.zip");
    let mut w = zip::ZipWriter::new(std::fs::File::create(&zipped).unwrap());
    w.start_file(
        "TESTUSDT-5m-2024-01-02.csv",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    std::io::Write::write_all(&mut w, &std::fs::read(&five).unwrap()).unwrap();
    w.finish().unwrap();
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "zipped",
        "--fsync",
        "never",
        "--data-dir",
        data_s,
        zipped.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "timeframe 5m from the file name",
        "Binance kline CSV (detected",
        "symbol TESTUSDT from the file name",
        "ingested 12 rows",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }

    // The real files, when ../shared/data is beside the project.
    let real = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/data/crypto/ADABTC-1m-2021-11-27.csv");
    if !real.exists() {
        eprintln!("skipped the real file: ../shared/data is absent");
        return;
    }
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "ada",
        "--data-dir",
        data_s,
        real.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("symbol ADABTC from the file name") && err.contains("ingested 10 rows"),
        "{err}"
    );
    let (_, out, _) = run(&[
        "query",
        "--dataset",
        "ada",
        "--limit",
        "1",
        "--data-dir",
        data_s,
        "--format",
        "json",
    ]);
    let row: serde_json::Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(row["trades"], 79);
    assert_eq!(row["quote_volume"], 1.03547608);
    assert_eq!(row["taker_buy_quote"], 0.55694227);
}

/// 30 minute bars with volumes 0.1 and 0.2 alternating, no optional columns.
fn plain_csv(dir: &Path) -> PathBuf {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for m in 0..30 {
        let v = if m % 2 == 0 { "0.1" } else { "0.2" };
        text += &format!("2022-01-31T05:{m:02}:00Z,10,11,9,10.5,{v}\n");
    }
    let p = dir.join("bars.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn datasets_lists_what_a_data_directory_holds() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (code, _, err) = run(&["datasets", "--data-dir", data_s]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("no store at") && err.contains("--data-dir") && err.contains("--daemon"),
        "{err}"
    );
    let csv = plain_csv(dir.path());
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "x",
        "--symbol",
        "X",
        "--rollups",
        "5m,1h",
        "--fsync",
        "never",
        "--data-dir",
        data_s,
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&["datasets", "--data-dir", data_s]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    for want in [
        "DATASET",
        "BASE",
        "TIMEFRAMES",
        "SYMBOLS",
        "FIRST BAR",
        "LAST BAR",
    ] {
        assert!(lines[0].contains(want), "{out}");
    }
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "x",
            "1m",
            "1m,5m,1h",
            "1:",
            "X",
            "2022-01-31T05:00:00Z",
            "2022-01-31T05:29:00Z",
            "1/0"
        ],
        "{out}"
    );
    let j = datasets_json(&data);
    let tfs = &j["datasets"][0]["timeframes"];
    assert_eq!(tfs[0]["timeframe"], "1m");
    assert_eq!(tfs[0]["first"], "2022-01-31T05:00:00Z");
    assert_eq!(tfs[0]["first_ts"], 1_643_605_200_000_000_000i64);
    assert_eq!(tfs[2]["timeframe"], "1h");
    assert_eq!(tfs[2]["hot_days"], serde_json::json!(["2022-01-31"]));
}

#[test]
fn query_table_is_bounded_drops_empty_columns_and_float_noise() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let csv = plain_csv(dir.path());
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "x",
        "--symbol",
        "X",
        "--fsync",
        "never",
        "--data-dir",
        data_s,
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let query = |extra: &[&str]| {
        let mut args = vec!["query", "--dataset", "x", "--data-dir", data_s];
        args.extend_from_slice(extra);
        let (code, out, err) = run(&args);
        assert_eq!(code, Some(0), "{err}");
        out
    };

    // Default: the first 10 and last 10 of 30 rows, and how many are between.
    let out = query(&[]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1 + 10 + 1 + 10 + 2, "{out}");
    assert!(lines[1].starts_with("2022-01-31T05:00:00Z"), "{out}");
    assert!(lines[10].starts_with("2022-01-31T05:09:00Z"), "{out}");
    assert_eq!(
        lines[11],
        "… 10 rows not shown (--rows N or --all to see more) …"
    );
    assert!(lines[12].starts_with("2022-01-31T05:20:00Z"), "{out}");
    assert!(lines[21].starts_with("2022-01-31T05:29:00Z"), "{out}");
    assert_eq!(lines[22], "(30 rows)");
    // quote_volume, trades, taker_buy_* are empty in every row: left out, and named.
    assert_eq!(
        lines[0].split_whitespace().collect::<Vec<_>>(),
        ["ts", "symbol", "open", "high", "low", "close", "volume"]
    );
    assert_eq!(
        lines[23],
        "(not shown, empty in every row: quote_volume, trades, taker_buy_base, taker_buy_quote)"
    );
    assert_eq!(query(&["--rows", "2"]).lines().count(), 1 + 2 + 1 + 2 + 2);
    assert_eq!(query(&["--all"]).lines().count(), 1 + 30 + 2);
    assert_eq!(query(&["--rows", "15"]).lines().count(), 1 + 30 + 2);
    // Machine formats keep every row and column.
    let csv_out = query(&["--format", "csv"]);
    assert_eq!(csv_out.lines().count(), 1 + 30);
    assert!(csv_out.starts_with("ts,symbol,open,high,low,close,volume,quote_volume,"));

    // A 5m bar sums 0.1 + 0.2 + 0.1 + 0.2 + 0.1: not exactly 0.7 in f64. The exact
    // value survives in Arrow; the text formats print 0.7.
    let arrow = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args([
            "query",
            "--dataset",
            "x",
            "--timeframe",
            "5m",
            "--format",
            "arrow",
        ])
        .args(["--data-dir", data_s])
        .output()
        .unwrap();
    assert!(arrow.status.success());
    let mut r = arrow_ipc::reader::StreamReader::try_new(&arrow.stdout[..], None).unwrap();
    let b = r.next().unwrap().unwrap();
    let v = b
        .column_by_name("volume")
        .unwrap()
        .as_primitive::<Float64Type>()
        .value(0);
    assert_eq!(v, 0.1 + 0.2 + 0.1 + 0.2 + 0.1);
    assert_ne!(v, 0.7, "the sum carries representation noise");
    let out = query(&["--timeframe", "5m", "--limit", "1"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row[6], "0.7", "{out}");
    let out = query(&["--timeframe", "5m", "--limit", "1", "--format", "csv"]);
    assert!(out.lines().nth(1).unwrap().contains(",10.5,0.7,"), "{out}");
    let out = query(&["--timeframe", "5m", "--limit", "1", "--format", "json"]);
    assert!(out.contains("\"volume\":0.7"), "{out}");
}

#[test]
fn help_explains_each_command_with_an_example_and_the_exit_codes() {
    let (code, out, _) = run(&["--help"]);
    assert_eq!(code, Some(0));
    for want in [
        "Exit status:",
        "0  ok",
        "1  error",
        "3  rows rejected",
        "ringfeed ingest --dataset",
        "datasets",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    for sub in [
        "inspect",
        "rm",
        "ingest",
        "query",
        "datasets",
        "changes",
        "write-down",
        "compact",
        "delete",
        "append",
        "serve",
        "stat",
    ] {
        let (code, out, err) = run(&[sub, "--help"]);
        assert_eq!(code, Some(0), "{sub}: {err}");
        assert!(
            out.contains("Example") && out.contains(&format!("  ringfeed {sub}")),
            "`ringfeed {sub} --help` shows no example:\n{out}"
        );
        // The first line says what the command does.
        assert!(out.lines().next().unwrap().len() > 20, "{sub}: {out}");
    }
    // Errors: status 1 with a message; bad arguments: status 2 (clap's usage error).
    let (code, _, err) = run(&["query", "--dataset", "x", "--data-dir", "/nonexistent"]);
    assert_eq!(code, Some(1));
    assert!(err.starts_with("ringfeed: "), "{err}");
    let (code, _, err) = run(&["query", "--no-such-flag"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--no-such-flag"), "{err}");
}
