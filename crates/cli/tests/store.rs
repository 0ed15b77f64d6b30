//! `ringfeed ingest` and `ringfeed query` against a store in a temporary directory: rows
//! that break the store's rules are rejected and the exit status says so (3 = loaded,
//! but rows rejected), `--keep-invalid` and `--allow-rejects` opt out, a reversed query
//! range is an error, and every spelling of a timeframe answers the same.

use std::ffi::OsStr;
use std::path::Path;
use std::process::Command;

/// Runs `ringfeed` with `args`: (exit code, stdout, stderr).
fn run<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args(args)
        .output()
        .expect("run ringfeed");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn ingest(data: &Path, csv: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let mut args = vec![
        "ingest",
        "--dataset",
        "x",
        "--symbol",
        "X",
        "--fsync",
        "never",
        "--data-dir",
        data.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args.push(csv.to_str().unwrap());
    run(&args)
}

/// 05:00 to 05:31 of 2022-01-31, minute bars, plus the bad rows given.
fn csv(dir: &Path, bad: &[&str]) -> std::path::PathBuf {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for m in 0..32 {
        text += &format!("2022-01-31T05:{m:02}:00Z,10,11,9,10.5,1\n");
    }
    for b in bad {
        text += b;
        text += "\n";
    }
    let p = dir.join("bars.csv");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn rejected_rows_exit_3_unless_allowed_or_kept() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let bad = [
        "2022-01-31T04:00:00Z,10,9,11,10,1",  // high < low
        "2022-01-31T04:01:00Z,NaN,11,9,10,1", // NaN
        "2022-01-31T04:02:00Z,10,11,9,10,-1", // negative volume
        "2022-01-31T02:03:17Z,10,11,9,10,1",  // off the 1m grid
    ];
    let file = csv(dir.path(), &bad);
    let (code, _, err) = ingest(&data, &file, &[]);
    assert_eq!(code, Some(3), "{err}");
    for want in [
        "ingested 32 rows",
        "4 rejected",
        "bars.csv:34: high 9 < low 11",
        "bars.csv:35: open is NaN",
        "bars.csv:36: volume is negative (-1)",
        "bars.csv:37: ts 2022-01-31T02:03:17Z is not on the 1m grid",
        "loaded, but 4 row(s) were rejected",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    // The good rows are stored all the same.
    let (code, out, err) = run(&[
        "query",
        "--dataset",
        "x",
        "--format",
        "csv",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(out.lines().count(), 1 + 32);

    let (code, _, err) = ingest(&data, &file, &["--allow-rejects"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("4 rejected"), "{err}");
    // Keeping invalid rows: nothing rejected, four flagged, exit 0.
    let (code, _, err) = ingest(&data, &file, &["--keep-invalid"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("0 rejected, 4 flagged"), "{err}");
    // Strict: the first bad row fails the load.
    let (code, _, err) = ingest(&data, &file, &["--strict"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("bars.csv:34: high 9 < low 11 (strict"),
        "{err}"
    );
    // A line that does not parse is rejected even with --keep-invalid.
    let file = csv(dir.path(), &["garbage,1,1,1,1,1"]);
    let (code, _, err) = ingest(&data, &file, &["--keep-invalid"]);
    assert_eq!(code, Some(3), "{err}");
    // --help says what the codes mean.
    let (_, out, _) = run(&["ingest", "--help"]);
    assert!(
        out.contains("3 = loaded, but rows were rejected") && out.contains("--allow-rejects"),
        "{out}"
    );
    let (_, out, _) = run(&["append", "--help"]);
    assert!(out.contains("3 = loaded, but rows were rejected"), "{out}");
}

#[test]
fn a_query_ending_before_it_starts_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = ingest(&data, &csv(dir.path(), &[]), &[]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = run(&[
        "query",
        "--dataset",
        "x",
        "--start",
        "2022-01-31T06:00:00Z",
        "--end",
        "2022-01-31T05:00:00Z",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        err.contains("--start 2022-01-31T06:00:00Z is not before --end 2022-01-31T05:00:00Z")
            && err.contains("start must be before end"),
        "{err}"
    );
}

#[test]
fn every_spelling_of_an_hour_says_the_forming_hour_is_not_complete() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = ingest(&data, &csv(dir.path(), &[]), &[]);
    assert_eq!(code, Some(0), "{err}");
    let answer = |tf: &str| {
        let (code, out, err) = run(&[
            "query",
            "--dataset",
            "x",
            "--timeframe",
            tf,
            "--format",
            "csv",
            "--fields",
            "close,complete",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        assert_eq!(code, Some(0), "{err}");
        out
    };
    let hour = answer("1h");
    assert_eq!(
        hour,
        "ts,symbol,close,complete\n2022-01-31T05:00:00Z,X,10.5,false\n"
    );
    for tf in ["60m", "3600s"] {
        assert_eq!(answer(tf), hour, "{tf}");
    }
    let two = answer("2h");
    assert_eq!(
        two,
        "ts,symbol,close,complete\n2022-01-31T04:00:00Z,X,10.5,false\n"
    );
    assert_eq!(answer("120m"), two);
    let day = answer("1d");
    assert!(day.ends_with(",false\n"), "{day}");
    for tf in ["24h", "1440m"] {
        assert_eq!(answer(tf), day, "{tf}");
    }
}

/// Minute bars of 2022-01-30 to 2022-02-02 (two months), one per 6 hours, with a price per day.
fn two_months(dir: &Path) -> std::path::PathBuf {
    let mut text = String::from("ts,open,high,low,close,volume\n");
    for (day, month) in [(30, 1), (31, 1), (1, 2), (2, 2)] {
        for h in [0, 6, 12, 18] {
            text += &format!("2022-{month:02}-{day:02}T{h:02}:00:00Z,{day},{day},{day},{day},1\n");
        }
    }
    let p = dir.join("months.csv");
    std::fs::write(&p, text).unwrap();
    p
}

fn parquet_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                out.push(p.strip_prefix(dir).unwrap().to_string_lossy().into_owned());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn write_down_no_compact_leaves_day_files_that_compact_merges_per_month() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let (code, _, err) = ingest(&data, &two_months(dir.path()), &["--rollups", "none"]);
    assert_eq!(code, Some(0), "{err}");
    let query = || {
        let (code, out, err) = run(&[
            "query",
            "--data-dir",
            d,
            "--dataset",
            "x",
            "--format",
            "csv",
        ]);
        assert_eq!(code, Some(0), "{err}");
        out
    };
    let before = query();
    assert_eq!(before.lines().count(), 17, "{before}");

    let (code, _, err) = run(&["write-down", "--data-dir", d, "--all", "--no-compact"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(!err.contains("compacted"), "{err}");
    let days = parquet_files(&data.join("dataset=x/tf=1m"));
    assert_eq!(days.len(), 4, "{days:?}");
    assert!(days.iter().all(|p| p.contains("/date-")), "{days:?}");
    assert_eq!(query(), before);

    // Only the months that end before --before: January.
    let (code, _, err) = run(&["compact", "--data-dir", d, "--before", "2022-02-01"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("compacted 2 parts into 1 month parts"),
        "{err}"
    );
    let files = parquet_files(&data.join("dataset=x/tf=1m"));
    assert_eq!(
        files,
        [
            "month=2022-01/part-0.parquet",
            "month=2022-02/date-2022-02-01-part-0.parquet",
            "month=2022-02/date-2022-02-02-part-0.parquet"
        ],
        "{files:?}"
    );
    assert_eq!(query(), before);
    let (code, _, err) = run(&["compact", "--data-dir", d]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(
        parquet_files(&data.join("dataset=x/tf=1m")),
        [
            "month=2022-01/part-0.parquet",
            "month=2022-02/part-0.parquet"
        ]
    );
    assert_eq!(query(), before);
    // Nothing left to do: said so, nothing changed.
    let (code, _, err) = run(&["compact", "--data-dir", d]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("compacted 0 parts"), "{err}");
    // --no-compact goes to a local store only.
    let (code, _, err) = run(&["write-down", "--no-compact", "--daemon"]);
    assert_eq!(code, Some(2), "{err}");
}
