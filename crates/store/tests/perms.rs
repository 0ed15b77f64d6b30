//! Data directories are created 0700 and files 0600 (or 0750/0640 when group-readable),
//! whatever the umask: WAL, catalog, Parquet, lock and quarantine files alike.
//! One test (the umask is per process).

use ringfeed_store::schema::BarColumns;
use ringfeed_store::{fsck, BarStore, DatasetConfig, RowPolicy, StoreOptions};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

const MIN: i64 = 60_000_000_000;

fn bars(day: i64) -> arrow_array::RecordBatch {
    let mut c = BarColumns::default();
    for i in 0..10 {
        c.ts.push(day * 1440 * MIN + i * MIN);
        c.symbol.push("X".into());
        for v in [&mut c.open, &mut c.high, &mut c.low, &mut c.close] {
            v.push(1.0);
        }
        c.volume.push(1.0);
    }
    c.into_batch().unwrap()
}

fn walk(p: &Path, out: &mut Vec<(PathBuf, bool, u32)>) {
    let m = std::fs::metadata(p).unwrap();
    out.push((p.to_path_buf(), m.is_dir(), m.permissions().mode() & 0o777));
    if m.is_dir() {
        for e in std::fs::read_dir(p).unwrap().flatten() {
            walk(&e.path(), out);
        }
    }
}

/// Fill a store with every kind of file: catalog, WALs (base and rollup), Parquet, lock,
/// and a quarantine copy (from a damaged WAL); return every path with its mode.
fn every_kind_of_file(root: &Path, opts: &StoreOptions) -> Vec<(PathBuf, bool, u32)> {
    let mut st = BarStore::open_with(root, opts.clone()).unwrap();
    st.create_dataset("d", DatasetConfig::new("1m".parse().unwrap()))
        .unwrap();
    st.append("d", &bars(0), &RowPolicy::default()).unwrap();
    st.append("d", &bars(1), &RowPolicy::default()).unwrap();
    st.write_down(None, 1).unwrap();
    st.append("d", &bars(1), &RowPolicy::default()).unwrap();
    let wal = st.wal_path("d", "1m".parse().unwrap(), 1);
    drop(st);
    let mut b = std::fs::read(&wal).unwrap();
    b[40] ^= 1;
    std::fs::write(&wal, &b).unwrap();
    let st = BarStore::open_with(root, opts.clone()).unwrap();
    assert_eq!(st.corruption_count(), 1);
    drop(st);
    let mut all = Vec::new();
    walk(root, &mut all);
    for want in ["_quarantine", ".parquet", "CURRENT", "_writer.lock", ".wal"] {
        assert!(
            all.iter()
                .any(|(p, _, _)| p.to_string_lossy().contains(want)),
            "no {want} file made: {all:?}"
        );
    }
    all
}

#[test]
fn data_files_get_the_configured_modes_whatever_the_umask() {
    let dir = tempfile::tempdir().unwrap();
    // SAFETY: umask only sets the calling process's file-creation mask; no memory is involved.
    unsafe { libc::umask(0o000) };
    let root = dir.path().join("open");
    for (p, is_dir, mode) in every_kind_of_file(&root, &StoreOptions::default()) {
        let want = if is_dir { 0o700 } else { 0o600 };
        assert_eq!(mode, want, "{} is {mode:o}", p.display());
    }
    let rep = fsck::check(&root, &StoreOptions::default()).unwrap();
    assert!(
        !rep.findings.iter().any(|f| f.check == "permissions"),
        "{:#?}",
        rep.findings
    );

    // Group-readable under a umask that would strip the group bits.
    // SAFETY: as above.
    unsafe { libc::umask(0o077) };
    let root = dir.path().join("group");
    let group = StoreOptions::default().group_readable();
    for (p, is_dir, mode) in every_kind_of_file(&root, &group) {
        let want = if is_dir { 0o750 } else { 0o640 };
        assert_eq!(mode, want, "{} is {mode:o}", p.display());
    }
    // SAFETY: as above; back to the usual mask.
    unsafe { libc::umask(0o022) };

    // fsck reports what is wider than configured, and --repair narrows it.
    let strict = StoreOptions::default();
    let rep = fsck::check(&root, &strict).unwrap();
    assert!(
        rep.findings
            .iter()
            .any(|f| f.check == "permissions" && f.message.contains("0640")),
        "{:#?}",
        rep.findings
    );
    let rep = fsck::repair(&root, &strict).unwrap();
    assert!(
        !rep.findings.iter().any(|f| f.check == "permissions"),
        "{:#?}",
        rep.findings
    );
    assert!(rep.repaired.iter().any(|r| r.contains("narrowed")));
    let mut all = Vec::new();
    walk(&root, &mut all);
    assert!(all
        .iter()
        .all(|(_, d, m)| *m == if *d { 0o700 } else { 0o600 }));
    // And the store still works after.
    let mut st = BarStore::open(&root).unwrap();
    st.append("d", &bars(2), &RowPolicy::default()).unwrap();
}
