//! Crash tests with real killed child processes. The test binary re-runs itself as the
//! child (`RINGFEED_CRASH_CHILD` selects the role), so no extra binary is needed.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use ringfeed_store::schema::BarColumns;
use ringfeed_store::{BarStore, DatasetConfig, FsyncPolicy, Query};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

const MIN: i64 = 60_000_000_000;
const PER_BATCH: i64 = 500;

fn batch(k: i64) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    for i in 0..PER_BATCH {
        let t = (k * PER_BATCH + i) * MIN;
        c.ts.push(t);
        c.symbol.push("X".into());
        for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
            v.push(1.0 + k as f64);
        }
        c.volume.push(1.0);
    }
    c.into_batch().unwrap()
}

/// Child role: ingest batches forever, printing `ack k` after each acknowledged one.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var("RINGFEED_CRASH_CHILD") else {
        return; // Not the child: nothing to do.
    };
    let mut st = BarStore::open(Path::new(&dir)).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["1h".parse().unwrap()];
    cfg.fsync = FsyncPolicy::Always;
    st.create_dataset("d", cfg).unwrap();
    let limit: i64 = std::env::var("RINGFEED_CRASH_BATCHES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(i64::MAX);
    let from: i64 = std::env::var("RINGFEED_CRASH_FROM")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    for k in from..limit {
        st.upsert("d", &batch(k)).unwrap();
        println!("ack {k}");
    }
    if std::env::var("RINGFEED_CRASH_WRITEDOWN").is_ok() {
        st.write_down(None, i64::MAX).unwrap();
        println!("written down");
    }
}

fn child(dir: &Path, envs: &[(&str, &str)]) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env("RINGFEED_CRASH_CHILD", dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    for (k, v) in envs {
        c.env(k, v);
    }
    c
}

fn check_store(dir: &Path, acked: i64) -> usize {
    let st = BarStore::open(dir).unwrap();
    let got = st.query(&Query::new("d", "1m".parse().unwrap())).unwrap();
    let n = got.num_rows();
    // Everything acknowledged is there; at most the batch in flight beyond it.
    assert!(
        n as i64 >= acked * PER_BATCH,
        "lost acknowledged rows: {n} < {}",
        acked * PER_BATCH
    );
    assert!(n as i64 <= (acked + 1) * PER_BATCH);
    assert_eq!(n as i64 % PER_BATCH, 0, "a torn batch was served");
    let h = st.query(&Query::new("d", "1h".parse().unwrap())).unwrap();
    assert!(h.num_rows() > 0 || n == 0);
    n
}

#[test]
fn kill_9_mid_ingest_loses_nothing_acknowledged() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut c = child(dir.path(), &[]).spawn().unwrap();
        let mut out = BufReader::new(c.stdout.take().unwrap());
        let mut acked = 0;
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut line = String::new();
        while acked < 5 + round * 7 {
            line.clear();
            assert!(
                Instant::now() < deadline,
                "watchdog: the child made no progress"
            );
            if out.read_line(&mut line).unwrap() == 0 {
                panic!("child exited early");
            }
            if let Some(k) = line.trim().strip_prefix("ack ") {
                acked = k.parse::<i64>().unwrap() + 1;
            }
        }
        c.kill().unwrap(); // SIGKILL
        c.wait().unwrap();
        // Count acks that raced with the kill.
        for l in out.lines().map_while(Result::ok) {
            if let Some(k) = l.trim().strip_prefix("ack ") {
                acked = k.parse::<i64>().unwrap() + 1;
            }
        }
        check_store(dir.path(), acked);
    }
}

#[test]
fn a_torn_wal_write_is_cut_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let ok = child(dir.path(), &[("RINGFEED_CRASH_BATCHES", "3")])
        .output()
        .unwrap();
    assert!(ok.status.success());
    // Now a child that tears its first write in half and aborts.
    let torn = child(
        dir.path(),
        &[
            ("RINGFEED_CRASH_BATCHES", "5"),
            ("RINGFEED_STORE_FAILPOINT", "wal:torn_write"),
        ],
    )
    .output()
    .unwrap();
    assert!(!torn.status.success());
    let st = BarStore::open(dir.path()).unwrap();
    assert!(!st.recovered.is_empty(), "the torn tail was reported");
    assert!(st.recovered.iter().all(|(_, r)| r.cut_bytes() > 0));
    drop(st);
    assert_eq!(check_store(dir.path(), 3), 3 * PER_BATCH as usize);
}

