//! Damaged WALs, full disks and failed catalog commits: the store keeps every valid
//! frame, sets damaged bytes aside in quarantine, never serves what it did not commit, and
//! stays readable when it cannot write.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, TimestampNanosecondType};
use proptest::prelude::*;
use ringfeed_store::perms::{WriteFault, ENOSPC};
use ringfeed_store::schema::BarColumns;
use ringfeed_store::store::{AppendError, CreateDatasetError, WriteError};
use ringfeed_store::{
    fsck, BarStore, DamageKind, DatasetConfig, FsyncPolicy, Query, RowPolicy, StoreOptions, Symbols,
};
use std::path::{Path, PathBuf};

const MIN: i64 = 60_000_000_000;
const ROWS: i64 = 50;

/// One bar of `sym` at minute `i` whose close is `i` (so a row says which append it was).
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

fn config(rollups: &[&str]) -> DatasetConfig {
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = rollups.iter().map(|r| r.parse().unwrap()).collect();
    cfg.fsync = FsyncPolicy::Always;
    cfg
}

/// A store at `dir` with `ROWS` acknowledged appends of one row each (one WAL frame each).
fn fifty_rows(dir: &Path, rollups: &[&str]) -> PathBuf {
    let mut st = BarStore::open(dir).unwrap();
    st.create_dataset("d", config(rollups)).unwrap();
    for i in 0..ROWS {
        st.append("d", &bar("X", i), &RowPolicy::default()).unwrap();
    }
    st.wal_path("d", "1m".parse().unwrap(), 0)
}

/// The minutes (= closes) of the stored 1m rows, checked against each other.
fn minutes(st: &BarStore) -> Vec<i64> {
    let b = st.query(&Query::new("d", "1m".parse().unwrap())).unwrap();
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let close = b
        .column_by_name("close")
        .unwrap()
        .as_primitive::<Float64Type>();
    (0..b.num_rows())
        .map(|i| {
            let m = ts.value(i) / MIN;
            assert_eq!(
                close.value(i),
                m as f64,
                "a row with wrong content was served"
            );
            m
        })
        .collect()
}

/// Byte ranges of the frames of a clean WAL (header length field, padded to 64).
fn frame_spans(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut off = 0;
    while off + 16 <= bytes.len() {
        let len = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        let end = (off + 16 + len).div_ceil(64) * 64;
        out.push((off, end));
        off = end;
    }
    out
}

#[test]
fn a_flipped_bit_early_in_a_wal_loses_only_its_frame_and_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let wal = fifty_rows(dir.path(), &[]);
    let clean = std::fs::read(&wal).unwrap();
    let (first, _) = frame_spans(&clean)[0];
    let mut bad = clean.clone();
    bad[first + 40] ^= 0x04; // a payload bit of the first frame (minute 0)
    std::fs::write(&wal, &bad).unwrap();

    // A read-only opener serves every valid frame and changes nothing.
    let ro = BarStore::open_read_only(dir.path()).unwrap();
    assert_eq!(minutes(&ro), (1..ROWS).collect::<Vec<_>>());
    drop(ro);
    assert_eq!(std::fs::read(&wal).unwrap(), bad);

    let mut st = BarStore::open(dir.path()).unwrap();
    assert_eq!(minutes(&st), (1..ROWS).collect::<Vec<_>>(), "49 of 50 kept");
    assert_eq!(st.corruption_count(), 1);
    let r = &st.damage()[0];
    assert_eq!(
        (r.kind, r.offset, r.frames_kept),
        (DamageKind::Corrupt, 0, 49)
    );
    assert!(r.reason.contains("CRC"), "{}", r.reason);
    // The damaged bytes are in quarantine, exactly, with a sidecar saying where from.
    let q = r.quarantined.clone().expect("quarantined");
    assert!(q.starts_with(dir.path().join("_quarantine")), "{q:?}");
    assert_eq!(
        std::fs::read(&q).unwrap(),
        bad[first..first + r.len as usize]
    );
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(format!("{}.json", q.display())).unwrap()).unwrap();
    assert_eq!(side["wal"], wal.to_string_lossy().as_ref());
    assert_eq!(side["kind"], "corrupt");
    assert!(side["found_at"].as_u64().unwrap() > 0);
    let notes = st.recovery_notes();
    assert!(
        notes.iter().any(|l| l.starts_with("CORRUPTION")),
        "{notes:?}"
    );
    // The WAL now holds the valid frames only; fsck finds it clean.
    assert_eq!(std::fs::read(&wal).unwrap(), clean[r.len as usize..]);
    // The store still works: an append lands, and everything is there after a reopen.
    st.append("d", &bar("X", 0), &RowPolicy::default()).unwrap();
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.corruption_count(), 0, "nothing new on the second open");
    assert_eq!(minutes(&st), (0..ROWS).collect::<Vec<_>>());
    drop(st);
    let rep = fsck::check(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(rep.problems(), 0, "{:#?}", rep.findings);
    assert!(rep.findings.iter().any(|f| f.check == "quarantine"));
}

