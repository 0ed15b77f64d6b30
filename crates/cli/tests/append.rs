//! `ringfeed append` against a real `ringfeed serve`: rows land durable, are
//! published to the live topics, and bad rows are reported (exit status 3 unless
//! `--allow-rejects`), not fatal. A direct
//! `ringfeed ingest` beside the daemon is refused; `ringfeed query` is not.

mod common;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use common::run_code;
use ringfeed_arrow::StartAt;
use ringfeed_client::protocol::QuerySpec;
use std::ffi::OsStr;
use std::process::Command;
use std::time::Duration;

/// Runs `ringfeed` with `args`: (success, stdout, stderr).
fn run<S: AsRef<OsStr>>(args: &[S]) -> (bool, String, String) {
    let (code, out, err) = run_code(args);
    (code == Some(0), out, err)
}

#[test]
fn append_sends_files_to_the_daemon_and_reports_bad_rows() {
    let (served, mut c) = common::serve("fx", "clitest");
    let (dir, sock, mut daemon) = (served.dir, served.sock, served.daemon);
    let mut live = c.subscribe("fx", "1m", StartAt::Next).unwrap();

    let csv = dir.path().join("bars.csv");
    let mut text = String::from("ts,symbol,open,high,low,close,volume\n");
    for m in 0..10 {
        text += &format!("2021-01-01T00:{m:02}:00Z,EURUSD,1.{m},1.{m}5,1.0,1.{m},100\n");
    }
    text += "not-a-time,EURUSD,1,1,1,1,1\n";
    std::fs::write(&csv, text).unwrap();

    let (sock_s, csv_s) = (sock.to_str().unwrap(), csv.to_str().unwrap());
    let (code, _, err) = run_code(&[
        "append",
        "--dataset",
        "fx",
        "--batch-rows",
        "4",
        "--socket",
        sock_s,
        csv_s,
    ]);
    // Loaded, but a row was rejected: exit status 3, the row named.
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("appended 10 rows"), "{err}");
    assert!(
        err.contains("1 rejected")
            && err.contains("bars.csv:12")
            && err.contains("1 row(s) were rejected"),
        "{err}"
    );
    // A bar off the 1m grid is refused by the client's own check of the store's rules;
    // --allow-rejects says rejections are fine.
    let off = dir.path().join("off.csv");
    std::fs::write(
        &off,
        "ts,symbol,open,high,low,close,volume\n2021-01-01T00:10:17Z,EURUSD,1,1,1,1,1\n",
    )
    .unwrap();
    let (code, _, err) = run_code(&[
        "append",
        "--dataset",
        "fx",
        "--allow-rejects",
        "--socket",
        sock_s,
        off.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("appended 0 rows") && err.contains("not on the 1m grid"),
        "{err}"
    );

    // Durable: a query sees them; live: the subscriber got them in 4-row requests.
    let bars = c
        .bars(&QuerySpec {
            dataset: "fx".into(),
            timeframe: "1m".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(bars.rows, 10);
    let mut rows = 0;
    while rows < 10 {
        let b = live
            .read(Duration::from_secs(10))
            .unwrap()
            .expect("live batch");
        assert!(b.num_rows() <= 4);
        rows += b.num_rows();
    }
    let closes: Vec<f64> = bars.batches[0]
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>()
        .values()
        .to_vec();
    assert_eq!(closes[3], 1.3);

    // An unknown dataset is a clear error naming the known ones and --create.
    let (ok, _, err) = run(&["append", "--dataset", "nope", "--socket", sock_s, csv_s]);
    assert!(!ok);
    assert!(
        err.contains("no dataset \"nope\"") && err.contains("fx") && err.contains("--create"),
        "{err}"
    );

    // One writer per data directory: a direct `ringfeed ingest` beside the daemon is
    // refused and pointed at the daemon; a read-only `ringfeed query` runs beside it.
    let data = dir.path().join("data");
    let data_s = data.to_str().unwrap();
    let (ok, _, err) = run(&["ingest", "--dataset", "fx", "--data-dir", data_s, csv_s]);
    assert!(!ok);
    assert!(
        err.contains("already open for writing")
            && err.contains(&format!("pid {} (ringfeed)", daemon.0.id()))
            && err.contains("ringfeed append"),
        "{err}"
    );
    let query = [
        "query",
        "--dataset",
        "fx",
        "--format",
        "csv",
        "--data-dir",
        data_s,
    ];
    let (ok, out, err) = run(&query);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 11);
    // A write-down by hand: refused directly (with a pointer to --daemon), done by the
    // daemon when asked through its socket; queries answer the same from Parquet.
    let (ok, _, err) = run(&["write-down", "--all", "--data-dir", data_s]);
    assert!(!ok);
    assert!(err.contains("ringfeed write-down --daemon"), "{err}");
    let (ok, _, err) = run(&["write-down", "--all", "--socket", sock_s]);
    assert!(ok, "{err}");
    assert!(err.contains("wrote down 2 partitions: 12 rows"), "{err}");
    // (January 2021 is a finished month: compacted into one part.)
    assert!(data
        .join("dataset=fx/tf=1m/month=2021-01/part-0.parquet")
        .is_file());
    assert_eq!(run(&query).1, out, "the same answer from Parquet");
    // A delete (a correction): refused directly, done by the daemon when asked.
    let range = [
        "--symbol",
        "EURUSD",
        "--start",
        "2021-01-01T00:05:00Z",
        "--end",
        "2021-01-02",
    ];
    let (ok, _, err) = run(&[
        &["delete", "--dataset", "fx", "--data-dir", data_s][..],
        &range,
    ]
    .concat());
    assert!(!ok);
    assert!(err.contains("ringfeed delete --daemon"), "{err}");
    let (ok, _, err) = run(&[
        &["delete", "--dataset", "fx", "--socket", sock_s][..],
        &range,
    ]
    .concat());
    assert!(ok, "{err}");
    assert!(err.contains("deleted from 1 days of fx"), "{err}");
    assert_eq!(run(&query).1.lines().count(), 6, "header + minutes 0..5");
    let again = c
        .bars(&QuerySpec {
            dataset: "fx".into(),
            timeframe: "1m".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(again.rows, 5);
    drop(again);

    // --create makes it through the running daemon (no config edit, no restart).
    let (code, _, err) = run_code(&[
        "append",
        "--dataset",
        "fresh",
        "--create",
        "--timeframe",
        "1m",
        "--rollups",
        "5m",
        "--allow-rejects",
        "--socket",
        sock_s,
        csv_s,
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("created dataset fresh (1m, 5m)") && err.contains("appended 10 rows"),
        "{err}"
    );
    let fresh5 = c
        .bars(&QuerySpec {
            dataset: "fresh".into(),
            timeframe: "5m".into(),
            ..Default::default()
        })
        .unwrap();
    assert_eq!(fresh5.rows, 2);
    drop(fresh5);

    drop((live, bars));
    Command::new("kill")
        .arg(daemon.0.id().to_string())
        .status()
        .unwrap();
    assert!(daemon.0.wait().unwrap().success());
}