#[test]
fn a_crash_at_any_write_down_step_leaves_old_or_new_state() {
    for fp in [
        "writedown:before_rename",
        "writedown:before_commit",
        "catalog:before_current",
        "catalog:after_current",
        "writedown:after_commit",
        // The compaction that follows (January 1970 is a finished month for `i64::MAX`).
        "compact:before_commit",
        "compact:after_commit",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let ok = child(dir.path(), &[("RINGFEED_CRASH_BATCHES", "4")])
            .output()
            .unwrap();
        assert!(ok.status.success());
        let out = child(
            dir.path(),
            &[
                ("RINGFEED_CRASH_BATCHES", "0"),
                ("RINGFEED_CRASH_WRITEDOWN", "1"),
                ("RINGFEED_STORE_FAILPOINT", fp),
            ],
        )
        .output()
        .unwrap();
        assert!(!out.status.success(), "{fp}: the failpoint fired");
        let n = check_store(dir.path(), 4);
        assert_eq!(n, 4 * PER_BATCH as usize, "{fp}");
        // Whatever state it is in, a second write-down completes and no orphan remains.
        let mut st = BarStore::open(dir.path()).unwrap();
        st.write_down(None, i64::MAX).unwrap();
        assert_eq!(
            st.query(&Query::new("d", "1m".parse().unwrap()))
                .unwrap()
                .num_rows(),
            n
        );
        let referenced: usize = st.catalog().datasets["d"]
            .cold
            .values()
            .map(|v| v.len())
            .sum();
        let on_disk = walk(dir.path())
            .iter()
            .filter(|p| p.ends_with(".parquet"))
            .count();
        assert_eq!(referenced, on_disk, "{fp}: orphan Parquet files");
        // And the month is compacted: one part per timeframe.
        assert_eq!(referenced, 2, "{fp}");
        assert!(st.catalog().datasets["d"]
            .cold
            .values()
            .flatten()
            .all(|p| p.is_compacted()));
    }
}

fn walk(p: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(p) {
        for e in rd.flatten() {
            let path = e.path();
            if path.is_dir() {
                out.extend(walk(&path));
            } else {
                out.push(path.to_string_lossy().into_owned());
            }
        }
    }
    out
}

/// `(hour, close, complete)` of the stored 1h rollup.
fn hours(st: &BarStore) -> Vec<(i64, f64, bool)> {
    let h = st.query(&Query::new("d", "1h".parse().unwrap())).unwrap();
    let ts = h
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let close = h
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>();
    let done = h.column_by_name("complete").unwrap().as_boolean();
    (0..h.num_rows())
        .map(|i| (ts.value(i) / (60 * MIN), close.value(i), done.value(i)))
        .collect()
}

/// The 1h bars of batches `0..n` computed from their definition.
fn expected_hours(n: i64) -> Vec<(i64, f64, bool)> {
    let minutes = n * PER_BATCH;
    (0..(minutes + 59) / 60)
        .map(|h| {
            let last = (60 * h + 59).min(minutes - 1);
            (h, 1.0 + (last / PER_BATCH) as f64, 60 * (h + 1) <= minutes)
        })
        .collect()
}

/// A process that stops after an upsert's base frames are durable, before its rollup
/// frames, leaves the rollups behind the base bars; the next writable open rewrites them.
#[test]
fn a_crash_between_base_and_rollup_frames_is_repaired_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let ok = child(dir.path(), &[("RINGFEED_CRASH_BATCHES", "3")])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let out = child(
        dir.path(),
        &[
            ("RINGFEED_CRASH_FROM", "3"),
            ("RINGFEED_CRASH_BATCHES", "4"),
            ("RINGFEED_STORE_FAILPOINT", "upsert:before_rollups"),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "the failpoint fired");
    // A read-only open changes nothing: batch 3 is in the base bars, not in the rollup.
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    let base = ro.query(&Query::new("d", "1m".parse().unwrap())).unwrap();
    assert_eq!(base.num_rows() as i64, 4 * PER_BATCH);
    assert_ne!(
        hours(&ro),
        expected_hours(4),
        "the crash left the rollup behind"
    );
    drop(ro);
    // The writer's open repairs the one day the cut write touched (minutes 1500..2000).
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.rollups_repaired, vec![("d".to_string(), vec![1])]);
    let notes = st.recovery_notes();
    assert!(
        notes
            .iter()
            .any(|l| l.contains("\"d\"") && l.contains("1970-01-02")),
        "{notes:?}"
    );
    assert_eq!(hours(&st), expected_hours(4));
    drop(st);
    // And marks it: the next open has nothing to repair.
    let st = BarStore::open(dir.path()).unwrap();
    assert!(st.rollups_repaired.is_empty(), "{:?}", st.rollups_repaired);
    assert_eq!(hours(&st), expected_hours(4));
}