#[test]
fn a_damaged_frame_in_a_base_wal_with_rollups_keeps_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let wal = fifty_rows(dir.path(), &["5m"]);
    let mut bytes = std::fs::read(&wal).unwrap();
    // Each write is a base frame, a 5m frame and a rollup marker: hit the 3rd base frame.
    let spans = frame_spans(&bytes);
    let (off, _) = spans[6];
    bytes[off + 1] ^= 0x80; // its magic
    std::fs::write(&wal, &bytes).unwrap();
    let st = BarStore::open(dir.path()).unwrap();
    let want: Vec<i64> = (0..ROWS).filter(|m| *m != 2).collect();
    assert_eq!(minutes(&st), want);
    assert_eq!(st.corruption_count(), 1);
    assert!(
        st.rollups_repaired.is_empty(),
        "the last write kept its marker"
    );
}

#[test]
fn a_torn_tail_longer_than_a_header_is_cut_into_quarantine() {
    let dir = tempfile::tempdir().unwrap();
    let wal = fifty_rows(dir.path(), &[]);
    let clean = std::fs::read(&wal).unwrap();
    let spans = frame_spans(&clean);
    let (last, _) = *spans.last().unwrap();
    std::fs::write(&wal, &clean[..last + 100]).unwrap(); // the last frame cut short
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(minutes(&st), (0..ROWS - 1).collect::<Vec<_>>());
    assert_eq!(
        st.corruption_count(),
        0,
        "a torn tail is a crash, not corruption"
    );
    let r = &st.damage()[0];
    assert_eq!((r.kind, r.len), (DamageKind::TornTail, 100));
    assert_eq!(
        std::fs::read(r.quarantined.as_ref().unwrap()).unwrap(),
        clean[last..last + 100]
    );
}

/// A WAL of 50 one-row frames, built once for the property test below.
fn template() -> &'static (tempfile::TempDir, Vec<u8>) {
    static T: std::sync::OnceLock<(tempfile::TempDir, Vec<u8>)> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let wal = fifty_rows(dir.path(), &[]);
        let bytes = std::fs::read(wal).unwrap();
        (dir, bytes)
    })
}

