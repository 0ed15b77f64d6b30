//! A real full disk: a small tmpfs (needs root and `mount`; skipped with the reason
//! otherwise). Appends on the full disk fail with "disk is full" and leave nothing behind,
//! in memory or on disk (a refused append never appears after a restart); a writer opened
//! on it when recovery must write comes up read-only; once space is freed it becomes
//! writable, and every acknowledged row is there.

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampNanosecondType;
use ringfeed_store::schema::BarColumns;
use ringfeed_store::{fsck, BarStore, DatasetConfig, Query, RowPolicy, StoreOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

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

/// A mounted tmpfs, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Result<Tmpfs, String> {
        if std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("Uid:"))
                    .map(|l| l.split_whitespace().nth(2) == Some("0"))
            })
            != Some(true)
        {
            return Err("not root".into());
        }
        std::fs::create_dir_all(at).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .output()
            .map_err(|e| format!("cannot run mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Write to `path` until the disk is full; the error must be ENOSPC.
fn fill(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    for chunk in [1 << 16, 4096, 1] {
        let buf = vec![0xA5u8; chunk];
        loop {
            match f.write_all(&buf) {
                Ok(()) => {}
                Err(e) => {
                    assert_eq!(e.raw_os_error(), Some(28), "{e}");
                    break;
                }
            }
        }
    }
}

fn minutes(st: &BarStore) -> Vec<i64> {
    let b = st.query(&Query::new("d", "1m".parse().unwrap())).unwrap();
    let ts = b
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampNanosecondType>();
    let mut m: Vec<i64> = ts.values().iter().map(|t| t / MIN).collect();
    m.sort();
    m
}

#[test]
fn a_real_full_disk_refuses_writes_keeps_reads_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    let _fs = match Tmpfs::mount(&mnt, "2m") {
        Ok(m) => m,
        Err(why) => {
            eprintln!("SKIPPED a_real_full_disk_refuses_writes_keeps_reads_and_recovers: {why}");
            return;
        }
    };
    let root = mnt.join("data");
    let filler = mnt.join("filler");
    let mut st = BarStore::open(&root).unwrap();
    let mut cfg = DatasetConfig::new("1m".parse().unwrap());
    cfg.rollups = vec!["5m".parse().unwrap()];
    st.create_dataset("d", cfg).unwrap();
    let mut acked = Vec::new();
    for i in 0..20 {
        st.append("d", &bar("A", i), &RowPolicy::default()).unwrap();
        acked.push(i);
    }

    fill(&filler);
    // A new symbol needs a catalog commit: it fails, and the symbol is not kept.
    let err = st
        .append("d", &bar("B", 100), &RowPolicy::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("disk is full"), "{err}");
    assert!(!st.catalog().datasets["d"].symbols.contains("B"));
    // Known symbols: acknowledged, or refused as a full disk. A refused append is cut back
    // whole (its base frame may have landed before its rollup frames found no space):
    // exactly the acknowledged rows are served, now and after a restart.
    let mut refused = Vec::new();
    for i in 20..40 {
        match st.append("d", &bar("A", i), &RowPolicy::default()) {
            Ok(_) => acked.push(i),
            Err(e) => {
                assert!(e.to_string().contains("disk is full"), "{e}");
                refused.push(i);
            }
        }
        assert_eq!(minutes(&st), acked, "after the append of minute {i}");
    }
    assert!(!refused.is_empty(), "the disk was full");
    assert_eq!(
        st.read_only_reason(),
        None,
        "every refused append was undone"
    );
    drop(st);
    let st = BarStore::open(&root).unwrap();
    assert_eq!(
        minutes(&st),
        acked,
        "a refused append appeared after a restart"
    );
    assert!(st.rollups_repaired.is_empty(), "{:?}", st.rollups_repaired);
    drop(st);

    // Damage a frame in place (no new space needed): recovery must copy it to
    // quarantine, which the full disk refuses, so the writer comes up read-only.
    let wal = root.join("_hot/d/1970-01-01.wal");
    let mut f = std::fs::OpenOptions::new().write(true).open(&wal).unwrap();
    std::io::Seek::seek(&mut f, std::io::SeekFrom::Start(40)).unwrap();
    f.write_all(&[0xFF]).unwrap();
    drop(f);
    let mut st = BarStore::open(&root).unwrap();
    let reason = st.read_only_reason().expect("read-only").to_string();
    assert!(reason.contains("disk is full"), "{reason}");
    // Every acknowledged row but minute 0 (in the damaged frame), and no refused one.
    let served = minutes(&st);
    assert_eq!(served, acked[1..].to_vec());
    let err = st
        .append("d", &bar("A", 50), &RowPolicy::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("read-only because"), "{err}");
    assert!(!st.retry_writable());

    std::fs::remove_file(&filler).unwrap();
    assert!(st.retry_writable(), "{:?}", st.read_only_reason());
    assert_eq!(st.corruption_count(), 1);
    st.append("d", &bar("B", 100), &RowPolicy::default())
        .unwrap();
    drop(st);
    let st = BarStore::open(&root).unwrap();
    let mut want = served;
    want.push(100);
    assert_eq!(
        minutes(&st),
        want,
        "every row served before, and the new one"
    );
    drop(st);
    let rep = fsck::check(&root, &StoreOptions::default()).unwrap();
    assert_eq!(rep.problems(), 0, "{:#?}", rep.findings);
}
