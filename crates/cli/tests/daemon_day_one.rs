//! `ringfeed datasets` and `ringfeed stat` against a real `ringfeed serve`: the daemon's
//! answer equals the data directory's, `stat` is a short summary (topics with their
//! readers and lag) and `--prometheus` the raw text; `append` of a Binance file takes
//! its symbol from the name and warns when the name's timeframe is not the dataset's.

mod common;

use ringfeed_arrow::StartAt;
use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

/// Runs `ringfeed` with `args`: (exit code, stdout, stderr); no ANSI escapes in either.
fn run<S: AsRef<OsStr>>(args: &[S]) -> (Option<i32>, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_ringfeed"))
        .args(args)
        .output()
        .expect("run ringfeed");
    assert!(!out.stdout.contains(&0x1b) && !out.stderr.contains(&0x1b));
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn datasets_and_stat_through_the_daemon() {
    let (served, mut c) = common::serve("spot", "dayone");
    let (dir, sock, data, mut daemon) = (served.dir, served.sock, served.data, served.daemon);
    let mut live = c.subscribe("spot", "1m", StartAt::Next).unwrap();
    let sock_s = sock.to_str().unwrap();
    let data_s = data.to_str().unwrap();

    // A Binance daily file named 5m, holding 1m bars: symbol from the name, a warning
    // about the timeframe (the dataset's wins).
    let mut text = String::new();
    for i in 0..6i64 {
        let open = 1_704_153_600_000 + i * 60_000;
        text += &format!(
            "{open},1.5,2.5,1.25,2,10.5,{},21.25,7,4.5,9.75,0\n",
            open + 59_999
        );
    }
    let file = dir.path().join("TESTUSDT-5m-2024-01-02.csv");
    std::fs::write(&file, text).unwrap();
    let (code, _, err) = run(&[
        "append",
        "--dataset",
        "spot",
        "--socket",
        sock_s,
        file.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    for want in [
        "warning: ",
        "the file name says 5m bars, but dataset spot stores 1m; loading them as 1m",
        "symbol TESTUSDT from the file name",
        "Binance kline CSV (detected",
        "appended 6 rows",
    ] {
        assert!(err.contains(want), "missing {want:?} in:\n{err}");
    }
    let mut got = 0;
    while got < 6 {
        got += live
            .read(Duration::from_secs(10))
            .unwrap()
            .expect("live batch")
            .num_rows();
    }

    // The daemon's list and the data directory's (read-only, beside the daemon) agree.
    let (code, by_daemon, err) = run(&["datasets", "--json", "--socket", sock_s]);
    assert_eq!(code, Some(0), "{err}");
    let (code, by_dir, err) = run(&["datasets", "--json", "--data-dir", data_s]);
    assert_eq!(code, Some(0), "{err}");
    let by_daemon: serde_json::Value = serde_json::from_str(&by_daemon).unwrap();
    let by_dir: serde_json::Value = serde_json::from_str(&by_dir).unwrap();
    assert_eq!(by_daemon, by_dir);
    let d = &by_daemon["datasets"][0];
    assert_eq!(d["symbols"], serde_json::json!(["TESTUSDT"]));
    assert_eq!(d["timeframes"][0]["first"], "2024-01-02T00:00:00Z");
    assert_eq!(d["timeframes"][0]["last"], "2024-01-02T00:05:00Z");
    assert_eq!(d["timeframes"][1]["timeframe"], "5m");
    let (code, table, err) = run(&["datasets", "--socket", sock_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("spot")
            && table.contains("1m,5m")
            && table.contains("1: TESTUSDT"),
        "{table}"
    );

    // stat: a summary for people by default.
    let (code, out, err) = run(&["stat", "--socket", sock_s]);
    assert_eq!(code, Some(0), "{err}");
    for want in ["queries ", "cache ", "6 rows appended", "connections "] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
    assert!(!out.contains("# TYPE"), "{out}");
    let topic = out
        .lines()
        .find(|l| l.contains("spot/1m"))
        .unwrap_or_else(|| panic!("no spot/1m topic line in:\n{out}"));
    let cells: Vec<&str> = topic.split_whitespace().collect();
    assert_eq!(cells[0], "spot/1m", "{out}");
    assert_eq!(cells[2], "1", "one reader: {out}");
    // --prometheus: the raw text.
    let (code, out, err) = run(&["stat", "--prometheus", "--socket", sock_s]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("# TYPE ringfeed_queries_total counter")
            && out.contains("ringfeed_ingest_rows_total 6"),
        "{out}"
    );

    drop(live);
    drop(c);
    Command::new("kill")
        .arg(daemon.0.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.0.wait().unwrap().success());
}