/// A process that stops after a write's rollup frames are durable, before its rollup
/// marker: the next open rewrites the day's rollups (a needless but harmless repair), and
/// nothing acknowledged is lost.
#[test]
fn a_crash_before_the_rollup_marker_costs_one_repair() {
    let dir = tempfile::tempdir().unwrap();
    let out = child(
        dir.path(),
        &[
            ("RINGFEED_CRASH_BATCHES", "4"),
            ("RINGFEED_STORE_FAILPOINT", "upsert:before_marker"),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "the failpoint fired");
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.rollups_repaired, vec![("d".to_string(), vec![0])]);
    assert_eq!(hours(&st), expected_hours(1));
    drop(st);
    // The batch was written in full before the crash (only its marker is missing).
    assert_eq!(check_store(dir.path(), 0), PER_BATCH as usize);
}

/// A store of one-timeframe WALs (written before dataset-day WALs) opened by a writer that
/// is killed after moving a file's frames into the day's WAL and before removing the old
/// file: the next open moves them again, and every row is there once.
#[test]
fn a_crash_while_moving_old_wals_into_day_wals_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let ok = child(dir.path(), &[("RINGFEED_CRASH_BATCHES", "4")])
        .output()
        .unwrap();
    assert!(ok.status.success());
    let want = {
        let ro = BarStore::open_read_only(dir.path()).unwrap();
        (
            ro.query(&Query::new("d", "1m".parse().unwrap())).unwrap(),
            hours(&ro),
        )
    };
    let hot = dir.path().join("_hot/d");
    common::to_legacy_layout(&hot, &[("1m", "1m"), ("1h", "1h")]);
    let out = child(
        dir.path(),
        &[
            ("RINGFEED_CRASH_BATCHES", "0"),
            ("RINGFEED_STORE_FAILPOINT", "wal:moved_before_remove"),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "the failpoint fired");
    assert!(hot.join("1m").is_dir(), "the old files are still there");
    let st = BarStore::open(dir.path()).unwrap();
    assert!(!hot.join("1m").exists() && !hot.join("1h").exists());
    assert_eq!(
        st.query(&Query::new("d", "1m".parse().unwrap())).unwrap(),
        want.0
    );
    assert_eq!(hours(&st), want.1);
    drop(st);
    assert_eq!(check_store(dir.path(), 4), 4 * PER_BATCH as usize);
}

/// A process killed during the quarantine rewrite of a damaged WAL (its damaged region
/// already copied to quarantine, the clean file not yet renamed over it) leaves the WAL
/// exactly as it was; the next open quarantines the region again and rewrites the file.
#[test]
fn a_crash_during_the_quarantine_rewrite_keeps_the_wal_and_redoes_it() {
    let dir = tempfile::tempdir().unwrap();
    let ok = child(dir.path(), &[("RINGFEED_CRASH_BATCHES", "4")])
        .output()
        .unwrap();
    assert!(ok.status.success());
    // Damage a payload byte of the first frame (batch 0, minutes 0..500).
    let wal = dir.path().join("_hot/d/1970-01-01.wal");
    let mut damaged = std::fs::read(&wal).unwrap();
    damaged[40] ^= 0x10;
    std::fs::write(&wal, &damaged).unwrap();

    let out = child(
        dir.path(),
        &[
            ("RINGFEED_CRASH_FROM", "4"),
            ("RINGFEED_CRASH_BATCHES", "4"),
            ("RINGFEED_STORE_FAILPOINT", "wal:before_rewrite"),
        ],
    )
    .output()
    .unwrap();
    assert!(!out.status.success(), "the failpoint fired");
    assert_eq!(
        std::fs::read(&wal).unwrap(),
        damaged,
        "the crash changed the WAL"
    );
    assert_eq!(quarantined(dir.path()), 1, "the copy made before the crash");

    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.corruption_count(), 1);
    assert!(st.damage()[0].quarantined.is_some());
    assert_eq!(quarantined(dir.path()), 2, "quarantined again");
    let (_, rep) = ringfeed_store::wal::replay(&wal).unwrap();
    assert!(rep.is_clean(), "the WAL was rewritten: {rep:?}");
    let base = st.query(&Query::new("d", "1m".parse().unwrap())).unwrap();
    let ts = base
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let got: Vec<i64> = ts.values().iter().map(|t| t / MIN).collect();
    assert_eq!(got, (PER_BATCH..4 * PER_BATCH).collect::<Vec<_>>());
    drop(st);
    // Nothing is left to do on the open after.
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.corruption_count(), 0);
    assert!(st.recovered.is_empty(), "{:?}", st.recovered);
    assert_eq!(quarantined(dir.path()), 2);
}

/// Quarantine copies (`*.bad`) under a store root.
fn quarantined(root: &Path) -> usize {
    walk(&root.join("_quarantine"))
        .iter()
        .filter(|p| p.ends_with(".bad"))
        .count()
}
