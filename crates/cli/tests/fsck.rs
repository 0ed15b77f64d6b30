//! `ringfeed fsck` on real data directories: clean, damaged, repaired, and not runnable.

mod common;

use common::run_code;
use ringfeed_store::schema::BarColumns;
use ringfeed_store::{BarStore, DatasetConfig, Query, RowPolicy};
use std::path::{Path, PathBuf};

const MIN: i64 = 60_000_000_000;

fn bar(sym: &str, i: i64) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    c.ts.push(i * MIN);
    c.symbol.push(sym.into());
    for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
        v.push(i as f64);
    }
    c.volume.push(1.0);
    c.into_batch().unwrap()
}

/// A store with 50 one-row appends (one WAL frame each) and a written-down day; returns
/// the live day's base WAL.
fn store(dir: &Path) -> PathBuf {
    // (A directory the store creates: the temp dir itself is 0755.)
    let dir = &dir.join("data");
    let mut st = BarStore::open(dir).unwrap();
    st.create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    for i in 0..10 {
        st.append("d", &bar("X", i), &RowPolicy::default()).unwrap();
    }
    st.write_down(None, 1).unwrap();
    for i in 0..50 {
        st.append("d", &bar("X", 1440 + i), &RowPolicy::default())
            .unwrap();
    }
    st.wal_path("d", "1m".parse().unwrap(), 1)
}

fn fsck(dir: &Path, extra: &[&str]) -> (Option<i32>, String, String) {
    let dir = dir.join("data");
    let mut args = vec!["fsck", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_code(&args)
}

#[test]
fn a_clean_store_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    store(dir.path());
    let (code, out, err) = fsck(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("clean: 0 problems, 0 warnings"), "{out}");
    // Day 0 written down in every timeframe (1m and its four rollups).
    assert!(out.contains("5 Parquet parts"), "{out}");
    // --data is the short spelling; --json is one object.
    let data = dir.path().join("data");
    let (code, out, _) = run_code(&["fsck", "--data", data.to_str().unwrap(), "--json"]);
    assert_eq!(code, Some(0));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"].as_array().unwrap().len(), 0, "{v}");
    assert_eq!(v["parquet_files"], 5, "{v}");
    assert!(v["wal_frames"].as_u64().unwrap() >= 50, "{v}");
}

#[test]
fn a_damaged_wal_exits_1_and_repair_keeps_every_valid_frame() {
    let dir = tempfile::tempdir().unwrap();
    let wal = store(dir.path());
    let mut b = std::fs::read(&wal).unwrap();
    b[40] ^= 0x10;
    std::fs::write(&wal, &b).unwrap();

    let (code, out, err) = fsck(dir.path(), &[]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        out.contains("PROBLEM") && out.contains("CORRUPT region at offset 0"),
        "{out}"
    );
    assert!(out.contains("PROBLEMS FOUND: 1 problems"), "{out}");
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        b,
        "fsck without --repair changes nothing"
    );
    let (_, out, _) = fsck(dir.path(), &["--json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["findings"][0]["severity"], "problem", "{v}");
    assert_eq!(v["findings"][0]["check"], "wal", "{v}");

    let (code, out, err) = fsck(dir.path(), &["--repair"]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("repaired CORRUPTION"), "{out}");
    assert!(out.contains("quarantine"), "{out}");
    let (code, out, _) = fsck(dir.path(), &[]);
    assert_eq!(code, Some(0), "{out}");
    // The store works and holds every row but the damaged frame's.
    let mut st = BarStore::open(&dir.path().join("data")).unwrap();
    let n = st
        .query(&Query::new("d", "1m".parse().unwrap()))
        .unwrap()
        .num_rows();
    assert_eq!(n, 10 + 49);
    st.append("d", &bar("X", 1440), &RowPolicy::default())
        .unwrap();
}

#[test]
fn symbols_missing_from_the_catalog_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    let wal = store(dir.path());
    // What issue 12 item 11 left behind: rows of a symbol the catalog lost.
    let mut w =
        ringfeed_store::wal::WalWriter::open(&wal, ringfeed_store::FsyncPolicy::Always).unwrap();
    w.append(&[ringfeed_store::merge::Op::Upsert(bar("LOST", 1500))])
        .unwrap();
    w.close().unwrap();
    let (code, out, _) = fsck(dir.path(), &[]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("symbols the catalog does not list: LOST"),
        "{out}"
    );
}

#[test]
fn fsck_that_cannot_run_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = fsck(&dir.path().join("nothing-here"), &[]); // (…/data inside)
    assert_eq!(code, Some(2));
    assert!(err.contains("no data directory"), "{err}");
    // --repair needs the writer's lock.
    store(dir.path());
    let _writer = BarStore::open(&dir.path().join("data")).unwrap();
    let (code, _, err) = fsck(dir.path(), &["--repair"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("already open for writing"), "{err}");
    let (code, out, _) = run_code(&["fsck", "--help"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("Exit status") && out.contains("--repair"),
        "{out}"
    );
}