fn copy_dir(from: &Path, to: &Path) {
    for e in std::fs::read_dir(from).unwrap().flatten() {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if src.is_dir() {
            std::fs::create_dir_all(&dst).unwrap();
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Bits flipped anywhere: no panic, and only the frames holding a flipped bit are lost
    /// (a flip in padding loses nothing); every row served is one that was written.
    #[test]
    fn flipped_bits_lose_at_most_the_frames_they_hit(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..6)
    ) {
        let (tdir, clean) = template();
        let dir = tempfile::tempdir().unwrap();
        copy_dir(tdir.path(), dir.path());
        let _ = std::fs::remove_file(dir.path().join(ringfeed_store::WRITER_LOCK));
        let wal = dir.path().join("_hot/d/1970-01-01.wal");
        let mut bytes = clean.clone();
        let spans = frame_spans(clean);
        let mut hit = std::collections::BTreeSet::new();
        for (i, bit) in &flips {
            let at = i.index(bytes.len());
            bytes[at] ^= 1 << bit;
            if let Some(f) = spans.iter().position(|(s, e)| (*s..*e).contains(&at)) {
                // Bytes after header + payload are padding: not part of the frame's CRC.
                let len = u32::from_le_bytes(clean[spans[f].0 + 8..spans[f].0 + 12].try_into().unwrap()) as usize;
                if at < spans[f].0 + 16 + len {
                    hit.insert(f as i64);
                }
            }
        }
        std::fs::write(&wal, &bytes).unwrap();
        let mut st = BarStore::open(dir.path()).unwrap();
        let got = minutes(&st);
        let want: Vec<i64> = (0..ROWS).filter(|m| !hit.contains(m)).collect();
        // Frame k holds minute k: exactly the unhit frames survive.
        prop_assert_eq!(&got, &want);
        // The store still takes writes, and a reopen serves the same plus the new row.
        st.append("d", &bar("X", ROWS), &RowPolicy::default()).unwrap();
        drop(st);
        let st = BarStore::open(dir.path()).unwrap();
        let mut want = want;
        want.push(ROWS);
        prop_assert_eq!(minutes(&st), want);
        prop_assert_eq!(st.corruption_count(), 0);
    }
}

#[test]
fn a_new_symbol_whose_catalog_commit_fails_is_not_kept() {
    let dir = tempfile::tempdir().unwrap();
    let fault = WriteFault::default();
    let opts = StoreOptions {
        fault: Some(fault.clone()),
        ..StoreOptions::default()
    };
    let mut st = BarStore::open_with(dir.path(), opts.clone()).unwrap();
    st.create_dataset("d", config(&["5m"])).unwrap();
    st.append("d", &bar("A", 0), &RowPolicy::default()).unwrap();
    let version = st.catalog().version;

    fault.set(Some(ENOSPC));
    let err = st
        .append("d", &bar("B", 1), &RowPolicy::default())
        .unwrap_err();
    assert!(
        matches!(err, AppendError::Write(WriteError::Catalog(_))),
        "{err:?}"
    );
    assert!(err.to_string().contains("disk is full"), "{err}");
    assert!(!st.catalog().datasets["d"].symbols.contains("B"));
    assert_eq!(
        st.catalog().version,
        version,
        "the failed commit left no trace"
    );
    let e = st.create_dataset("e", config(&[])).unwrap_err().to_string();
    assert!(
        e.contains("disk is full") && st.dataset("e").is_none(),
        "{e}"
    );
    // A known symbol's append fails at the WAL, also saying so.
    let err = st
        .append("d", &bar("A", 2), &RowPolicy::default())
        .unwrap_err();
    assert!(err.to_string().contains("disk is full"), "{err}");

    fault.set(None);
    st.append("d", &bar("B", 1), &RowPolicy::default()).unwrap();
    st.append("d", &bar("A", 2), &RowPolicy::default()).unwrap();
    assert!(st.catalog().datasets["d"].symbols.contains("B"));
    drop(st);
    // Every acknowledged row is there after a restart, and B is a known symbol.
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(minutes(&st), vec![0, 2, 1]);
    let mut q = Query::new("d", "1m".parse().unwrap());
    q.symbols = Symbols::List(vec!["B".into()]);
    assert_eq!(st.query(&q).unwrap().num_rows(), 1);
    let rep = fsck::check(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(rep.problems(), 0, "{:#?}", rep.findings);
}

#[test]
fn a_writer_that_cannot_recover_opens_read_only_and_retries() {
    let dir = tempfile::tempdir().unwrap();
    let wal = fifty_rows(dir.path(), &["5m"]);
    let mut bytes = std::fs::read(&wal).unwrap();
    bytes[40] ^= 1; // damage the first frame: recovery must quarantine it (a write)
    std::fs::write(&wal, &bytes).unwrap();
    // Interrupted writes on a full disk leave temp files behind too.
    std::fs::write(dir.path().join("_catalog/v0000000099.json.tmp"), b"{\"sch").unwrap();
    std::fs::write(format!("{}.tmp", wal.display()), &bytes[..100]).unwrap();

    let fault = WriteFault::default();
    fault.set(Some(ENOSPC));
    let opts = StoreOptions {
        fault: Some(fault.clone()),
        ..StoreOptions::default()
    };
    let mut st = BarStore::open_with(dir.path(), opts).unwrap();
    let reason = st.read_only_reason().expect("read-only").to_string();
    assert!(reason.contains("disk is full"), "{reason}");
    assert!(st.recovery_notes().iter().any(|l| l.contains("READ-ONLY")));
    // Queries serve every valid frame; nothing on disk changed.
    assert_eq!(minutes(&st), (1..ROWS).collect::<Vec<_>>());
    assert_eq!(std::fs::read(&wal).unwrap(), bytes);
    assert!(!dir.path().join("_catalog/v0000000099.json.tmp").exists());
    // Writes are refused with the reason and what to do.
    let err = st
        .append("d", &bar("X", 0), &RowPolicy::default())
        .unwrap_err();
    assert!(matches!(err, AppendError::Unwritable { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("read-only because") && msg.contains("Free space"),
        "{msg}"
    );
    assert!(matches!(
        st.create_dataset("e", config(&[])),
        Err(CreateDatasetError::Unwritable { .. })
    ));
    assert!(st.write_down(None, i64::MAX).is_err());
    // Still full: retrying fails and says why.
    assert!(!st.retry_writable());
    assert!(st.read_only_reason().is_some());

    fault.set(None);
    assert!(st.retry_writable());
    assert_eq!(st.read_only_reason(), None);
    assert_eq!(st.corruption_count(), 1);
    st.append("d", &bar("X", 0), &RowPolicy::default()).unwrap();
    assert_eq!(minutes(&st), (0..ROWS).collect::<Vec<_>>());
    drop(st);
    let st = BarStore::open(dir.path()).unwrap();
    assert_eq!(st.read_only_reason(), None);
    assert_eq!(minutes(&st), (0..ROWS).collect::<Vec<_>>());
    let five = st.query(&Query::new("d", "5m".parse().unwrap())).unwrap();
    assert_eq!(five.num_rows() as i64, ROWS / 5);
}

#[test]
fn rollups_cut_short_are_repaired_once_space_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let wal = fifty_rows(dir.path(), &["5m"]);
    // A base frame with no rollup marker after it: the process stopped between the two.
    let mut w = ringfeed_store::wal::WalWriter::open(&wal, FsyncPolicy::Always).unwrap();
    let stream = ringfeed_store::wal::stream_of("1m".parse().unwrap());
    w.append_stream(stream, &[ringfeed_store::merge::Op::Upsert(bar("X", ROWS))])
        .unwrap();
    w.close().unwrap();
    let fault = WriteFault::default();
    fault.set(Some(ENOSPC));
    let opts = StoreOptions {
        fault: Some(fault.clone()),
        ..StoreOptions::default()
    };
    let mut st = BarStore::open_with(dir.path(), opts).unwrap();
    let reason = st.read_only_reason().expect("read-only").to_string();
    assert!(reason.contains("rollups"), "{reason}");
    assert_eq!(minutes(&st), (0..=ROWS).collect::<Vec<_>>());
    fault.set(None);
    assert!(st.retry_writable());
    assert_eq!(st.rollups_repaired, vec![("d".to_string(), vec![0])]);
    let five = st.query(&Query::new("d", "5m".parse().unwrap())).unwrap();
    assert_eq!(five.num_rows() as i64, ROWS / 5 + 1);
}
