//! `ringfeed retention | trim | drop-dataset` on a data directory: what each prints,
//! refuses and leaves, checked with `ringfeed query` and `ringfeed fsck`.

mod common;

use common::run_code as run;
use std::path::Path;

/// 2022-01-01 plus `d` days (d < 90), as YYYY-MM-DD.
fn date(d: u32) -> String {
    let (m, day) = match d {
        0..=30 => (1, d + 1),
        31..=58 => (2, d - 30),
        _ => (3, d - 58),
    };
    format!("2022-{m:02}-{day:02}")
}

/// Hourly bars of symbols A and B from 2022-01-01 for `days` days, ingested as dataset x.
fn ingest(dir: &Path, days: u32) -> String {
    let data = dir.join("data");
    let mut text = String::from("ts,symbol,open,high,low,close,volume\n");
    for s in ["A", "B"] {
        for d in 0..days {
            let date = date(d);
            for h in 0..24 {
                text += &format!("{date}T{h:02}:00:00Z,{s},10,11,9,10.5,1\n");
            }
        }
    }
    let csv = dir.join("bars.csv");
    std::fs::write(&csv, text).unwrap();
    let d = data.to_str().unwrap();
    let (code, _, err) = run(&[
        "ingest",
        "--dataset",
        "x",
        "--timeframe",
        "1h",
        "--fsync",
        "never",
        "--data-dir",
        d,
        csv.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&["write-down", "--all", "--data-dir", d]);
    assert_eq!(code, Some(0), "{err}");
    d.to_string()
}

/// Rows of `ringfeed query` as CSV lines (header left out).
fn rows(data: &str, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "query",
        "--dataset",
        "x",
        "--format",
        "csv",
        "--data-dir",
        data,
    ];
    args.extend_from_slice(extra);
    if !extra.contains(&"--timeframe") {
        args.extend_from_slice(&["--timeframe", "1h"]);
    }
    let (code, out, err) = run(&args);
    assert_eq!(code, Some(0), "{err}");
    out.lines().skip(1).map(str::to_string).collect()
}

fn fsck_clean(data: &str) {
    let (code, out, err) = run(&["fsck", "--data-dir", data]);
    assert_eq!(code, Some(0), "fsck: {out}{err}");
}

#[test]
fn trim_one_symbol_then_all() {
    let dir = tempfile::tempdir().unwrap();
    let data = ingest(dir.path(), 60);
    assert_eq!(rows(&data, &[]).len(), 2 * 60 * 24);
    let (code, _, err) = run(&[
        "trim",
        "--dataset",
        "x",
        "--symbol",
        "A",
        "--before",
        "2022-02-10T12:00",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("trimmed A of x before 2022-02-10T12:00"),
        "{err}"
    );
    let a = rows(&data, &["--symbol", "A"]);
    assert_eq!(a.len(), (60 - 40) * 24 - 12);
    assert!(
        a[0].contains("2022-02-10") && a[0].contains("12:00"),
        "{}",
        a[0]
    );
    assert_eq!(rows(&data, &["--symbol", "B"]).len(), 60 * 24);
    // The 1d rollup of the cut's day is rebuilt from its 12 rows left.
    let d = rows(&data, &["--symbol", "A", "--timeframe", "1d"]);
    assert!(d[0].contains("2022-02-10"), "{}", d[0]);
    assert_eq!(d.len(), 20);
    let (code, _, err) = run(&[
        "trim",
        "--dataset",
        "x",
        "--before",
        "2022-02-20",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(rows(&data, &[]).len(), 2 * (60 - 50) * 24);
    let (code, _, err) = run(&[
        "trim",
        "--dataset",
        "x",
        "--symbol",
        "ZZ",
        "--before",
        "2022-02-20",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unknown symbol \"ZZ\"") && err.contains("symbols: A, B"),
        "{err}"
    );
    fsck_clean(&data);
}

#[test]
fn retention_drops_old_months_and_none_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let data = ingest(dir.path(), 90);
    // Everything is years old: 30 days keep nothing, but first `none` is a no-op.
    let (code, _, err) = run(&["retention", "x", "none", "--data-dir", &data]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("dropped 0 parts"), "{err}");
    let (code, _, err) = run(&["retention", "x", "7", "--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert!(err.contains("400d, 26w or 2y"), "{err}");
    let (code, _, err) = run(&[
        "retention",
        "x",
        "30d",
        "--rollups",
        "7d",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(1));
    assert!(err.contains("shorter than the retention"), "{err}");
    let (code, _, err) = run(&["retention", "x", "30d", "--data-dir", &data]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("retention 30d; dropped 6 parts"), "{err}");
    assert!(rows(&data, &[]).is_empty());
    fsck_clean(&data);
}

#[test]
fn drop_dataset_asks_for_yes_then_frees_the_name() {
    let dir = tempfile::tempdir().unwrap();
    let data = ingest(dir.path(), 3);
    let (code, _, err) = run(&["drop-dataset", "x", "--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("holds 144 rows") && err.contains("--yes"),
        "{err}"
    );
    assert_eq!(rows(&data, &[]).len(), 144);
    let (code, _, err) = run(&["drop-dataset", "nope", "--yes", "--data-dir", &data]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("unknown dataset \"nope\"; datasets: x"),
        "{err}"
    );
    let (code, _, err) = run(&["drop-dataset", "x", "--yes", "--data-dir", &data]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("dropped dataset x: 144 rows"), "{err}");
    assert!(!Path::new(&data).join("dataset=x").exists());
    fsck_clean(&data);
    // The name is free for other settings.
    ingest(dir.path(), 1);
    assert_eq!(rows(&data, &[]).len(), 48);
}

#[test]
fn changes_lists_the_trims_deletes_and_corrections_followers_apply() {
    let dir = tempfile::tempdir().unwrap();
    let data = ingest(dir.path(), 10);
    let changes = |extra: &[&str]| {
        let mut args = vec!["changes", "--dataset", "x", "--data-dir", &data];
        args.extend_from_slice(extra);
        run(&args)
    };
    // In-order ingest logs nothing.
    let (code, out, err) = changes(&[]);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("no entries"), "{out}");
    let (code, _, err) = run(&[
        "trim",
        "--dataset",
        "x",
        "--symbol",
        "A",
        "--before",
        "2022-01-03",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = run(&[
        "delete",
        "--dataset",
        "x",
        "--symbol",
        "B",
        "--start",
        "2022-01-05",
        "--end",
        "2022-01-06",
        "--data-dir",
        &data,
    ]);
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = changes(&[]);
    assert_eq!(code, Some(0), "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("change log of x: id "), "{out}");
    assert!(
        out.contains("remove   A") && out.contains("(the first bar)"),
        "the trim: {out}"
    );
    assert!(
        out.contains("remove   B") && out.contains("2022-01-05"),
        "the delete: {out}"
    );
    // JSON: the Flight action's answer; from next_seq on, nothing.
    let (code, json, err) = changes(&["--json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["changes"].as_array().unwrap().len(), 2, "{v}");
    let next = v["next_seq"].as_u64().unwrap().to_string();
    let (_, out, _) = changes(&["--since", &next]);
    assert!(out.contains("no entries"), "{out}");
    // An unknown dataset is named, with the known ones.
    let (code, _, err) = run(&["changes", "--dataset", "nope", "--data-dir", &data]);
    assert_ne!(code, Some(0));
    assert!(err.contains("nope") && err.contains('x'), "{err}");
}
